#!/usr/bin/env python3
"""Reference scores of ONNX Runtime for exported models, to check other runtimes against.

    python3 benches/ort_scores.py MODEL.onnx [MODEL.onnx …] [--clips 2] [--seed 7]
                                  [--provider cpu|cuda] [--out DIR]

For each model: `--clips` random clips in the model's own input form (uint8 (N, T, H, W, 3) crops
for a `--uint8` export, else (N, 3, T, H, W) pixels normalised with the model's
preprocess.mean/std in its float type), run once through ONNX Runtime, written as
DIR/<model stem>.input.npy and DIR/<model stem>.scores.npy (DIR: `--out`, default the model's
folder). `benches/torch_reference.py --verify INPUT SCORES` checks every PyTorch form against such
a pair, and `NONLOCAL_TORCH_CHECK_DIR` (tests/python/test_torch_reference.py) reads the same
names. Needs numpy and onnxruntime (not onnx); on a 2-core CPU the two I3D-NL-R50 clips take
about a minute.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference import OnnxReadError, read_onnx  # noqa: E402  (numpy only)

# ONNX TensorProto element types of the model inputs this writes
_UINT8, _FLOAT, _FLOAT16 = 2, 1, 10


def make_input(model, clips: int, seed: int) -> tuple[str, np.ndarray]:
    """(input name, array) of `clips` random clips for the model read by `read_onnx`."""
    if len(model.inputs) != 1:
        raise ValueError(f"expected one graph input, found {sorted(model.inputs)}")
    (name, (elem_type, dims)), = model.inputs.items()
    if len(dims) != 5 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise ValueError(f"input {name!r} has shape {dims}, not (N, …) with 4 fixed dimensions")
    if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != clips:
        raise ValueError(f"the model takes batches of {dims[0]} only, not --clips {clips}")
    shape = (clips, *dims[1:])
    rng = np.random.default_rng(seed)
    if elem_type == _UINT8:
        if shape[4] != 3:
            raise ValueError(f"uint8 input {name!r} is {dims}, not (N, T, H, W, 3)")
        return name, rng.integers(0, 256, shape, dtype=np.uint8)
    if elem_type not in (_FLOAT, _FLOAT16):
        raise ValueError(f"input {name!r} has element type {elem_type} (not uint8, float, float16)")
    if shape[1] != 3:
        raise ValueError(f"float input {name!r} is {dims}, not (N, 3, T, H, W)")
    meta = model.metadata
    try:
        mean = np.array([float(v) for v in meta["preprocess.mean"].split(",")])
        std = np.array([float(v) for v in meta["preprocess.std"].split(",")])
    except (KeyError, ValueError):
        raise ValueError("no preprocess.mean/std metadata to normalise the input with") from None
    pixels = rng.integers(0, 256, shape).astype(np.float64)
    x = (pixels - mean.reshape(1, 3, 1, 1, 1)) / std.reshape(1, 3, 1, 1, 1)
    return name, x.astype(np.float16 if elem_type == _FLOAT16 else np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL.onnx")
    p.add_argument("--clips", type=int, default=2, help="clips per model (default 2)")
    p.add_argument("--seed", type=int, default=7, help="seed of the random clips (default 7)")
    p.add_argument("--provider", choices=["cpu", "cuda"], default="cpu",
                   help="ONNX Runtime execution provider (default cpu)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write the .npy files (default: beside each model)")
    args = p.parse_args(argv)
    if args.clips < 1:
        p.error("--clips must be at least 1")
    try:
        import onnxruntime as ort
    except ImportError:
        print("error: this needs the onnxruntime Python package (pip install onnxruntime)",
              file=sys.stderr)
        return 2
    providers = (["CUDAExecutionProvider"] if args.provider == "cuda" else []) + [
        "CPUExecutionProvider"]
    status = 0
    for path in map(Path, args.models):
        try:
            name, video = make_input(read_onnx(path), args.clips, args.seed)
            t0 = time.perf_counter()
            sess = ort.InferenceSession(str(path), providers=providers)
            outputs = [o.name for o in sess.get_outputs()]
            out_name = "scores" if "scores" in outputs else outputs[0]
            scores = np.asarray(sess.run([out_name], {name: video})[0], np.float32)
            secs = time.perf_counter() - t0
        except (OnnxReadError, ValueError) as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's own errors, one model each
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"error: {path}: ONNX Runtime failed: {first}", file=sys.stderr)
            status = 1
            continue
        out = Path(args.out) if args.out else path.parent
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"{path.stem}.input.npy", video)
        np.save(out / f"{path.stem}.scores.npy", scores)
        print(f"{path.name}: {args.clips} clips {video.dtype}{list(video.shape)} → scores "
              f"{list(scores.shape)} (top-1 {scores.argmax(-1).tolist()}, "
              f"{sess.get_providers()[0]}, {secs:.1f} s) in {out}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
