#!/usr/bin/env python3
"""Generate the tiny ONNX models the element's tests use (written to tests/models/).

Each probe model's scores reveal exactly what the element fed it, so the tests can check clip
sampling, channel order, cropping, normalisation, layout and element type end to end:

- probe*.onnx: input "video" (4 frames of 8×8), output "scores" = the spatial mean of every
  (channel, frame) plane, 12 values, labelled "c{r,g,b}_t{0..3}" in metadata; output.kind
  probabilities so the element reports the raw values.
- logits_dynamic.onnx: dynamic T, output [R mean, G mean] as logits (the element applies softmax).
- kinetics_sized.onnx: 400 outputs and no labels metadata (built-in Kinetics-400 labels).
- slow.onnx: like logits_dynamic with T fixed to 4 plus a chain of matrix products (tens of ms on
  one CPU), for live-source dropping tests.
- bad_*.onnx: models the element must refuse with a clear error.
- hostile_*.onnx (tests/hardening.rs): valid ONNX whose metadata holds malformed or absurd values
  (clip.length "-3", a two-value mean, a zero std, a crop of a million pixels), zero classes, a
  fixed batch of 2^24, a graph that fails at run time, one that returns more scores than its output
  declares, one that returns NaN, and an int8 QDQ one whose quantization scale is 0; the element
  must refuse or report each with one error, or run it without panicking.
- slow_probe.onnx: probe.onnx's scores, computed after slow.onnx's chain of products (its result
  multiplied by zero), so a clip is in flight long enough for flushes to race it.
- colour.onnx, colour_25fps.onnx (segments, timelines, sampling by time): clips of 8 frames, scores
  = the mean of R, G and B over the clip scaled to 0..1, labelled "red", "green", "blue": the label
  is the colour most of the clip's frames show. colour_25fps.onnx declares clip.fps 25.
- qdq_colour.onnx (tests/openvino.rs): colour.onnx as an int8 exporter writes it, in
  QuantizeLinear/DequantizeLinear pairs (QDQ) around a 1×1×1 convolution; the same scores.
- hostile_qdq_scales.onnx: qdq_colour.onnx whose weights' per-channel scales are 2 for 3 channels;
  hostile_openvino_refused.onnx: a model ONNX Runtime's CPU provider runs and its OpenVINO build
  (1.24.1) refuses to compile (its partition of a Hardmax node leaves a cycle in the graph).

Usage: python3 tools/make_test_models.py [OUT_DIR]    (needs the `onnx` and `numpy` packages)
"""

import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlexport.onnxgraph import Graph, metadata, save  # noqa: E402

T, S = 4, 8
PROBE_LABELS = [f"c{c}_t{t}" for c in "rgb" for t in range(T)]


def probe_meta(**overrides):
    args = dict(
        clip_length=T,
        frame_stride=2,
        scale_size=S,
        crop_size=S,
        mean=(10, 20, 30),
        std=(2, 4, 5),
        layout="NCTHW",
        output_kind="probabilities",
        labels=PROBE_LABELS,
        name="probe",
        weights="test",
    )
    args.update(overrides)
    return metadata(**args)


def probe(layout="NCTHW", dtype=np.float32, elem=None, batch="N", weights="test"):
    g = Graph(dtype=np.float16 if dtype == np.float16 else np.float32)
    elem = elem or {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16,
                    np.uint8: TensorProto.UINT8}[dtype]
    if layout == "NCTHW":
        x = g.input("video", [batch, 3, T, S, S], elem)
    else:
        x = g.input("video", [batch, T, S, S, 3], elem)
    if dtype == np.uint8:
        x = g.op("Cast", [x], to=TensorProto.FLOAT)
    if layout == "NCTHW":
        m = g.op("ReduceMean", [x], axes=[3, 4], keepdims=0)  # N,3,T
    else:
        m = g.op("ReduceMean", [x], axes=[2, 3], keepdims=0)  # N,T,3
        m = g.op("Transpose", [m], perm=[0, 2, 1])
    out = g.op("Reshape", [m, g.ints([0, 3 * T])])
    out_type = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", [batch, 3 * T], out_type)
    return g.to_model("probe", probe_meta(layout=layout, weights=weights))


def _identity(src, dst):
    from onnx import helper

    return helper.make_node("Identity", [src], [dst])


def channel_means(g, x, dims):
    """[N, 3] means of channels R and G and B over every other axis of an NCTHW input."""
    return g.op("ReduceMean", [x], axes=list(dims), keepdims=0)


def logits_dynamic():
    g = Graph()
    x = g.input("video", ["N", 3, "T", S, S])
    m = channel_means(g, x, [2, 3, 4])
    pick = np.array([[1, 0], [0, 1], [0, 0]], dtype=np.float32)  # [R, G]
    out = g.op("MatMul", [m, g.const(pick)])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 2])
    props = metadata(clip_length=1, frame_stride=1, scale_size=S, crop_size=S, mean=(0, 0, 0),
                     std=(100, 100, 100), output_kind="logits", name="logits", weights="test")
    del props["clip.length"]  # the test sets clip-length itself
    return g.to_model("logits", props)


def kinetics_sized():
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = channel_means(g, x, [2, 3, 4])
    w = np.zeros((3, 400), dtype=np.float32)
    w[0, 6] = 1.0  # R mean → class 6, "arm wrestling" in Kinetics-400 order
    w[1, 0] = 1.0  # G mean → class 0, "abseiling"
    out = g.op("MatMul", [m, g.const(w)])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 400])
    props = probe_meta(labels=None, name="kinetics-sized")
    return g.to_model("kinetics_sized", props)


def slow(rounds=24, width=256):
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = channel_means(g, x, [2, 3, 4])  # N,3
    h = g.op("MatMul", [m, g.const(np.full((3, width), 1e-3, np.float32))])
    rng = np.random.default_rng(0)
    w = g.const((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32))
    for _ in range(rounds):
        h = g.op("Tanh", [g.op("MatMul", [g.op("Tile", [h, g.ints([256, 1])]), w])])
        h = g.op("ReduceMean", [g.op("Reshape", [h, g.ints([256, -1, width])])], axes=[0],
                 keepdims=0)
    out = g.op("MatMul", [h, g.const(np.ones((width, 2), np.float32))])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 2])
    return g.to_model("slow", probe_meta(labels=None, output_kind="logits", name="slow"))


def bad(name, in_shape, out_classes, elem=TensorProto.FLOAT):
    g = Graph()
    x = g.input("video", in_shape, elem)
    if elem != TensorProto.FLOAT:
        x = g.op("Cast", [x], to=TensorProto.FLOAT)
    axes = list(range(1, len(in_shape)))
    m = g.op("ReduceMean", [x], axes=axes, keepdims=1)  # N,1
    out = g.op("Tile", [g.op("Reshape", [m, g.ints([-1, 1])]), g.ints([1, out_classes])])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", out_classes])
    return g.to_model(name, probe_meta(labels=None, name=name))



# ---------------------------------------------------------------------------------------------
# Hostile models (tests/hardening.rs) and a slow probe.


def hostile_meta(key, value):
    """probe.onnx with one metadata value replaced by `value` (kept verbatim)."""
    model = probe()
    props = {p.key: p.value for p in model.metadata_props}
    props[key] = value
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model


def hostile_huge_crop():
    """Dynamic height and width, metadata asking for 1,000,000² crops of 1,000,000 short sides."""
    g = Graph()
    x = g.input("video", ["N", 3, T, "H", "W"])
    m = g.op("ReduceMean", [x], axes=[3, 4], keepdims=0)
    out = g.op("Reshape", [m, g.ints([0, 3 * T])])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3 * T])
    return g.to_model("hostile_huge_crop",
                      probe_meta(crop_size=1_000_000, scale_size=1_000_000, name="hostile_huge_crop"))


def hostile_runtime_failure():
    """Loads fine; every run fails (a clip of 768 values cannot be reshaped into rows of 5)."""
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = channel_means(g, x, [2, 3, 4])
    out = g.op("MatMul", [m, g.const(np.ones((3, 2), np.float32))])
    bad = g.op("ReduceSum", [g.op("Reshape", [x, g.ints([5, -1])])], keepdims=0)
    out = g.op("Add", [out, g.op("Mul", [bad, g.const(np.zeros((), np.float32))])])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 2])
    return g.to_model("hostile_runtime_failure", probe_meta(labels=None, name="hostile_runtime_failure"))


def hostile_lying_output():
    """Declares 3 scores per clip and returns N + 4 (5 for one clip): the count depends on the
    batch size, so no shape inference can correct the declaration."""
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = channel_means(g, x, [2, 3, 4])  # N,3
    first = g.op("Slice", [m, g.ints([0]), g.ints([1]), g.ints([1])])  # N,1
    n = g.op("Gather", [g.op("Shape", [x]), g.ints([0])], axis=0)  # [N]
    k = g.op("Add", [n, g.ints([4])])
    out = g.op("Tile", [first, g.op("Concat", [g.ints([1]), k], axis=0)])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3])
    return g.to_model("hostile_lying_output", probe_meta(labels=None, name="hostile_lying_output"))


def hostile_nan():
    """Logits that are all NaN."""
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = channel_means(g, x, [2, 3, 4])
    out = g.op("MatMul", [m, g.const(np.full((3, 3), np.nan, np.float32))])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3])
    return g.to_model("hostile_nan", probe_meta(labels=None, output_kind="logits", name="hostile_nan"))


def hostile_qdq_scale():
    """probe.onnx's scores through an int8 QuantizeLinear/DequantizeLinear pair whose scale is 0
    (what a broken quantization writes; tools/export_model.py --int8 refuses to write one)."""
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = g.op("ReduceMean", [x], axes=[3, 4], keepdims=0)  # N,3,T
    scale, zero = g.const(np.float32(0.0), "scale"), g.const(np.int8(0), "zero", keep_dtype=True)
    q = g.op("QuantizeLinear", [m, scale, zero])
    dq = g.op("DequantizeLinear", [q, scale, zero])
    out = g.op("Reshape", [dq, g.ints([0, 3 * T])])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3 * T])
    return g.to_model("hostile_qdq_scale", probe_meta(name="hostile_qdq_scale"))


def slow_probe(rounds=24, width=256):
    """probe.onnx's 12 scores plus 0 × (slow.onnx's chain), so each run takes tens of ms."""
    g = Graph()
    x = g.input("video", ["N", 3, T, S, S])
    m = g.op("ReduceMean", [x], axes=[3, 4], keepdims=0)  # N,3,T
    probe_out = g.op("Reshape", [m, g.ints([0, 3 * T])])
    c = channel_means(g, x, [2, 3, 4])
    h = g.op("MatMul", [c, g.const(np.full((3, width), 1e-3, np.float32))])
    rng = np.random.default_rng(0)
    w = g.const((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32))
    for _ in range(rounds):
        h = g.op("Tanh", [g.op("MatMul", [g.op("Tile", [h, g.ints([256, 1])]), w])])
        h = g.op("ReduceMean", [g.op("Reshape", [h, g.ints([256, -1, width])])], axes=[0],
                 keepdims=0)
    zero = g.op("MatMul", [h, g.const(np.zeros((width, 3 * T), np.float32))])
    out = g.op("Add", [probe_out, zero])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3 * T])
    return g.to_model("slow_probe", probe_meta(name="slow_probe"))


def colour_meta(name, fps=None):
    """colour.onnx's metadata: clips of 8 frames, 0..255 scaled to 0..1, red, green and blue."""
    return metadata(clip_length=8, frame_stride=1, scale_size=S, crop_size=S, mean=(0, 0, 0),
                    std=(255, 255, 255), output_kind="probabilities",
                    labels=["red", "green", "blue"], name=name, weights="test", fps=fps)


def colour(fps=None):
    g = Graph()
    x = g.input("video", ["N", 3, "T", S, S])
    out = channel_means(g, x, [2, 3, 4])  # N,3
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3])
    name = "colour" if fps is None else f"colour_{fps}fps"
    return g.to_model(name, colour_meta(name, fps))


def qdq_colour(weight_scale=1 / 127, name="qdq_colour"):
    """colour.onnx in int8 QDQ form: the input quantized to uint8 with scale 1/255 (the 0..1
    colours exactly), a 1×1×1 convolution whose int8 weights (127 × the identity, `weight_scale`
    per tensor or per output channel) dequantize to the identity, then the channel means."""
    g = Graph()
    x = g.input("video", ["N", 3, "T", S, S])
    scale, zero = g.const(np.float32(1 / 255)), g.const(np.uint8(0))
    x = g.op("DequantizeLinear", [g.op("QuantizeLinear", [x, scale, zero]), scale, zero])
    w = g.const((np.eye(3) * 127).astype(np.int8).reshape(3, 3, 1, 1, 1))
    w_scale = g.const(np.asarray(weight_scale, np.float32))
    w_zero = g.const(np.zeros(np.shape(weight_scale), np.int8))
    w = g.op("DequantizeLinear", [w, w_scale, w_zero], axis=0)
    out = channel_means(g, g.op("Conv", [x, w], kernel_shape=[1, 1, 1]), [2, 3, 4])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3])
    return g.to_model(name, colour_meta(name))


def hostile_openvino_refused():
    """colour.onnx's scores plus 0 × Hardmax(scores): ONNX Runtime's CPU provider runs it;
    onnxruntime-openvino 1.24.1 fails to open it ("the graph is not acyclic")."""
    g = Graph()
    x = g.input("video", ["N", 3, "T", S, S])
    c = channel_means(g, x, [2, 3, 4])
    out = g.op("Add", [c, g.op("Mul", [g.op("Hardmax", [c], axis=1),
                                       g.const(np.zeros((), np.float32))])])
    g.nodes.append(_identity(out, "scores"))
    g.output("scores", ["N", 3])
    return g.to_model("hostile_openvino_refused", colour_meta("hostile_openvino_refused"))


def hostile_models():
    return {
        "hostile_clip_length.onnx": hostile_meta("clip.length", "-3"),
        "hostile_mean.onnx": hostile_meta("preprocess.mean", "1,2"),
        "hostile_std.onnx": hostile_meta("preprocess.std", "57.375,0,57.375"),
        "hostile_huge_crop.onnx": hostile_huge_crop(),
        "hostile_zero_classes.onnx": bad("hostile_zero_classes", ["N", 3, T, S, S], 0),
        "hostile_huge_batch.onnx": probe(batch=1 << 24),
        "hostile_runtime_failure.onnx": hostile_runtime_failure(),
        "hostile_lying_output.onnx": hostile_lying_output(),
        "hostile_nan.onnx": hostile_nan(),
        "hostile_qdq_scale.onnx": hostile_qdq_scale(),
        "slow_probe.onnx": slow_probe(),
        "hostile_qdq_scales.onnx": qdq_colour([1 / 127, 1 / 127], "hostile_qdq_scales"),
        "hostile_openvino_refused.onnx": hostile_openvino_refused(),
    }

def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests" / "models"
    out.mkdir(parents=True, exist_ok=True)
    models = {
        "probe.onnx": probe(),
        "probe_nthwc_f16.onnx": probe("NTHWC", np.float16),
        "probe_u8.onnx": probe(dtype=np.uint8),
        "probe_batch2.onnx": probe(batch=2),
        "probe_random.onnx": probe(weights="random"),
        "logits_dynamic.onnx": logits_dynamic(),
        "kinetics_sized.onnx": kinetics_sized(),
        "slow.onnx": slow(),
        "bad_rank4.onnx": bad("bad_rank4", ["N", 3, S, S], 2),
        "bad_channels4.onnx": bad("bad_channels4", ["N", 4, T, S, S], 2),
        "bad_int64.onnx": bad("bad_int64", ["N", 3, T, S, S], 2, TensorProto.INT64),
        "bad_one_class.onnx": bad("bad_one_class", ["N", 3, T, S, S], 1),
        "colour.onnx": colour(),
        "colour_25fps.onnx": colour(25),
        "qdq_colour.onnx": qdq_colour(),
    }
    models.update(hostile_models())
    for name, model in models.items():
        save(model, str(out / name))
    print(f"wrote {len(models)} models to {out}")


if __name__ == "__main__":
    main()
