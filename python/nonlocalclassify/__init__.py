"""Kinetics-400 action classification for Python applications, on the nonlocalclassify GStreamer
element: PaddleHub's ``video_classification()`` and what happens when (``segments()``).

Pure Python: it needs PyGObject with GStreamer (Debian: ``python3-gi python3-gst-1.0``), the
plugin on ``GST_PLUGIN_PATH`` and ONNX Runtime (found as the element finds it: ``ORT_DYLIB_PATH``,
else the library path, an active virtual environment, or the OpenVINO build
``tools/install-prereqs`` installs), nothing to compile. Answers
are the same as the ``nonlocal-classify`` program's for the same settings::

    import nonlocalclassify as nl
    nl.video_classification(data={"image": ["video.mp4"]}, model="i3d.onnx")
    # [{'arm wrestling': 0.99, 'massaging feet': 0.001, ...}]
    nl.segments("long_video.mp4", model="i3d.onnx")
    # [{'path': 'long_video.mp4', 'segment': 0, 'label': 'arm wrestling', 'start': 0.0,
    #   'end': 5.12, 'score': 0.97, 'clips': 3, 'first_clip': 0, 'last_clip': 2}, ...]

Who is doing what (GStreamer 1.24+, the plugin built with ``--features analytics``): ``objects()``
classifies each person on their own, cropped around their box, with the boxes of a MOT-challenge
text file (``boxes=``, as ``nonlocal-classify --boxes``: ``frame,id,x,y,w,h[,conf,...]``, frames
from 1, pixels, id -1 for none) or found by an ONNX detector run by GStreamer's
``onnxinference ! ssdobjectdetector`` (``detector=``, GStreamer 1.26+; ``ioutracker`` tracks them
when present)::

    nl.objects("two_people.ogv", boxes="tests/data/two_people.mot", model="i3d.onnx")
    # [{'path': 'two_people.ogv', 'object_id': 1, 'box': [0, 0, 340, 256],
    #   'labels': {'arm wrestling': 0.99, ...}, 'clips': 6}, {'object_id': 2, ...}]
    nl.segments("two_people.ogv", boxes="tests/data/two_people.mot")
    # [{'path': ..., 'object_id': 1, 'segment': 0, 'label': 'arm wrestling', ...}, ...]

``object_types``, ``track_timeout`` and ``max_objects`` set the element's properties of those
names (unset: the element's defaults).

The model is ``model=``, else the ``NONLOCAL_MODEL`` environment variable, else the project's
default model (``tools/default-model`` next to this package in a source checkout).
"""

import contextlib
import math
import os
import subprocess
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

__all__ = ["video_classification", "segments", "objects", "classify", "read_boxes",
           "ClassifyError"]

ELEMENT = "nonlocalclassify"
# How long a video may take to give its first frame, and to be classified (seconds).
DISCOVER_TIMEOUT_S = 120
RUN_TIMEOUT_S = 24 * 3600


class ClassifyError(RuntimeError):
    """A video that cannot be read or classified; the message names it."""


def _init():
    if not Gst.is_initialized():
        Gst.init(None)
    if Gst.ElementFactory.find(ELEMENT) is None:
        raise ClassifyError(
            f"the GStreamer element {ELEMENT} is missing: put the directory of libgstnonlocal.so on "
            "GST_PLUGIN_PATH (or install the plugin)")


def find_model(model=None):
    """``model``, else ``$NONLOCAL_MODEL``, else what ``tools/default-model`` prints."""
    if model:
        return str(model)
    if os.environ.get("NONLOCAL_MODEL"):
        return os.environ["NONLOCAL_MODEL"]
    tool = Path(__file__).resolve().parents[2] / "tools" / "default-model"
    if tool.exists():
        out = subprocess.run([str(tool)], stdout=subprocess.PIPE, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    raise ClassifyError("no model: pass model=PATH or set NONLOCAL_MODEL")


def _uri(path):
    text = str(path)
    if "://" in text and Gst.uri_is_valid(text):
        return text
    p = Path(text)
    if not p.exists():
        raise ClassifyError(f"{text}: no such file")
    if p.is_dir():
        raise ClassifyError(f"{text}: is a directory")
    return Gst.filename_to_uri(str(p.resolve()))


@contextlib.contextmanager
def _first_structure(caps):
    """The first structure of ``caps`` (which must have one): gst-python 1.26 hands it out as a
    context manager (``StructureWrapper``, which writes changes back), older versions directly."""
    structure = caps.get_structure(0)
    if hasattr(structure, "__enter__"):
        with structure as inner:
            yield inner
    else:
        yield structure


def _caps_name(caps):
    """The media type of ``caps``' first structure, "" when it has none."""
    if caps is None or caps.get_size() == 0:
        return ""
    with _first_structure(caps) as s:
        return s.get_name()


def _decoder(pipeline, uri, sink):
    """uridecodebin for the first video stream, linked to ``sink``; other streams not decoded."""
    decoder = Gst.ElementFactory.make("uridecodebin")
    decoder.set_property("uri", uri)

    def autoplug_continue(_bin, _pad, caps):
        name = _caps_name(caps)
        return not name.startswith(("audio/", "text/", "subpicture/"))

    def pad_added(_bin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        if _caps_name(caps) == "video/x-raw":
            target = sink.get_static_pad("sink")
            if not target.is_linked():
                pad.link(target)

    decoder.connect("autoplug-continue", autoplug_continue)
    decoder.connect("pad-added", pad_added)
    pipeline.add(decoder)
    return decoder


def _error_text(msg):
    err, debug = msg.parse_error()
    detail = (debug or "").split("\n", 1)[1].strip() if debug and "\n" in debug else ""
    return f"{err.message} ({detail})" if detail and detail not in err.message else err.message


def _discover(uri):
    """Duration (ns) and frame rate (num, den) of the video, from a decode-only preroll."""
    pipeline = Gst.Pipeline.new()
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)
    pipeline.add(sink)
    _decoder(pipeline, uri, sink)
    try:
        if pipeline.set_state(Gst.State.PAUSED) == Gst.StateChangeReturn.NO_PREROLL:
            return None, None
        bus = pipeline.get_bus()
        msg = bus.timed_pop_filtered(DISCOVER_TIMEOUT_S * Gst.SECOND,
                                     Gst.MessageType.ASYNC_DONE | Gst.MessageType.ERROR)
        if msg is None:
            raise ClassifyError(f"no video frame within {DISCOVER_TIMEOUT_S} s")
        if msg.type == Gst.MessageType.ERROR:
            raise ClassifyError(_error_text(msg))
        pad = sink.get_static_pad("sink")
        ok, duration = pad.peer_query_duration(Gst.Format.TIME)
        if not ok or duration < 0:
            ok, duration = pipeline.query_duration(Gst.Format.TIME)
        caps = pad.get_current_caps()
        rate = None
        if caps is not None and caps.get_size():
            with _first_structure(caps) as s:
                ok_rate, num, den = s.get_fraction("framerate")
            rate = (num, den) if ok_rate else None
        return (duration if ok and duration >= 0 else None), rate
    finally:
        pipeline.set_state(Gst.State.NULL)


def _frames(duration, rate):
    """Frames in ``duration`` ns at ``rate`` (rounded to nearest), as nonlocal-classify counts."""
    if duration is None or rate is None or rate[0] <= 0 or rate[1] <= 0:
        return None
    num, den = rate
    frames = (duration * num + den * 500_000_000) // (den * 1_000_000_000)
    return frames if frames > 0 else None


def _clip_stride(frames, clips, clip_length, frame_stride):
    """clip-stride spreading ``clips`` clips over ``frames`` (nonlocal-classify's rule)."""
    n = max(clips, 1)
    half = -(-clip_length // 2)
    x = max(frames - 1 - (half - 1) * frame_stride, 0)
    span = (clip_length - 1) * frame_stride + 1
    spread = max(frames - span, 0) // (n - 1) if n > 1 else 0
    return min(max(spread, x // n + 1, 1), 2**32 - 1)


def _fields(structure):
    out = {}
    for i in range(structure.n_fields()):
        name = structure.nth_field_name(i)
        value = structure.get_value(name)
        if isinstance(value, Gst.ValueArray):
            value = [value[j] for j in range(len(value))]
        out[name] = value
    return out


TIME_NONE = 2**64 - 1


def _seconds(stream, pts):
    ns = stream if stream != TIME_NONE else pts
    return None if ns == TIME_NONE else ns / 1e9


PROVIDERS = ("cpu", "openvino", "cuda", "auto")


def _provider(use_gpu, provider):
    """The element's execution-provider: ``provider`` when given, else cuda or cpu by
    ``use_gpu`` (PaddleHub's switch)."""
    if provider is None:
        return "cuda" if use_gpu else "cpu"
    if provider not in PROVIDERS:
        raise ClassifyError(f"provider={provider!r}: give one of {', '.join(PROVIDERS)}")
    if use_gpu and provider != "cuda":
        raise ClassifyError(
            f"use_gpu=True asks for cuda, provider={provider!r} for another: give one")
    return provider


def read_boxes(path):
    """The boxes of a MOT-challenge text file, as ``nonlocal-classify --boxes`` reads it:
    {frame: [(id or None, x, y, w, h, conf), ...]}, frames from 1. One box a line,
    ``frame,id,x,y,w,h[,conf,...]``: id -1 for none, pixels rounded to the nearest, width and
    height at least one pixel, conf (default 1) clamped to 0..1, further columns ignored; blank
    lines and lines starting with ``#`` skipped. Raises ``ClassifyError`` naming ``path:line``."""
    limit = 10_000_000

    def number(text):
        try:
            v = float(text)
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    def integer(text):
        try:
            return int(text)
        except ValueError:
            v = number(text)
            return int(v) if v is not None and v.is_integer() and abs(v) < 2**64 else None

    frames, seen = {}, {}
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ClassifyError(f"cannot read the boxes file {path}: {e.strerror}") from None
    for line_no, raw in enumerate(data.split(b"\n"), 1):
        def bad(why):
            return ClassifyError(f"{path}:{line_no}: {why}")
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise bad("not a line of text") from None
        if not line or line.startswith("#"):
            continue
        f = [x.strip() for x in line.split(",")]
        if len(f) < 6:
            raise bad(f"{len(f)} field{'' if len(f) == 1 else 's'}, a MOT line has at least 6: "
                      "frame,id,x,y,w,h[,conf,...]")
        frame = integer(f[0])
        if frame is None or not 1 <= frame < 2**64:
            raise bad(f"frame '{f[0]}' is not a frame number: frames count from 1")
        oid = integer(f[1])
        if oid is None or not -1 <= oid < 2**64:
            raise bad(f"id '{f[1]}' is not an object id: give 0 or more, or -1 for none")
        oid = None if oid == -1 else oid
        coords = []
        for i, name in enumerate(("x", "y", "width", "height"), 2):
            v = number(f[i])
            if v is None or abs(v) > limit:
                raise bad(f"{name} '{f[i]}' is not a pixel coordinate: give a number from "
                          f"-{limit} to {limit}")
            if i >= 4 and round(v) < 1:
                raise bad(f"{name} '{f[i]}' is not a size: a box's width and height must be at "
                          "least one pixel")
            coords.append(int(round(v)))
        conf = 1.0
        if len(f) > 6 and f[6]:
            conf = number(f[6])
            if conf is None:
                raise bad(f"conf '{f[6]}' is not a number")
            conf = min(max(conf, 0.0), 1.0)
        if oid is not None:
            if (frame, oid) in seen:
                raise bad(f"object {oid} is boxed twice on frame {frame} (line "
                          f"{seen[(frame, oid)]} too): give each object one box per frame")
            seen[(frame, oid)] = line_no
        frames.setdefault(frame, []).append((oid, *coords, conf))
    return frames


def _analytics():
    """GstAnalytics, or a ClassifyError saying objects mode needs it."""
    try:
        gi.require_version("GstAnalytics", "1.0")
        from gi.repository import GstAnalytics
    except (ValueError, ImportError):
        raise ClassifyError(
            "objects mode needs GStreamer 1.24 or newer with GstAnalytics (Debian: "
            f"gir1.2-gst-plugins-bad-1.0); this is {Gst.version_string()}") from None
    element = Gst.ElementFactory.make(ELEMENT)
    if element is None or element.find_property("analytics-meta") is None:
        raise ClassifyError(
            "objects mode needs the plugin built with --features analytics (GStreamer 1.24 or "
            "newer)")
    return GstAnalytics


def _detector_chain(detector, detector_labels):
    """videoscale ! onnxinference ! ssdtensordec/ssdobjectdetector ! [ioutracker]."""
    version = Gst.version_string()
    if Gst.ElementFactory.find("onnxinference") is None:
        raise ClassifyError(
            f"detector= runs the detector with GStreamer's onnxinference element, which {version} "
            "lacks: it needs gst-plugins-bad's onnx plugin, GStreamer 1.26 or newer")
    decoder = next((d for d in ("ssdtensordec", "ssdobjectdetector")
                    if Gst.ElementFactory.find(d) is not None), None)
    if decoder is None:
        raise ClassifyError(
            "detector= decodes the detector's boxes with GStreamer's ssdobjectdetector element, "
            f"which {version} lacks: it needs gst-plugins-bad 1.26 or newer")
    if not Path(detector).is_file():
        raise ClassifyError(f"the detector {detector} is not a file")
    inference = Gst.ElementFactory.make("onnxinference")
    inference.set_property("model-file", str(detector))
    dec = Gst.ElementFactory.make(decoder)
    if detector_labels:
        dec.set_property("label-file", str(detector_labels))
    chain = [Gst.ElementFactory.make("videoscale"), inference, dec]
    if Gst.ElementFactory.find("ioutracker") is not None:
        chain.append(Gst.ElementFactory.make("ioutracker"))
    return chain


def _boxes_relay(pipeline, boxes, analytics, element):
    """appsink -> appsrc: each decoded frame (counted from 1) gets its boxes as GstAnalytics
    object detections of type ``person``, related to a tracking mtd with its id when it has one
    (on a new buffer sharing the frame's memory: buffers a pad probe sees are not writable from
    Python).
    Returns (appsink, appsrc)."""
    # Not waiting for a preroll: the appsink gets its first frame only once PLAYING, and
    # everything after the appsrc waits for it.
    sink = Gst.ElementFactory.make("appsink")
    # The formats the classifier takes, so that videoconvert converts before the appsink.
    caps = element.get_static_pad("sink").query_caps(None)
    for name, value in (("sync", False), ("async", False), ("emit-signals", True),
                        ("max-buffers", 4), ("caps", caps)):
        sink.set_property(name, value)
    src = Gst.ElementFactory.make("appsrc")
    for name, value in (("format", Gst.Format.TIME), ("block", True), ("max-buffers", 4)):
        src.set_property(name, value)
    person = GLib.quark_from_string("person")
    count = [0]

    def new_sample(appsink):
        sample = appsink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.EOS
        count[0] += 1
        if count[0] == 1:
            src.set_property("caps", sample.get_caps())
        # A new buffer sharing the frame's memory (Gst.Buffer.copy() is PyGObject's boxed copy,
        # a second reference, which is not writable).
        frame = sample.get_buffer()
        buffer = frame.copy_region(Gst.BufferCopyFlags.FLAGS | Gst.BufferCopyFlags.TIMESTAMPS
                                   | Gst.BufferCopyFlags.META | Gst.BufferCopyFlags.MEMORY,
                                   0, frame.get_size())
        on_frame = boxes.get(count[0], [])
        if on_frame:
            meta = analytics.buffer_add_analytics_relation_meta(buffer)
            seen = buffer.pts if buffer.pts != Gst.CLOCK_TIME_NONE else 0
            for oid, x, y, w, h, conf in on_frame:
                ok, od = meta.add_od_mtd(person, x, y, w, h, conf)
                if ok and oid is not None:
                    ok, track = meta.add_tracking_mtd(oid, seen)
                    if ok:
                        meta.set_relation(analytics.RelTypes.RELATE_TO, od.id, track.id)
        return src.emit("push-buffer", buffer)

    sink.connect("new-sample", new_sample)
    sink.connect("eos", lambda _sink: src.emit("end-of-stream"))
    pipeline.add(sink)
    pipeline.add(src)
    return sink, src


def _configure(element, model, top_k, provider, crops, labels, clip_fps, hysteresis, margin,
               device_id):
    element.set_property("model", model)
    if labels:
        element.set_property("labels", str(labels))
    Gst.util_set_object_arg(element, "execution-provider", provider)
    element.set_property("device-id", device_id)
    element.set_property("top-k", top_k)
    Gst.util_set_object_arg(element, "crops", crops)
    if clip_fps is not None:
        Gst.util_set_object_arg(element, "clip-fps", str(clip_fps))
    element.set_property("segment-hysteresis", hysteresis)
    element.set_property("segment-margin", float(margin))


def classify(path, *, model=None, top_k=5, use_gpu=False, clips=10, crops="center", labels=None,
             clip_fps=None, hysteresis=2, margin=0.0, device_id=0, provider=None, boxes=None,
             detector=None, detector_labels=None, object_types=None, track_timeout=None,
             max_objects=None):
    """Classify one video; returns a dict:

    - ``labels``: {label: probability} of the top-k, best first (the file-level answer: the mean
      over every clip, the element's ``nonlocalclassify-summary``);
    - ``clips``: how many clips were classified, ``clip_stride`` the element's clip-stride;
    - ``results``: every clip's message fields (docs/design.md "Results");
    - ``segments``: the action segments (see ``segments()``);
    - ``objects``: with ``boxes`` or ``detector``, each object's answer (see ``objects()``);
      ``labels`` is then empty and ``clips`` counts every object's clips.

    ``clips=N`` spreads N clips from the first frame to the last (as ``nonlocal-classify
    --clips N``); ``clips=0`` classifies consecutive clips over the whole video (objects mode
    always does, over each object's track).

    ``provider`` is the element's ``execution-provider``: ``"cpu"`` (ONNX Runtime's CPU
    provider), ``"openvino"`` (OpenVINO's, on the CPU; needs ONNX Runtime's OpenVINO
    build, which ``tools/install-prereqs`` installs), ``"cuda"`` or ``"auto"``; without it,
    ``use_gpu`` picks cuda or cpu.
    """
    provider = _provider(use_gpu, provider)
    if boxes is not None and detector is not None:
        raise ClassifyError("give boxes= or detector=, not both")
    objects_mode = boxes is not None or detector is not None
    _init()
    model = find_model(model)
    uri = _uri(path)
    analytics = _analytics() if objects_mode else None
    per_frame = read_boxes(boxes) if boxes is not None else None
    chain = _detector_chain(detector, detector_labels) if detector is not None else []
    pipeline = Gst.Pipeline.new()
    convert = Gst.ElementFactory.make("videoconvert")
    element = Gst.ElementFactory.make(ELEMENT)
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)

    def configure(e):
        _configure(e, model, top_k, provider, crops, labels, clip_fps, hysteresis, margin,
                   device_id)
        if objects_mode:
            Gst.util_set_object_arg(e, "regions", "objects")
            for name, value in (("object-types", object_types), ("track-timeout", track_timeout),
                                ("max-objects", max_objects)):
                if value is not None:
                    e.set_property(name, value)

    configure(element)
    for e in (convert, *chain, element, sink):
        pipeline.add(e)
    if per_frame is not None:
        # Decoded frames go to an appsink, and come back with their boxes from an appsrc.
        frames_sink, frames_src = _boxes_relay(pipeline, per_frame, analytics, element)
        sink.set_property("async", False)
        convert.link(frames_sink)
        frames_src.link(element)
    else:
        for a, b in zip([convert, *chain], [*chain, element]):
            if not a.link(b):
                raise ClassifyError(f"{path}: cannot link {a.get_factory().get_name()} to "
                                    f"{b.get_factory().get_name()}")
    element.link(sink)
    bus = pipeline.get_bus()
    # A second classifier, kept in READY, opens the model first and reports the clip settings it
    # resolved (the pipeline's classifier shares its ONNX Runtime session): clip-stride must be
    # set before the pipeline's classifier leaves NULL.
    keeper = Gst.Pipeline.new()
    probe = Gst.ElementFactory.make(ELEMENT)
    configure(probe)
    keeper.add(probe)
    try:
        if keeper.set_state(Gst.State.READY) == Gst.StateChangeReturn.FAILURE:
            msg = keeper.get_bus().pop_filtered(Gst.MessageType.ERROR)
            raise ClassifyError(f"{path}: " + (_error_text(msg) if msg else
                                               f"the classifier cannot start with {model}"))
        info = probe.get_property("model-info")
        stride = 0
        if clips and not objects_mode:
            try:
                duration, rate = _discover(uri)
            except ClassifyError as e:
                raise ClassifyError(f"{path}: {e}") from None
            ok, num, den = info.get_fraction("clip-fps")
            sampling = (num, den) if ok and num > 0 else rate
            frames = _frames(duration, sampling)
            if frames is not None:
                stride = _clip_stride(frames, clips, max(info.get_value("clip-length"), 1),
                                      max(info.get_value("frame-stride"), 1))
        element.set_property("clip-stride", stride)
        _decoder(pipeline, uri, convert)
        results, segs, summaries = [], [], []
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
            raise ClassifyError(f"{path}: " + (_error_text(msg) if msg else "cannot start"))
        while True:
            msg = bus.timed_pop_filtered(
                RUN_TIMEOUT_S * Gst.SECOND,
                Gst.MessageType.ELEMENT | Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg is None:
                raise ClassifyError(f"{path}: no end of stream within {RUN_TIMEOUT_S} s")
            if msg.type == Gst.MessageType.ERROR:
                raise ClassifyError(f"{path}: {_error_text(msg)}")
            if msg.type == Gst.MessageType.EOS:
                break
            s = msg.get_structure()
            name = s.get_name() if s else ""
            if name == "nonlocalclassify":
                results.append(_fields(s))
            elif name == "nonlocalclassify-segment":
                f = _fields(s)
                seg = {"path": str(path)}
                if "object-id" in f:
                    seg["object_id"] = f["object-id"]
                seg.update({
                    "segment": f["segment-index"],
                    "label": f["label"],
                    "start": _seconds(f["stream-time"], f["timestamp"]),
                    "end": _seconds(f["stream-time-end"], TIME_NONE
                                    if f["timestamp"] == TIME_NONE or f["duration"] == TIME_NONE
                                    else f["timestamp"] + f["duration"]),
                    "score": f["score"],
                    "clips": f["clips"],
                    "first_clip": f["first-clip"],
                    "last_clip": f["last-clip"],
                })
                segs.append(seg)
            elif name == "nonlocalclassify-summary":
                summaries.append(_fields(s))
    finally:
        pipeline.set_state(Gst.State.NULL)
        keeper.set_state(Gst.State.NULL)
    if objects_mode:
        return _objects_answer(path, results, segs, summaries)
    summary = next((s for s in summaries if "object-id" not in s), None)
    if summary is None:
        raise ClassifyError(f"{path}: the stream ended without a nonlocalclassify-summary message")
    if summary["clips"] == 0:
        raise ClassifyError(f"{path}: too short to classify")
    return {
        "labels": dict(zip(summary["labels"], summary["scores"])),
        "clips": summary["clips"],
        "clip_stride": stride,
        "results": results,
        "segments": segs,
        "objects": [],
    }


def _objects_answer(path, results, segs, summaries):
    """Objects mode's answer, as nonlocal-classify prints it: each object with a clip, by id, with
    its box on its last clip; segments in time order."""
    objects = []
    for s in sorted(summaries, key=lambda s: s.get("object-id", -1)):
        if "object-id" not in s or s["clips"] == 0:
            continue
        oid = s["object-id"]
        last = [r for r in results if r.get("object-id") == oid]
        objects.append({
            "path": str(path),
            "object_id": oid,
            "box": list(last[-1]["object-box"]) if last else None,
            "labels": dict(zip(s["labels"], s["scores"])),
            "clips": s["clips"],
        })
    if not objects:
        raise ClassifyError(
            f"{path}: no object was classified: no object had a box on enough frames for one clip")
    # As the program orders them: an unknown start first, then by start, object and index.
    segs.sort(key=lambda g: (g["start"] is not None, g["start"] or 0, g["object_id"],
                             g["segment"]))
    return {
        "labels": {},
        "clips": sum(o["clips"] for o in objects),
        "clip_stride": 0,
        "results": results,
        "segments": segs,
        "objects": objects,
    }


def video_classification(data=None, *, paths=None, model=None, top_k=5, use_gpu=False, clips=10,
                         crops="center", labels=None, clip_fps=None, provider=None):
    """PaddleHub's ``video_classification(data={"image": [paths]})``: one {label: probability}
    dict per video, best first, in input order (``paths=[...]`` works too). Raises
    ``ClassifyError`` naming the first video that cannot be classified."""
    if paths is None:
        if not isinstance(data, dict) or "image" not in data:
            raise ClassifyError('give data={"image": [paths]} or paths=[...]')
        paths = data["image"]
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [classify(p, model=model, top_k=top_k, use_gpu=use_gpu, clips=clips, crops=crops,
                     labels=labels, clip_fps=clip_fps, provider=provider)["labels"] for p in paths]


def segments(path, *, model=None, use_gpu=False, clips=0, hysteresis=2, margin=0.0,
             clip_fps=None, labels=None, provider=None, boxes=None, detector=None,
             detector_labels=None, object_types=None, track_timeout=None, max_objects=None):
    """What happens when in one video: its action segments, in order, as dicts with ``path``,
    ``segment`` (0, 1, …), ``label``, ``start`` and ``end`` (seconds of stream time), ``score``
    (the mean of the label's score over the segment's clips), ``clips``, ``first_clip`` and
    ``last_clip`` — the lines of ``nonlocal-classify --timeline json``. Clips are consecutive over
    the whole video by default (``clips=0``); a new label must lead for ``hysteresis`` clips by more
    than ``margin`` before a segment changes.

    With ``boxes`` or ``detector`` (see ``objects()``) each segment is one person's and has their
    ``object_id``; the segments of all are in the order of their start."""
    return classify(path, model=model, use_gpu=use_gpu, clips=clips, hysteresis=hysteresis,
                    margin=margin, clip_fps=clip_fps, labels=labels, provider=provider,
                    boxes=boxes, detector=detector, detector_labels=detector_labels,
                    object_types=object_types, track_timeout=track_timeout,
                    max_objects=max_objects)["segments"]


def objects(path, *, boxes=None, detector=None, detector_labels=None, model=None, top_k=5,
            use_gpu=False, provider=None, labels=None, clip_fps=None, object_types=None,
            track_timeout=None, max_objects=None):
    """Who is doing what: one record per object (person) of the video, by ``object_id``, as the
    lines of ``nonlocal-classify --boxes FILE --output json``: ``path``, ``object_id`` (the boxes'
    id, or the element's own 1, 2, ... for boxes without one), ``box`` ([x, y, width, height] on
    its last clip's last sampled frame), ``labels`` ({label: probability} of the top-k, the mean
    over the object's clips) and ``clips``.

    The objects come from ``boxes`` (a MOT-challenge text file, see ``read_boxes()``) or from
    ``detector`` (an ONNX detector whose outputs GStreamer's SSD decoders read, run by
    ``onnxinference``; ``detector_labels`` is the decoder's label file). ``object_types``,
    ``track_timeout`` (ms) and ``max_objects`` are the element's properties of those names.
    Needs GStreamer 1.24 or newer and the plugin built with ``--features analytics``."""
    if boxes is None and detector is None:
        raise ClassifyError("objects() needs the objects' boxes: give boxes=FILE (MOT text) or "
                            "detector=MODEL.onnx")
    return classify(path, model=model, top_k=top_k, use_gpu=use_gpu, provider=provider,
                    labels=labels, clip_fps=clip_fps, boxes=boxes, detector=detector,
                    detector_labels=detector_labels, object_types=object_types,
                    track_timeout=track_timeout, max_objects=max_objects)["objects"]
