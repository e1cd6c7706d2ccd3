"""examples/live.rs records the overlaid video headless: textoverlay (gstreamer1.0-x) and the
encoders the set-up installs are there, and the recording decodes."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIVE = REPO / "target" / "debug" / "examples" / "live"


@pytest.mark.skipif(not LIVE.exists(), reason="build the examples first (cargo build --all-targets)")
def test_live_records_the_overlaid_video(tmp_path):
    out = tmp_path / "out.webm"
    r = subprocess.run([LIVE, "--record", out, "--duration", "3",
                        "--model", REPO / "tests" / "models" / "kinetics_sized.onnx"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    clip_lines = [l for l in r.stdout.splitlines() if "dropped" in l]
    assert clip_lines, r.stdout
    assert out.stat().st_size > 1000
    decoded = subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={out}", "!",
                              "matroskademux", "!", "vp8dec", "!", "fakesink"],
                             capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0, decoded.stderr
