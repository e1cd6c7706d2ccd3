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

The model is ``model=``, else the ``NONLOCAL_MODEL`` environment variable, else the project's
default model (``tools/default-model`` next to this package in a source checkout).
"""

import os
import subprocess
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

__all__ = ["video_classification", "segments", "classify", "ClassifyError"]

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


def _decoder(pipeline, uri, sink):
    """uridecodebin for the first video stream, linked to ``sink``; other streams not decoded."""
    decoder = Gst.ElementFactory.make("uridecodebin")
    decoder.set_property("uri", uri)

    def autoplug_continue(_bin, _pad, caps):
        name = caps.get_structure(0).get_name() if caps.get_size() else ""
        return not name.startswith(("audio/", "text/", "subpicture/"))

    def pad_added(_bin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        if caps.get_size() and caps.get_structure(0).get_name() == "video/x-raw":
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
            ok_rate, num, den = caps.get_structure(0).get_fraction("framerate")
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
             clip_fps=None, hysteresis=2, margin=0.0, device_id=0, provider=None):
    """Classify one video; returns a dict:

    - ``labels``: {label: probability} of the top-k, best first (the file-level answer: the mean
      over every clip, the element's ``nonlocalclassify-summary``);
    - ``clips``: how many clips were classified, ``clip_stride`` the element's clip-stride;
    - ``results``: every clip's message fields (docs/design.md "Results");
    - ``segments``: the action segments (see ``segments()``).

    ``clips=N`` spreads N clips from the first frame to the last (as ``nonlocal-classify
    --clips N``); ``clips=0`` classifies consecutive clips over the whole video.

    ``provider`` is the element's ``execution-provider``: ``"cpu"`` (ONNX Runtime's CPU
    provider), ``"openvino"`` (OpenVINO's, on the CPU; needs ONNX Runtime's OpenVINO
    build, which ``tools/install-prereqs`` installs), ``"cuda"`` or ``"auto"``; without it,
    ``use_gpu`` picks cuda or cpu.
    """
    provider = _provider(use_gpu, provider)
    _init()
    model = find_model(model)
    uri = _uri(path)
    pipeline = Gst.Pipeline.new()
    convert = Gst.ElementFactory.make("videoconvert")
    element = Gst.ElementFactory.make(ELEMENT)
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)
    _configure(element, model, top_k, provider, crops, labels, clip_fps, hysteresis, margin,
               device_id)
    for e in (convert, element, sink):
        pipeline.add(e)
    convert.link(element)
    element.link(sink)
    bus = pipeline.get_bus()
    # A second classifier, kept in READY, opens the model first and reports the clip settings it
    # resolved (the pipeline's classifier shares its ONNX Runtime session): clip-stride must be
    # set before the pipeline's classifier leaves NULL.
    keeper = Gst.Pipeline.new()
    probe = Gst.ElementFactory.make(ELEMENT)
    _configure(probe, model, top_k, provider, crops, labels, clip_fps, hysteresis, margin,
               device_id)
    keeper.add(probe)
    try:
        if keeper.set_state(Gst.State.READY) == Gst.StateChangeReturn.FAILURE:
            msg = keeper.get_bus().pop_filtered(Gst.MessageType.ERROR)
            raise ClassifyError(f"{path}: " + (_error_text(msg) if msg else
                                               f"the classifier cannot start with {model}"))
        info = probe.get_property("model-info")
        stride = 0
        if clips:
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
        results, segs, summary = [], [], None
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
                segs.append({
                    "path": str(path),
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
            elif name == "nonlocalclassify-summary":
                summary = _fields(s)
    finally:
        pipeline.set_state(Gst.State.NULL)
        keeper.set_state(Gst.State.NULL)
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
             clip_fps=None, labels=None, provider=None):
    """What happens when in one video: its action segments, in order, as dicts with ``path``,
    ``segment`` (0, 1, …), ``label``, ``start`` and ``end`` (seconds of stream time), ``score``
    (the mean of the label's score over the segment's clips), ``clips``, ``first_clip`` and
    ``last_clip`` — the lines of ``nonlocal-classify --timeline json``. Clips are consecutive over
    the whole video by default (``clips=0``); a new label must lead for ``hysteresis`` clips by more
    than ``margin`` before a segment changes."""
    return classify(path, model=model, use_gpu=use_gpu, clips=clips, hysteresis=hysteresis,
                    margin=margin, clip_fps=clip_fps, labels=labels,
                    provider=provider)["segments"]
