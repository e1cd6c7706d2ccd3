"""GStreamer's own detector chain, as the element's objects mode consumes it: frames with
coloured squares ! onnxinference (tests/models/detector_ssd.onnx, tools/make_detector_model.py:
the boxes of the red, green and blue pixels) ! an SSD tensor decoder
(ssdobjectdetector; ssdtensordec on GStreamer >= 1.28) ! ioutracker (GStreamer >= 1.28) !
objectdetectionoverlay ! appsink. Checked through the GstAnalytics API: every object detection's
box to the pixel, its score and its type, and with ioutracker each detection's tracking
metadata (RELATE_TO), one track per square with the same id on every frame. Then the whole
chain with `nonlocalclassify regions=objects` before the overlay: each square gets its own action.

tools/analytics-lane runs this with /usr/bin/python3 in its roots (trixie: GStreamer 1.26,
forky: GStreamer 1.28). Elements a GStreamer lacks are skipped, naming them."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "models"
MODEL = MODELS / "detector_ssd.onnx"
LABELS = MODELS / "detector_ssd_labels.txt"

gi = pytest.importorskip("gi", reason="needs PyGObject (Debian: python3-gi python3-gst-1.0)")
gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

try:
    gi.require_version("GstAnalytics", "1.0")
    from gi.repository import GstAnalytics  # noqa: E402
except (ValueError, ImportError):
    pytest.skip("needs GstAnalytics (GStreamer >= 1.24; Debian: gir1.2-gst-plugins-bad-1.0)",
                allow_module_level=True)

Gst.init(None)

for _element, _package in (("onnxinference", "gstreamer1.0-plugins-bad, Debian 13 or newer"),
                           ("objectdetectionoverlay", "gstreamer1.0-plugins-bad")):
    if Gst.ElementFactory.find(_element) is None:
        pytest.skip(f"needs GStreamer's {_element} ({_package})", allow_module_level=True)

WIDTH, HEIGHT, FPS = 320, 240, 10
FRAMES = 12
FRAME_NS = Gst.SECOND // FPS
BACKGROUND = (32, 32, 32)
RED, GREEN, BLUE = (220, 40, 40), (40, 200, 40), (30, 60, 230)
SCORES = {RED: 0.9, GREEN: 0.8, BLUE: 0.7}  # the model's score for each colour


def squares(n):
    """The squares of frame n, (colour, x, y, w, h), in the model's order (red, green, blue): red
    moves 6 pixels right a frame (overlapping itself by 42 of 54 columns, enough for ioutracker),
    green appears at frame 6, blue stays put."""
    out = [(RED, 16 + 6 * n, 40, 48, 64)]
    if n >= 6:
        out.append((GREEN, 120, 160, 40, 40))
    out.append((BLUE, 232, 120, 64, 96))
    return out


def frame(n):
    """Frame n as RGB bytes."""
    data = bytearray(bytes(BACKGROUND) * (WIDTH * HEIGHT))
    for colour, x, y, w, h in squares(n):
        row = bytes(colour) * w
        for yy in range(y, y + h):
            start = (yy * WIDTH + x) * 3
            data[start:start + 3 * w] = row
    return bytes(data)


def decoders():
    return [pytest.param(name, marks=pytest.mark.skipif(
        Gst.ElementFactory.find(name) is None,
        reason=f"{Gst.version_string()} has no {name}"))
        for name in ("ssdobjectdetector", "ssdtensordec")]


def run_chain(decoder, tracker=False):
    """Push FRAMES frames through the chain; returns [(pts, detections, tracks, bytes)] per output
    buffer: detections [(type, x, y, w, h, level, tracking mtds related by RELATE_TO)], tracks
    {mtd id: (tracking id, first seen, last seen, lost)}."""
    desc = (
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={WIDTH},height={HEIGHT},"
        f"framerate={FPS}/1,pixel-aspect-ratio=1/1 "
        f"! videoconvert ! onnxinference model-file={MODEL} "
        f"! {decoder} label-file={LABELS} "
        + ("! ioutracker " if tracker else "")
        + "! objectdetectionoverlay ! videoconvert ! video/x-raw,format=RGB "
        "! appsink name=sink sync=false"
    )
    pipeline = Gst.parse_launch(desc)
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    out = []
    pipeline.set_state(Gst.State.PLAYING)
    try:
        for n in range(FRAMES):
            buffer = Gst.Buffer.new_wrapped(frame(n))
            buffer.pts, buffer.duration = n * FRAME_NS, FRAME_NS
            assert src.emit("push-buffer", buffer) == Gst.FlowReturn.OK
        src.emit("end-of-stream")
        while len(out) < FRAMES:
            sample = sink.emit("try-pull-sample", 30 * Gst.SECOND)
            if sample is None:
                break
            out.append(read(sample.get_buffer()))
    finally:
        error = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        pipeline.set_state(Gst.State.NULL)
    assert error is None, error.parse_error()
    assert len(out) == FRAMES, f"{len(out)} of {FRAMES} frames came out of: {desc}"
    return out


def read(buffer):
    ok, info = buffer.map(Gst.MapFlags.READ)
    assert ok
    data = bytes(info.data)
    buffer.unmap(info)
    meta = GstAnalytics.buffer_get_analytics_relation_meta(buffer)
    mtds = list(meta) if meta is not None else []
    tracks = {}
    for m in mtds:
        if isinstance(m, GstAnalytics.TrackingMtd):
            ok, tracking_id, first_seen, last_seen, lost = m.get_info()
            assert ok
            tracks[m.id] = (tracking_id, first_seen, last_seen, lost)
    detections = []
    for od in (m for m in mtds if isinstance(m, GstAnalytics.ODMtd)):
        ok, x, y, w, h, level = od.get_location()
        assert ok
        related = [t for t in tracks
                   if meta.get_relation(od.id, t) & GstAnalytics.RelTypes.RELATE_TO]
        detections.append((GLib.quark_to_string(od.get_obj_type()), x, y, w, h, level, related))
    return buffer.pts, detections, tracks, data


@pytest.mark.parametrize("decoder", decoders())
def test_detections_are_the_squares_to_the_pixel(decoder):
    out = run_chain(decoder)
    for n, (pts, detections, tracks, data) in enumerate(out):
        assert pts == n * FRAME_NS
        assert tracks == {}
        want = [("person", x, y, w, h, pytest.approx(SCORES[colour], abs=1e-6), [])
                for colour, x, y, w, h in squares(n)]
        assert detections == want, f"frame {n}"
        # objectdetectionoverlay drew each box's outline and left the corner far from every box
        # and label as it was.
        source = frame(n)

        def changed(x, y):
            i = (y * WIDTH + x) * 3
            return data[i:i + 3] != source[i:i + 3]

        for _, x, y, w, h in squares(n):
            outline = [(xx, yy) for xx in range(x - 1, x + w + 1)
                       for yy in (y - 1, y, y + h - 1, y + h)]
            outline += [(xx, yy) for yy in range(y, y + h)
                        for xx in (x - 1, x, x + w - 1, x + w)]
            assert sum(changed(xx, yy) for xx, yy in outline) > len(outline) // 4, \
                f"frame {n}: no outline drawn around {(x, y, w, h)}"
        assert not any(changed(xx, yy) for xx in range(0, 100) for yy in range(210, HEIGHT)), \
            f"frame {n}: the overlay drew far from the boxes"


@pytest.mark.parametrize("decoder", decoders())
def test_tracker_relates_each_detection_to_a_track_kept_across_frames(decoder):
    if Gst.ElementFactory.find("ioutracker") is None:
        pytest.skip(f"{Gst.version_string()} has no ioutracker (GStreamer >= 1.28)")
    out = run_chain(decoder, tracker=True)
    track_of = {}  # colour -> tracking id
    first_seen = {}
    for n, (pts, detections, tracks, _) in enumerate(out):
        assert [(t, x, y, w, h) for t, x, y, w, h, _, _ in detections] == \
            [("person", x, y, w, h) for _, x, y, w, h in squares(n)], f"frame {n}"
        for (colour, *_), (_, _, _, _, _, _, related) in zip(squares(n), detections):
            assert len(related) == 1, f"frame {n}: {colour} relates to tracks {related}"
            tracking_id, seen_first, seen_last, lost = tracks[related[0]]
            if colour not in track_of:
                track_of[colour] = tracking_id
                first_seen[colour] = pts
            assert tracking_id == track_of[colour], f"frame {n}: {colour} changed track"
            assert seen_first == first_seen[colour], f"frame {n}: {colour}"
            assert seen_last == pts, f"frame {n}: {colour} last seen"
            assert not lost
        # One track per square seen so far, no more.
        assert sorted(t[0] for t in tracks.values()) == sorted(track_of.values()), f"frame {n}"
    # Ids in the order the squares appeared: red and blue on the first frame, green at frame 6.
    assert track_of == {RED: 0, BLUE: 1, GREEN: 2}
    assert first_seen == {RED: 0, BLUE: 0, GREEN: 6 * FRAME_NS}


PROBE = MODELS / "probe.onnx"


def plane_means(structure):
    """A probe result's mean R, G and B pixel over the clip: the probe model (tests/models) scores
    each plane's normalised mean, labelled c{r,g,b}_t{0..3}, with mean (10, 20, 30), std (2, 4,
    5)."""
    labels = structure.get_value("labels")
    scores = structure.get_value("scores")
    by_label = dict(zip(labels, scores))
    norm = {"r": (10, 2), "g": (20, 4), "b": (30, 5)}
    return {c: sum(by_label[f"c{c}_t{t}"] * s + m for t in range(4)) / 4
            for c, (m, s) in norm.items()}


@pytest.mark.skipif(Gst.ElementFactory.find("nonlocalclassify") is None,
                    reason="needs this project's plugin on GST_PLUGIN_PATH")
@pytest.mark.parametrize("decoder", decoders())
def test_each_detected_object_gets_its_own_action_drawn_by_the_overlay(decoder):
    """The whole chain: onnxinference ! decoder ! [ioutracker, 1.28] ! nonlocalclassify
    regions=objects ! objectdetectionoverlay. Each square is an object with its own clips and
    results (the probe model sees the square's colour), and every buffer after a result carries
    it as a classification related to that square's box, which the overlay draws."""
    tracker = Gst.ElementFactory.find("ioutracker") is not None
    desc = (
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={WIDTH},height={HEIGHT},"
        f"framerate={FPS}/1,pixel-aspect-ratio=1/1 "
        f"! videoconvert ! onnxinference model-file={MODEL} "
        f"! {decoder} label-file={LABELS} "
        + ("! ioutracker " if tracker else "")
        + f"! nonlocalclassify model={PROBE} regions=objects top-k=12 analytics-meta=every-buffer "
        "! objectdetectionoverlay ! videoconvert ! video/x-raw,format=RGB "
        "! appsink name=sink sync=false"
    )
    pipeline = Gst.parse_launch(desc)
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    results, outputs = [], []

    def push(frames):
        for n in frames:
            buffer = Gst.Buffer.new_wrapped(frame(n))
            buffer.pts, buffer.duration = n * FRAME_NS, FRAME_NS
            assert src.emit("push-buffer", buffer) == Gst.FlowReturn.OK

    def pull(count):
        for _ in range(count):
            sample = sink.emit("try-pull-sample", 30 * Gst.SECOND)
            assert sample is not None, "a frame within 30 s"
            outputs.append(sample.get_buffer())

    def messages(until_eos, wanted=0):
        while until_eos or len(results) < wanted:
            msg = bus.timed_pop_filtered(
                60 * Gst.SECOND,
                Gst.MessageType.ELEMENT | Gst.MessageType.ERROR | Gst.MessageType.EOS)
            assert msg is not None, "a message within 60 s"
            assert msg.type != Gst.MessageType.ERROR, msg.parse_error()
            if msg.type == Gst.MessageType.EOS:
                return
            s = msg.get_structure()
            if s.get_name() == "nonlocalclassify":
                results.append(s.copy())

    pipeline.set_state(Gst.State.PLAYING)
    try:
        # Clips of 4 frames every second one: red's and blue's first clips end on frame 6.
        push(range(7))
        pull(7)
        messages(False, wanted=2)
        push(range(7, FRAMES))
        pull(FRAMES - 7)
        src.emit("end-of-stream")
        messages(True)
    finally:
        pipeline.set_state(Gst.State.NULL)
    # ioutracker numbers tracks from 0 in order of appearance; without it the element numbers
    # its own from 1 (red and blue on frame 0, in the detector's order, then green).
    ids = {RED: 0, BLUE: 1, GREEN: 2} if tracker else {RED: 1, BLUE: 2, GREEN: 3}
    by_object = {}
    for s in results:
        by_object.setdefault(s.get_value("object-id"), []).append(s)
    assert sorted(by_object) == sorted(ids.values()), results
    for colour, object_id in ids.items():
        for s in by_object[object_id]:
            means = plane_means(s)
            main = "rgb"[max(range(3), key=lambda c: colour[c])]
            others = [means[c] for c in "rgb" if c != main]
            assert means[main] > max(others) + 40, (colour, means)
        # Its box: the square on the clip's last sampled frame.
        x, y, w, h = s.get_value("object-box")
        assert (w, h) == next((sw, sh) for c, _, _, sw, sh in squares(FRAMES - 1) if c == colour)
    # Every buffer after the first results carries each object's latest result, related to
    # its box (RELATE_TO, what objectdetectionoverlay draws as the box's label).
    for buffer in outputs[7:]:
        meta = GstAnalytics.buffer_get_analytics_relation_meta(buffer)
        mtds = list(meta)
        labelled = []
        for od in (m for m in mtds if isinstance(m, GstAnalytics.ODMtd)):
            ok, x, y, w, h, _ = od.get_location()
            cls = [m for m in mtds if isinstance(m, GstAnalytics.ClsMtd)
                   and meta.get_relation(od.id, m.id) & GstAnalytics.RelTypes.RELATE_TO]
            if cls:
                labelled.append((x, y))
                top = GLib.quark_to_string(cls[0].get_quark(0))
                assert top.startswith("c"), top
        n = buffer.pts // FRAME_NS
        # Green's only clip (frames 6, 8, 10) ends at end of stream: no buffer carries it.
        red_and_blue = [(x, y) for c, x, y, _, _ in squares(n) if c != GREEN]
        assert sorted(labelled) == sorted(red_and_blue), (n, labelled)
