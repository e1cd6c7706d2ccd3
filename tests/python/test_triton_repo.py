"""Triton model repository entries (tools/nlexport/triton.py, export_model.py --triton-repo,
tools/triton-repo) and the tritonserver of tools/triton-serve serving them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from nlexport import triton  # noqa: E402

ort = pytest.importorskip("onnxruntime")
MODELS = REPO / "tests" / "models"
EXPORT_CLI = REPO / "tools" / "export_model.py"


def parameters(pbtxt: str) -> dict:
    """The string parameters of a config.pbtxt as config_pbtxt writes them."""
    found = re.findall(r'parameters \{\n  key: "((?:[^"\\]|\\.)*)"\n'
                       r'  value: \{ string_value: "((?:[^"\\]|\\.)*)" \}\n\}', pbtxt)
    unescape = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}

    def plain(s):
        return re.sub(r"\\(.)", lambda m: unescape[m.group(1)], s)

    return {plain(k): plain(v) for k, v in found}


def metadata(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small C2D export with a Triton entry (onnxruntime backend, for the NGC container)."""
    out = tmp_path_factory.mktemp("export")
    onnx_path = out / "c2d.onnx"
    r = subprocess.run([sys.executable, str(EXPORT_CLI), "--arch", "c2d-r50-nl", "--crop-size", "32",
                        "-o", onnx_path, "--triton-repo", out / "repo", "--triton-name", "c2d-nl",
                        "--triton-max-batch", "16", "--triton-queue-delay-us", "500"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wrote Triton model repository entry" in r.stdout
    return onnx_path, out / "repo" / "c2d-nl"


def test_export_writes_an_onnxruntime_entry(exported):
    onnx_path, entry = exported
    text = (entry / "config.pbtxt").read_text()
    head = text.split("dynamic_batching")[0]
    assert head == (
        'name: "c2d-nl"\nbackend: "onnxruntime"\nmax_batch_size: 16\n'
        'input [\n  {\n    name: "video"\n    data_type: TYPE_FP32\n    dims: [ 3, 8, 32, 32 ]\n'
        '  }\n]\noutput [\n  {\n    name: "scores"\n    data_type: TYPE_FP32\n    dims: [ 400 ]\n'
        '    label_filename: "labels.txt"\n  }\n]\n')
    assert ("dynamic_batching {\n  preferred_batch_size: [ 8, 16 ]\n"
            "  max_queue_delay_microseconds: 500\n}\n") in text
    assert "    kind: KIND_GPU\n" in text
    # Every metadata key of the contract, labels included, as a parameter with the same value.
    meta = metadata(onnx_path)
    assert set(meta) == {"clip.length", "clip.frame_stride", "preprocess.scale_size",
                         "preprocess.crop_size", "preprocess.mean", "preprocess.std",
                         "preprocess.layout", "output.kind", "labels", "model.name",
                         "model.weights"}
    assert parameters(text) == meta
    labels = (REPO / "data" / "kinetics400_labels.txt").read_text().splitlines()
    assert (entry / "labels.txt").read_text().splitlines() == labels
    assert (entry / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    assert not (entry / "1" / "model.py").exists()


def test_fixed_batch_is_not_batched_by_the_server(tmp_path):
    desc = triton.describe(MODELS / "probe_batch2.onnx")
    assert desc["input"] == ("video", "TYPE_FP32", [2, 3, 4, 8, 8])
    text = triton.config_pbtxt("p2", desc)
    assert "max_batch_size: 0\n" in text
    assert "dims: [ 2, 3, 4, 8, 8 ]" in text and "dims: [ 2, 12 ]" in text
    assert "dynamic_batching" not in text


def test_types_dynamic_dims_and_escapes(tmp_path):
    assert triton.describe(MODELS / "probe_u8.onnx")["input"][1] == "TYPE_UINT8"
    f16 = triton.describe(MODELS / "probe_nthwc_f16.onnx")
    assert f16["input"] == ("video", "TYPE_FP16", [-1, 4, 8, 8, 3])
    text = triton.config_pbtxt("l", triton.describe(MODELS / "logits_dynamic.onnx"))
    assert "dims: [ 3, -1, 8, 8 ]" in text  # the free clip length stays free
    desc = {"input": ("x", "TYPE_FP32", [-1, 1]), "output": ("y", "TYPE_FP32", [-1, 1]),
            "metadata": {"labels": 'a "b"\\c\nd'}}
    assert parameters(triton.config_pbtxt("q", desc)) == {"labels": 'a "b"\\c\nd'}
    with pytest.raises(triton.RepositoryError, match="backend must be one of"):
        triton.config_pbtxt("x", desc, backend="tensorflow")
    with pytest.raises(triton.RepositoryError, match="not a directory name"):
        triton.write_entry(tmp_path, "../x", MODELS / "probe.onnx")


def test_repository_tool_refuses_what_it_cannot_write(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "triton-repo"), str(tmp_path),
                        f"{MODELS / 'missing.onnx'}=m"], capture_output=True, text=True)
    assert r.returncode == 2 and "missing.onnx" in r.stderr


# -- served by tools/triton-serve ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton") / "repo"
    for name in ("probe", "probe_u8", "probe_nthwc_f16"):
        triton.write_entry(repo, name, MODELS / f"{name}.onnx", backend="python")
    pid_file = repo.parent / "pid"
    r = subprocess.run([str(REPO / "tools" / "triton-serve"), "--repo", str(repo), "--pid-file",
                        str(pid_file), "--log", str(repo.parent / "log")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    fields = dict(f.split("=", 1) for f in r.stdout.split())
    yield f"http://{fields['http']}"
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)


def get(url):
    return json.load(urllib.request.urlopen(url, timeout=30))


@pytest.mark.parametrize("name,dtype,np_type", [("probe", "FP32", np.float32),
                                                ("probe_u8", "UINT8", np.uint8),
                                                ("probe_nthwc_f16", "FP16", np.float16)])
def test_served_scores_equal_onnxruntime(server, name, dtype, np_type):
    config = get(f"{server}/v2/models/{name}/config")
    meta = metadata(MODELS / f"{name}.onnx")
    assert {k: v["string_value"] for k, v in config["parameters"].items()} == meta
    assert config["max_batch_size"] == 8 and config["backend"] == "python"
    session = ort.InferenceSession(str(MODELS / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    shape = [3] + [d for d in session.get_inputs()[0].shape[1:]]
    x = (np.random.default_rng(7).uniform(0, 255, shape)).astype(np_type)
    # The binary extension of the HTTP protocol: raw tensor bytes after the JSON header (JSON has
    # no float16).
    header = json.dumps({
        "inputs": [{"name": "video", "shape": shape, "datatype": dtype,
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "scores", "parameters": {"binary_data": True}}]}).encode()
    req = urllib.request.Request(f"{server}/v2/models/{name}/infer", header + x.tobytes(),
                                 {"Inference-Header-Content-Length": str(len(header))})
    with urllib.request.urlopen(req, timeout=30) as r:
        n = int(r.headers["Inference-Header-Content-Length"])
        body = r.read()
    out = json.loads(body[:n])["outputs"][0]
    want = session.run(None, {"video": x})[0]
    assert out["shape"] == list(want.shape)
    got = np.frombuffer(body[n:], dtype=want.dtype).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
