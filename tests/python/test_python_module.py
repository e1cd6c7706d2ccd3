"""python/nonlocalclassify, the pure-Python replacement of PaddleHub's video_classification():
its answers equal the nonlocal-classify program's JSON for the same files and settings (Debian's
Python with PyGObject, the plugin built by cargo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "models"

pytest.importorskip("gi", reason="needs PyGObject (Debian: python3-gi python3-gst-1.0)")
sys.path.insert(0, str(REPO / "python"))
import nonlocalclassify as nl  # noqa: E402
from gi.repository import Gst  # noqa: E402

PROGRAM = Path(os.environ.get("NONLOCAL_CLASSIFY",
                              REPO / "target" / "debug" / "nonlocal-classify"))


def cli(*args):
    assert PROGRAM.exists(), f"{PROGRAM} missing: cargo build (tools/run-tests does it)"
    out = subprocess.run([str(PROGRAM), *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def run(description):
    Gst.init(None)
    pipeline = Gst.parse_launch(description)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    assert msg is not None and msg.type == Gst.MessageType.EOS, msg and msg.parse_error()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A 2 s SMPTE pattern (MJPEG/AVI), and 3 s of red, green from 1.2 s, blue from 2.0 s."""
    d = tmp_path_factory.mktemp("videos")
    smpte = d / "smpte.avi"
    run("videotestsrc num-buffers=50 pattern=smpte ! video/x-raw,width=64,height=48,framerate=25/1 "
        f"! jpegenc ! avimux ! filesink location={smpte}")
    colours = d / "colours.avi"
    parts = []
    for name, (colour, frames) in enumerate([(0xffe61414, 30), (0xff14e614, 20),
                                             (0xff1414e6, 25)]):
        parts.append(f"videotestsrc num-buffers={frames} pattern=solid-color "
                     f"foreground-color={colour} ! video/x-raw,width=32,height=16,framerate=25/1 "
                     f"! c.sink_{name}")
    run(f"concat name=c ! videoconvert ! jpegenc quality=95 ! avimux "
        f"! filesink location={colours} " + " ".join(parts))
    return {"smpte": smpte, "colours": colours}


def test_video_classification_equals_the_program(videos):
    probe = MODELS / "probe.onnx"
    want = cli("--model", probe, "--output", "json", videos["smpte"], videos["colours"])
    got = nl.video_classification(data={"image": [str(videos["smpte"]), str(videos["colours"])]},
                                  model=str(probe))
    # PaddleHub's shape: one {label: probability} per video, best first, in input order.
    assert [list(g) for g in got] == [list(w["labels"]) for w in want]
    assert got == [w["labels"] for w in want]
    assert all(len(g) == 5 for g in got)
    # Other settings, the same way.
    want = cli("--model", probe, "--output", "json", "--clips", "3", "--crops", "three",
               "--top-k", "12", videos["smpte"])
    got = nl.video_classification(paths=[videos["smpte"]], model=str(probe), clips=3,
                                  crops="three", top_k=12)
    assert got == [want[0]["labels"]]
    assert want[0]["clips"] == nl.classify(videos["smpte"], model=str(probe), clips=3)["clips"]


def test_segments_equal_the_program_timeline(videos):
    colour = MODELS / "colour_25fps.onnx"
    want = cli("--model", colour, "--timeline", "json", videos["colours"])
    got = nl.segments(str(videos["colours"]), model=str(colour))
    assert got == want
    assert [s["label"] for s in got] == ["red", "green", "blue"]
    # Within one clip stride (8 frames at 25 fps) of the changes at 1.2 s and 2.0 s.
    assert abs(got[1]["start"] - 1.2) <= 0.32 and abs(got[2]["start"] - 2.0) <= 0.32
    # Hysteresis and sampling rate go to the element as the program's options do.
    want = cli("--model", colour, "--timeline", "json", "--hysteresis", "1", "--clip-fps", "-1",
               videos["colours"])
    assert nl.segments(str(videos["colours"]), model=str(colour), hysteresis=1,
                       clip_fps="-1/1") == want


def test_errors_name_the_video(tmp_path):
    with pytest.raises(nl.ClassifyError, match="missing.mp4: no such file"):
        nl.video_classification(data={"image": [str(tmp_path / "missing.mp4")]},
                                model=str(MODELS / "probe.onnx"))
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video\n")
    with pytest.raises(nl.ClassifyError, match="broken.mp4: "):
        nl.video_classification(paths=[broken], model=str(MODELS / "probe.onnx"))
    with pytest.raises(nl.ClassifyError, match="model"):
        nl.video_classification(paths=[broken], model=str(tmp_path / "none.onnx"))


def test_the_provider_reaches_the_element(videos, tmp_path):
    """provider= is the element's execution-provider, as the program's --provider: on the OpenVINO
    build tools/install-prereqs installs (in a child process: a process loads one ONNX Runtime)."""
    r = subprocess.run(["bash", "-c", f"source {REPO}/tools/versions.sh; echo $OPENVINO_ORT_LIB"],
                       capture_output=True, text=True, check=True)
    openvino = Path(r.stdout.strip())
    assert openvino.is_file(), f"{openvino} missing: run tools/install-prereqs"
    env = dict(os.environ, ORT_DYLIB_PATH=str(openvino))
    probe = MODELS / "probe.onnx"
    out = subprocess.run([str(PROGRAM), "--model", str(probe), "--provider", "openvino",
                          "--output", "json", str(videos["smpte"])], env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    want = [json.loads(line)["labels"] for line in out.stdout.splitlines()]
    script = (f"import json, sys; sys.path.insert(0, {str(REPO / 'python')!r}); "
              "import nonlocalclassify as nl; "
              f"print(json.dumps(nl.video_classification(paths=[{str(videos['smpte'])!r}], "
              f"model={str(probe)!r}, provider='openvino')))")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == want
    with pytest.raises(nl.ClassifyError, match="provider='gpu': give one of cpu, openvino"):
        nl.classify(videos["smpte"], model=str(probe), provider="gpu")
    with pytest.raises(nl.ClassifyError, match="use_gpu=True asks for cuda"):
        nl.classify(videos["smpte"], model=str(probe), use_gpu=True, provider="openvino")


def test_objects_mode_needs_gstreamer_1_24(videos, tmp_path):
    """Without GstAnalytics (GStreamer 1.22, or the plugin built without --features analytics)
    objects() says what it needs; where it has them, tests/python/test_python_objects.py runs."""
    boxes = tmp_path / "one.mot"
    boxes.write_text("1,1,0,0,16,16\n")
    try:
        nl._analytics()
    except nl.ClassifyError:
        pass
    else:
        pytest.skip("this GStreamer and plugin run objects mode (test_python_objects.py)")
    with pytest.raises(nl.ClassifyError, match="objects mode needs (GStreamer 1.24 or newer|the plugin built with --features analytics)"):
        nl.objects(videos["smpte"], boxes=str(boxes), model=str(MODELS / "probe.onnx"))
    # The program says it too.
    out = subprocess.run([str(PROGRAM), "--model", str(MODELS / "probe.onnx"), "--boxes",
                          str(boxes), str(videos["smpte"])], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 1
    assert "objects mode (--regions objects, --boxes, --detector) needs GStreamer 1.24 or newer" \
        in out.stderr, out.stderr
