#!/usr/bin/env python3
"""Generate a tiny SSD-style object detector for GStreamer's own detector chain
(`onnxinference ! ssdobjectdetector` on GStreamer 1.26, `onnxinference ! ssdtensordec` or
`ssdobjectdetector` on 1.28, then `ioutracker`), whose boxes are known exactly from the frames.

The model finds coloured squares: detection i (i = 0, 1, 2) is the bounding box of the pixels whose
channel i (R, G, B) is at least 128 while both other channels are below 128, i.e. of the red, the
green and the blue pixels. Its score is 0.9, 0.8 or 0.7 when there is such a pixel and 0 when there
is none (the decoders drop scores below their `score-threshold`, 0.3 by default); its class is 1
("person" in COCO's numbering) for every detection. So a test draws squares of pure colours on a
dark frame and knows each box to the pixel, a square moved between frames moves its box (tracking),
and a square drawn or removed makes a detection appear or go.

Files written (to tests/models/ unless OUT_DIR is given):

- detector_ssd.onnx: input "image", uint8 [1, 240, 320, 3] (NHWC, RGB: onnxinference then asks
  for video/x-raw,format=RGB,width=320,height=240 and feeds the frame's bytes as they are); four
  float32 outputs in the order of TensorFlow's SSD MobileNet:
    detection_boxes   [1, N, 4]  (ymin, xmin, ymax, xmax), normalised to 0..1
    detection_classes [1, N]     1.0
    detection_scores  [1, N]     0.9, 0.8, 0.7 or 0
    num_detections    [1]        3.0 (N = 3 at run time; declared dynamic, see below)
  Coordinates are (pixel + 0.25) / size, the first row or column of a box and the one past its
  last: the decoders compute `x * width` and convert to an integer, and a quarter pixel keeps both
  truncation and rounding on the right pixel (k / 240 * 240 is below k for some k in float32).
  The model's metadata maps each output to the tensor id GStreamer 1.26's decoder looks for
  ("Gst.Model.ObjectDetector.Boxes", ...; 1.26's onnxinference reads the ids there, and would
  also guess them from these output names).
- detector_ssd.modelinfo: what GStreamer 1.28's onnxinference reads instead (it refuses a model
  without one): the tensors' types, dims and tensor ids ("ssd-mobilenet-v1-variant-1-out-boxes",
  "-scores", "-classes", "generic-variant-1-out-count", group "ssd-mobilenet-v1-variant-1-out"),
  and the input's range (0..255, i.e. the pixels unchanged). The outputs' N is declared dynamic
  because 1.28's ssdtensordec accepts only tensor caps whose detection dimension is dynamic.
- detector_ssd_labels.txt: the decoders' `label-file`, "person" twice: 1.26 names class c after
  line c (counting from 0), 1.28.8 after line c - 1 (the first line is class 1), so class 1 reads
  "person" in both.

Usage: python3 tools/make_detector_model.py [OUT_DIR]    (needs the `onnx` and `numpy` packages)
"""

import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlexport.onnxgraph import Graph, save  # noqa: E402

WIDTH, HEIGHT = 320, 240
SCORES = (0.9, 0.8, 0.7)  # red, green, blue
PERSON = 1.0  # COCO's class number of "person"
LABELS = ["person", "person"]
QUARTER = 0.25  # of a pixel, added to every coordinate

# Tensor ids: GStreamer 1.26 (ssdobjectdetector, onnxinference's model metadata) and 1.28
# (ssdtensordec, .modelinfo files).
IDS_1_26 = {
    "detection_boxes": "Gst.Model.ObjectDetector.Boxes",
    "detection_classes": "Gst.Model.ObjectDetector.Classes",
    "detection_scores": "Gst.Model.ObjectDetector.Scores",
    "num_detections": "Gst.Model.ObjectDetector.NumDetections",
}
GROUP_1_28 = "ssd-mobilenet-v1-variant-1-out"
IDS_1_28 = {
    "detection_boxes": "ssd-mobilenet-v1-variant-1-out-boxes",
    "detection_classes": "ssd-mobilenet-v1-variant-1-out-classes",
    "detection_scores": "ssd-mobilenet-v1-variant-1-out-scores",
    "num_detections": "generic-variant-1-out-count",
}
OUTPUT_DIMS = {
    "detection_boxes": [1, "detections", 4],
    "detection_classes": [1, "detections"],
    "detection_scores": [1, "detections"],
    "num_detections": [1],
}


def detector(width=WIDTH, height=HEIGHT):
    g = Graph()
    image = g.input("image", [1, height, width, 3], TensorProto.UINT8)
    x = g.op("Reshape", [g.op("Cast", [image], to=TensorProto.FLOAT), g.ints([height, width, 3])])
    high = g.op("Cast", [g.op("Greater", [x, g.const(np.float32(127.5))])], to=TensorProto.FLOAT)
    low = g.op("Sub", [g.const(np.float32(1.0)), high])
    # masks[y, x, c]: channel c high and both others low.
    masks = g.op("Mul", [high, g.op("Gather", [low, g.ints([1, 0, 0])], axis=2)])
    masks = g.op("Mul", [masks, g.op("Gather", [low, g.ints([2, 2, 1])], axis=2)])
    rows = g.op("ReduceMax", [masks], axes=[1], keepdims=0)  # [H, 3]
    cols = g.op("ReduceMax", [masks], axes=[0], keepdims=0)  # [W, 3]
    present = g.op("ReduceMax", [rows], axes=[0], keepdims=0)  # [3]

    def f32(value):
        return g.const(np.float32(value))

    def span(hits, size):
        """(first index, one past the last) of the hits along axis 0, as (k + 1/4) / size."""
        index = g.const(np.arange(size, dtype=np.float32).reshape(size, 1))
        misses = g.op("Sub", [f32(1.0), hits])
        first = g.op("Add", [index, g.op("Mul", [misses, f32(1e6)])])
        first = g.op("ReduceMin", [first], axes=[0], keepdims=0)
        end = g.op("Mul", [g.op("Add", [index, f32(1.0)]), hits])
        end = g.op("ReduceMax", [end], axes=[0], keepdims=0)
        norm = []
        for v in (first, end):
            v = g.op("Div", [g.op("Add", [v, f32(QUARTER)]), f32(size)])
            norm.append(g.op("Unsqueeze", [g.op("Mul", [v, present]), g.ints([1])]))  # [3, 1]
        return norm

    ymin, ymax = span(rows, height)
    xmin, xmax = span(cols, width)
    boxes = g.op("Concat", [ymin, xmin, ymax, xmax], axis=1)  # [3, 4]
    scores = g.op("Mul", [present, g.const(np.array(SCORES, np.float32))])  # [3]
    classes = g.op("Add", [g.op("Mul", [scores, f32(0.0)]), f32(PERSON)])
    # N = 3, computed from the frame (0 × its brightest value + 3) so that ONNX Runtime cannot
    # fix it from the graph: the outputs' detection dimension stays dynamic, as in real SSD models.
    n = g.op("Add", [g.op("Mul", [g.op("ReduceMax", [x], keepdims=1), f32(0.0)]), f32(3.0)])
    count = g.op("Reshape", [n, g.ints([1])])  # [1]
    n = g.op("Cast", [count], to=TensorProto.INT64)

    def first_n(t):
        return g.op("Unsqueeze", [g.op("Slice", [t, g.ints([0]), n, g.ints([0])]), g.ints([0])])

    boxes, scores, classes = first_n(boxes), first_n(scores), first_n(classes)
    for name, value in (("detection_boxes", boxes), ("detection_classes", classes),
                        ("detection_scores", scores), ("num_detections", count)):
        g.nodes.append(helper.make_node("Identity", [value], [name]))
        g.output(name, OUTPUT_DIMS[name], TensorProto.FLOAT)
    props = dict(IDS_1_26)
    props["model.name"] = "detector_ssd"
    props["model.description"] = (
        "test detector: boxes of the red, green and blue pixels (tools/make_detector_model.py)")
    return g.to_model("detector_ssd", props)


def modelinfo(width=WIDTH, height=HEIGHT):
    """GStreamer 1.28's .modelinfo for detector(): ini-style, one section per tensor."""
    lines = ["[modelinfo]", "version=1.0", f"group-id={GROUP_1_28}", "",
             "[image]", "dir=input", "type=uint8", f"dims=1,{height},{width},3",
             "ranges=0.0,255.0;0.0,255.0;0.0,255.0", ""]
    for name, dims in OUTPUT_DIMS.items():
        lines += [f"[{name}]", "dir=output", "type=float32",
                  "dims=" + ",".join(str(d) if isinstance(d, int) else "-1" for d in dims),
                  f"id={IDS_1_28[name]}", "dims-order=row-major", ""]
    return "\n".join(lines)


def main():
    out = (Path(sys.argv[1]) if len(sys.argv) > 1
           else Path(__file__).resolve().parent.parent / "tests" / "models")
    out.mkdir(parents=True, exist_ok=True)
    save(detector(), str(out / "detector_ssd.onnx"))
    (out / "detector_ssd.modelinfo").write_text(modelinfo())
    (out / "detector_ssd_labels.txt").write_text("\n".join(LABELS) + "\n")
    print(f"wrote detector_ssd.onnx, detector_ssd.modelinfo and detector_ssd_labels.txt to {out}")


if __name__ == "__main__":
    main()
