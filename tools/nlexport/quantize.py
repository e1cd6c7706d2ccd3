"""int8 QDQ models calibrated on real clips: `tools/export_model.py --int8 --calibrate VIDEO…`.

The calibration inputs are the element's own. `nonlocal-classify --dump-inputs` runs the float32
model through the element on each video (consecutive clips over the whole video, the centre crop)
and writes every clip's input tensor exactly as the engine is fed it (docs/design.md, "Input
dumps"); nothing here decodes or preprocesses video. NNCF's post-training quantization (its ONNX
backend) then inserts QuantizeLinear/DequantizeLinear pairs whose ranges come from those clips.
Before the model is written, every quantization scale is checked (finite and positive), the model
is run once on a calibration clip (finite scores), and the calibration's provenance goes into its
metadata next to the float32 model's.

Needs `nncf` (tools/requirements.txt) and the `nonlocal-classify` program (cargo build).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]

# Provenance the exporter writes into an int8 model's metadata. The element does not read them
# (they are not in data/metadata_keys.txt): they say how the model was made.
QUANTIZATION_KEY = "quantization"
IGNORED_KEY = "quantization.float_ops"
VIDEOS_KEY = "calibration.videos"
CLIPS_KEY = "calibration.clips"

# Op types kept in float32 in networks with Non-local blocks: the attention's MatMuls and its
# softmax (docs/models.md, "int8 models").
NONLOCAL_FLOAT_OPS = ("MatMul", "Softmax")

# How long the program may take per calibration video (decoding and the float32 model's runs).
SECONDS_PER_VIDEO = 1800


class CalibrationError(ValueError):
    """A calibration set the model does not fit, or a quantization that failed; the message
    starts with the file or setting concerned."""


def check_sources(sources: list[str]) -> None:
    """Every calibration source exists: said before anything is exported."""
    for s in sources:
        if not Path(s).exists():
            raise CalibrationError(f"--calibrate {s}: no such file")


def find_classifier(explicit: str | None) -> str:
    """The `nonlocal-classify` program: `explicit`, else $NONLOCAL_CLASSIFY, else the one on PATH,
    else the project's cargo build (release, then debug)."""
    if explicit:
        if not Path(explicit).is_file():
            raise CalibrationError(f"--classifier {explicit}: no such program")
        return explicit
    candidates = [os.environ.get("NONLOCAL_CLASSIFY"), shutil.which("nonlocal-classify"),
                  REPO / "target" / "release" / "nonlocal-classify",
                  REPO / "target" / "debug" / "nonlocal-classify"]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    raise CalibrationError(
        "--int8: the nonlocal-classify program is needed to calibrate (it runs the element on "
        "the videos): build it with `cargo build --release`, or name it with --classifier PATH")


def _program_env() -> dict[str, str]:
    """The environment of the program: ONNX Runtime from this Python's onnxruntime when
    ORT_DYLIB_PATH is not set already (as tools/env.sh sets it)."""
    env = dict(os.environ)
    if not env.get("ORT_DYLIB_PATH"):
        try:
            import onnxruntime

            libs = sorted((Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so.*"))
            if libs:
                env["ORT_DYLIB_PATH"] = str(libs[0])
        except ImportError:
            pass
    return env


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Calibration:
    """The calibration clips: each one's input file, the source it came from, and the float32
    model's top-5 for it when the program classified it."""

    def __init__(self):
        self.inputs: list[Path] = []
        self.top5: list[list[str] | None] = []
        self.source_of: list[int] = []
        # (name, first 16 hex digits of its SHA-256) of each video or dump.
        self.sources: list[tuple[str, str]] = []

    def add(self, name: str, digest: str, inputs: list[Path], top5=None) -> None:
        self.source_of += [len(self.sources)] * len(inputs)
        self.sources.append((name, digest[:16]))
        self.inputs += inputs
        self.top5 += top5 if top5 is not None else [None] * len(inputs)

    def subset(self, n: int) -> "Calibration":
        """`n` of the clips spread evenly over all of them, in order (all when n is larger)."""
        if n >= len(self.inputs):
            return self
        picked = sorted(set(np.linspace(0, len(self.inputs) - 1, n).round().astype(int)))
        out = Calibration()
        out.sources = self.sources
        out.inputs = [self.inputs[i] for i in picked]
        out.top5 = [self.top5[i] for i in picked]
        out.source_of = [self.source_of[i] for i in picked]
        return out

    def provenance(self) -> str:
        """One line per source whose clips were used: `NAME sha256:HEX16 N clips`."""
        counts = [self.source_of.count(i) for i in range(len(self.sources))]
        return "\n".join(f"{name} sha256:{digest} {_clips(n)}"
                         for (name, digest), n in zip(self.sources, counts) if n)


def _clips(n: int) -> str:
    return f"{n} clip{'' if n == 1 else 's'}"


def _program_failures(stderr: str) -> list[str]:
    return [line[len("error: "):] for line in stderr.splitlines() if line.startswith("error: ")]


def dump_videos(classifier: str, model: Path, videos: list[Path], out_dir: Path,
                into: Calibration) -> None:
    """Run the float32 `model` through the element on `videos` (nonlocal-classify --clips 0
    --dump-inputs): consecutive clips over each whole video, every clip's input written."""
    names = [v.stem for v in videos]
    if len(set(names)) != len(names):
        raise CalibrationError(f"--calibrate: two videos share a name ({', '.join(names)}): "
                               "rename one (each video's clips go to a folder named after it)")
    cmd = [classifier, "--model", str(model), "--clips", "0", "--output", "csv",
           "--dump-inputs", str(out_dir), *map(str, videos)]
    try:
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_program_env(), timeout=SECONDS_PER_VIDEO * len(videos),
                             check=False)
    except OSError as e:
        raise CalibrationError(f"--classifier {classifier}: cannot run it "
                               f"({e.strerror or e})") from None
    except subprocess.TimeoutExpired:
        raise CalibrationError(f"--calibrate: {classifier} took over {SECONDS_PER_VIDEO} s a "
                               "video: calibrate on shorter videos") from None
    if run.returncode != 0:
        failures = _program_failures(run.stderr)
        given = tuple(f"{v}: " for v in videos)
        videos_failed = [f for f in failures if f.startswith(given)]
        if videos_failed:
            raise CalibrationError("; ".join(f"--calibrate {f}" for f in videos_failed)
                                   + ": calibrate on videos the element can classify")
        reason = "; ".join(failures) or run.stderr.strip() or f"exit status {run.returncode}"
        raise CalibrationError(f"--int8: {classifier} could not run the float32 model: {reason}")
    top5: dict[tuple[str, int], list[str]] = {}
    for row in csv.DictReader(io.StringIO(run.stdout)):
        top5.setdefault((row["path"], int(row["clip"])), []).append(row["label"])
    for v in videos:
        inputs = sorted((out_dir / v.stem).glob("clip-*.npy"))
        if not inputs:
            raise CalibrationError(f"--calibrate {v}: the element made no clip of it")
        into.add(v.name, _sha256(v), inputs,
                 [top5.get((str(v), int(p.stem.split("-")[1]))) for p in inputs])


def add_dumps(path: Path, into: Calibration) -> None:
    """Inputs dumped before (`nonlocal-classify --dump-inputs`): a .npy file, or a folder of
    them (searched recursively)."""
    if path.is_file():
        into.add(path.name, _sha256(path), [path])
        return
    inputs = sorted(path.rglob("*.npy"))
    if not inputs:
        raise CalibrationError(f"--calibrate {path}: a folder without .npy inputs")
    digest = hashlib.sha256("".join(_sha256(p) for p in inputs).encode()).hexdigest()
    into.add(f"{path.name}/", digest, inputs)


def model_input(model: onnx.ModelProto) -> tuple[str, list, np.dtype]:
    """The model's one input: name, dims (int, or None where symbolic) and NumPy type."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise CalibrationError(f"the model has {len(inputs)} inputs; calibration feeds one")
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return inputs[0].name, dims, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)


def check_inputs(calibration: Calibration, dims: list, dtype: np.dtype) -> None:
    """Every input must be one the model takes: its element type and rank, and every fixed
    dimension (the batch dimension is the clip's crops)."""
    want = "×".join("N" if d is None else str(d) for d in dims)
    for p in calibration.inputs:
        try:
            a = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CalibrationError(f"{p}: not a NumPy .npy input ({e})") from None
        fits = (a.dtype == dtype and a.ndim == len(dims)
                and all(d is None or d == n for d, n in zip(dims, a.shape)) and a.shape[0] >= 1)
        if not fits:
            got = "×".join(map(str, a.shape))
            raise CalibrationError(
                f"{p}: a {got} {a.dtype} input does not fit the model's {want} {np.dtype(dtype)} "
                "input: dump the clips with this model (nonlocal-classify --model MODEL "
                "--dump-inputs DIR), or calibrate on the videos themselves")


def broken_scales(model: onnx.ModelProto) -> list[str]:
    """The QuantizeLinear/DequantizeLinear nodes whose scale is not finite and positive, or
    whose zero point does not fit its type, as `node (reason)`."""
    init = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) < 2 or node.input[1] not in init:
            found.append(f"{node.name} (its scale is not a constant)")
            continue
        scale = numpy_helper.to_array(init[node.input[1]]).astype(np.float64)
        if scale.size == 0 or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
            bad = scale[~(np.isfinite(scale) & (scale > 0))].ravel()
            found.append(f"{node.name} (scale {bad[0] if bad.size else 'empty'})")
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in init:
                found.append(f"{node.name} (its zero point is not a constant)")
                continue
            zp = numpy_helper.to_array(init[node.input[2]])
            if zp.dtype not in (np.int8, np.uint8):
                found.append(f"{node.name} (zero point of type {zp.dtype})")
    return found


def quantize(model: onnx.ModelProto, calibration: Calibration, *,
             float_ops: tuple[str, ...]) -> tuple[onnx.ModelProto, str]:
    """NNCF's post-training int8 quantization of `model` on every calibration input (checked
    before); returns the QDQ model and the quantization line of its metadata."""
    # NNCF sends usage telemetry unless it is told it runs in CI; the exporter sends nothing.
    os.environ.setdefault("NNCF_CI", "1")
    try:
        import nncf
    except ImportError as e:
        raise CalibrationError(f"--int8 needs the nncf package ({e}): run tools/install-prereqs, "
                               "or pip install -r tools/requirements.txt") from None
    name, _, _ = model_input(model)
    subset = len(calibration.inputs)
    dataset = nncf.Dataset(calibration.inputs,
                           lambda p: {name: np.load(p, allow_pickle=False)})
    ignored = nncf.IgnoredScope(types=list(float_ops), validate=False) if float_ops else None
    try:
        quantized = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE,
                                  subset_size=subset, ignored_scope=ignored)
    except Exception as e:  # NNCF raises its own types and those of ONNX Runtime
        raise CalibrationError(f"--int8: NNCF could not quantize the model: {e}") from None
    line = f"int8-qdq nncf {nncf.__version__} preset=performance subset={subset}"
    return quantized, line


def check_quantized(model: onnx.ModelProto, calibration: Calibration, labels: list[str]) -> str:
    """Refuse a model with broken scales; run it once on the first calibration clip (its scores
    must be finite) and say how its top-1 compares with float32's there."""
    broken = broken_scales(model)
    if broken:
        raise CalibrationError("--int8: the quantized model has broken quantization scales, so "
                               f"it was not written: {', '.join(broken[:5])}"
                               + (f" and {len(broken) - 5} more" if len(broken) > 5 else "")
                               + ": calibrate on other clips")
    import onnxruntime as ort

    name, _, _ = model_input(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    scores = session.run(None, {name: np.load(calibration.inputs[0], allow_pickle=False)})[0]
    if not np.all(np.isfinite(scores)):
        raise CalibrationError("--int8: the quantized model gives non-finite scores on "
                               f"{calibration.inputs[0].name}, so it was not written")
    top1 = labels[int(np.argmax(scores[0]))] if labels else str(int(np.argmax(scores[0])))
    float_top5 = calibration.top5[0]
    if float_top5 is None:
        return f"int8 top-1 on the first calibration clip: {top1}"
    same = "as float32" if float_top5[0] == top1 else f"float32: {float_top5[0]!r}"
    return f"int8 top-1 on the first calibration clip: {top1!r}, {same}"


def export_int8(float_path: Path, output: str, sources: list[str], *, classifier: str | None,
                subset_size: int | None, float_ops: tuple[str, ...]) -> None:
    """Quantize the float32 model at `float_path` on `sources` (videos, or .npy inputs dumped
    before; at most `subset_size` of their clips, spread evenly) and write it to `output`, its
    metadata the float32 model's plus the provenance."""
    check_sources(sources)
    model = onnx.load(str(float_path))
    meta = {p.key: p.value for p in model.metadata_props}
    _, dims, dtype = model_input(model)
    calibration = Calibration()
    is_dump = [s.endswith(".npy") or Path(s).is_dir() for s in sources]
    with tempfile.TemporaryDirectory(prefix="nonlocal-int8-") as tmp:
        videos = [Path(s) for s, d in zip(sources, is_dump) if not d]
        if videos:
            dump_videos(find_classifier(classifier), float_path, videos, Path(tmp), calibration)
        for s in (s for s, d in zip(sources, is_dump) if d):
            add_dumps(Path(s), calibration)
        check_inputs(calibration, dims, dtype)
        calibration = calibration.subset(subset_size or len(calibration.inputs))
        quantized, line = quantize(model, calibration, float_ops=float_ops)
        labels = meta["labels"].split("\n") if meta.get("labels") else []
        check = check_quantized(quantized, calibration, labels)
    meta.update({
        QUANTIZATION_KEY: line,
        VIDEOS_KEY: calibration.provenance(),
        CLIPS_KEY: str(len(calibration.inputs)),
    })
    if float_ops:
        meta[IGNORED_KEY] = ",".join(float_ops)
    del quantized.metadata_props[:]
    for k, v in meta.items():
        quantized.metadata_props.add(key=k, value=v)
    onnx.save_model(quantized, output)
    names = ", ".join(name for name, _ in calibration.sources)
    print(f"int8: wrote {output} ({Path(output).stat().st_size / 1e6:.1f} MB, {line}, "
          f"calibrated on {_clips(len(calibration.inputs))} of {names}; {check})")
