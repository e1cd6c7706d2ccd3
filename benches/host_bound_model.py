#!/usr/bin/env python3
"""Write a model with I3D-NL-R50's input and almost no compute, for host-side benchmarks.

Input "video" uint8 [N, 32, 224, 224, 3] (NTHWC, sampled every 2 frames, scaled to 256 and
centre-cropped to 224, as the exporter's uint8 I3D models), output "scores" [N, 400]: the mean of
every 64th value of the clip times fixed weights. The element and the engine do all their host
work for it (sampling, scaling, packing, batching, copying 4.8 MB a clip into the input) while
the model itself takes well under a millisecond a clip, so what a run measures is the host side.

Usage: python3 benches/host_bound_model.py OUT.onnx     (needs the onnx and numpy packages)
"""

import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nlexport.onnxgraph import OUTPUT_NAME, Graph, metadata, save  # noqa: E402


def host_bound():
    """The model (an onnx.ModelProto)."""
    g = Graph()
    x = g.input("video", ["N", 32, 224, 224, 3], TensorProto.UINT8)
    flat = g.op("Reshape", [x, g.ints([0, -1, 64])])
    every = g.op("Slice", [flat, g.ints([0]), g.ints([1]), g.ints([2])])  # [N, K, 1]
    mean = g.op("ReduceMean", [g.op("Cast", [every], to=TensorProto.FLOAT)], axes=[1, 2],
                keepdims=0)
    mean = g.op("Reshape", [mean, g.ints([-1, 1])])  # [N, 1]
    w = np.linspace(-1.0, 1.0, 400, dtype=np.float32).reshape(1, 400)
    g.nodes.append(helper.make_node("MatMul", [mean, g.const(w)], [OUTPUT_NAME], name="scores"))
    g.output(OUTPUT_NAME, ["N", 400])
    props = metadata(clip_length=32, frame_stride=2, scale_size=256, crop_size=224,
                     mean=(114.75, 114.75, 114.75), std=(57.375, 57.375, 57.375),
                     layout="NTHWC", output_kind="logits", name="host-bound-i3d-shape",
                     weights="random")
    return g.to_model("host_bound", props)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: benches/host_bound_model.py OUT.onnx")
    save(host_bound(), sys.argv[1])
    print(f"wrote {sys.argv[1]}")


if __name__ == "__main__":
    main()
