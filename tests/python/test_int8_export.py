"""tools/export_model.py --int8: a QDQ model calibrated on clips the element packed (the
nonlocal-classify program's --dump-inputs), with its provenance in the metadata; calibration sets
the model does not fit are one error each; a model with broken scales is never written.

The Non-local path runs end to end on a small random-weights C2D-R50-NL (4 frames of 64²) and a
video encoded here; the default model's int8 form is tested by test_int8_accuracy.py.
"""

import hashlib
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
EXPORT = REPO / "tools" / "export_model.py"
PROGRAM = Path(os.environ.get("NONLOCAL_CLASSIFY",
                              REPO / "target" / "debug" / "nonlocal-classify"))
SMALL = ["--arch", "c2d-r50-nl", "--clip-length", "4", "--crop-size", "64"]

sys.path.insert(0, str(REPO / "tools"))
from nlexport import quantize  # noqa: E402

pytest.importorskip("nncf", reason="needs nncf (tools/install-prereqs installs it)")


def export(*args):
    env = dict(os.environ, NONLOCAL_CLASSIFY=str(PROGRAM))
    return subprocess.run([sys.executable, str(EXPORT), *map(str, args)], capture_output=True,
                          text=True, env=env, check=False)


def encode(path, frames, width=96, height=72):
    """A test-pattern video of `frames` frames at 25 fps (MJPEG in AVI)."""
    desc = (f"videotestsrc num-buffers={frames} pattern=ball ! "
            f"video/x-raw,width={width},height={height},framerate=25/1 ! jpegenc ! avimux ! "
            f"filesink location={path}")
    subprocess.run(["gst-launch-1.0", "-q", *desc.split()], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    assert PROGRAM.exists(), f"{PROGRAM} missing: cargo build (tools/run-tests does it)"
    d = tmp_path_factory.mktemp("int8")
    # C2D 8×8 at 4 frames: a clip spans 25 frames, a new one every 32, so 90 frames give 3
    # clips; one frame is less than the half of a clip the element completes.
    return {"dir": d, "video": encode(d / "ball.avi", 90), "short": encode(d / "short.avi", 1)}


@pytest.fixture(scope="module")
def quantized(work):
    out = work["dir"] / "c2d-int8.onnx"
    r = export(*SMALL, "--int8", "--calibrate", work["video"], "-o", out)
    assert r.returncode == 0, r.stderr
    assert "int8: wrote" in r.stdout and "calibrated on 3 clips of ball.avi" in r.stdout, r.stdout
    return out


def produced_by(model):
    return {o: n for n in model.graph.node for o in n.output}


def test_the_nonlocal_network_quantizes_with_its_attention_in_float32(work, quantized):
    model = onnx.load(str(quantized))
    meta = {p.key: p.value for p in model.metadata_props}
    digest = hashlib.sha256(work["video"].read_bytes()).hexdigest()[:16]
    assert meta["quantization"] == (f"int8-qdq nncf {importlib.metadata.version('nncf')} "
                                    "preset=performance subset=3")
    assert meta["calibration.videos"] == f"ball.avi sha256:{digest} 3 clips"
    assert meta["calibration.clips"] == "3"
    assert meta["quantization.float_ops"] == "MatMul,Softmax"
    # The float32 model's metadata is kept: the element reads the same contract.
    assert meta["model.name"] == "c2d-r50-nl" and meta["clip.length"] == "4"
    assert meta["model.weights"] == "random"
    assert quantize.broken_scales(model) == []
    source = produced_by(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 50, ops.count("QuantizeLinear")
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized_convs = [n for n in convs if source.get(n.input[1], n).op_type == "DequantizeLinear"]
    assert len(quantized_convs) == len(convs), (len(quantized_convs), len(convs))
    for n in model.graph.node:
        if n.op_type in ("MatMul", "Softmax"):
            fed = [source[i].op_type for i in n.input if i in source]
            assert "DequantizeLinear" not in fed, (n.name, fed)
    assert ops.count("MatMul") == 10 and ops.count("Softmax") == 6


def test_the_element_runs_the_int8_model(work, quantized):
    out = subprocess.run([str(PROGRAM), "--model", str(quantized), "--clips", "0", "--output",
                          "csv", str(work["video"])], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    rows = [line.split(",") for line in out.stdout.splitlines()[1:]]
    assert sorted({int(r[1]) for r in rows}) == [0, 1, 2]
    assert all(np.isfinite(float(r[6])) for r in rows)
    assert "random weights" in out.stderr


@pytest.fixture(scope="module")
def float_model(work):
    out = work["dir"] / "c2d-float.onnx"
    r = export(*SMALL, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def int8_error(float_model, tmp_path, sources):
    with pytest.raises(quantize.CalibrationError) as e:
        quantize.export_int8(float_model, str(tmp_path / "out.onnx"), list(map(str, sources)),
                             classifier=str(PROGRAM), subset_size=None, float_ops=())
    assert not (tmp_path / "out.onnx").exists()
    return str(e.value)


def test_a_calibration_set_the_model_does_not_fit_is_one_error(work, float_model, tmp_path):
    # Unreadable: not a video at all.
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0not a video" * 100)
    err = int8_error(float_model, tmp_path, [junk])
    assert err.startswith(f"--calibrate {junk}: "), err
    assert err.endswith(": calibrate on videos the element can classify"), err
    # Too few frames for one clip.
    err = int8_error(float_model, tmp_path, [work["short"]])
    assert err.startswith(f"--calibrate {work['short']}: too short to classify"), err
    # Inputs of another size: dumped for another model.
    wrong = tmp_path / "clip-000000.npy"
    np.save(wrong, np.zeros((1, 3, 4, 112, 112), np.float32))
    err = int8_error(float_model, tmp_path, [wrong])
    assert err == (f"{wrong}: a 1×3×4×112×112 float32 input does not fit the model's "
                   "N×3×4×64×64 float32 input: dump the clips with this model (nonlocal-classify "
                   "--model MODEL --dump-inputs DIR), or calibrate on the videos themselves"), err
    np.save(wrong, np.zeros((1, 3, 4, 64, 64), np.float16))
    assert "float16 input does not fit" in int8_error(float_model, tmp_path, [wrong])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert int8_error(float_model, tmp_path, [empty]) == (
        f"--calibrate {empty}: a folder without .npy inputs")


def test_command_line_errors_come_before_any_export(tmp_path):
    out = tmp_path / "m.onnx"
    r = export(*SMALL, "--int8", "--calibrate", tmp_path / "missing.mp4", "-o", out)
    assert r.returncode == 2
    assert r.stderr == f"error: --calibrate {tmp_path / 'missing.mp4'}: no such file\n"
    assert r.stdout == "" and not out.exists()
    r = export(*SMALL, "--int8", "-o", out)
    assert r.returncode == 2 and "--int8 needs --calibrate" in r.stderr
    r = export(*SMALL, "--calibrate", "x.mp4", "-o", out)
    assert r.returncode == 2 and "--calibrate goes with --int8" in r.stderr
    r = export(*SMALL, "--int8", "--fp16", "--calibrate", "x.mp4", "-o", out)
    assert r.returncode == 2 and "leave out --fp16 and --uint8" in r.stderr


def qdq_model(scale):
    """x → QuantizeLinear → DequantizeLinear → y, scale `scale`."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq")]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(scale, np.float32), "s"),
         numpy_helper.from_array(np.array(0, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan"), float("inf")])
def test_broken_scales_are_found_and_such_a_model_is_not_written(scale):
    model = qdq_model(scale)
    broken = quantize.broken_scales(model)
    assert broken == [f"q (scale {scale})", f"dq (scale {scale})"], broken
    calibration = quantize.Calibration()
    with pytest.raises(quantize.CalibrationError, match="broken quantization scales"):
        quantize.check_quantized(model, calibration, [])
    # ONNX Runtime's CPU provider would run it without complaint.
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    sess.run(None, {"x": np.ones((1, 4), np.float32)})
    assert quantize.broken_scales(qdq_model(0.02)) == []


def test_a_subset_spreads_over_every_source():
    c = quantize.Calibration()
    c.add("a.mp4", "0" * 64, [Path(f"a{i}.npy") for i in range(6)])
    c.add("b.mp4", "1" * 64, [Path(f"b{i}.npy") for i in range(3)])
    s = c.subset(3)
    assert [p.name for p in s.inputs] == ["a0.npy", "a4.npy", "b2.npy"]
    assert s.provenance() == ("a.mp4 sha256:0000000000000000 2 clips\n"
                              "b.mp4 sha256:1111111111111111 1 clip")
    assert c.subset(20) is c
