"""Tests of benches/torch_reference.py, the PyTorch side of the GPU benchmark, and of what the
GPU run builds on it (benches/ort_scores.py, benches/gpu/table.py).

Two groups:

1. Without torch (these run in CI): the module's own ONNX protobuf reader against onnx's loader
   on real exports (nonlocal_resnet.build at 64×64 crops in float32 and float16, the
   tools/export_model.py command line, the I3D Inception exporter, tensors stored in the typed
   protobuf fields), the mapping of initializers back to FAIR parameter names / folded Inception
   units, and the import of the exporter's numpy parts on a machine without onnx (the GPU machine)
   giving the same random weights. They need onnx (and numpy); they are skipped without it.
   Also without torch: the command line (--modes with per-mode batches, --compile-forms,
   --inductor knobs, the plan of configurations and its order, the errors), the uint8 input
   normalised as ONNX Runtime runs the export's own normalisation, benches/ort_scores.py against a
   direct ONNX Runtime run, and benches/gpu/table.py: its default table reproduces the committed
   H100 table from the committed raw files, and `--compile` renders the per-batch tables from
   those raw files plus compiled, skipped and failed configurations.

2. With torch (these run on the GPU machine, where torch is installed and onnx is not; skipped
   cleanly wherever `import torch` fails, e.g. on the CI machine): the conv3d and 2-D forms of the
   Non-local ResNets give the same scores, and both match the independent float64 NumPy forward
   pass of tests/python/reference_nonlocal.py; the Inception I3D matches a float64 NumPy forward
   pass (in this file); fp16 channels_last stays close to fp32; the benchmark prints its JSON
   line; `--check-onnx` accepts its own scores. Where onnx and onnxruntime are installed too,
   `--check-onnx` is also checked against ONNX Runtime's scores of an export. torch.compile:
   each mode gives eager's scores, the timed `--verify` path checks its scores and reports
   compile times, and SIGTERM lists the cut configuration and the ones never run.

       python3 -m pytest tests/python/test_torch_reference.py      # on the GPU machine
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benches"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch_reference as TR  # noqa: E402  (imports neither torch nor onnx when absent)

NR, I3D = TR.exporter_modules()
SCRIPT = REPO / "benches" / "torch_reference.py"
EXPORT_CLI = REPO / "tools" / "export_model.py"
CROP = 64
FRAMES = {"c2d-r50-nl": 8, "i3d-r50-nl": 32}


@functools.lru_cache(maxsize=4)
def nl_params(arch: str, seed: int = 0, pairwise: str = "embedded_gaussian"):
    return NR.random_params(arch, seed, pairwise=pairwise)


@functools.lru_cache(maxsize=1)
def inception_tree(seed: int = 0):
    return I3D.random_params(seed)


def clip(n: int, frames: int, crop: int = CROP, seed: int = 1) -> np.ndarray:
    pixels = np.random.default_rng(seed).uniform(0, 255, (n, 3, frames, crop, crop))
    return ((pixels - 114.75) / 57.375).astype(np.float32)


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


# ================================================================================================
# 1. The protobuf reader and the weight mapping (no torch; onnx to compare with)
# ================================================================================================
@pytest.fixture(scope="module")
def onnx_mod():
    return pytest.importorskip("onnx")


def onnx_arrays(model) -> dict:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def assert_reader_matches(model, read: TR.OnnxModel):
    want = onnx_arrays(model)
    assert list(read.initializers) == list(want)
    for name, arr in want.items():
        got = read.initializers[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape, name
        assert np.array_equal(got, arr), name
    assert read.metadata == {p.key: p.value for p in model.metadata_props}
    assert read.doc_string == model.doc_string
    assert read.producer_name == model.producer_name
    for values, read_values in ((model.graph.input, read.inputs),
                                (model.graph.output, read.outputs)):
        want_io = {v.name: (v.type.tensor_type.elem_type,
                            [d.dim_value if d.HasField("dim_value") else d.dim_param
                             for d in v.type.tensor_type.shape.dim]) for v in values}
        assert read_values == want_io


@pytest.fixture(scope="module", params=[False, True], ids=["fp32", "fp16"])
def c2d_export(request, onnx_mod):
    fp16 = request.param
    model = NR.build("c2d-r50-nl", nl_params("c2d-r50-nl"), crop_size=CROP, fp16=fp16,
                     batch=2 if fp16 else None)
    return fp16, model


def test_reader_matches_onnx_loader(c2d_export):
    fp16, model = c2d_export
    read = TR.read_onnx(model.SerializeToString())
    assert_reader_matches(model, read)
    assert read.inputs["video"] == (10 if fp16 else 1, [2 if fp16 else "N", 3, 8, CROP, CROP])
    assert read.metadata["model.name"] == "c2d-r50-nl"


def test_fair_params_from_export(c2d_export):
    fp16, model = c2d_export
    read = TR.read_onnx(model.SerializeToString())
    params = TR.nonlocal_params_from_onnx(read, "c2d-r50-nl")
    want = nl_params("c2d-r50-nl")
    assert list(params) == list(want)
    for name, arr in want.items():
        expect = arr.astype(np.float16) if fp16 else arr
        assert params[name].dtype == expect.dtype and np.array_equal(params[name], expect), name
    assert TR.pairwise_of_onnx(read) == "embedded_gaussian"
    with pytest.raises(ValueError, match="shape mismatches"):
        TR.nonlocal_params_from_onnx(read, "i3d-r50-nl")  # wrong architecture is reported


def test_dot_product_export_is_recognised(onnx_mod):
    params = nl_params("c2d-r50-nl", 0, "dot_product")
    model = NR.build("c2d-r50-nl", params, pairwise="dot_product", crop_size=CROP)
    read = TR.read_onnx(model.SerializeToString())
    assert TR.pairwise_of_onnx(read) == "dot_product"


def test_reader_on_export_cli_file(tmp_path, onnx_mod):
    out = tmp_path / "i3d.onnx"
    proc = subprocess.run([sys.executable, str(EXPORT_CLI), "--arch", "i3d-r50-nl", "--seed", "3",
                           "--crop-size", str(CROP), "--clip-length", "16", "--batch", "1",
                           "--fp16", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    read = TR.read_onnx(out)
    assert_reader_matches(onnx_mod.load(str(out)), read)
    params = TR.nonlocal_params_from_onnx(read, "i3d-r50-nl")
    want = NR.random_params("i3d-r50-nl", 3)
    assert all(np.array_equal(params[k], want[k].astype(np.float16)) for k in want)
    assert read.inputs["video"] == (10, [1, 3, 16, CROP, CROP])


@pytest.mark.parametrize("arch,stem,form", [("i3d-r50-nl", "stacked", "conv3d"),
                                            ("i3d-r50-nl", "s2d", "conv3d"),
                                            ("c2d-r50-nl", "s2d", "conv3d")])
def test_fair_params_from_stacked_stem_export(onnx_mod, arch, stem, form):
    params = nl_params(arch)
    model = NR.build(arch, params, crop_size=CROP, frames=16 if arch.startswith("i3d") else 8,
                     stem=stem, form=form)
    read = TR.read_onnx(model.SerializeToString())
    got = TR.nonlocal_params_from_onnx(read, arch)
    assert list(got) == list(params)
    assert all(np.array_equal(got[k], params[k]) for k in params)


def test_inception_units_from_export(onnx_mod):
    model = I3D.build(inception_tree(), clip_length=16, labels=[f"c{i}" for i in range(400)],
                      weights_tag="random")
    read = TR.read_onnx(model.SerializeToString())
    assert_reader_matches(model, read)
    units = TR.inception_units_from_onnx(read)
    folded = TR.fold_inception(inception_tree())
    assert set(units) == set(folded) == {u[0] for u in I3D.units()} | {"Logits"}
    for scope, (w, b) in folded.items():
        # the exporter casts the float64 folded weights once to the graph's float32
        assert np.array_equal(units[scope][0], np.asarray(w).astype(np.float32)), scope
        assert np.array_equal(units[scope][1], np.asarray(b).astype(np.float32)), scope


def test_reader_typed_fields_and_packing(onnx_mod):
    """Tensors stored in float_data / int32_data / int64_data / double_data, not raw_data."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    cases = {
        "f32": (TensorProto.FLOAT, rng.standard_normal((2, 3)).astype(np.float32)),
        "f16": (TensorProto.FLOAT16, rng.standard_normal((4,)).astype(np.float16)),
        "f64": (TensorProto.DOUBLE, rng.standard_normal((3, 1, 2))),
        "i64": (TensorProto.INT64, np.array([0, -1, 2 ** 40, -(2 ** 62)], np.int64)),
        "i32": (TensorProto.INT32, np.array([[-5, 7]], np.int32)),
        "i8": (TensorProto.INT8, np.array([-128, 127, 0], np.int8)),
        "u8": (TensorProto.UINT8, np.array([0, 255], np.uint8)),
        "b": (TensorProto.BOOL, np.array([True, False, True])),
        "scalar": (TensorProto.FLOAT, np.array(2.5, np.float32)),
    }
    inits = []
    for name, (dt, arr) in cases.items():
        if dt == TensorProto.FLOAT16:  # int32_data holds the bit patterns
            t = TensorProto(name=name, data_type=dt, dims=arr.shape)
            t.int32_data.extend(arr.view(np.uint16).tolist())
        else:
            t = helper.make_tensor(name, dt, arr.shape, arr.ravel().tolist(), raw=False)
        assert not t.raw_data
        inits.append(t)
    inits.append(helper.make_tensor("raw", TensorProto.FLOAT, [2], np.float32([1, 2]).tobytes(),
                                    raw=True))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y], inits)
    model = helper.make_model(graph)
    read = TR.read_onnx(model.SerializeToString())
    assert_reader_matches(model, read)
    for name, (_, arr) in cases.items():
        assert np.array_equal(read.initializers[name], arr), name


def test_reader_errors(tmp_path):
    with pytest.raises(TR.OnnxReadError, match="cannot read"):
        TR.read_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0a\xff")  # field 1, length 255 past the end
    with pytest.raises(TR.OnnxReadError, match="bad.onnx"):
        TR.read_onnx(bad)
    bad.write_bytes(b"\x08\x07")  # a valid message without a graph
    with pytest.raises(TR.OnnxReadError, match="no graph"):
        TR.read_onnx(bad)


NO_ONNX = """
import sys
sys.modules["onnx"] = None  # as on a machine without onnx: `import onnx` raises ImportError
sys.path.insert(0, {benches!r})
import torch_reference as TR
nr, i3d = TR.exporter_modules()
assert "onnx" not in sys.modules  # the stand-in is gone again
_, a = TR.random_weights("i3d-r50-nl", 5)
_, b = TR.random_weights("i3d-kinetics400", 2)
print(a, b, nr.get_spec("c2d-r50-nl").clip_length, len(nr.blocks("c2d-r101-nl")))
try:
    nr.build("c2d-r50-nl", nr.random_params("c2d-r50-nl", 0), crop_size=64)
except ModuleNotFoundError as e:
    print("build:", e)
"""


def test_exporter_numpy_parts_without_onnx():
    """On the GPU machine (no onnx) the random weights are the exporter's, bit for bit."""
    proc = subprocess.run([sys.executable, "-c", NO_ONNX.format(benches=str(REPO / "benches"))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    digest_nl, digest_i3d, clip_length, n_blocks, *rest = proc.stdout.split()
    assert digest_nl == TR.params_digest(NR.random_params("i3d-r50-nl", 5))
    assert digest_i3d == TR.params_digest(I3D.flatten(I3D.random_params(2)))
    assert (clip_length, n_blocks) == ("8", "33")
    assert "needs the onnx package" in proc.stdout


def test_cli_without_torch_explains(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed here")
    except ImportError:
        pass
    help_ = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "--check-onnx" in help_.stdout
    run = subprocess.run([sys.executable, str(SCRIPT), "--arch", "c2d-r50-nl"],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "needs PyTorch" in run.stderr


# ------------------------------------------------------------------------------------------------
# The command line and the plan of configurations (no torch)
# ------------------------------------------------------------------------------------------------
def test_parse_batches_modes_forms_knobs():
    assert TR.parse_batches("1,8,16") == (1, 8, 16)
    assert TR.parse_batches("8/16") == (8, 16)
    for bad, msg in (("0", "not a positive"), ("8,x", "'x' is not"), ("8,8", "twice"),
                     ("", "no batch")):
        with pytest.raises(ValueError, match=msg):
            TR.parse_batches(bad)
    assert TR.parse_modes("eager, default,max-autotune@8,reduce-overhead@1/16") == [
        ("eager", None), ("default", None), ("max-autotune", (8,)),
        ("reduce-overhead", (1, 16))]
    with pytest.raises(ValueError, match="'max_autotune' is none of"):
        TR.parse_modes("max_autotune")
    with pytest.raises(ValueError, match="default given twice"):
        TR.parse_modes("default@1,default@8")
    with pytest.raises(ValueError, match="--modes max-autotune@0"):
        TR.parse_modes("max-autotune@0")
    assert TR.parse_forms("2d+sdpa,conv3d", "c2d-r50-nl") == [("2d", True), ("conv3d", False)]
    assert TR.parse_forms("all", "i3d-r50-nl") == [("conv3d", False), ("conv3d", True),
                                                   ("2d", False), ("2d", True)]
    assert TR.parse_forms("all", TR.INCEPTION_ARCH) == [("conv3d", False)]
    with pytest.raises(ValueError, match="not available for i3d-kinetics400"):
        TR.parse_forms("2d", TR.INCEPTION_ARCH)
    with pytest.raises(ValueError, match=re.escape("'2d+flash' is not a form")):
        TR.parse_forms("2d+flash", "c2d-r50-nl")
    assert TR.parse_inductor(["coordinate_descent_tuning=False",
                              "max_autotune_conv_backends=ATEN", "compile_threads=8",
                              "triton.cudagraphs=True"]) == {
        "coordinate_descent_tuning": False, "max_autotune_conv_backends": "ATEN",
        "compile_threads": 8, "triton.cudagraphs": True}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        TR.parse_inductor(["max_autotune"])


def test_plan_orders_modes_as_given():
    args = TR.parse_args(["--arch", "c2d-r50-nl", "--batches", "1,8,16", "--sweep", "--modes",
                          "eager,max-autotune@8,reduce-overhead@1/16"])
    runs = TR.plan("c2d-r50-nl", args)
    forms = [("conv3d", False), ("conv3d", True), ("2d", False), ("2d", True)]
    want = [TR.Run("eager", b, f, s) for b in (1, 8, 16) for f, s in forms]
    want += [TR.Run("max-autotune", 8, "2d", True), TR.Run("reduce-overhead", 1, "2d", True),
             TR.Run("reduce-overhead", 16, "2d", True)]
    assert runs == want
    assert runs[-1].label == "2d+sdpa"
    # --compile-forms picks the compiled forms; eager keeps --form/--sdpa
    args = TR.parse_args(["--arch", "i3d-r50-nl", "--form", "2d", "--modes", "eager,default",
                          "--compile-forms", "conv3d+sdpa,2d"])
    assert TR.plan("i3d-r50-nl", args) == [
        TR.Run("eager", 8, "2d", False), TR.Run("default", 8, "conv3d", True),
        TR.Run("default", 8, "2d", False)]
    # the Inception network compiles its one form
    args = TR.parse_args(["--arch", TR.INCEPTION_ARCH, "--modes", "reduce-overhead"])
    assert TR.plan(TR.INCEPTION_ARCH, args) == [TR.Run("reduce-overhead", 8, "conv3d", False)]
    # a mode limited to a batch size that is not measured is an error, not silently nothing
    args = TR.parse_args(["--arch", "c2d-r50-nl", "--batches", "1", "--modes",
                          "eager,max-autotune@8"])
    with pytest.raises(ValueError, match="batch 8 is not among --batches 1"):
        TR.plan("c2d-r50-nl", args)
    # the older --compile flag is --modes default
    args = TR.parse_args(["--arch", "c2d-r50-nl", "--compile"])
    assert TR.plan("c2d-r50-nl", args) == [TR.Run("default", 8, "2d", True)]


@pytest.mark.parametrize("argv,msg", [
    (["--modes", "eager,turbo"], "--modes: 'turbo' is none of"),
    (["--compile", "--modes", "default"], "--compile is --modes default"),
    (["--batches", "1,0"], "'0' is not a positive batch size"),
    (["--inductor", "oops"], "expected KEY=VALUE"),
    (["--compile-forms", "3d"], "'3d' is not a form"),
    (["--verify", "a.npy", "b.npy", "--input", "a.npy", "--scores", "b.npy"], "give one of them"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
])
def test_cli_errors_name_the_option(argv, msg, capsys):
    """Argument errors come before torch is needed (parse_args imports nothing), as a usage
    error (exit status 2) that names the option."""
    with pytest.raises(SystemExit) as e:
        TR.parse_args(["--arch", "c2d-r50-nl", *argv])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Inputs: uint8 crops normalised as the export's graph does; ONNX Runtime's reference pairs
# ------------------------------------------------------------------------------------------------
def test_uint8_input_normalised_as_the_export_does(onnx_mod):
    """video_array on uint8 NTHWC crops against ONNX Runtime running the export's own input
    stage (onnxgraph.video_input: Transpose, Cast, Mul, Add) in float32."""
    ort = pytest.importorskip("onnxruntime")
    from nlexport import onnxgraph

    mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)  # three different channels
    g = onnxgraph.Graph(np.float32)
    x = g.input  # noqa: F841  (the helper adds the input itself)
    norm = onnxgraph.video_input(g, "N", 3, 5, mean=mean, std=std, uint8=True)
    g.output(norm, ["N", 3, 3, 5, 5])
    model = g.to_model("norm", {})
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    crops = np.random.default_rng(5).integers(0, 256, (2, 3, 5, 5, 3), dtype=np.uint8)
    want = sess.run(None, {onnxgraph.INPUT_NAME: crops})[0]
    got = TR.video_array(crops, np.array(mean), np.array(std))
    assert got.shape == (2, 3, 3, 5, 5) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    # channel c of the result is colour c of the crops (the transpose, not just the values)
    assert np.allclose(got[1, 2, 0, 4, 1], (crops[1, 0, 4, 1, 2] - mean[2]) / std[2])
    # float NCTHW input passes through; wrong layouts are named
    f = np.zeros((1, 3, 2, 4, 4), np.float32)
    assert TR.video_array(f, mean, std) is f
    with pytest.raises(SystemExit, match=r"clips.npy: uint8 input must be \(N, T, H, W, 3\)"):
        TR.video_array(np.zeros((1, 3, 2, 4, 4), np.uint8), mean, std, "clips.npy")
    with pytest.raises(SystemExit, match=r"expected \(N, 3, T, H, W\)"):
        TR.video_array(np.zeros((1, 2, 4, 4, 3), np.float32), mean, std)


def test_normalisation_from_metadata(c2d_export):
    _, model = c2d_export
    read = TR.read_onnx(model.SerializeToString())
    mean, std = TR.normalisation("c2d-r50-nl", read.metadata)
    assert mean.tolist() == list(NR.MEAN) and std.tolist() == list(NR.STD)
    mean, std = TR.normalisation(TR.INCEPTION_ARCH, {})  # no export: the exporter's constants
    assert mean.tolist() == list(I3D.MEAN) and std.tolist() == list(I3D.STD)
    with pytest.raises(SystemExit, match="m.onnx: metadata preprocess.mean '1,2' is not three"):
        TR.normalisation("c2d-r50-nl", {"preprocess.mean": "1,2", "preprocess.std": "1,1,1"},
                         "m.onnx")


def test_tile_batch():
    a = np.arange(2 * 3).reshape(2, 3)
    assert TR.tile_batch(a, 1).tolist() == [[0, 1, 2]]
    assert TR.tile_batch(a, 5)[:, 0].tolist() == [0, 3, 0, 3, 0]


ORT_SCORES = REPO / "benches" / "ort_scores.py"


def test_ort_scores_pair(tmp_path, onnx_mod):
    """benches/ort_scores.py writes the model's own input form (uint8 crops for a --uint8
    export) and ONNX Runtime's scores for it: the same scores as running the model directly,
    clip by clip."""
    ort = pytest.importorskip("onnxruntime")
    model = NR.build("c2d-r50-nl", nl_params("c2d-r50-nl"), crop_size=CROP, uint8=True)
    path = tmp_path / "c2d.onnx"
    path.write_bytes(model.SerializeToString())
    proc = subprocess.run([sys.executable, str(ORT_SCORES), str(path), "--clips", "3",
                           "--out", str(tmp_path / "pairs")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    video = np.load(tmp_path / "pairs" / "c2d.input.npy")
    scores = np.load(tmp_path / "pairs" / "c2d.scores.npy")
    assert video.dtype == np.uint8 and video.shape == (3, 8, CROP, CROP, 3)
    assert len({v.tobytes() for v in video}) == 3  # three different clips
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for i in range(3):
        one = sess.run(["scores"], {"video": video[i:i + 1]})[0]
        np.testing.assert_allclose(scores[i:i + 1], one, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)  # probabilities
    assert "c2d.onnx: 3 clips" in proc.stdout


def test_ort_scores_float_input(c2d_export):
    """Float exports get (N, 3, T, H, W) pixels normalised with the model's mean/std, in the
    model's float type."""
    sys.path.insert(0, str(REPO / "benches"))
    import ort_scores

    fp16, model = c2d_export
    read = TR.read_onnx(model.SerializeToString())
    batch = 2 if fp16 else 3  # the fp16 fixture has a fixed batch of 2
    name, video = ort_scores.make_input(read, batch, seed=1)
    assert name == "video" and video.shape == (batch, 3, 8, CROP, CROP)
    assert video.dtype == (np.float16 if fp16 else np.float32)
    pixels = video.astype(np.float64) * 57.375 + 114.75  # back to 0..255 integers
    assert np.abs(pixels - np.round(pixels)).max() < (0.07 if fp16 else 1e-3)
    assert pixels.min() > -0.5 and pixels.max() < 255.5 and pixels.std() > 50
    if fp16:
        with pytest.raises(ValueError, match="batches of 2 only, not --clips 3"):
            ort_scores.make_input(read, 3, seed=1)


def test_ort_scores_errors(tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "junk.onnx").write_bytes(b"\x0a\xff")
    proc = subprocess.run([sys.executable, str(ORT_SCORES), str(tmp_path / "junk.onnx"),
                           str(tmp_path / "missing.onnx")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "junk.onnx" in proc.stderr and "missing.onnx: cannot read" in proc.stderr
    assert not list(tmp_path.glob("*.npy"))


# ------------------------------------------------------------------------------------------------
# benches/gpu/table.py on committed raw results
# ------------------------------------------------------------------------------------------------
RESULTS = REPO / "benches" / "gpu" / "results"
TABLE = REPO / "benches" / "gpu" / "table.py"


def run_table(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TABLE), *map(str, args)], capture_output=True,
                          text=True)


def test_table_reproduces_committed_table():
    proc = run_table(RESULTS / "2026-11-27-h100-stacked-bench.jsonl",
                     RESULTS / "2026-11-27-h100-stacked-torch.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (RESULTS / "2026-11-27-h100-stacked-table.md").read_text()


def compile_sample(tmp_path) -> Path:
    """The committed eager rows plus compiled ones as torch_reference.py writes them."""
    rows = [json.loads(line) for line in
            (RESULTS / "2026-11-27-h100-stacked-torch.jsonl").read_text().splitlines()]
    base = {"dtype": "fp16", "channels_last": True, "form": "2d", "sdpa": True, "compile": True,
            "torch": "2.11.0+cu130", "cuda": "13.0", "cudnn": 91900, "triton": "3.6.0",
            "gpu": "NVIDIA H100 80GB HBM3", "date": "2026-11-27T08:40:00Z"}
    check = {"max_abs": 2e-5, "max_rel": 0.0021, "top1_agree": 8, "n": 8, "clips": 2,
             "tol": 0.03, "ok": True}
    rows += [
        {**base, "arch": "c2d-r50-nl", "batch": 8, "mode": "max-autotune",
         "clips_per_s": 1800.0, "ms_per_batch": 4.4444, "compile_s": 95.25,
         "inductor": {"coordinate_descent_tuning": False}, "check": check},
        {**base, "arch": "c2d-r50-nl", "batch": 8, "mode": "reduce-overhead",
         "clips_per_s": 1700.0, "ms_per_batch": 4.7059, "compile_s": 41.0, "inductor": {},
         "check": {**check, "max_rel": 0.2, "ok": False}},
        {**base, "arch": "c2d-r50-nl", "batch": 8, "mode": "default",
         "skipped": "budget of 130 s spent"},
        {**base, "arch": "i3d-r50-nl", "batch": 8, "mode": "max-autotune",
         "error": "stopped by signal 15 after 154 s (time box)"},
        {**base, "arch": "i3d-r50-nl", "batch": 8, "mode": "reduce-overhead",
         "clips_per_s": 1000.0, "ms_per_batch": 8.0, "compile_s": 38.5, "inductor": {},
         "cudagraph_skips": 1},
    ]
    path = tmp_path / "torch.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_compile_tables(tmp_path):
    card = tmp_path / "card.csv"
    card.write_text("name, driver_version, memory.total [MiB]\n"
                    "NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB\n")
    proc = run_table("--compile", RESULTS / "2026-11-27-h100-stacked-bench.jsonl",
                     compile_sample(tmp_path), "--card", card,
                     "--engines", "c2d-r50-nl-u8,i3d-r50-nl-u8-stacked")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("card: name NVIDIA H100 80GB HBM3; driver_version 580.159.04; "
                          "memory.total [MiB] 81559 MiB\n")
    assert "PyTorch 2.11.0+cu130 (CUDA 13.0, cuDNN 91900), Triton 3.6.0" in out
    assert "engine measured 2026-11-27 08:37 UTC – 2026-11-27 08:46 UTC" in out
    # one table per batch size the engine or PyTorch measured, in order
    sections = out.split("### Batch ")[1:]
    assert [s.split("\n", 1)[0] for s in sections] == ["1", "2", "4", "8", "16"]
    b8 = sections[3]
    lines = b8.splitlines()
    # only the chosen engines; each network's rows follow its engine, eager before compiled
    assert [line.split(" | ")[1] for line in lines if line.startswith("| ") and "---" not in line
            and not line.startswith("| network")] == [
        "engine, c2d-r50-nl-u8", "PyTorch eager, conv3d", "PyTorch eager, conv3d+sdpa",
        "PyTorch eager, 2d", "PyTorch eager, 2d+sdpa", "torch.compile default, 2d+sdpa",
        "torch.compile reduce-overhead, 2d+sdpa",
        "torch.compile max-autotune, 2d+sdpa [coordinate_descent_tuning=False]",
        "engine, i3d-r50-nl-u8-stacked", "PyTorch eager, conv3d", "PyTorch eager, conv3d+sdpa",
        "PyTorch eager, 2d", "PyTorch eager, 2d+sdpa",
        "torch.compile reduce-overhead, 2d+sdpa (CUDA graphs skipped)",
        "torch.compile max-autotune, 2d+sdpa"]
    assert "| c2d-r50-nl | engine, c2d-r50-nl-u8 | 1620.4 | 4.94 | 1.00 | - | - |" in b8
    # engine ÷ this: 1620.4 / 1800 = 0.90; the compile time; the check against ONNX Runtime
    assert ("| c2d-r50-nl | torch.compile max-autotune, 2d+sdpa [coordinate_descent_tuning=False]"
            " | 1800.0 | 4.44 | 0.90 | 95.2 | max rel diff 0.0021, top-1 8/8 ok (tolerance 0.03) |"
            in b8)
    assert "| 1700.0 | 4.71 | 0.95 | 41.0 | max rel diff 0.2, top-1 8/8 **FAIL** (tolerance" in b8
    assert ("| c2d-r50-nl | torch.compile default, 2d+sdpa | skipped: budget of 130 s spent | - |"
            in b8)
    assert ("| i3d-r50-nl | torch.compile max-autotune, 2d+sdpa | failed: stopped by signal 15 "
            "after 154 s (time box) |" in b8)
    assert "| PyTorch eager, 2d | 1579.6 | 5.06 | 1.03 | - | not checked |" in b8
    assert ("- c2d-r50-nl, batch 8: the engine (c2d-r50-nl-u8, 1620.4 clips/s) makes 0.90× the "
            "best compiled form (torch.compile max-autotune, 2d+sdpa [coordinate_descent_tuning="
            "False], 1800.0 clips/s); 1.03× the best eager form (PyTorch eager, 2d, 1579.6 "
            "clips/s)") in b8
    assert ("- i3d-r50-nl, batch 8: the engine (i3d-r50-nl-u8-stacked, 1055.9 clips/s) makes "
            "1.06× the best compiled form (torch.compile reduce-overhead, 2d+sdpa (CUDA graphs "
            "skipped), 1000.0 clips/s); 0.94× the best eager form (PyTorch eager, 2d+sdpa, 1123.2 clips/s)") in b8
    # batch 16: the engine alone (PyTorch measured 1 and 8 in that run); no ratio to print
    assert "| i3d-r50-nl | engine, i3d-r50-nl-u8-stacked | 1112.6 | 14.38 | 1.00 | - | - |" in (
        sections[4])
    assert "makes" not in sections[4]


def test_compile_tables_errors(tmp_path):
    proc = run_table("--compile", tmp_path / "none.jsonl", tmp_path / "none.jsonl")
    assert proc.returncode == 1 and "none.jsonl" in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    proc = run_table("--compile", bad, bad)
    assert proc.returncode == 1 and "not JSON" in proc.stderr


# ================================================================================================
# 2. The PyTorch networks (GPU machine)
# ================================================================================================
@pytest.fixture(scope="module")
def torch_mod():
    torch = pytest.importorskip("torch")
    # exact fp32 for the comparisons (PyTorch lets cuDNN use TF32 by default)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


@pytest.fixture(scope="module")
def device(torch_mod):
    return torch_mod.device("cuda" if torch_mod.cuda.is_available() else "cpu")


def run_torch(torch, model, video, fmt=None):
    t = torch.from_numpy(video).to(model.device, model.dtype)
    if fmt is not None:
        t = t.contiguous(memory_format=fmt)
    with torch.inference_mode():
        return model(t).float().cpu().numpy()


VARIANTS = [("conv3d", False, False), ("conv3d", True, True), ("2d", False, False),
            ("2d", True, False), ("2d", True, True)]  # (form, channels_last, sdpa)


@pytest.mark.parametrize("arch,pairwise,n", [("c2d-r50-nl", "embedded_gaussian", 2),
                                             ("c2d-r50-nl", "dot_product", 1),
                                             ("i3d-r50-nl", "embedded_gaussian", 1)])
def test_forms_match_numpy_reference(torch_mod, device, arch, pairwise, n):
    import reference_nonlocal as REF

    torch = torch_mod
    params = nl_params(arch, 0, pairwise)
    video = clip(n, FRAMES[arch])
    want = REF.forward(arch, params, video, pairwise=pairwise)
    outs = {}
    for form, cl, sdpa in VARIANTS:
        if sdpa and pairwise == "dot_product":
            continue
        model = TR.build_model(arch, params, form=form, pairwise=pairwise, sdpa=sdpa,
                               dtype=torch.float32, device=device, channels_last=cl)
        outs[(form, cl, sdpa)] = got = run_torch(torch, model, video,
                                                 torch.channels_last_3d if cl else None)
        assert got.shape == want.shape
        assert rel_err(got, want) < 1e-4, (form, cl, sdpa, rel_err(got, want))
    base = outs[("conv3d", False, False)]
    for key, got in outs.items():  # the two forms compute the same function
        assert rel_err(got, base) < 2e-5, (key, rel_err(got, base))


def test_head_positions_at_larger_crop(torch_mod, device):
    """Several head positions, as FAIR's 7×7 pool5 on the 8×8 res5 plane of a 256² crop: here a
    2×2 pool on the 3×3 plane of a 96² crop; the softmax is averaged over the 2×2 positions."""
    import reference_nonlocal as REF

    torch = torch_mod
    params = nl_params("c2d-r50-nl")
    video = clip(1, 8, crop=96)
    want = REF.forward("c2d-r50-nl", params, video, pool5_size=2)
    for form in TR.FORMS:
        model = TR.build_model("c2d-r50-nl", params, form=form, dtype=torch.float32,
                               device=device, pool5_size=2)
        assert rel_err(run_torch(torch, model, video), want) < 1e-4, form


def np_conv_same(x, w, b, stride):
    """TF SAME 3-D convolution, x (N, C, T, H, W) float64, w (O, C, kt, kh, kw)."""
    k = w.shape[2:]
    begin, end = I3D.same_pads(x.shape[2:], k, stride)
    x = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    out = [(n - kk) // s + 1 for n, kk, s in zip(x.shape[2:], k, stride)]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    for a in range(k[0]):
        for i in range(k[1]):
            for j in range(k[2]):
                patch = x[:, :, a:a + stride[0] * (out[0] - 1) + 1:stride[0],
                          i:i + stride[1] * (out[1] - 1) + 1:stride[1],
                          j:j + stride[2] * (out[2] - 1) + 1:stride[2]]
                y += np.einsum("nctij,oc->notij", patch, w[:, :, a, i, j], optimize=True)
    return y + b.reshape(1, -1, 1, 1, 1)


def np_maxpool_same(x, kernel, stride):
    begin, end = I3D.same_pads(x.shape[2:], kernel, stride)
    x = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)), constant_values=-np.inf)
    out = [(n - k) // s + 1 for n, k, s in zip(x.shape[2:], kernel, stride)]
    (st, sh, sw), (ot, oh, ow) = stride, out
    return np.max(np.stack([
        x[:, :, a:a + st * (ot - 1) + 1:st, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
        for a in range(kernel[0]) for i in range(kernel[1]) for j in range(kernel[2])]), axis=0)


def np_inception(video, tree):
    """float64 forward pass from the checkpoint tree, BN unfolded: (x − mean)/√(var+ε) + β."""
    flat = I3D.flatten(tree)

    def unit(x, scope, stride=(1, 1, 1)):
        w = flat[f"params/{scope}/Conv_0/kernel"].astype(np.float64).transpose(4, 3, 0, 1, 2)
        y = np_conv_same(x, w, np.zeros(w.shape[0]), stride)
        mean = flat[f"batch_stats/{scope}/BatchNorm_0/mean"].reshape(1, -1, 1, 1, 1)
        var = flat[f"batch_stats/{scope}/BatchNorm_0/var"].reshape(1, -1, 1, 1, 1)
        beta = flat[f"params/{scope}/BatchNorm_0/bias"].reshape(1, -1, 1, 1, 1)
        return np.maximum((y - mean) / np.sqrt(var + I3D.BN_EPS) + beta, 0)

    x = np.asarray(video, np.float64)
    for name, kind, args in I3D.LAYERS:
        if kind == "unit":
            x = unit(x, name, args[2])
        elif kind == "maxpool":
            x = np_maxpool_same(x, *args)
        else:
            s = [u[0] for u in I3D._mixed_units(name, x.shape[1])]
            x = np.concatenate([unit(x, s[0]), unit(unit(x, s[1]), s[2]),
                                unit(unit(x, s[3]), s[4]),
                                unit(np_maxpool_same(x, (3, 3, 3), (1, 1, 1)), s[5])], axis=1)
    _, c, t, h, w = x.shape
    pooled = np.stack([x[:, :, i:i + 2].mean(axis=(2, 3, 4)) for i in range(t - 1)], axis=1)
    k = flat[f"params/{I3D.LOGITS_SCOPE}/Conv_0/kernel"].reshape(c, -1)
    logits = (pooled @ k + flat[f"params/{I3D.LOGITS_SCOPE}/Conv_0/bias"]).mean(axis=1)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_inception_matches_numpy_reference(torch_mod, device):
    torch = torch_mod
    tree = inception_tree()
    video = np.random.default_rng(2).uniform(-1, 1, (1, 3, 16, 224, 224)).astype(np.float32)
    want = np_inception(video, tree)
    units = TR.fold_inception(tree)
    for cl in (False, True):
        model = TR.build_model(TR.INCEPTION_ARCH, units, dtype=torch.float32, device=device,
                               channels_last=cl)
        got = run_torch(torch, model, video, torch.channels_last_3d if cl else None)
        assert rel_err(got, want) < 1e-4, (cl, rel_err(got, want))


needs_cuda = pytest.mark.skipif(
    not (TR.torch is not None and TR.torch.cuda.is_available()), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("arch", ["c2d-r50-nl", "i3d-r50-nl", TR.INCEPTION_ARCH])
def test_fp16_channels_last_close_to_fp32(torch_mod, device, arch):
    torch = torch_mod
    if arch == TR.INCEPTION_ARCH:
        weights = TR.fold_inception(inception_tree())
        video = np.random.default_rng(3).uniform(-1, 1, (2, 3, 16, 224, 224)).astype(np.float32)
        forms = [("conv3d", False)]
    else:
        weights = nl_params(arch)
        video = clip(2, FRAMES[arch], crop=96)
        forms = [("conv3d", False), ("2d", False), ("2d", True)]
    ref = TR.build_model(arch, weights, dtype=torch.float32, device=device)
    want = run_torch(torch, ref, video)
    for form, sdpa in forms:
        model = TR.build_model(arch, weights, form=form, sdpa=sdpa, dtype=torch.float16,
                               device=device, channels_last=True)
        got = run_torch(torch, model, video, torch.channels_last_3d)
        assert np.isfinite(got).all()
        assert rel_err(got, want) < 3e-2, (form, sdpa, rel_err(got, want))


@needs_cuda
def test_benchmark_json_line(capsys):
    rc = TR.main(["--arch", "c2d-r50-nl", "--batch", "2", "--crop", "64", "--iters", "2",
                  "--warmup", "1", "--repeats", "1", "--channels-last", "--sweep", "--json"])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert [(r["form"], r["sdpa"]) for r in lines] == [("conv3d", False), ("conv3d", True),
                                                      ("2d", False), ("2d", True)]
    for r in lines:
        assert {"arch", "batch", "dtype", "form", "clips_per_s", "ms_per_batch", "gpu", "torch",
                "date"} <= set(r)
        assert r["arch"] == "c2d-r50-nl" and r["batch"] == 2 and r["dtype"] == "fp16"
        assert r["clips_per_s"] > 0 and r["weights_sha"] == TR.params_digest(
            nl_params("c2d-r50-nl"))


def test_check_against_own_scores(torch_mod, device, tmp_path, capsys):
    """--input/--scores with random weights: the scores the tool saved agree with themselves in
    every form (the command-line path of the check)."""
    video = clip(1, 8)
    np.save(tmp_path / "video.npy", video)
    common = ["--arch", "c2d-r50-nl", "--dtype", "fp32", "--tf32", "off", "--device",
              str(device), "--input", str(tmp_path / "video.npy")]
    assert TR.main(common + ["--save-scores", str(tmp_path / "s.npy")]) == 0
    assert TR.main(common + ["--scores", str(tmp_path / "s.npy"), "--tol", "1e-4",
                             "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert len(lines) == 4 and all(r["max_rel"] < 1e-4 and r["top1_agree"] == 1 for r in lines)


@pytest.mark.parametrize("arch", ["c2d-r50-nl", TR.INCEPTION_ARCH])
def test_check_onnx_against_onnxruntime(torch_mod, device, tmp_path, arch):
    """Runs only where torch, onnx and onnxruntime are all installed."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if arch == TR.INCEPTION_ARCH:
        model = I3D.build(inception_tree(), clip_length=16, labels=[f"c{i}" for i in range(400)],
                          weights_tag="random")
        video = np.random.default_rng(4).uniform(-1, 1, (1, 3, 16, 224, 224)).astype(np.float32)
    else:
        model = NR.build(arch, nl_params(arch), crop_size=CROP)
        video = clip(2, 8)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.save(tmp_path / "video.npy", video)
    np.save(tmp_path / "ort.npy", sess.run(["scores"], {"video": video})[0])
    rc = TR.main(["--check-onnx", str(path), "--input", str(tmp_path / "video.npy"), "--scores",
                  str(tmp_path / "ort.npy"), "--tf32", "off", "--device", str(device),
                  "--tol", "1e-4"])
    assert rc == 0


def test_check_dir_from_environment(torch_mod, device):
    """NONLOCAL_TORCH_CHECK_DIR=dir holding <name>.onnx, <name>.input.npy and <name>.scores.npy
    (scores of another runtime, e.g. the Rust engine on the GPU machine): each is checked with
    a relative tolerance of NONLOCAL_TORCH_CHECK_TOL (default 1e-3 fp32, 3e-2 fp16)."""
    where = os.environ.get("NONLOCAL_TORCH_CHECK_DIR")
    if not where:
        pytest.skip("NONLOCAL_TORCH_CHECK_DIR not set")
    models = sorted(Path(where).glob("*.onnx"))
    assert models, f"no .onnx in {where}"
    for m in models:
        stem = m.with_suffix("")
        read = TR.read_onnx(m)
        fp16 = any(a.dtype == np.float16 for a in read.initializers.values())
        tol = os.environ.get("NONLOCAL_TORCH_CHECK_TOL") or ("3e-2" if fp16 else "1e-3")
        rc = TR.main(["--check-onnx", str(m), "--input", f"{stem}.input.npy", "--scores",
                      f"{stem}.scores.npy", "--device", str(device), "--tol", tol])
        assert rc == 0, m


# ------------------------------------------------------------------------------------------------
# torch.compile forms (torch; a GPU for speed, the CPU works too)
# ------------------------------------------------------------------------------------------------
def test_compiled_modes_match_eager(torch_mod, device):
    """Each torch.compile mode computes eager's function (fp32, TF32 off): default and
    reduce-overhead everywhere, max-autotune-no-cudagraphs where there is a card."""
    torch = torch_mod
    video = clip(2, 8)
    model = TR.build_model("c2d-r50-nl", nl_params("c2d-r50-nl"), form="2d", sdpa=True,
                           dtype=torch.float32, device=device, channels_last=True)
    want = run_torch(torch, model, video, torch.channels_last_3d)
    modes = ["default", "reduce-overhead"]
    if device.type == "cuda":
        modes.append("max-autotune-no-cudagraphs")
    for mode in modes:
        fn = TR.compile_forward(model.forward, mode, model.tensors(),
                                {"coordinate_descent_tuning": False})
        t = torch.from_numpy(video).to(device).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            got = [fn(t).float().cpu().numpy() for _ in range(3)]  # CUDA graphs: record, replay
        for g in got:
            assert rel_err(g, want) < 1e-4, (mode, rel_err(g, want))
    torch._dynamo.reset()


def test_verify_times_and_checks_compiled(torch_mod, device, tmp_path, capsys):
    """--verify: the timed clips are the given ones repeated to each batch size, and each timed
    configuration's scores are checked; compiled rows carry their compile time."""
    video = clip(2, 8)
    np.save(tmp_path / "video.npy", video)
    common = ["--arch", "c2d-r50-nl", "--dtype", "fp32", "--tf32", "off", "--device",
              str(device), "--channels-last"]
    assert TR.main(common + ["--form", "2d", "--sdpa", "--input", str(tmp_path / "video.npy"),
                             "--save-scores", str(tmp_path / "s.npy")]) == 0
    capsys.readouterr()
    rc = TR.main(common + ["--form", "2d", "--sdpa", "--batches", "1,3", "--iters", "2",
                           "--warmup", "1", "--repeats", "1", "--modes", "eager,default@3",
                           "--verify", str(tmp_path / "video.npy"), str(tmp_path / "s.npy"),
                           "--tol", "1e-4", "--json"])
    assert rc == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(r["mode"], r["batch"]) for r in rows] == [("eager", 1), ("eager", 3),
                                                       ("default", 3)]
    for r in rows:
        assert r["input"] == "verify" and r["check"]["ok"] and r["check"]["max_rel"] < 1e-4
        assert r["check"]["n"] == r["batch"] and r["check"]["clips"] == min(2, r["batch"])
        assert r["first_call_s"] > 0 and r["clips_per_s"] > 0
    assert rows[2]["compile"] and rows[2]["compile_s"] == rows[2]["first_call_s"]
    assert rows[2]["cudagraph_skips"] == 0  # default mode: no CUDA graphs to skip
    assert "compile_s" not in rows[0]
    # scores that disagree fail the run (and say so), the timing is still reported
    np.save(tmp_path / "wrong.npy", np.load(tmp_path / "s.npy")[::-1])
    rc = TR.main(common + ["--form", "2d", "--batches", "2", "--iters", "1", "--warmup", "0",
                           "--repeats", "1", "--verify", str(tmp_path / "video.npy"),
                           str(tmp_path / "wrong.npy"), "--tol", "1e-4", "--json"])
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert rc == 1 and row["check"]["ok"] is False and row["clips_per_s"] > 0


def test_budget_skips_and_sigterm_reports(torch_mod, device):
    base = [sys.executable, str(SCRIPT), "--arch", "c2d-r50-nl", "--crop", "64", "--device",
            str(device), "--dtype", "fp32", "--json", "--batches", "1,2"]
    proc = subprocess.run(base + ["--budget-s", "0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [(r["batch"], r["skipped"]) for r in rows] == [(1, "budget of 0 s spent"),
                                                          (2, "budget of 0 s spent")]
    # SIGTERM during the first configuration: it is reported as cut, the second as never run
    p = subprocess.Popen(base + ["--iters", "100000"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "eager batch 1" in line:
            break
    import time

    time.sleep(1.0)
    p.terminate()
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 128 + 15
    rows = [json.loads(x) for x in out.splitlines()]
    assert rows[0]["batch"] == 1 and rows[0]["error"].startswith("stopped by signal 15 after")
    assert rows[1] == {**rows[1], "batch": 2, "skipped": "stopped by signal 15 (time box)"}


def test_every_compile_set_of_run_sh_parses():
    """The mode lists benches/gpu/run.sh passes for each COMPILE_SET are valid --modes values
    (an H200 run once lost its torch.compile rows to a mode given twice)."""
    import subprocess
    # run.sh's phases and their shared helpers: compile_settings, model_file and steps_env in
    # lib.sh, the steps phase's runs in phases/steps.sh.
    lib = (REPO / "benches" / "gpu" / "lib.sh").read_text()
    steps = (REPO / "benches" / "gpu" / "phases" / "steps.sh").read_text()
    # compile_settings() up to where it uses the set's values, closed so that it prints them.
    body = lib[lib.index("compile_settings() {"):lib.index("  C_MODES=")]
    for name in ("standard", "quick", "full"):
        out = subprocess.run(["bash", "-c", f'{body}  echo "$modes"\n}}\n'
                              f"COMPILE_SET={name} compile_settings"],
                             capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip(), (name, out.stderr)
        assert TR.parse_modes(out.stdout.strip()), name
    # The steps phase's own default modes, and every run it names has an export recipe.
    env = lib[lib.index("steps_env() {"):]
    at = env.index("COMPILE_MODES:-") + len("COMPILE_MODES:-")
    assert TR.parse_modes(env[at:env.index("}", at)])
    at = steps.index("STEP_RUNS=${STEP_RUNS:-") + len("STEP_RUNS=${STEP_RUNS:-")
    runs = steps[at:steps.index("}", at)]
    recipes = lib[lib.index("model_file() {"):lib.index("compile_model() {")]
    models = {r.split("@")[0] for r in runs.split()}
    assert len(models) == 5 and all(f"      {m}) args=" in recipes for m in models), models


def test_host_bound_model_has_i3d_input_and_reads_it(tmp_path):
    """benches/host_bound_model.py: I3D-NL-R50's uint8 input and contract, scores that follow the
    clip (every 64th value's mean times fixed weights), so the element's work is not optimised
    away."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "host_bound.onnx"
    subprocess.run([sys.executable, str(REPO / "benches" / "host_bound_model.py"), str(out)],
                   check=True, capture_output=True)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (props["clip.length"], props["clip.frame_stride"], props["preprocess.crop_size"],
            props["preprocess.layout"]) == ("32", "2", "224", "NTHWC")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [32, 224, 224, 3]
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 224, 224, 3), dtype=np.uint8)
    scores = session.run(None, {inp.name: x})[0]
    assert scores.shape == (2, 400)
    means = x.reshape(2, -1, 64)[:, :, 0].astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(scores, means[:, None] * np.linspace(-1, 1, 400)[None, :],
                               rtol=1e-4, atol=1e-3)
