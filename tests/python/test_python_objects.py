"""python/nonlocalclassify's objects mode (GStreamer >= 1.24, the plugin built with
`--features analytics`; tools/analytics-lane runs it in both lanes): objects() and segments() with
a MOT boxes file equal the nonlocal-classify program's JSON for the same video and boxes, and each
person's label is the colour of their half of the frame (the colour model's scores are the mean
colour it was fed); with detector= the program's detector chain finds the squares itself."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "models"
COLOUR = MODELS / "colour.onnx"

gi = pytest.importorskip("gi", reason="needs PyGObject (Debian: python3-gi python3-gst-1.0)")
gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

try:
    gi.require_version("GstAnalytics", "1.0")
    from gi.repository import GstAnalytics  # noqa: E402,F401
except (ValueError, ImportError):
    pytest.skip("needs GstAnalytics (GStreamer >= 1.24; Debian: gir1.2-gst-plugins-bad-1.0)",
                allow_module_level=True)

Gst.init(None)
sys.path.insert(0, str(REPO / "python"))
import nonlocalclassify as nl  # noqa: E402

_factory = Gst.ElementFactory.find("nonlocalclassify")
if _factory is None or _factory.create(None).find_property("analytics-meta") is None:
    pytest.skip("the plugin on GST_PLUGIN_PATH was built without --features analytics",
                allow_module_level=True)

# The lane's program, built with --features analytics into its CARGO_TARGET_DIR
# (target/analytics-lane, target/forky-lane); NONLOCAL_CLASSIFY elsewhere.
if os.environ.get("CARGO_TARGET_DIR"):
    PROGRAM = Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "nonlocal-classify"
else:
    PROGRAM = Path(os.environ.get("NONLOCAL_CLASSIFY",
                                  REPO / "target" / "debug" / "nonlocal-classify"))


def cli(*args):
    assert PROGRAM.exists(), f"{PROGRAM} missing: cargo build --features analytics"
    out = subprocess.run([str(PROGRAM), *map(str, args)], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def run(description):
    pipeline = Gst.parse_launch(description)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    assert msg is not None and msg.type == Gst.MessageType.EOS, msg and msg.parse_error()


RED_BOX, GREEN_BOX = (8, 16, 32, 32), (72, 20, 28, 24)


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """40 frames of 128×64 at 25 fps, the left half red and the right half green, and a MOT file
    boxing person 4 on the green half and person 9 on the red one."""
    d = tmp_path_factory.mktemp("objects")
    video = d / "halves.ogv"
    half = ("videotestsrc num-buffers=40 pattern=solid-color foreground-color={} "
            "! video/x-raw,width=64,height=64,framerate=25/1 ! mix.sink_{}")
    run("compositor name=mix sink_1::xpos=64 ! video/x-raw,width=128,height=64 ! videoconvert "
        f"! theoraenc quality=63 ! oggmux ! filesink location={video} "
        + half.format("0xffff0000", 0) + " " + half.format("0xff00ff00", 1))
    boxes = d / "halves.mot"
    lines = ["# frame,id,x,y,w,h,conf"]
    for frame in range(1, 41):
        lines.append(f"{frame},4,{','.join(map(str, GREEN_BOX))},0.9")
        lines.append(f"{frame},9,{','.join(map(str, RED_BOX))},0.9")
    boxes.write_text("\n".join(lines) + "\n")
    return video, boxes


def test_objects_equal_the_program_and_follow_the_boxes(halves):
    video, boxes = halves
    got = nl.objects(str(video), boxes=str(boxes), model=str(COLOUR), top_k=3)
    want = cli("--model", COLOUR, "--boxes", boxes, "--top-k", 3, "--output", "json", video)
    assert got == want
    assert [(o["object_id"], o["box"], next(iter(o["labels"]))) for o in got] == \
        [(4, list(GREEN_BOX), "green"), (9, list(RED_BOX), "red")]
    assert all(o["clips"] == 5 for o in got)
    assert all(next(iter(o["labels"].values())) > 0.85 for o in got)
    # Segments per person, equal to the program's timeline.
    segs = nl.segments(str(video), boxes=str(boxes), model=str(COLOUR))
    assert segs == cli("--model", COLOUR, "--boxes", boxes, "--timeline", "json", video)
    assert [(s["object_id"], s["label"]) for s in segs] == [(4, "green"), (9, "red")]
    # Element settings: one object at most.
    got = nl.objects(str(video), boxes=str(boxes), model=str(COLOUR), max_objects=1)
    assert [o["object_id"] for o in got] == [4]


def test_boxes_errors_name_file_and_line(halves, tmp_path):
    video, _ = halves
    bad = tmp_path / "bad.mot"
    bad.write_text("1,1,0,0,10,10\n# comment\n3,-5,0,0,10,10\n")
    with pytest.raises(nl.ClassifyError,
                       match=r"bad.mot:3: id '-5' is not an object id: give 0 or more, or -1"):
        nl.objects(str(video), boxes=str(bad), model=str(COLOUR))
    with pytest.raises(nl.ClassifyError, match="needs the objects' boxes"):
        nl.objects(str(video), model=str(COLOUR))


@pytest.mark.skipif(Gst.ElementFactory.find("onnxinference") is None,
                    reason="needs GStreamer's onnxinference (1.26 or newer)")
def test_the_detector_finds_the_objects(tmp_path):
    """detector=: onnxinference with tests/models/detector_ssd.onnx (the boxes of the red, green
    and blue pixels) ! the SSD decoder ! [ioutracker]: a red and a blue square on 320×240 frames
    are two objects whose clips show their colour, as the program finds them too."""
    video = tmp_path / "squares.ogv"
    run("videotestsrc num-buffers=24 pattern=solid-color foreground-color=0xff202020 "
        "! video/x-raw,width=320,height=240,framerate=10/1 ! mix.sink_0 "
        "videotestsrc num-buffers=24 pattern=solid-color foreground-color=0xffdc2828 "
        "! video/x-raw,width=48,height=64,framerate=10/1 ! mix.sink_1 "
        "videotestsrc num-buffers=24 pattern=solid-color foreground-color=0xff1e3ce6 "
        "! video/x-raw,width=64,height=96,framerate=10/1 ! mix.sink_2 "
        "compositor name=mix sink_1::xpos=40 sink_1::ypos=40 sink_2::xpos=232 sink_2::ypos=120 "
        "! video/x-raw,width=320,height=240 ! videoconvert ! theoraenc quality=63 ! oggmux "
        f"! filesink location={video}")
    detector = MODELS / "detector_ssd.onnx"
    labels = MODELS / "detector_ssd_labels.txt"
    got = nl.objects(str(video), detector=str(detector), detector_labels=str(labels),
                     model=str(COLOUR), object_types="person")
    want = cli("--model", COLOUR, "--detector", detector, "--detector-labels", labels,
               "--object-types", "person", "--output", "json", video)
    assert got == want
    assert sorted(next(iter(o["labels"])) for o in got) == ["blue", "red"], got
    for o in got:
        x, y, w, h = o["box"]
        # The squares, to a few pixels (Theora's chroma is subsampled).
        want_box = (40, 40, 48, 64) if next(iter(o["labels"])) == "red" else (232, 120, 64, 96)
        assert all(abs(a - b) <= 3 for a, b in zip((x, y, w, h), want_box)), (o, want_box)
