#!/usr/bin/env python3
"""Read nonlocalclassify results from Python with PyGObject (no Rust needed).

Runs a pipeline ending in an appsink, prints every `nonlocalclassify` element message, the
`NonLocalClassifyMeta` found on buffers (and the results that come after the last buffer, as
serialized custom events before EOS), and the end-of-stream `nonlocalclassify-summary`. With
`--analytics` it also prints the GstAnalytics classifications on buffers (GStreamer >= 1.24 and the
plugin built with `--features analytics`; Debian: gir1.2-gst-plugins-bad-1.0).
This is the Python recipe that replaces PaddleHub's `video_classification()`.

    python3 examples/python/read_results.py --model MODEL.onnx video.mp4        # a path or a URI
    python3 examples/python/read_results.py --model MODEL.onnx rtsp://camera/stream
    python3 examples/python/read_results.py --model MODEL.onnx                  # a live test pattern
    python3 examples/python/read_results.py --pipeline "videotestsrc ! ... ! nonlocalclassify model=... ! appsink name=sink"
    python3 examples/python/read_results.py --model MODEL.onnx --analytics

Needs Debian's python3-gi and python3-gst-1.0 (any distribution Python with PyGObject works) and the
plugin on GST_PLUGIN_PATH.
"""

import argparse
import json
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

META_NAME = "NonLocalClassifyMeta"


def result_fields(structure):
    """The docs/design.md result fields of a message, meta or event structure, as a plain dict;
    `labels` and `scores` are also given together as `probabilities`, {label: score} best first
    (PaddleHub's shape)."""
    out = {}
    for i in range(structure.n_fields()):
        name = structure.nth_field_name(i)
        value = structure.get_value(name)
        if isinstance(value, Gst.ValueArray):
            value = [value[j] for j in range(len(value))]
        out[name] = value
    if "labels" in out and "scores" in out:
        out["probabilities"] = dict(zip(out["labels"], out["scores"]))
    return out


def to_uri(location):
    """A URI for a path (relative to the current directory) or a URI."""
    if Gst.Uri.is_valid(location):
        return location
    path = Path(location).resolve()
    if not path.exists():
        raise FileNotFoundError(f"{location}: no such file")
    return Gst.filename_to_uri(str(path))


def buffer_results(buffer):
    """Results attached to a buffer as NonLocalClassifyMeta (first one, as C code would read it)."""
    meta = buffer.get_custom_meta(META_NAME)
    if meta is None:
        return []
    return [result_fields(meta.get_structure())]


def buffer_analytics(buffer):
    """Classifications attached to a buffer as GstAnalytics relation metadata, read with the
    GstAnalytics API: one dict per classification mtd with its labels and levels (best first) and
    the object-detection box it is drawn with (`box`: x, y, w, h; `type`: the box's label).
    Empty when the buffer has none or GstAnalytics is not installed."""
    try:
        gi.require_version("GstAnalytics", "1.0")
        from gi.repository import GstAnalytics
    except (ValueError, ImportError):
        return []
    meta = GstAnalytics.buffer_get_analytics_relation_meta(buffer)
    if meta is None:
        return []
    mtds = list(meta)
    boxes = [m for m in mtds if isinstance(m, GstAnalytics.ODMtd)]
    out = []
    for cls in (m for m in mtds if isinstance(m, GstAnalytics.ClsMtd)):
        n = cls.get_length()
        entry = {
            "labels": [GLib.quark_to_string(cls.get_quark(i)) for i in range(n)],
            "levels": [cls.get_level(i) for i in range(n)],
        }
        # The box that RELATE_TOs the classification: what objectdetectionoverlay draws it with.
        for od in boxes:
            if meta.get_relation(od.id, cls.id) & GstAnalytics.RelTypes.RELATE_TO:
                ok, x, y, w, h, _level = od.get_location()
                entry["box"] = (x, y, w, h)
                entry["type"] = GLib.quark_to_string(od.get_obj_type())
                break
        out.append(entry)
    return out


def run(description, timeout_s=120.0, on_result=None, on_meta=None, on_buffer=None):
    """Run a pipeline with an appsink named "sink"; returns (messages, metas, summary).
    `on_buffer` is called with every buffer the appsink receives."""
    Gst.init(None)
    pipeline = Gst.parse_launch(description)
    sink = pipeline.get_by_name("sink")
    messages, metas, summary, errors = [], [], [], []

    def new_sample(appsink):
        sample = appsink.emit("pull-sample")
        buffer = sample.get_buffer()
        if on_buffer:
            on_buffer(buffer)
        for r in buffer_results(buffer):
            r["buffer-pts"] = buffer.pts
            metas.append(r)
            if on_meta:
                on_meta(r)
        return Gst.FlowReturn.OK

    def on_event(_pad, info):
        event = info.get_event()
        if event.type != Gst.EventType.CUSTOM_DOWNSTREAM:
            return Gst.PadProbeReturn.OK
        s = event.get_structure()
        if s is not None and not hasattr(s, "get_name"):
            # gst-python 1.26 hands it out as a context manager.
            with s as structure:
                late_result(structure)
        else:
            late_result(s)
        return Gst.PadProbeReturn.OK

    def late_result(s):
        if s is not None and s.get_name() == "nonlocalclassify":
            r = result_fields(s)
            r["buffer-pts"] = None  # ready after the last buffer: no buffer carries it
            metas.append(r)
            if on_meta:
                on_meta(r)

    if sink is not None:
        sink.set_property("emit-signals", True)
        sink.connect("new-sample", new_sample)
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)

    loop = GLib.MainLoop()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "nonlocalclassify":
                messages.append(result_fields(s))
                if on_result:
                    on_result(messages[-1])
            elif s.get_name() == "nonlocalclassify-summary":
                summary.append(result_fields(s))
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            errors.append(f"{err.message} ({debug})")
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add(int(timeout_s * 1000), loop.quit)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    if errors:
        raise RuntimeError("; ".join(errors))
    return messages, metas, (summary[0] if summary else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="path of the .onnx model")
    ap.add_argument("video", nargs="?", help="video path or URI (file:///…, rtsp://…); default: a live test pattern")
    ap.add_argument("--uri", help="the same as the positional argument (kept for older scripts)")
    ap.add_argument("--pipeline", help="a whole pipeline description with an appsink named 'sink'")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    ap.add_argument("--analytics", action="store_true",
                    help="also print the GstAnalytics classifications found on buffers")
    args = ap.parse_args()
    if args.pipeline:
        description = args.pipeline
    elif args.model:
        Gst.init(None)
        location = args.video or args.uri
        try:
            source = (f"uridecodebin uri=\"{to_uri(location)}\"" if location
                      else "videotestsrc is-live=true num-buffers=300")
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        description = (f"{source} ! videoconvert ! nonlocalclassify model=\"{args.model}\" "
                       "! appsink name=sink sync=false")
    else:
        ap.error("give --model (and optionally --uri) or --pipeline")

    def show(kind):
        def printer(r):
            if args.json:
                print(json.dumps({"kind": kind, **r}), flush=True)
            else:
                print(f"{kind:7} clip {r['clip-index']:4} @ {r['timestamp'] / 1e9:8.3f}s  "
                      f"{r['label']} ({r['score']:.3f})", flush=True)
        return printer

    def show_analytics(buffer):
        for c in buffer_analytics(buffer):
            if args.json:
                print(json.dumps({"kind": "analytics", "buffer-pts": buffer.pts, **c}), flush=True)
            else:
                top = ", ".join(f"{l} {v:.3f}" for l, v in zip(c["labels"], c["levels"]))
                print(f"analytics @ {buffer.pts / 1e9:8.3f}s  {top}", flush=True)

    try:
        _, _, summary = run(description, on_result=show("message"), on_meta=show("meta"),
                            on_buffer=show_analytics if args.analytics else None)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if summary:
        if args.json:
            print(json.dumps({"kind": "summary", **summary}))
        else:
            top = ", ".join(f"{l} {s:.3f}" for l, s in zip(summary["labels"], summary["scores"]))
            print(f"summary over {summary['clips']} clips: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
