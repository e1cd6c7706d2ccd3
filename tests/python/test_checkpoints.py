"""Tests of the checkpoint readers, tools/nlexport/checkpoints.py.

None of the published checkpoints can be downloaded here, so every test writes synthetic files with
tests/python/checkpoint_writers.py (official names, shapes and serialisations) and reads them back:

1. Round trips of every format and its variants (py2/py3 pickles, Paddle per-variable / combined /
   .pdparams, fp16, packed dims, torch zip / legacy, bare state dicts...): the arrays come back
   equal, float32 and FAIR-named; the format is detected from the content, whatever the extension.
2. The official names, spelled out (``res4f_branch2c_weights``, ``bn4b22_branch2a_mean``,
   ``backbone.layer3.5.non_local_block.phi.0.conv.weight``...), map to the right FAIR names, and the
   full parameter sets of every architecture survive every format.
3. Garbage, truncated and hostile files, unsupported dtypes and unknown names give `ValueError`s
   naming the file and the problem (and the names).
4. End to end: each format -> loaded params -> ONNX (small crop) gives the same scores as the ONNX
   built from the original params; with tools/export_model.py present, also through its CLI.
"""

from __future__ import annotations

import collections
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkpoint_writers as W  # noqa: E402
from nlexport import checkpoints as C  # noqa: E402

try:
    from nlexport import nonlocal_resnet as NR  # noqa: E402
except ImportError:  # the exporter is developed alongside; its tests are skipped without it
    NR = None

needs_exporter = pytest.mark.skipif(NR is None, reason="tools/nlexport/nonlocal_resnet.py missing")

# ---------------------------------------------------------------------------------------------
# Fixtures


def small_params(seed=0) -> dict[str, np.ndarray]:
    """A hand-made set of representative FAIR names with their real shapes where cheap."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    p = {"conv1_w": r(64, 3, 5, 7, 7)}
    for k in ("s", "b", "rm", "riv"):
        p[f"res_conv1_bn_{k}"] = r(64)
    p["res2_0_branch2a_w"] = r(64, 64, 3, 1, 1)
    p["res2_0_branch2a_bn_s"] = r(64)
    p["res2_0_branch2b_w"] = r(64, 64, 1, 3, 3)
    p["res2_0_branch2c_bn_riv"] = np.abs(r(256))
    p["res2_0_branch1_w"] = r(256, 64, 1, 1, 1)
    p["res2_0_branch1_bn_rm"] = r(256)
    p["res3_0_branch1_w"] = r(512, 256, 1, 1, 1)
    p["res3_3_branch2c_bn_b"] = r(512)
    p["res4_5_branch2c_w"] = r(8, 4, 1, 1, 1)
    p["res5_2_branch2a_bn_riv"] = np.abs(r(512))
    for part in ("theta", "phi", "g"):
        p[f"nonlocal_conv3_1_{part}_w"] = r(256, 512, 1, 1, 1)
        p[f"nonlocal_conv3_1_{part}_b"] = r(256)
    p["nonlocal_conv3_1_out_w"] = r(512, 256, 1, 1, 1)
    p["nonlocal_conv3_1_out_b"] = r(512)
    for k in ("s", "b", "rm", "riv"):
        p[f"nonlocal_conv3_1_bn_{k}"] = r(512)
    p["nonlocal_conv4_5_theta_b"] = r(512)
    p["nonlocal_conv4_5_g_b"] = r(512)
    p["pred_w"] = r(400, 2048)
    p["pred_b"] = r(400)
    return p


def mmaction2_expected(params: dict, dtype=np.float32) -> dict:
    """What an mmaction2 file of ``params`` (stored as ``dtype``) must read back as: mmaction2 has no
    conv_out bias, so the writer folded it into the BN running mean (in float64, then one rounding to
    ``dtype``) and the reader fills zeros: the same function."""
    out = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    for name in params:
        if name.endswith("_out_b"):
            rm = name[: -len("out_b")] + "bn_rm"
            if rm in out:
                out[rm] = out[rm] - out[name]
            out[name] = np.zeros_like(out[name])
    return {k: v.astype(dtype).astype(np.float32) for k, v in out.items()}


def assert_same(got: dict, want: dict, *, rtol=0.0):
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        a = got[name]
        assert a.dtype == np.float32, name
        assert a.flags.c_contiguous and a.flags.writeable, name
        assert a.shape == value.shape, (name, a.shape, value.shape)
        if rtol:
            np.testing.assert_allclose(a, value, rtol=rtol, atol=rtol, err_msg=name)
        else:
            np.testing.assert_array_equal(a, value, err_msg=name)


# Each writer variant: (id, writer(tmp_path, params) -> path, expected format, expectation transform)
def _fp16(p):
    return {k: v.astype(np.float16).astype(np.float32) for k, v in p.items()}


VARIANTS = [
    ("fair-py2", lambda d, p: W.write_fair_pkl(d / "model.pkl", p), "fair-caffe2-pkl", None),
    ("fair-py3", lambda d, p: W.write_fair_pkl(d / "model.pkl", p, style="py3"), "fair-caffe2-pkl", None),
    ("fair-bare-blobs", lambda d, p: W.write_fair_pkl(d / "m.pkl", p, wrap_blobs=False, momentum=False),
     "fair-caffe2-pkl", None),
    ("fair-named-pth", lambda d, p: W.write_fair_pkl(d / "weights.pth", p), "fair-caffe2-pkl", None),
    ("paddle-per-param", lambda d, p: W.write_paddle_dir(d / "nonlocal_model", p), "paddle-persistables", None),
    ("paddle-per-param-noprogram-fc-packed",
     lambda d, p: W.write_paddle_dir(d / "m", p, program=False, pred_layout="fc", packed=True),
     "paddle-persistables", None),
    ("paddle-train-persistables",
     lambda d, p: W.write_paddle_dir(d / "m", p, pred_layout="fc", optimizer_state=True),
     "paddle-persistables", None),
    ("paddle-fp16", lambda d, p: W.write_paddle_dir(d / "m", p, dtype=np.float16), "paddle-persistables", _fp16),
    ("paddle-fp64", lambda d, p: W.write_paddle_dir(d / "m", p, dtype=np.float64, program=False),
     "paddle-persistables", None),
    ("paddle-combined", lambda d, p: W.write_paddle_dir(d / "m", p, layout="combined"), "paddle-combined", None),
    ("paddle-combined-pdiparams",
     lambda d, p: W.write_paddle_dir(d / "m", p, layout="combined", combined_name="inference.pdiparams",
                                     program_name="inference.pdmodel", optimizer_state=True),
     "paddle-combined", None),
    ("paddle-combined-file",
     lambda d, p: os.path.join(W.write_paddle_dir(d / "m", p, layout="combined"), "__params__"),
     "paddle-combined", None),
    ("paddle-module-dir",
     lambda d, p: (W.write_paddle_dir(d / "hub" / "nonlocal_kinetics400_model", p),
                   (d / "hub" / "module.py").write_text("# module\n"), str(d / "hub"))[-1],
     "paddle-persistables", None),
    ("paddle-pdparams-p2", lambda d, p: W.write_paddle_pdparams(d / "m.pdparams", p), "paddle-pdparams", None),
    ("paddle-pdparams-p4-conv",
     lambda d, p: W.write_paddle_pdparams(d / "m.pdparams", p, protocol=4, pred_layout="conv"),
     "paddle-pdparams", None),
    ("mmaction2-zip", lambda d, p: W.write_mmaction2_pth(d / "i3d_nl.pth", p), "mmaction2-pth",
     mmaction2_expected),
    ("mmaction2-zip-bare-module",
     lambda d, p: W.write_mmaction2_pth(d / "x.pth", p, bare=True, module_prefix=True), "mmaction2-pth",
     mmaction2_expected),
    ("mmaction2-zip-fp16", lambda d, p: W.write_mmaction2_pth(d / "x.pth", p, dtype=np.float16),
     "mmaction2-pth", lambda p: mmaction2_expected(p, np.float16)),
    ("mmaction2-legacy", lambda d, p: W.write_mmaction2_pth(d / "x.pth", p, legacy=True),
     "mmaction2-pth-legacy", mmaction2_expected),
    ("mmaction2-zip-named-pkl", lambda d, p: W.write_mmaction2_pth(d / "x.pkl", p), "mmaction2-pth",
     mmaction2_expected),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_round_trip_small(tmp_path, variant):
    _, write, fmt, expect = variant
    params = small_params()
    path = write(tmp_path, params)
    got_fmt, got = C.load_checkpoint(path, allow_architecture_mismatch=True)
    assert got_fmt == fmt
    assert C.format_family(got_fmt) == fmt.split("-")[0]
    want = expect(params) if expect else params
    assert_same(got, want)
    assert all(C.is_fair_name(n) for n in got)
    assert C.detect_format(path) == fmt


# ---------------------------------------------------------------------------------------------
# Official names


@pytest.mark.parametrize("paddle, fair", [
    ("conv1_weights", "conv1_w"),
    ("bn_conv1_scale", "res_conv1_bn_s"),
    ("bn_conv1_offset", "res_conv1_bn_b"),
    ("bn_conv1_mean", "res_conv1_bn_rm"),
    ("bn_conv1_variance", "res_conv1_bn_riv"),
    ("res2a_branch2a_weights", "res2_0_branch2a_w"),
    ("bn2a_branch2a_scale", "res2_0_branch2a_bn_s"),
    ("res2a_branch1_weights", "res2_0_branch1_w"),
    ("bn3a_branch1_variance", "res3_0_branch1_bn_riv"),
    ("res3d_branch2b_weights", "res3_3_branch2b_w"),
    ("res4f_branch2c_weights", "res4_5_branch2c_w"),
    ("bn4f_branch2c_mean", "res4_5_branch2c_bn_rm"),
    ("res4b_branch2a_weights", "res4_1_branch2a_w"),
    ("res4b5_branch2a_weights", "res4_5_branch2a_w"),  # ResNet-101: a, b1 … b22
    ("bn4b22_branch2c_offset", "res4_22_branch2c_bn_b"),
    ("res5c_branch2c_weights", "res5_2_branch2c_w"),
    ("nonlocal_conv3_1_theta_w", "nonlocal_conv3_1_theta_w"),
    ("nonlocal_conv4_5_out_b", "nonlocal_conv4_5_out_b"),
    ("nonlocal_conv3_3_bn_scale", "nonlocal_conv3_3_bn_s"),
    ("nonlocal_conv4_13_bn_variance", "nonlocal_conv4_13_bn_riv"),
    ("pred_w", "pred_w"),
    ("pred_b", "pred_b"),
    ("res2a_branch2a_weights_velocity_0", C.IGNORE),
    ("learning_rate_0", C.IGNORE),
    ("@LR_DECAY_COUNTER@", C.IGNORE),
    ("res2a_branch3_weights", None),
    ("bn4b0_branch2a_scale", None),
    ("bn4c5_branch2a_scale", None),
    ("nonlocal_conv3_group_1_theta_w", None),
    ("fc_0.w_0", None),
])
def test_paddle_names(paddle, fair):
    assert C.paddle_name_to_fair(paddle) == fair


@pytest.mark.parametrize("mm, fair", [
    ("backbone.conv1.conv.weight", "conv1_w"),
    ("backbone.conv1.bn.weight", "res_conv1_bn_s"),
    ("backbone.conv1.bn.running_var", "res_conv1_bn_riv"),
    ("backbone.conv1.bn.num_batches_tracked", C.IGNORE),
    ("backbone.layer1.0.conv1.conv.weight", "res2_0_branch2a_w"),
    ("backbone.layer1.0.conv2.bn.bias", "res2_0_branch2b_bn_b"),
    ("backbone.layer1.0.downsample.conv.weight", "res2_0_branch1_w"),
    ("backbone.layer1.0.downsample.bn.running_mean", "res2_0_branch1_bn_rm"),
    ("backbone.layer4.2.conv3.conv.weight", "res5_2_branch2c_w"),
    ("backbone.layer2.1.non_local_block.theta.conv.weight", "nonlocal_conv3_1_theta_w"),
    ("backbone.layer2.1.non_local_block.phi.0.conv.bias", "nonlocal_conv3_1_phi_b"),
    ("backbone.layer2.1.non_local_block.phi.conv.weight", "nonlocal_conv3_1_phi_w"),
    ("backbone.layer3.5.non_local_block.g.0.conv.weight", "nonlocal_conv4_5_g_w"),
    ("backbone.layer3.5.non_local_block.conv_out.conv.weight", "nonlocal_conv4_5_out_w"),
    ("backbone.layer3.5.non_local_block.conv_out.bn.running_mean", "nonlocal_conv4_5_bn_rm"),
    ("module.backbone.layer3.3.non_local_block.conv_out.bn.weight", "nonlocal_conv4_3_bn_s"),
    ("cls_head.fc_cls.weight", "pred_w"),
    ("cls_head.fc_cls.bias", "pred_b"),
    ("backbone.layer1.0.conv1.conv.bias", None),
    ("backbone.layer2.1.non_local_block.theta.0.conv.weight", None),
    ("backbone.layer2.1.non_local_block.concat_project.conv.weight", None),
    ("neck.fc.weight", None),
])
def test_mmaction2_names(mm, fair):
    assert C.mmaction2_name_to_fair(mm) == fair


def test_writers_use_official_names(tmp_path):
    """The synthetic files carry the published names (spot checks, spelled out here)."""
    params = small_params()
    d = Path(W.write_paddle_dir(tmp_path / "pd", params))
    for name in ("conv1_weights", "bn_conv1_variance", "res4f_branch2c_weights", "bn2a_branch1_mean",
                 "nonlocal_conv3_1_bn_offset", "nonlocal_conv3_1_theta_b", "pred_w", "__model__"):
        assert (d / name).is_file(), name
    state = W.mmaction2_state_dict(params)
    for key in ("backbone.conv1.conv.weight", "backbone.layer3.5.conv3.conv.weight",
                "backbone.layer2.1.non_local_block.phi.0.conv.weight",
                "backbone.layer2.1.non_local_block.conv_out.bn.num_batches_tracked",
                "cls_head.fc_cls.weight"):
        assert key in state, key
    assert "backbone.layer2.1.non_local_block.conv_out.conv.bias" not in state
    assert W.fair_to_paddle_name("res4_22_branch2a_w", {4: 23}) == "res4b22_branch2a_weights"
    assert W.fair_to_paddle_name("res4_0_branch1_bn_s", {4: 23}) == "bn4a_branch1_scale"


# ---------------------------------------------------------------------------------------------
# Writer fidelity: the files look like the real ones byte-wise where it matters


def test_fair_pickle_is_python2_style(tmp_path):
    path = W.write_fair_pkl(tmp_path / "c2_model_iter400000.pkl", small_params())
    ops = list(pickletools.genops(Path(path).read_bytes()))
    names = {op.name for op, _, _ in ops}
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert ops[0][0].name == "PROTO" and ops[0][1] == 2
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert "BINSTRING" in names and "BINUNICODE" not in names
    with open(path, "rb") as f:  # what FAIR's loader does under Python 3
        blobs = pickle.load(f, encoding="latin1")["blobs"]
    assert blobs["model_iter"] == 400000 and "conv1_w_momentum" in blobs
    np.testing.assert_array_equal(blobs["conv1_w"], small_params()["conv1_w"])


def test_torch_zip_layout(tmp_path):
    path = W.write_mmaction2_pth(tmp_path / "x.pth", small_params())
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert names[0] == "archive/data.pkl"
        assert z.read("archive/version") == b"3\n"
        assert z.read("archive/byteorder") == b"little"
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        raw = Path(path).read_bytes()
        for info in z.infolist():  # member data 64-byte aligned, as PyTorchStreamWriter does
            fname_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
            assert (info.header_offset + 30 + fname_len + extra_len) % 64 == 0
        ops = list(pickletools.genops(z.read("archive/data.pkl")))
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert {"torch._utils _rebuild_tensor_v2", "torch FloatStorage", "torch LongStorage",
            "collections OrderedDict"} <= globals_
    assert any(op.name == "BINPERSID" for op, _, _ in ops)


# ---------------------------------------------------------------------------------------------
# torch details: views, offsets, dtypes


def test_torch_views_offsets_and_shared_storage(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.standard_normal(4000).astype(np.float32)
    shared = W.Storage(base)
    w = base[100:100 + 6 * 5].reshape(6, 5)
    wt = base[200:200 + 5 * 6].reshape(5, 6).T  # non-contiguous: a transposed view
    state = collections.OrderedDict([
        ("backbone.conv1.bn.weight", W.Tensor(shared, 10, (64,), (1,))),
        ("backbone.conv1.bn.bias", W.Tensor(shared, 3000, (64,), (2,))),  # strided
        ("cls_head.fc_cls.weight", W.Tensor(shared, 100, (6, 5), (5, 1))),
        ("backbone.conv1.conv.weight", W.Tensor(shared, 200, (6, 5), (1, 6))),
        ("backbone.conv1.bn.running_mean", W.Tensor(W.Storage(np.arange(3, dtype=np.float64)), 0, (3,), (1,))),
        ("backbone.conv1.bn.num_batches_tracked", np.array(7, dtype=np.int64)),
    ])
    path = W.write_torch_zip(tmp_path / "views.pth", {"state_dict": state})
    _, got = C.load_checkpoint(path, allow_architecture_mismatch=True)
    np.testing.assert_array_equal(got["res_conv1_bn_s"], base[10:74])
    np.testing.assert_array_equal(got["res_conv1_bn_b"], base[3000:3128:2])
    np.testing.assert_array_equal(got["pred_w"], w)
    np.testing.assert_array_equal(got["conv1_w"], wt)
    np.testing.assert_array_equal(got["res_conv1_bn_rm"], [0, 1, 2])
    # Also through the legacy serialisation.
    path = W.write_torch_legacy(tmp_path / "views_legacy.pth", {"state_dict": state})
    _, got2 = C.load_checkpoint(path, allow_architecture_mismatch=True)
    assert_same(got2, got)


def test_torch_bfloat16(tmp_path):
    """BFloat16 storages (no numpy dtype) come back as float32."""
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    storage = W.Storage(bits, "BFloat16Storage")
    state = {"cls_head.fc_cls.bias": W.Tensor(storage, 0, (4,), (1,))}
    path = W.write_torch_zip(tmp_path / "bf16.pth", state)
    _, got = C.load_checkpoint(path, allow_architecture_mismatch=True)
    np.testing.assert_array_equal(got["pred_b"], values)


def test_torch_tensor_overrunning_storage(tmp_path):
    state = {"cls_head.fc_cls.bias": W.Tensor(W.Storage(np.zeros(10, np.float32)), 5, (10,), (1,))}
    path = W.write_torch_zip(tmp_path / "bad.pth", state)
    with pytest.raises(C.CheckpointError, match="overruns"):
        C.load_checkpoint(path, allow_architecture_mismatch=True)


def test_torch_integer_weight_rejected(tmp_path):
    state = {"backbone.conv1.conv.weight": np.zeros((2, 3), dtype=np.int32)}
    path = W.write_torch_zip(tmp_path / "int.pth", state)
    with pytest.raises(C.CheckpointError, match=r"backbone\.conv1\.conv\.weight.*unsupported dtype int32"):
        C.load_checkpoint(path, allow_architecture_mismatch=True)


def test_torch_missing_storage(tmp_path):
    path = W.write_mmaction2_pth(tmp_path / "x.pth", small_params())
    out = tmp_path / "missing.pth"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if info.filename != "archive/data/3":
                zout.writestr(info.filename, zin.read(info.filename))
    with pytest.raises(C.CheckpointError, match=r"archive/data/3 is missing") as err:
        C.load_checkpoint(out, allow_architecture_mismatch=True)
    assert str(out) in str(err.value)


# ---------------------------------------------------------------------------------------------
# mmaction2 architecture differences


def test_mmaction2_refused_by_default(tmp_path):
    path = W.write_mmaction2_pth(tmp_path / "i3d_nl_dot_product.pth", small_params())
    with pytest.raises(C.ArchitectureMismatchError) as err:
        C.load_checkpoint(path)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert message.startswith(str(path))
    for words in ("pool1", "dot_product", "after the phi and g", "123.675", "allow_architecture_mismatch"):
        assert words in message, words
    assert err.value.format_name == "mmaction2-pth"


def test_mmaction2_embedded_gaussian_config(tmp_path):
    """With the config in the metadata saying embedded_gaussian + use_scale, the pairwise function
    is FAIR's and is no longer listed; the pooling differences still are."""
    path = W.write_mmaction2_pth(tmp_path / "eg.pth", small_params(), mode="embedded_gaussian",
                                 use_scale=True)
    with pytest.raises(C.ArchitectureMismatchError) as err:
        C.load_checkpoint(path)
    assert not any("pairwise" in d for d in err.value.differences)
    assert any("pool1" in d for d in err.value.differences)


def test_mmaction2_metadata_objects_stay_inert(tmp_path):
    """Classes named in the metadata (mmengine's, an os.system call) are never imported or called."""
    marker = tmp_path / "ran"
    state = W.mmaction2_state_dict(small_params())
    obj = {"state_dict": state, "meta": {"hook": _Reduce(W._Global("os", "system"), (f"touch {marker}",))}}
    path = W.write_torch_zip(tmp_path / "meta.pth", obj)
    fmt, got = C.load_checkpoint(path, allow_architecture_mismatch=True)
    assert fmt == "mmaction2-pth" and "conv1_w" in got
    assert not marker.exists()
    # The same object where a tensor should be is an error, and still not run.
    state["backbone.conv1.conv.weight"] = _Reduce(W._Global("os", "system"), (f"touch {marker}",))
    path = W.write_torch_zip(tmp_path / "evil.pth", {"state_dict": state})
    with pytest.raises(C.CheckpointError, match=r"backbone\.conv1\.conv\.weight.*os\.system"):
        C.load_checkpoint(path, allow_architecture_mismatch=True)
    assert not marker.exists()


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


# ---------------------------------------------------------------------------------------------
# Errors


def test_missing_path(tmp_path):
    with pytest.raises(C.CheckpointError, match="no such file"):
        C.load_checkpoint(tmp_path / "nope.pkl")


@pytest.mark.parametrize("content", [b"", b"hello world, not a checkpoint" * 10, bytes(range(256)) * 4])
def test_garbage(tmp_path, content):
    path = tmp_path / "garbage.pkl"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        C.load_checkpoint(path)
    assert str(path) in str(err.value)
    assert "not a checkpoint" in str(err.value) or "unreadable" in str(err.value)


def test_hostile_pickle_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}"))
                     + f"touch {marker}".encode() + b"\x85R.")
    with pytest.raises(C.CheckpointError, match=r"os\.system") as err:
        C.load_checkpoint(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_pickle_of_wrong_object(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(C.CheckpointError, match="not a checkpoint dictionary"):
        C.load_checkpoint(path)


@pytest.mark.parametrize("writer", ["fair", "mmaction2", "mmaction2-legacy", "pdparams"])
def test_truncated_files(tmp_path, writer):
    params = small_params()
    path = {
        "fair": lambda: W.write_fair_pkl(tmp_path / "t.pkl", params),
        "mmaction2": lambda: W.write_mmaction2_pth(tmp_path / "t.pth", params),
        "mmaction2-legacy": lambda: W.write_mmaction2_pth(tmp_path / "t.pth", params, legacy=True),
        "pdparams": lambda: W.write_paddle_pdparams(tmp_path / "t.pdparams", params),
    }[writer]()
    data = Path(path).read_bytes()
    for cut in (len(data) // 3, len(data) - 100):
        Path(path).write_bytes(data[:cut])
        with pytest.raises(C.CheckpointError) as err:
            C.load_checkpoint(path, allow_architecture_mismatch=True)
        message = str(err.value)
        assert message.startswith(str(path))
        assert "truncated" in message or "corrupt" in message, message


def test_truncated_paddle_variable(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params()))
    victim = d / "res2a_branch2b_weights"
    victim.write_bytes(victim.read_bytes()[:-7])
    with pytest.raises(C.CheckpointError, match="truncated") as err:
        C.load_checkpoint(d)
    assert str(victim) in str(err.value) and "res2a_branch2b_weights" in str(err.value)


def test_truncated_and_mismatched_combined(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params(), layout="combined"))
    params_file = d / "__params__"
    data = params_file.read_bytes()
    params_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(C.CheckpointError, match="truncated") as err:
        C.load_checkpoint(d)
    assert str(params_file) in str(err.value)
    params_file.write_bytes(data + b"\0" * 16)
    with pytest.raises(C.CheckpointError, match="do not match"):
        C.load_checkpoint(d)


def test_combined_without_program(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params(), layout="combined", program=False))
    with pytest.raises(C.CheckpointError, match="program"):
        C.load_checkpoint(d)
    with pytest.raises(C.CheckpointError, match="without names"):
        C.load_checkpoint(d / "__params__")


def test_single_paddle_variable_file(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params()))
    with pytest.raises(C.CheckpointError, match="pass the model directory"):
        C.load_checkpoint(d / "conv1_weights")


def test_paddle_program_shape_mismatch(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params()))
    (d / "bn_conv1_scale").write_bytes(W.paddle_lod_tensor_bytes(np.zeros(32, np.float32)))
    with pytest.raises(C.CheckpointError, match=r"bn_conv1_scale has shape \(32,\).*\(64,\)"):
        C.load_checkpoint(d)


def test_paddle_missing_variable_file(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params()))
    (d / "pred_b").unlink()
    with pytest.raises(C.CheckpointError, match="missing: pred_b"):
        C.load_checkpoint(d)


@pytest.mark.parametrize("code, what", [(3, "int64"), (23, "COMPLEX64"), (99, "type code 99")])
def test_paddle_unsupported_dtype(tmp_path, code, what):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params(), program=False))
    if code == 3:
        data = W.paddle_lod_tensor_bytes(np.zeros((64, 3, 5, 7, 7), np.int64))
    else:
        data = W.paddle_lod_tensor_bytes(np.zeros((4,), np.float32), dtype_code=code)
    (d / "conv1_weights").write_bytes(data)
    with pytest.raises(C.CheckpointError, match=f"unsupported dtype {what}") as err:
        C.load_checkpoint(d)
    assert "conv1_weights" in str(err.value)


def test_paddle_lod_levels_and_not_a_tensor(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params(), program=False))
    # A LoD (sequence) level before the data is skipped.
    value = np.arange(64, dtype=np.float32)
    (d / "bn_conv1_scale").write_bytes(W.paddle_lod_tensor_bytes(value, lod=[[0, 32, 64]]))
    _, got = C.load_checkpoint(d)
    np.testing.assert_array_equal(got["res_conv1_bn_s"], value)
    (d / "notes").write_bytes(b"not a tensor at all")
    with pytest.raises(C.CheckpointError) as err:
        C.load_checkpoint(d)
    assert str(d / "notes") in str(err.value)


def test_unknown_names_fair(tmp_path):
    params = small_params()
    params["res9_0_branch2a_w"] = np.zeros(3, np.float32)
    params["fc1000_w"] = np.zeros(3, np.float32)
    path = W.write_fair_pkl(tmp_path / "u.pkl", params)
    with pytest.raises(C.UnknownParameterError) as err:
        C.load_checkpoint(path)
    assert err.value.names == ["fc1000_w", "res9_0_branch2a_w"]
    assert "fc1000_w" in str(err.value) and "res9_0_branch2a_w" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_names_paddle(tmp_path):
    d = Path(W.write_paddle_dir(tmp_path / "m", small_params(), program=False))
    (d / "res2a_branch3_weights").write_bytes(W.paddle_lod_tensor_bytes(np.zeros(2, np.float32)))
    (d / "nonlocal_conv3_group_1_theta_w").write_bytes(W.paddle_lod_tensor_bytes(np.zeros(2, np.float32)))
    with pytest.raises(C.UnknownParameterError) as err:
        C.load_checkpoint(d)
    assert err.value.names == ["nonlocal_conv3_group_1_theta_w", "res2a_branch3_weights"]
    assert str(d) in str(err.value)


def test_unknown_names_mmaction2(tmp_path):
    state = W.mmaction2_state_dict(small_params())
    state["backbone.layer1.0.conv1.conv.bias"] = np.zeros(64, np.float32)
    state["neck.fc.weight"] = np.zeros((4, 4), np.float32)
    path = W.write_torch_zip(tmp_path / "u.pth", {"state_dict": state})
    with pytest.raises(C.UnknownParameterError) as err:
        C.load_checkpoint(path, allow_architecture_mismatch=True)
    assert err.value.names == ["backbone.layer1.0.conv1.conv.bias", "neck.fc.weight"]


def test_mmaction2_other_nonlocal_modes(tmp_path):
    state = W.mmaction2_state_dict(small_params())
    for key in [k for k in state if ".theta." in k or ".phi." in k]:
        del state[key]  # NonLocal3d(mode='gaussian'): no theta/phi convolutions
    path = W.write_torch_zip(tmp_path / "gauss.pth", {"state_dict": state})
    with pytest.raises(C.CheckpointError, match="gaussian"):
        C.load_checkpoint(path, allow_architecture_mismatch=True)


def test_non_torch_zip(tmp_path):
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(C.CheckpointError, match="not a torch checkpoint"):
        C.load_checkpoint(path)


def test_duplicate_after_scope_removal(tmp_path):
    params = small_params()
    blobs = {"conv1_w": params["conv1_w"], "gpu_0/conv1_w": params["conv1_w"]}
    path = tmp_path / "dup.pkl"
    path.write_bytes(W._Py2PickleWriter().dumps({"blobs": blobs}))
    with pytest.raises(C.CheckpointError, match="conv1_w appears twice"):
        C.load_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Full parameter sets of the real architectures


def _tiny(shapes: dict) -> dict:
    """Every expected name with a small array (2-D pred_w), for name-only round trips."""
    rng = np.random.default_rng(3)
    out = {}
    for name, shape in shapes.items():
        shape = (3, 5) if name == "pred_w" else (3,) if name == "pred_b" else (2,) * min(len(shape), 2)
        out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


FAST_WRITERS = [
    ("fair", lambda d, p: W.write_fair_pkl(d / "f.pkl", p), None),
    ("paddle", lambda d, p: W.write_paddle_dir(d / "pd", p), None),
    ("paddle-combined", lambda d, p: W.write_paddle_dir(d / "pc", p, layout="combined"), None),
    ("pdparams", lambda d, p: W.write_paddle_pdparams(d / "p.pdparams", p, protocol=4), None),
    ("mmaction2", lambda d, p: W.write_mmaction2_pth(d / "m.pth", p), mmaction2_expected),
    ("mmaction2-legacy", lambda d, p: W.write_mmaction2_pth(d / "l.pth", p, legacy=True), mmaction2_expected),
]


@needs_exporter
@pytest.mark.parametrize("arch", ["c2d-r50-nl", "i3d-r50-nl", "c2d-r101-nl", "i3d-r101-nl"])
def test_every_name_of_every_arch(tmp_path, arch):
    params = _tiny(NR.expected_params(arch))
    for label, write, expect in FAST_WRITERS:
        path = write(tmp_path, params)
        _, got = C.load_checkpoint(path, allow_architecture_mismatch=True)
        assert_same(got, expect(params) if expect else params)


@needs_exporter
@pytest.mark.parametrize("arch", ["c2d-r50-nl", "i3d-r50-nl"])
def test_full_parameter_sets(tmp_path, arch):
    params = NR.random_params(arch, seed=7)
    for label, write, expect in FAST_WRITERS:
        path = write(tmp_path, params)
        fmt, got = C.load_checkpoint(path, allow_architecture_mismatch=True)
        NR.check_params(arch, got)
        assert_same(got, expect(params) if expect else params)
        if os.path.isdir(path):
            continue
        os.remove(path)  # keep the disk footprint to one checkpoint at a time


# ---------------------------------------------------------------------------------------------
# End to end: checkpoint -> params -> ONNX scores


def _scores(model, video):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: video})[0]


@pytest.fixture(scope="module")
def c2d_reference():
    """c2d-r50-nl random params, a video, and the scores of the ONNX built from them at 64²."""
    if NR is None:
        pytest.skip("tools/nlexport/nonlocal_resnet.py missing")
    params = NR.random_params("c2d-r50-nl", seed=11)
    video = np.random.default_rng(5).standard_normal((1, 3, 8, 64, 64)).astype(np.float32)
    scores = _scores(NR.build("c2d-r50-nl", params, crop_size=64), video)
    return params, video, scores


E2E_WRITERS = [
    ("fair", lambda d, p: W.write_fair_pkl(d / "c2d.pkl", p)),
    ("paddle", lambda d, p: W.write_paddle_dir(d / "nonlocal_kinetics400_model", p)),
    ("paddle-combined", lambda d, p: W.write_paddle_dir(d / "pc", p, layout="combined")),
    ("mmaction2", lambda d, p: W.write_mmaction2_pth(d / "c2d.pth", p)),
]


@needs_exporter
@pytest.mark.parametrize("label", [w[0] for w in E2E_WRITERS])
def test_end_to_end_python_api(tmp_path, c2d_reference, label):
    params, video, want = c2d_reference
    write = dict(E2E_WRITERS)[label]
    _, loaded = C.load_checkpoint(write(tmp_path, params), allow_architecture_mismatch=True)
    got = _scores(NR.build("c2d-r50-nl", loaded, crop_size=64), video)
    if label == "mmaction2":  # conv_out bias folded into the BN mean: same function, rounded
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    else:
        np.testing.assert_array_equal(got, want)


EXPORT_CLI = REPO / "tools" / "export_model.py"
needs_cli = pytest.mark.skipif(not EXPORT_CLI.exists(), reason="tools/export_model.py missing")


def _export(weights, out, *extra, arch="c2d-r50-nl"):
    return subprocess.run([sys.executable, str(EXPORT_CLI), "--arch", arch, "--weights", str(weights),
                           "-o", str(out), *extra], cwd=REPO, timeout=300, capture_output=True, text=True)


@needs_exporter
@needs_cli
@pytest.mark.parametrize("label", ["fair", "paddle"])
def test_end_to_end_cli(tmp_path, label):
    """``export_model.py --arch c2d-r50-nl --weights FILE -o out.onnx`` reads each format and gives the
    scores of the network built directly from the same params."""
    import onnx

    params = NR.random_params("c2d-r50-nl", seed=13)
    weights = dict(E2E_WRITERS)[label](tmp_path, params)
    out = tmp_path / "out.onnx"
    done = _export(weights, out, "--crop-size", "64")
    assert done.returncode == 0, done.stderr
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model.weights"].split(":")[0] == label.split("-")[0]
    crop, frames = int(meta["preprocess.crop_size"]), int(meta["clip.length"])
    video = np.random.default_rng(2).standard_normal((1, 3, frames, crop, crop)).astype(np.float32)
    want = _scores(NR.build("c2d-r50-nl", params, crop_size=crop, frames=frames), video)
    np.testing.assert_array_equal(_scores(model, video), want)


@needs_exporter
@needs_cli
def test_cli_refuses_mmaction2(tmp_path):
    """The CLI builds mmaction2's own network for i3d-r50-nl only (test_mmaction_export.py), so an
    mmaction2 file given for another architecture is refused with the reasons."""
    weights = W.write_mmaction2_pth(tmp_path / "i3d_nl.pth", NR.random_params("i3d-r50-nl", seed=1))
    done = _export(weights, tmp_path / "out.onnx", arch="i3d-r101-nl")
    assert done.returncode != 0
    assert str(weights) in done.stderr and "pool1" in done.stderr, done.stderr
    assert not (tmp_path / "out.onnx").exists()
