"""GStreamer >= 1.24 with the plugin built with `--features analytics` (tools/analytics-lane runs
these on Debian 13's GStreamer 1.26): an application reads each result through the GstAnalytics API
(examples/python/read_results.py), and objectdetectionoverlay draws the current action with the
gst-launch line of docs/analytics.md."""

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "models" / "probe.onnx"

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


def element_has_analytics():
    factory = Gst.ElementFactory.find("nonlocalclassify")
    if factory is None:
        return False
    return any(p.name == "analytics-meta" for p in factory.create(None).list_properties())


if not element_has_analytics():
    pytest.skip("the plugin on GST_PLUGIN_PATH was built without --features analytics",
                allow_module_level=True)


def load_example():
    spec = importlib.util.spec_from_file_location(
        "read_results", REPO / "examples" / "python" / "read_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_buffers(app, desc):
    """(messages, [(custom meta results, GstAnalytics classifications)] per buffer)."""
    per_buffer = []

    def on_buffer(buffer):
        per_buffer.append((app.buffer_results(buffer), app.buffer_analytics(buffer)))

    messages, _, _ = app.run(desc, timeout_s=60, on_buffer=on_buffer)
    return messages, per_buffer


def as_classification(result):
    """A result (message or custom meta) as the classification the GstAnalytics API should give."""
    return {"labels": result["labels"], "levels": pytest.approx(result["scores"], rel=1e-6),
            "box": (0, 2, 16, 6), "type": result["labels"][0]}


@pytest.mark.parametrize("mode", ["first-buffer", "every-buffer"])
def test_classification_read_through_gst_analytics_equals_meta_and_message(mode):
    app = load_example()
    # Noise, so that every clip's scores differ and a repeated result is told from a new one.
    desc = (
        "videotestsrc is-live=true num-buffers=48 pattern=snow "
        "! video/x-raw,format=RGB,width=16,height=8,framerate=25/1 "
        f"! nonlocalclassify model={PROBE} top-k=3 analytics-meta={mode} "
        "! appsink name=sink sync=false"
    )
    messages, per_buffer = run_buffers(app, desc)
    assert len(per_buffer) == 48
    by_clip = {m["clip-index"]: m for m in messages}
    assert len(by_clip) >= 5, messages
    assert len({tuple(m["scores"]) for m in messages}) == len(messages), "clips should differ"
    current = None
    carried = 0
    for n, (custom, classifications) in enumerate(per_buffer):
        if custom:
            # The custom meta, the message of the same clip and the ClsMtd agree.
            assert len(custom) == 1
            message = by_clip[custom[0]["clip-index"]]
            assert custom[0]["labels"] == message["labels"]
            assert custom[0]["scores"] == message["scores"]
            current = message
            carried += 1
        if mode == "first-buffer" or current is None:
            want = [as_classification(c) for c in custom]
        else:
            want = [as_classification(current)]
        assert classifications == want, f"buffer {n}"
    assert carried >= 4
    if mode == "every-buffer":
        first = next(n for n, (custom, _) in enumerate(per_buffer) if custom)
        assert all(c for _, c in per_buffer[first:])


# ---------------------------------------------------------------------------------------------
# objectdetectionoverlay with the line of docs/analytics.md


def docs_overlay_line():
    """The gst-launch line of docs/analytics.md drawing the action with objectdetectionoverlay."""
    text = (REPO / "docs" / "analytics.md").read_text()
    lines = [l.strip() for l in text.splitlines()
             if l.strip().startswith("gst-launch-1.0 ") and "objectdetectionoverlay" in l]
    assert lines, "docs/analytics.md has no gst-launch line with objectdetectionoverlay"
    return lines[0]


def frames(desc, count):
    """Run `desc` (ending in an appsink named sink) and return the first `count` frames' bytes."""
    pipeline = Gst.parse_launch(desc)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    out = []
    try:
        while len(out) < count:
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            assert sample is not None, f"no frame {len(out)} from: {desc}"
            buffer = sample.get_buffer()
            ok, info = buffer.map(Gst.MapFlags.READ)
            assert ok
            out.append(bytes(info.data))
            buffer.unmap(info)
    finally:
        pipeline.set_state(Gst.State.NULL)
    bus = pipeline.get_bus()
    error = bus.pop_filtered(Gst.MessageType.ERROR)
    assert error is None, error.parse_error()
    return out


def test_docs_line_draws_the_action_with_objectdetectionoverlay():
    if Gst.ElementFactory.find("objectdetectionoverlay") is None:
        pytest.fail("objectdetectionoverlay is missing (Debian: gstreamer1.0-plugins-bad)")
    line = docs_overlay_line()
    argv = shlex.split(line)
    assert argv[0] == "gst-launch-1.0" and argv[-2:] == ["!", "autovideosink"], line
    # The line as a user runs it, with the test's probe model and an appsink for the display.
    desc = " ".join(shlex.quote(a) if " " in a else a for a in argv[1:-2])
    desc = re.sub(r"model=\S+", f"model={PROBE}", desc)
    assert "analytics-meta=every-buffer" in desc and "is-live=true" in desc
    desc += " ! video/x-raw,format=RGBA ! appsink name=sink sync=false"
    count = 20
    drawn = frames(desc, count)
    no_labels = frames(
        desc.replace("objectdetectionoverlay", "objectdetectionoverlay draw-labels=false"), count)
    no_overlay = frames(desc.replace("! objectdetectionoverlay", "! identity"), count)
    # The first clip (8 frames of the probe model) is classified after frame 6: frames before carry
    # nothing to draw, and the overlay leaves them as they are.
    for n in range(6):
        assert drawn[n] == no_overlay[n], f"frame {n} drawn on before any result"
    # From then on every frame shows the box and the label.
    last = count - 1
    assert drawn[last] != no_overlay[last], "objectdetectionoverlay drew nothing"
    assert no_labels[last] != no_overlay[last], "no box drawn"
    changed = sum(a != b for a, b in zip(drawn[last], no_labels[last]))
    assert changed > 100, f"the label changed only {changed} bytes"
