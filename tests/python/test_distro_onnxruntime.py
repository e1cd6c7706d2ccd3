"""Debian 13's own ONNX Runtime (libonnxruntime1.21, API 21) is older than the element needs
(API 23, ONNX Runtime 1.23; docs/analytics.md says why): an application starting the element with
it gets one error that names the library, the version found, the version needed and what to
install.
tools/analytics-lane runs this in its trixie lane (Debian 13), where apt installed that library."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRO_ORT = Path(os.environ.get("NONLOCAL_DISTRO_ORT",
                                 "/usr/lib/x86_64-linux-gnu/libonnxruntime.so.1.21"))

pytest.importorskip("gi", reason="needs PyGObject (Debian: python3-gi python3-gst-1.0)")

# Run in a child: ONNX Runtime is loaded once per process.
CHILD = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipeline = Gst.parse_launch(
    "videotestsrc num-buffers=8 ! video/x-raw,format=RGB,width=16,height=8 "
    "! nonlocalclassify model=" + sys.argv[1] + " ! fakesink")
pipeline.set_state(Gst.State.PLAYING)
msg = pipeline.get_bus().timed_pop_filtered(
    30 * Gst.SECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS)
pipeline.set_state(Gst.State.NULL)
if msg is not None and msg.type == Gst.MessageType.ERROR:
    err, debug = msg.parse_error()
    print("ERROR<<" + err.message + " | " + (debug or "") + ">>")
"""


@pytest.mark.skipif(not DISTRO_ORT.exists(),
                    reason=f"needs Debian 13's {DISTRO_ORT} (apt-get install libonnxruntime1.21)")
def test_debian_onnx_runtime_1_21_is_refused_naming_what_to_install():
    env = dict(os.environ, ORT_DYLIB_PATH=str(DISTRO_ORT))
    child = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "tests/models/probe.onnx")],
                           env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert "ERROR<<" in child.stdout, child.stdout + child.stderr
    error = child.stdout.split("ERROR<<", 1)[1].split(">>", 1)[0]
    assert "ONNX Runtime could not be loaded" in error
    assert str(DISTRO_ORT) in error
    assert "'1.21.0'" in error, error  # the version found
    assert "1.23" in error, error  # the oldest it accepts
    assert "pip install onnxruntime==1.31.1" in error, error  # what to install
    assert error.count("could not be loaded") == 1, error
