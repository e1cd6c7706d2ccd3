#!/usr/bin/env python3
"""Join videos (and test patterns) end to end into one MJPEG/AVI file at one size and frame rate:
how docs/timeline.md builds its several-action example.

    python3 examples/python/concat_videos.py out.avi tests/data/arm_wrestling.mp4 \
        pattern:spokes:8 tests/data/arm_wrestling.mp4

An input is a path, or `pattern:NAME:SECONDS` for GStreamer's videotestsrc pattern NAME. Frames
are decoded, scaled to --size (pixel aspect ratio 64/51, the Kinetics clip's), resampled to --fps
and timestamped one after the other. Needs Debian's python3-gi and python3-gst-1.0 with the base
and good plugins.
"""

import argparse
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def frames(source, caps):
    """Decoded frames of one input as buffers with `caps`."""
    if source.startswith("pattern:"):
        _, name, seconds = source.split(":")
        rate = caps.get_structure(0).get_fraction("framerate")
        count = int(float(seconds) * rate[1] / rate[2])
        head = f"videotestsrc pattern={name} num-buffers={count}"
    else:
        head = f'filesrc location="{Path(source).resolve()}" ! decodebin'
    pipeline = Gst.parse_launch(
        f"{head} ! videoconvert ! videoscale add-borders=false ! videorate "
        f'! capsfilter caps="{caps.to_string()}" ! appsink name=sink sync=false')
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        yield sample.get_buffer()
    msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is not None:
        raise RuntimeError(f"{source}: {msg.parse_error()[0].message}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--size", default="340x256", help="WIDTHxHEIGHT (default 340x256)")
    ap.add_argument("--fps", type=int, default=28, help="frame rate (default 28)")
    args = ap.parse_args()
    Gst.init(None)
    width, height = (int(v) for v in args.size.split("x"))
    caps = Gst.Caps.from_string(
        f"video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=64/51,"
        f"framerate={args.fps}/1")
    out = Gst.parse_launch(
        f'appsrc name=src format=time caps="{caps.to_string()}" ! jpegenc quality=90 '
        f'! avimux ! filesink location="{args.output}"')
    src = out.get_by_name("src")
    out.set_state(Gst.State.PLAYING)
    n = 0
    for source in args.inputs:
        for buffer in frames(source, caps):
            copy = buffer.copy_deep()
            copy.pts = n * Gst.SECOND // args.fps
            copy.duration = (n + 1) * Gst.SECOND // args.fps - copy.pts
            src.emit("push-buffer", copy)
            n += 1
        print(f"{source}: up to frame {n} ({n / args.fps:.2f} s)", file=sys.stderr)
    src.emit("end-of-stream")
    msg = out.get_bus().timed_pop_filtered(
        600 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    out.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        print(f"error: {args.output}: {msg.parse_error()[0].message if msg else 'timeout'}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
