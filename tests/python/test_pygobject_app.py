"""An application's view: PyGObject reads the element's messages and its NonLocalClassifyMeta
from a running pipeline, using nothing from this project but the plugin (examples/python)."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

gi = pytest.importorskip("gi", reason="needs PyGObject (Debian: python3-gi python3-gst-1.0)")


def load_example():
    spec = importlib.util.spec_from_file_location(
        "read_results", REPO / "examples" / "python" / "read_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_messages_and_meta_from_python():
    app = load_example()
    model = REPO / "tests" / "models" / "probe.onnx"
    # A live solid colour R=200, G=100, B=50: the probe model reports per-plane means normalised
    # with mean (10, 20, 30) and std (2, 4, 5).
    desc = (
        "videotestsrc is-live=true num-buffers=20 pattern=solid-color foreground-color=0xffc86432 "
        "! video/x-raw,format=RGB,width=16,height=8,framerate=25/1 "
        f"! nonlocalclassify model={model} top-k=12 ! appsink name=sink sync=false"
    )
    messages, metas, summary = app.run(desc, timeout_s=60)
    # Clips start every 8 frames; the third (frames 16, 18) has half its frames at EOS: padded.
    assert [m["clip-index"] for m in messages] == [0, 1, 2]
    first = messages[0]
    scores = dict(zip(first["labels"], first["scores"]))
    for t in range(4):
        assert scores[f"cr_t{t}"] == pytest.approx((200 - 10) / 2, abs=1e-3)
        assert scores[f"cg_t{t}"] == pytest.approx((100 - 20) / 4, abs=1e-3)
        assert scores[f"cb_t{t}"] == pytest.approx((50 - 30) / 5, abs=1e-3)
    assert first["label"].startswith("cr_") and first["score"] == pytest.approx(95, abs=1e-3)
    # A live source starts at its running time; clips are 8 frames (320 ms) apart.
    assert messages[1]["timestamp"] - first["timestamp"] == 8 * 40_000_000
    assert first["duration"] == 7 * 40_000_000
    # The meta carries the same result, on a later buffer than the clip's last frame.
    assert metas, "no NonLocalClassifyMeta seen on any buffer"
    meta = metas[0]
    assert meta["clip-index"] == 0
    assert meta["labels"] == first["labels"] and meta["scores"] == first["scores"]
    assert meta["buffer-pts"] > first["timestamp"] + 6 * 40_000_000
    assert summary["clips"] == 3


def test_every_clip_reaches_the_application_and_plain_paths_work(tmp_path, monkeypatch):
    """A file decodes faster than clips are classified, so the last results are ready only after
    the last buffer: they arrive as serialized events, and the application sees every clip."""
    app = load_example()
    app.Gst.init(None)
    video = tmp_path / "clip.ogv"
    # 24 frames of a solid colour, Theora in Ogg (Debian's base plugins).
    desc = ("videotestsrc num-buffers=24 pattern=solid-color foreground-color=0xffc86432 "
            "! video/x-raw,format=I420,width=16,height=8,framerate=25/1 ! theoraenc ! oggmux "
            f"! filesink location={video}")
    pipeline = app.Gst.parse_launch(desc)
    pipeline.set_state(app.Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(30 * app.Gst.SECOND,
                                                app.Gst.MessageType.EOS | app.Gst.MessageType.ERROR)
    pipeline.set_state(app.Gst.State.NULL)
    assert msg is not None and msg.type == app.Gst.MessageType.EOS
    monkeypatch.chdir(tmp_path)
    # A relative path, as a user types it.
    assert app.to_uri("clip.ogv") == app.Gst.filename_to_uri(str(video))
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        app.to_uri("missing.mp4")
    model = REPO / "tests" / "models" / "slow_probe.onnx"
    desc = (f"uridecodebin uri={app.to_uri('clip.ogv')} ! videoconvert "
            f"! nonlocalclassify model={model} ! appsink name=sink sync=false")
    messages, metas, summary = app.run(desc, timeout_s=120)
    clips = sorted(m["clip-index"] for m in messages)
    assert clips == list(range(summary["clips"])) and len(clips) >= 2
    assert sorted(r["clip-index"] for r in metas) == clips
    late = [r for r in metas if r["buffer-pts"] is None]
    assert late, "no result came after the last buffer: the test no longer tests that"
    by_index = {m["clip-index"]: m for m in messages}
    for r in metas:
        assert r["probabilities"] == dict(zip(by_index[r["clip-index"]]["labels"],
                                               by_index[r["clip-index"]]["scores"]))
