"""`meson setup --prefix P && meson install` puts the plugin (and the programs) under P, and
GStreamer runs the installed plugin from there."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("meson") is None or shutil.which("ninja") is None,
                                reason="needs meson and ninja (tools/install-prereqs installs them)")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def installed_env(plugin_dir, tmp_path):
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = str(plugin_dir)  # the installed plugin only, not target/
    env["GST_REGISTRY"] = str(tmp_path / "registry.bin")
    return env


def test_release_is_the_default_build(tmp_path):
    run(["meson", "setup", tmp_path / "b", REPO])
    options = json.loads(run(["meson", "introspect", tmp_path / "b", "--buildoptions"]))
    assert {o["name"]: o["value"] for o in options}["buildtype"] == "release"


def test_install_into_a_prefix_and_run_from_there(tmp_path):
    prefix = tmp_path / "prefix"
    build = tmp_path / "build"
    # The debug profile in the project's own target directory: the test suite has just built it,
    # so this checks the install rules without a second full build.
    run(["meson", "setup", build, REPO, f"--prefix={prefix}", "--libdir=lib64",
         "--buildtype=debug", f"-Dcargo_target_dir={REPO / 'target'}"])
    run(["meson", "install", "-C", build])
    plugin = prefix / "lib64" / "gstreamer-1.0" / "libgstnonlocal.so"
    assert plugin.is_file(), sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*"))
    env = installed_env(plugin.parent, tmp_path)
    info = run(["gst-inspect-1.0", "nonlocalclassify"], env=env)
    assert f"Filename                 {plugin}" in info, info
    assert "Frames per clip, 1 to 1024" in info
    # probe.onnx reports per-plane means of a solid colour: R=200 → (200 − 10) / 2 = 95.
    model = REPO / "tests" / "models" / "probe.onnx"
    out = run(["gst-launch-1.0", "-m", "videotestsrc", "num-buffers=8", "pattern=solid-color",
               "foreground-color=0xffc86432", "!",
               "video/x-raw,format=RGB,width=16,height=8,framerate=25/1", "!",
               "nonlocalclassify", f"model={model}", "!", "fakesink"], env=env)
    line = next(l for l in out.splitlines() if "nonlocalclassify, " in l)
    assert "score=(double)95" in line, line
    for program in build_programs():
        assert (prefix / "bin" / program).is_file(), program


def build_programs():
    """The programs Cargo.toml declares (meson installs each into bindir)."""
    meta = json.loads(run(["cargo", "metadata", "--no-deps", "--format-version", "1",
                           "--manifest-path", REPO / "Cargo.toml"]))
    return [t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]]
