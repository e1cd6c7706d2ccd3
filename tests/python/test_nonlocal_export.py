"""Tests of the Non-local ResNet exporter (tools/nlexport/nonlocal_resnet.py, tools/export_model.py).

The exported graphs run under ONNX Runtime (CPU) and are compared with an independent float64
NumPy forward pass (reference_nonlocal.py) on small inputs: 64×64 crops and as many frames as each
architecture needs to keep several frames through res3–res5 (C2D: 8 → 4; I3D: 16 or 32 → 2 or 4).
Random parameters come from `random_params`; nothing here compares against stored numbers.
"""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nlexport import nonlocal_resnet as NR  # noqa: E402
import reference_nonlocal as REF  # noqa: E402

ort = pytest.importorskip("onnxruntime")

EXPORT_CLI = REPO / "tools" / "export_model.py"
LABELS = REPO / "data" / "kinetics400_labels.txt"
CROP = 64
RTOL = 1e-4  # float32 ONNX Runtime against the float64 reference, per probability

# Frames of the small test clips (enough for ≥ 2 frames after pool2, so the 3×1×1 kernels see
# neighbours and padding).
FRAMES = {"c2d-r50-nl": 8, "i3d-r50-nl": 32, "c2d-r101-nl": 8, "i3d-r101-nl": 16}


# -- helpers ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def params_for(arch: str, pairwise: str = "embedded_gaussian", seed: int = 0):
    return NR.random_params(arch, seed, pairwise=pairwise)


def session(model: onnx.ModelProto):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, video: np.ndarray) -> np.ndarray:
    return session(model).run(["scores"], {"video": video})[0]


def clip(n: int, frames: int, seed: int = 1, crop: int = CROP) -> np.ndarray:
    """Normalised pixels, as the element feeds them: (0..255 − 114.75) / 57.375."""
    pixels = np.random.default_rng(seed).uniform(0, 255, (n, 3, frames, crop, crop))
    return ((pixels - 114.75) / 57.375).astype(np.float32)


def clip_and_reference_input(n: int, frames: int, seed: int, uint8: bool):
    """A clip in the model's input form (uint8 NTHWC pixels or normalised NCTHW) and the
    normalised NCTHW float64 pixels the reference takes for it."""
    if not uint8:
        video = clip(n, frames, seed=seed)
        return video, video
    video = np.random.default_rng(seed).integers(0, 256, (n, frames, CROP, CROP, 3), dtype=np.uint8)
    return video, (video.transpose(0, 4, 1, 2, 3) - 114.75) / 57.375


def shapeless(arch: str, num_classes: int = 400) -> dict:
    """Zero-cost arrays of the right shapes (check_params only looks at shapes)."""
    return {k: np.broadcast_to(np.float32(0), s) for k, s in NR.expected_params(arch, num_classes).items()}


# -- architecture facts -----------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(NR.ARCHS))
def test_nonlocal_blocks_where_fair_puts_them(arch):
    names = NR.expected_params(arch)
    nl = sorted({k.rsplit("_", 2)[0] for k in names if k.startswith("nonlocal") and "_bn_" not in k})
    cfg = REF.architecture(arch)
    want = sorted(f"nonlocal_conv{s + 2}_{i}" for s in range(4) for i in cfg["nonlocal"][s])
    assert nl == want and len(nl) == 5
    for name in nl:
        c = names[name + "_out_w"][0]
        assert names[name + "_theta_w"] == (c // 2, c, 1, 1, 1)
        assert names[name + "_out_b"] == (c,) and names[name + "_bn_riv"] == (c,)
    # temporal kernels of branch2a follow the reference's table
    for s, stage_kts in enumerate(cfg["temporal"]):
        got = [names[f"res{s + 2}_{i}_branch2a_w"][2] for i in range(len(stage_kts))]
        assert got == stage_kts
    assert names["pred_w"] == (400, 2048) and names["pred_b"] == (400,)


@pytest.mark.parametrize("arch", list(NR.ARCHS))
def test_feature_shapes_at_224(arch):
    """The spatial/temporal sizes of docs/design.md: 112 → 55 (no pool1 padding) → 28 → 14 → 7."""
    s = NR.feature_shapes(arch)
    assert s["conv1"][1:] == ((16, 112, 112) if arch.startswith("i3d") else (8, 112, 112))
    assert s["pool1"][1:] == (8, 55, 55)
    assert s["pool2"][1:] == (4, 55, 55)
    assert [s[f"res{i}"] for i in (3, 4, 5)] == [(512, 4, 28, 28), (1024, 4, 14, 14),
                                                  (2048, 4, 7, 7)]
    assert NR.feature_shapes(arch, crop_size=256)["res5"] == (2048, 4, 8, 8)  # 2×2 head positions


def test_parameter_count_i3d_r50_nl():
    """FAIR/the paper give 35.4 M parameters for I3D-R50 with 5 NL blocks."""
    n = NR.count_params("i3d-r50-nl")
    assert abs(n - 35.4e6) < 0.05e6, n
    # the C2D network differs only by the temporal taps of conv1 and of the 3×1×1 branch2a convs
    extra = sum(int(np.prod(s)) * (1 - 1 / s[2]) for k, s in NR.expected_params("i3d-r50-nl").items()
                if k.endswith("_w") and len(s) == 5 and s[2] > 1)
    assert NR.count_params("c2d-r50-nl") == n - int(round(extra))


def test_random_params_deterministic_and_sane():
    a = NR.random_params("c2d-r50-nl", 3)
    b = NR.random_params("c2d-r50-nl", 3)
    c = NR.random_params("c2d-r50-nl", 4)
    assert list(a) == list(NR.expected_params("c2d-r50-nl"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1_w"], c["conv1_w"])
    assert all(a[k].dtype == np.float32 for k in a)
    assert all((a[k] > 0).all() for k in a if k.endswith("_riv"))
    NR.check_params("c2d-r50-nl", a)


# -- ONNX Runtime against the NumPy reference -------------------------------------------------

CASES = [
    ("c2d-r50-nl", "embedded_gaussian", 2),
    ("c2d-r50-nl", "dot_product", 1),
    ("i3d-r50-nl", "embedded_gaussian", 1),
    ("i3d-r50-nl", "dot_product", 1),
    ("c2d-r101-nl", "embedded_gaussian", 1),
    ("i3d-r101-nl", "embedded_gaussian", 1),
]


@pytest.mark.parametrize("arch,pairwise,n", CASES)
def test_matches_reference(arch, pairwise, n):
    frames = FRAMES[arch]
    if arch == "i3d-r50-nl" and pairwise == "dot_product":
        frames = 16  # a second clip length, and faster
    params = params_for(arch, pairwise)
    model = NR.build(arch, params, pairwise=pairwise, crop_size=CROP, frames=frames)
    video = clip(n, frames)
    got = run(model, video)
    want = REF.forward(arch, params, video, pairwise)
    assert got.shape == (n, 400) and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
    # a meaningful comparison: the probabilities are far from uniform and differ per clip
    assert want.max() / want.min() > 2
    if n > 1:
        assert np.abs(want[0] - want[1]).max() > 100 * RTOL * want.max()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


def test_comparison_detects_nonlocal_errors():
    """The tolerance is tight enough to see a wrong pairwise function or a broken attention."""
    arch, frames = "c2d-r50-nl", FRAMES["c2d-r50-nl"]
    params = params_for(arch)
    video = clip(1, frames)
    got = run(NR.build(arch, params, crop_size=CROP, frames=frames), video)

    def off(want):
        return np.abs(got - want).max() / want.max()

    assert off(REF.forward(arch, params, video, "dot_product")) > 100 * RTOL
    uniform = dict(params)  # θ = 0: every query attends to all keys equally
    for name in [k for k in params if k.endswith("_theta_w") or k.endswith("_theta_b")]:
        uniform[name] = np.zeros_like(params[name])
    assert off(REF.forward(arch, uniform, video)) > 10 * RTOL
    moved = dict(params)  # the NL block after res4_5 switched off
    moved["nonlocal_conv4_5_bn_s"] = np.zeros_like(params["nonlocal_conv4_5_bn_s"])
    moved["nonlocal_conv4_5_bn_b"] = np.zeros_like(params["nonlocal_conv4_5_bn_b"])
    assert off(REF.forward(arch, moved, video)) > 10 * RTOL


def test_head_averages_softmax_over_positions():
    """With a 1×1 spatial head kernel the 64² clip leaves 2×2 positions, each softmaxed."""
    arch, frames = "c2d-r50-nl", FRAMES["c2d-r50-nl"]
    params = params_for(arch)
    video = clip(1, frames, seed=5)
    got = run(NR.build(arch, params, crop_size=CROP, frames=frames, pool5_size=1), video)
    want = REF.forward(arch, params, video, pool5_size=1)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
    # different from averaging the logits first (the 7×7-style single position)
    single = REF.forward(arch, params, video)
    assert np.abs(single - want).max() > 10 * RTOL * want.max()


# -- fp16, static batch -----------------------------------------------------------------------


def test_fp16_export_runs_and_agrees():
    arch, frames = "c2d-r50-nl", FRAMES["c2d-r50-nl"]
    params = params_for(arch)
    m16 = NR.build(arch, params, fp16=True, crop_size=CROP, frames=frames)
    assert m16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert m16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    floats = [t for t in m16.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT,
                                                                   onnx.TensorProto.FLOAT16)]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats)
    assert m16.ByteSize() < 0.6 * NR.build(arch, params, crop_size=CROP, frames=frames).ByteSize()
    video = clip(2, frames)
    got = run(m16, video.astype(np.float16))
    want = REF.forward(arch, params, video)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-3)
    np.testing.assert_allclose(got, want, rtol=5e-2, atol=0)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("fp16", [False, True])
def test_uint8_input_normalises_inside_the_graph(fp16):
    """A --uint8 model fed raw NTHWC pixels gives the float model's scores on the normalised
    NCTHW clip: the graph transposes, casts and applies mean and std itself."""
    arch, frames = "c2d-r50-nl", FRAMES["c2d-r50-nl"]
    params = params_for(arch)
    m8 = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=True, fp16=fp16)
    inp = m8.graph.input[0].type.tensor_type
    assert inp.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value or d.dim_param for d in inp.shape.dim] == ["N", frames, CROP, CROP, 3]
    meta = {p.key: p.value for p in m8.metadata_props}
    assert meta["preprocess.layout"] == "NTHWC"
    pixels = np.random.default_rng(5).integers(0, 256, (2, frames, CROP, CROP, 3), dtype=np.uint8)
    normalised = ((pixels.transpose(0, 4, 1, 2, 3).astype(np.float64) - np.array(NR.MEAN)
                   .reshape(1, 3, 1, 1, 1)) / np.array(NR.STD).reshape(1, 3, 1, 1, 1))
    want = REF.forward(arch, params, normalised)
    got = run(m8, pixels)
    if fp16:
        np.testing.assert_allclose(got, want, rtol=5e-2, atol=0)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
    # Channels really are told apart: swapping R and B changes the scores.
    assert np.abs(run(m8, pixels[..., ::-1].copy()) - got).max() > 1e-4


@pytest.mark.parametrize("uint8", [False, True])
def test_2d_form_computes_the_same_function(uint8):
    """--form 2d: frames through 2-D convolutions, the same scores as the 5-D graph (and the
    float64 reference), fixed or symbolic batch; I3D networks are refused."""
    arch, frames = "c2d-r50-nl", FRAMES["c2d-r50-nl"]
    params = params_for(arch)
    m2 = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=uint8, form="2d")
    m3 = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=uint8)
    convs = [n for n in m2.graph.node if n.op_type == "Conv"]
    assert convs and all(len(n.attribute[[a.name for a in n.attribute].index("kernel_shape")]
                                          .ints) == 2 for n in convs)
    assert m2.graph.input[0].type == m3.graph.input[0].type
    assert {p.key: p.value for p in m2.metadata_props} == {p.key: p.value for p in m3.metadata_props}
    video, ref_in = clip_and_reference_input(3, frames, 7, uint8)
    got = run(m2, video)
    np.testing.assert_allclose(got, run(m3, video), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got, REF.forward(arch, params, ref_in), rtol=RTOL, atol=0)
    static = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=uint8, form="2d", batch=3)
    np.testing.assert_allclose(run(static, video), got, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="2-D form is for the C2D networks"):
        NR.build("i3d-r50-nl", params_for("i3d-r50-nl"), crop_size=CROP, frames=16, form="2d")


@pytest.mark.parametrize("uint8", [False, True])
def test_stacked_stem_computes_the_same_function(uint8):
    """--stem stacked (I3D's default): I3D's 5×7×7 stem as a one-hot tap convolution and a 1×7×7
    one gives the scores of the one-convolution graph (--stem conv3d) and the float64
    reference, padding frames included."""
    arch, frames = "i3d-r50-nl", 16
    params = params_for(arch)
    stacked = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=uint8)
    plain = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=uint8, stem="conv3d")
    def kernels(model):
        return [tuple(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
                for n in model.graph.node if n.op_type == "Conv"]
    assert kernels(stacked)[:2] == [(5, 1, 1), (1, 7, 7)] and (5, 7, 7) not in kernels(stacked)
    assert kernels(plain)[0] == (5, 7, 7)
    video, ref_in = clip_and_reference_input(2, frames, 11, uint8)
    got = run(stacked, video)
    np.testing.assert_allclose(got, run(plain, video), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got, REF.forward(arch, params, ref_in), rtol=RTOL, atol=0)
    w = params["conv1_w"]
    assert np.array_equal(NR.unstack_stem(NR.stack_stem(w), 3, 5), w)
    # C2D stems are 1×7×7 already: stacked leaves the graph as it is; the default (auto) is s2d
    # for C2D in the 5-D form and stacked for I3D; the 2-D form keeps its one convolution.
    c2d = params_for("c2d-r50-nl")
    def graph(*args, **kw):
        return NR.build(*args, crop_size=CROP, **kw).SerializeToString()
    assert graph("c2d-r50-nl", c2d, stem="stacked") == graph("c2d-r50-nl", c2d, stem="conv3d")
    assert graph("c2d-r50-nl", c2d) == graph("c2d-r50-nl", c2d, stem="s2d")
    assert graph("c2d-r50-nl", c2d, form="2d") == graph("c2d-r50-nl", c2d, form="2d", stem="conv3d")
    assert NR.build(arch, params, crop_size=CROP, frames=frames).SerializeToString() == \
        NR.build(arch, params, crop_size=CROP, frames=frames, stem="stacked").SerializeToString()
    with pytest.raises(ValueError, match="stem must be one of"):
        NR.build(arch, params, crop_size=CROP, frames=frames, stem="taps")


@pytest.mark.parametrize("arch,form", [("i3d-r50-nl", "conv3d"), ("c2d-r50-nl", "conv3d"),
                                       ("c2d-r50-nl", "2d")])
def test_s2d_stem_computes_the_same_function(arch, form):
    """--stem s2d: conv1 as a one-hot kt×2×2 convolution of stride 2 (temporal taps and spatial
    phases into channels) and a 1×4×4 one of stride 1 gives the one-convolution graph's scores
    and the float64 reference's, the padded borders included; no 7×7 kernel is left."""
    frames = FRAMES[arch] // 2
    params = params_for(arch)
    s2d = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=True, form=form, stem="s2d")
    plain = NR.build(arch, params, crop_size=CROP, frames=frames, uint8=True, form=form,
                     stem="conv3d")
    kernels = [tuple(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
               for n in s2d.graph.node if n.op_type == "Conv"]
    kt = NR.get_spec(arch).conv1_kt
    assert kernels[:2] == ([(2, 2), (4, 4)] if form == "2d" else [(kt, 2, 2), (1, 4, 4)])
    assert not any(k[-1] == 7 for k in kernels)
    video, ref_in = clip_and_reference_input(2, frames, 13, True)
    got = run(s2d, video)
    np.testing.assert_allclose(got, run(plain, video), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got, REF.forward(arch, params, ref_in), rtol=RTOL, atol=0)


def test_s2d_stem_weights_and_odd_planes():
    """The rearranged weights invert exactly, and an odd plane (one more padding row and column
    at the far end) still gives the one-convolution graph's scores."""
    w = params_for("i3d-r50-nl")["conv1_w"]
    assert np.array_equal(NR.unstack_stem(NR.stack_stem(w, 2), 3, 5, phases=2), w)
    taps = NR.stem_taps(3, 5, 2)
    assert taps.shape == (64, 3, 5, 2, 2) and taps.sum() == 60
    assert NR.stack_stem(w, 2).shape == (64, 64, 1, 4, 4)
    assert [NR._s2d_end_pad(n) for n in (224, 223, 64, 65)] == [3, 4, 3, 4]
    arch, crop = "c2d-r50-nl", CROP + 1
    params = params_for(arch)
    s2d = NR.build(arch, params, crop_size=crop, frames=4, stem="s2d")
    plain = NR.build(arch, params, crop_size=crop, frames=4, stem="conv3d")
    video = clip(2, 4, seed=5, crop=crop)
    np.testing.assert_allclose(run(s2d, video), run(plain, video), rtol=1e-5, atol=1e-9)


STATIC_OK = {"Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "Reshape", "Transpose",
             "MatMul", "Mul", "Softmax", "AveragePool", "ReduceMean", "Cast"}


@pytest.mark.parametrize("arch", ["c2d-r50-nl", "i3d-r50-nl"])
def test_static_batch_graph(arch):
    frames = 16 if arch.startswith("i3d") else FRAMES[arch]
    params = params_for(arch)
    static = NR.build(arch, params, batch=2, crop_size=CROP, frames=frames)
    ops = {n.op_type for n in static.graph.node}
    assert ops <= STATIC_OK, ops - STATIC_OK
    assert "Shape" not in ops
    inits = {t.name for t in static.graph.initializer}
    for node in static.graph.node:
        if node.op_type == "Reshape":
            assert node.input[1] in inits  # constant targets
            target = onnx.numpy_helper.to_array(
                next(t for t in static.graph.initializer if t.name == node.input[1]))
            assert target[0] == 2 and (target > 0).all()
    inferred = onnx.shape_inference.infer_shapes(static, strict_mode=True)
    values = list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output)
    assert len(values) > len(static.graph.node) / 2
    for v in values:
        dims = v.type.tensor_type.shape.dim
        assert dims and all(d.HasField("dim_value") for d in dims), v.name
    assert [d.dim_value for d in static.graph.input[0].type.tensor_type.shape.dim] == \
        [2, 3, frames, CROP, CROP]
    assert [d.dim_value for d in static.graph.output[0].type.tensor_type.shape.dim] == [2, 400]

    dynamic = NR.build(arch, params, crop_size=CROP, frames=frames)
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    video = clip(2, frames, seed=9)
    np.testing.assert_allclose(run(static, video), run(dynamic, video), rtol=1e-5, atol=1e-8)
    # the symbolic batch really is free: one and three clips
    sess = session(dynamic)
    assert sess.run(None, {"video": clip(3, frames)})[0].shape == (3, 400)
    with pytest.raises(Exception):
        session(static).run(None, {"video": clip(3, frames)})


# -- parameter checking -----------------------------------------------------------------------


def test_check_params_missing_key():
    p = shapeless("i3d-r50-nl")
    del p["nonlocal_conv4_3_phi_b"]
    with pytest.raises(ValueError, match=r"1 missing: nonlocal_conv4_3_phi_b"):
        NR.check_params("i3d-r50-nl", p)


def test_check_params_extra_key():
    p = shapeless("c2d-r50-nl")
    p["res5_3_branch2a_w"] = np.zeros((512, 2048, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"1 unexpected: res5_3_branch2a_w"):
        NR.check_params("c2d-r50-nl", p)


def test_check_params_wrong_shape():
    p = shapeless("c2d-r50-nl")
    p["res3_0_branch1_w"] = np.zeros((512, 256, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"res3_0_branch1_w: expected \(512, 256, 1, 1, 1\), "
                                         r"found \(512, 256, 1, 1\)"):
        NR.check_params("c2d-r50-nl", p)


def test_check_params_reports_everything():
    p = shapeless("c2d-r101-nl")
    del p["conv1_w"], p["nonlocal_conv4_20_bn_rm"]
    p["nonlocal_conv4_5_theta_w"] = np.zeros((512, 1024, 1, 1, 1))  # an R50 name
    p["bogus"] = np.zeros(3)
    p["pred_w"] = np.zeros((2048, 400))
    p["res4_22_branch2b_bn_s"] = np.zeros(255)
    with pytest.raises(ValueError) as err:
        NR.check_params("c2d-r101-nl", p)
    msg = str(err.value)
    for part in ("2 missing", "conv1_w", "nonlocal_conv4_20_bn_rm", "2 unexpected", "bogus",
                 "nonlocal_conv4_5_theta_w", "2 shape mismatches", "pred_w", "res4_22_branch2b_bn_s"):
        assert part in msg, (part, msg)
    # the I3D parameters do not fit the C2D network: conv1 and every 3×1×1 branch2a differ
    with pytest.raises(ValueError, match=r"conv1_w: expected \(64, 3, 1, 7, 7\), found \(64, 3, 5, 7, 7\)"):
        NR.check_params("c2d-r50-nl", shapeless("i3d-r50-nl"))
    with pytest.raises(ValueError, match="missing"):
        NR.build("c2d-r50-nl", {k: v for k, v in params_for("c2d-r50-nl").items() if k != "pred_b"},
                 crop_size=CROP)


def test_build_rejects_bad_options():
    p = params_for("c2d-r50-nl")
    with pytest.raises(ValueError, match="pairwise"):
        NR.build("c2d-r50-nl", p, pairwise="gaussian")
    with pytest.raises(ValueError, match="no data after pool1"):
        NR.build("c2d-r50-nl", p, crop_size=4)
    with pytest.raises(ValueError, match="no data after pool2"):
        NR.build("c2d-r50-nl", p, frames=1)
    with pytest.raises(ValueError, match="labels"):
        NR.build("c2d-r50-nl", p, crop_size=CROP, labels=["a", "b"])
    with pytest.raises(ValueError, match="unknown architecture"):
        NR.expected_params("c3d-r50-nl")


# -- command line -----------------------------------------------------------------------------


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, str(EXPORT_CLI), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout)


def metadata(path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}, model


def test_cli_help():
    r = cli("--help")
    assert r.returncode == 0, r.stderr
    for text in ("--arch", "--weights", "--seed", "--fp16", "--batch", "--crop-size", "--pairwise",
                 "--labels", "--cache-dir", "--clip-length", "dot-product", "i3d-kinetics400",
                 "c2d-r101-nl", "i3d-r101-nl", "res4_20", "pool5", "branch2a", "1.0000001e-5"):
        assert text in r.stdout, text


def test_cli_random_export_writes_metadata(tmp_path):
    out = tmp_path / "c2d.onnx"
    r = cli("--arch", "c2d-r50-nl", "--seed", "3", "--crop-size", CROP, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "c2d-r50-nl" in r.stdout and str(out) in r.stdout
    assert f"{NR.count_params('c2d-r50-nl'):,}" in r.stdout
    meta, model = metadata(out)
    labels = LABELS.read_text().splitlines()
    assert meta == {
        "clip.length": "8",
        "clip.frame_stride": "8",
        "preprocess.scale_size": "256",
        "preprocess.crop_size": str(CROP),
        "preprocess.mean": "114.75,114.75,114.75",
        "preprocess.std": "57.375,57.375,57.375",
        "preprocess.layout": "NCTHW",
        "output.kind": "probabilities",
        "labels": "\n".join(labels),
        "model.name": "c2d-r50-nl",
        "model.weights": "random",
    }
    assert len(labels) == 400
    # the weights are random_params(seed=3): same scores as a direct build
    video = clip(1, 8)
    np.testing.assert_allclose(
        run(model, video),
        run(NR.build("c2d-r50-nl", NR.random_params("c2d-r50-nl", 3), crop_size=CROP), video),
        rtol=1e-6)


def test_cli_fp16_static_dot_product(tmp_path):
    out = tmp_path / "i3d.onnx"
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(400)))
    r = cli("--arch", "i3d-r50-nl", "--fp16", "--batch", 2, "--crop-size", 96, "--clip-length", 16,
            "--pairwise", "dot-product", "--labels", labels, "-o", out)
    assert r.returncode == 0, r.stderr
    meta, model = metadata(out)
    assert meta["clip.length"] == "16" and meta["clip.frame_stride"] == "2"
    assert meta["preprocess.crop_size"] == "96" and meta["model.name"] == "i3d-r50-nl"
    assert meta["labels"].split("\n")[399] == "class 399"
    inp = model.graph.input[0].type.tensor_type
    assert inp.elem_type == onnx.TensorProto.FLOAT16
    assert [d.dim_value for d in inp.shape.dim] == [2, 3, 16, 96, 96]
    assert "dot_product" in model.doc_string
    assert "Softmax" in {n.op_type for n in model.graph.node}  # the head's, not the NL blocks'
    assert sum(n.op_type == "Softmax" for n in model.graph.node) == 1


def _write_fair_pkl(path, blobs):
    with open(path, "wb") as f:
        pickle.dump({"blobs": dict(blobs, model_iter=np.array(400000))}, f, protocol=2)
    return path


def test_cli_checkpoint_errors(tmp_path):
    pytest.importorskip("nlexport.checkpoints")
    params = shapeless("c2d-r50-nl")  # shapes are all that matters here
    # a FAIR checkpoint missing one blob, with a mis-shaped one and one of the R101 network
    blobs = {k: v for k, v in params.items() if k != "nonlocal_conv3_1_g_b"}
    blobs["res4_0_branch2b_w"] = np.zeros((256, 256, 1, 2, 3), np.float32)
    blobs["res4_6_branch2a_w"] = np.zeros((256, 1024, 1, 1, 1), np.float32)
    bad = _write_fair_pkl(tmp_path / "c2d_nonlocal_8x8_broken.pkl", blobs)
    out = tmp_path / "x.onnx"

    def one_error_line(r):
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "Traceback" not in r.stderr and not out.exists()
        return lines[0]

    line = one_error_line(cli("--arch", "c2d-r50-nl", "--weights", bad, "-o", out))
    for text in (str(bad), "nonlocal_conv3_1_g_b", "res4_0_branch2b_w", "(256, 256, 1, 2, 3)",
                 "res4_6_branch2a_w"):
        assert text in line, (text, line)
    # names that are no Non-local ResNet parameter at all are refused by the reader
    blobs["res6_0_branch2a_w"] = np.zeros((4, 4, 1, 1, 1), np.float32)
    bad = _write_fair_pkl(tmp_path / "c2d_res6.pkl", blobs)
    line = one_error_line(cli("--arch", "c2d-r50-nl", "--weights", bad, "-o", out))
    assert str(bad) in line and "res6_0_branch2a_w" in line

    r = cli("--arch", "c2d-r50-nl", "--weights", tmp_path / "absent.pkl", "-o", out)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "absent.pkl" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_fair_checkpoint_export(tmp_path):
    pytest.importorskip("nlexport.checkpoints")
    params = params_for("c2d-r50-nl")
    ckpt = _write_fair_pkl(tmp_path / "c2d_nonlocal_8x8_IN_pretrain_400k.pkl", params)
    out = tmp_path / "c2d.onnx"
    r = cli("--arch", "c2d-r50-nl", "--weights", ckpt, "--crop-size", CROP, "-o", out)
    assert r.returncode == 0, r.stderr
    meta, model = metadata(out)
    assert meta["model.weights"] == "fair:c2d_nonlocal_8x8_IN_pretrain_400k"
    video = clip(1, 8, seed=4)
    np.testing.assert_allclose(run(model, video), REF.forward("c2d-r50-nl", params, video),
                               rtol=RTOL, atol=0)


def test_cli_uint8_export(tmp_path):
    out = tmp_path / "c2d-u8.onnx"
    r = cli("--arch", "c2d-r50-nl", "--uint8", "--crop-size", CROP, "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"[N,8,{CROP},{CROP},3] uint8" in r.stdout
    meta, model = metadata(out)
    assert meta["preprocess.layout"] == "NTHWC"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_cli_usage_errors(tmp_path):
    r = cli("--arch", "c3d", "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    short = tmp_path / "labels.txt"
    short.write_text("a\nb\n")
    r = cli("--arch", "c2d-r50-nl", "--labels", short, "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "2 labels" in r.stderr
    r = cli("--arch", "i3d-kinetics400", "--pairwise", "dot-product", "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "does not apply" in r.stderr
