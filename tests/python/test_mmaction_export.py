"""Export of mmaction2's I3D-R50-NL (dot product, 32x2x1) checkpoints as mmaction2's own network.

Synthetic mmaction2 .pth files with the official state-dict names and full ResNet-50 shapes are
written by checkpoint_writers.py, exported through tools/export_model.py, run under ONNX Runtime
(CPU) on small clips (16 frames, 64² or 80²) and compared with the independent float64 NumPy
reference (reference_nonlocal.py, variant "mmaction2"). Broken checkpoints (missing, extra,
unknown and mis-shaped keys) must fail with errors that name the offending mmaction2 keys.
"""

from __future__ import annotations

import collections
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkpoint_writers as W  # noqa: E402
import reference_nonlocal as REF  # noqa: E402
from nlexport import checkpoints as C  # noqa: E402
from nlexport import nonlocal_resnet as NR  # noqa: E402

ort = pytest.importorskip("onnxruntime")

ARCH = "i3d-r50-nl"
EXPORT_CLI = REPO / "tools" / "export_model.py"
RTOL = 1e-4
FRAMES, CROP = 16, 64
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _export_module():
    spec = importlib.util.spec_from_file_location("export_model_under_test", EXPORT_CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORT = _export_module()


def scores(model: onnx.ModelProto, video: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["scores"], {"video": video})[0]


def imagenet_clip(n, frames, crop, seed=1) -> np.ndarray:
    """RGB pixels normalised as mmaction2's ActionDataPreprocessor does."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3, frames, crop, crop)).astype(np.float64)
    mean = np.array(IMAGENET_MEAN).reshape(1, 3, 1, 1, 1)
    std = np.array(IMAGENET_STD).reshape(1, 3, 1, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)


def metadata(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def floats(text: str) -> tuple:
    return tuple(float(v) for v in text.split(","))


def cli(*args):
    return subprocess.run([sys.executable, str(EXPORT_CLI), *map(str, args)], cwd=REPO, timeout=600,
                          capture_output=True, text=True)


def write_state(path, state) -> Path:
    """An mmaction2 checkpoint (zip serialisation) holding ``state`` and the dot-product config."""
    meta = {"cfg": W.MMACTION2_CONFIG.format(mode="dot_product", use_scale=False)}
    return Path(W.write_torch_zip(path, {"meta": meta, "state_dict": state}))


@pytest.fixture(scope="module")
def dot_product(tmp_path_factory):
    """Random mmaction2-variant params, and the .pth mmaction2 would have saved for them."""
    params = NR.random_params(ARCH, seed=5, pairwise="dot_product", variant="mmaction2")
    path = W.write_mmaction2_pth(
        tmp_path_factory.mktemp("mm") / "i3d_imagenet-pretrained-r50-nl-dot-product.pth", params)
    return params, Path(path)


# -- the variant itself ---------------------------------------------------------------------


def test_variant_parameters_are_fairs_with_zero_out_bias():
    fair = NR.expected_params(ARCH)
    assert NR.expected_params(ARCH, variant="mmaction2") == fair
    params = NR.random_params(ARCH, 0, pairwise="dot_product", variant="mmaction2")
    reference = NR.random_params(ARCH, 0, pairwise="dot_product")
    for name, value in params.items():
        if name.endswith("_out_b"):
            assert not value.any(), name
        else:
            np.testing.assert_array_equal(value, reference[name])
    with pytest.raises(ValueError, match="mmaction2 variant exists for i3d-r50-nl only"):
        NR.expected_params("c2d-r50-nl", variant="mmaction2")
    with pytest.raises(ValueError, match="variant must be one of"):
        NR.build(ARCH, params, variant="torch")


def test_variant_shapes_follow_mmaction2():
    shapes = NR.feature_shapes(ARCH, 32, 224, variant="mmaction2")
    assert shapes["pool1"] == (64, 8, 56, 56)  # 1x3x3 stride 2,2,2 padded: 112 -> 56
    assert shapes["res5"] == (2048, 4, 7, 7)
    assert NR.feature_shapes(ARCH, 32, 224)["pool1"] == (64, 8, 55, 55)  # FAIR unchanged
    blocks = NR.blocks(ARCH, "mmaction2")
    assert [b.nonlocal_name for b in blocks if b.nonlocal_name] == [
        "nonlocal_conv3_1", "nonlocal_conv3_3", "nonlocal_conv4_1", "nonlocal_conv4_3",
        "nonlocal_conv4_5"]
    assert [b.kt for b in blocks] == [3, 3, 3, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 1, 3, 1]


@pytest.mark.parametrize("crop", [80])
def test_python_api_matches_reference_odd_planes(crop):
    """80² leaves 5×5 at res4 and 3×3 at res5: the NL pool floors, the head averages 3×3."""
    params = NR.random_params(ARCH, seed=7, pairwise="dot_product", variant="mmaction2")
    video = imagenet_clip(1, FRAMES, crop, seed=3)
    model = NR.build(ARCH, params, pairwise="dot_product", crop_size=crop, frames=FRAMES,
                     variant="mmaction2", batch=1)
    got = scores(model, video)
    want = REF.forward(ARCH, params, video, "dot_product", variant="mmaction2")
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


# -- export of mmaction2 checkpoints --------------------------------------------------------


def test_cli_export_matches_reference(tmp_path, dot_product):
    params, pth = dot_product
    out = tmp_path / "mm.onnx"
    done = cli("--arch", ARCH, "--weights", pth, "--crop-size", CROP, "--clip-length", FRAMES,
               "-o", out)
    assert done.returncode == 0, done.stderr
    assert "mmaction2 network" in done.stdout and "pairwise dot-product" in done.stdout, done.stdout
    model = onnx.load(str(out))
    meta = metadata(model)
    assert meta["model.weights"] == "mmaction2:i3d_imagenet-pretrained-r50-nl-dot-product"
    assert floats(meta["preprocess.mean"]) == IMAGENET_MEAN
    assert floats(meta["preprocess.std"]) == IMAGENET_STD
    assert meta["clip.frame_stride"] == "2" and meta["clip.length"] == str(FRAMES)

    video = imagenet_clip(2, FRAMES, CROP)
    got = scores(model, video)
    want = REF.forward(ARCH, params, video, "dot_product", variant="mmaction2")
    assert got.shape == (2, 400)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
    # The FAIR network computes something else from the same weights.
    fair = REF.forward(ARCH, params, video, "dot_product")
    assert np.max(np.abs(fair / want - 1)) > 100 * RTOL


def test_cli_default_metadata(tmp_path, dot_product):
    _, pth = dot_product
    out = tmp_path / "mm224.onnx"
    done = cli("--arch", ARCH, "--weights", pth, "--batch", "2", "-o", out)
    assert done.returncode == 0, done.stderr
    model = onnx.load(str(out))
    meta = metadata(model)
    assert meta["clip.length"] == "32" and meta["clip.frame_stride"] == "2"
    assert meta["preprocess.crop_size"] == "224" and meta["preprocess.scale_size"] == "256"
    assert floats(meta["preprocess.mean"]) == IMAGENET_MEAN
    assert floats(meta["preprocess.std"]) == IMAGENET_STD
    assert meta["output.kind"] == "probabilities"
    assert meta["model.weights"].startswith("mmaction2:")
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 32, 224, 224]
    ops = {n.op_type for n in model.graph.node}
    assert "Softmax" in ops and "Shape" not in ops
    pool1 = next(n for n in model.graph.node if n.op_type == "MaxPool")  # the first one
    attrs = {a.name: list(a.ints) for a in pool1.attribute}
    assert attrs == {"kernel_shape": [1, 3, 3], "strides": [2, 2, 2], "pads": [0, 1, 1, 0, 1, 1]}


def test_embedded_gaussian_config_exports_softmax(tmp_path):
    """A checkpoint whose stored config says embedded_gaussian + use_scale gets mmcv's softmax
    affinity (still with mmaction2's pooling after the convolutions)."""
    params = NR.random_params(ARCH, seed=9, pairwise="embedded_gaussian", variant="mmaction2")
    pth = W.write_mmaction2_pth(tmp_path / "eg.pth", params, mode="embedded_gaussian",
                                use_scale=True)
    out = tmp_path / "eg.onnx"
    done = cli("--arch", ARCH, "--weights", pth, "--crop-size", CROP, "--clip-length", FRAMES,
               "-o", out)
    assert done.returncode == 0, done.stderr
    assert "pairwise embedded-gaussian" in done.stdout
    video = imagenet_clip(1, FRAMES, CROP, seed=4)
    got = scores(onnx.load(str(out)), video)
    want = REF.forward(ARCH, params, video, "embedded_gaussian", variant="mmaction2")
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


# -- named errors ---------------------------------------------------------------------------


def _state(params) -> collections.OrderedDict:
    return W.mmaction2_state_dict(params)


@pytest.fixture(scope="module")
def base_params():
    return NR.random_params(ARCH, seed=2, pairwise="dot_product", variant="mmaction2")


def _export_error(capsys, path, *extra, arch=ARCH, out=None) -> str:
    out = out or Path(path).with_suffix(".onnx")
    rc = EXPORT.main(["--arch", arch, "--weights", str(path), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert not Path(out).exists()
    assert str(path) in err
    return err


def test_missing_key_is_named(tmp_path, capsys, base_params):
    state = _state(base_params)
    del state["backbone.layer3.3.non_local_block.phi.0.conv.bias"]
    del state["backbone.layer4.2.conv3.bn.running_var"]
    err = _export_error(capsys, write_state(tmp_path / "missing.pth", state))
    assert "2 missing" in err
    assert "backbone.layer3.3.non_local_block.phi.0.conv.bias" in err
    assert "backbone.layer4.2.conv3.bn.running_var" in err


def test_extra_key_is_named(tmp_path, capsys, base_params):
    state = _state(base_params)
    # An NL block where mmaction2's config has none (layer2.0).
    state["backbone.layer2.0.non_local_block.theta.conv.weight"] = np.zeros((256, 512, 1, 1, 1),
                                                                           np.float32)
    err = _export_error(capsys, write_state(tmp_path / "extra.pth", state))
    assert "1 unexpected" in err and "backbone.layer2.0.non_local_block.theta.conv.weight" in err


def test_unknown_key_is_named(tmp_path, capsys, base_params):
    state = _state(base_params)
    state["backbone.layer2.1.non_local_block.concat.weight"] = np.zeros((4,), np.float32)
    path = write_state(tmp_path / "unknown.pth", state)
    err = _export_error(capsys, path)
    assert "backbone.layer2.1.non_local_block.concat.weight" in err
    with pytest.raises(C.UnknownParameterError):
        C.load_checkpoint(path, allow_architecture_mismatch=True)


def test_wrong_shape_is_named(tmp_path, capsys, base_params):
    state = _state(base_params)
    key = "backbone.layer3.1.non_local_block.g.0.conv.weight"
    state[key] = state[key].reshape(512, 1024)
    key2 = "backbone.layer2.0.conv1.conv.weight"  # inflated 3x1x1, given 1x1x1
    state[key2] = state[key2][:, :, :1]
    err = _export_error(capsys, write_state(tmp_path / "shape.pth", state))
    assert "2 shape mismatches" in err
    assert f"{key}: expected (512, 1024, 1, 1, 1), found (512, 1024)" in err
    assert f"{key2}: expected (128, 256, 3, 1, 1), found (128, 256, 1, 1, 1)" in err


def test_other_architectures_refused(tmp_path, capsys, dot_product):
    _, pth = dot_product
    for arch in ("c2d-r50-nl", "i3d-r101-nl"):
        err = _export_error(capsys, pth, arch=arch, out=tmp_path / f"{arch}.onnx")
        assert f"builds mmaction2's network for {ARCH} only" in err and "pool1" in err


def test_contradicting_pairwise_refused(tmp_path, capsys, dot_product):
    _, pth = dot_product
    err = _export_error(capsys, pth, "--pairwise", "embedded-gaussian",
                        out=tmp_path / "contra.onnx")
    assert "contradicts" in err and "dot_product" in err
