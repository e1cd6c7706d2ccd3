"""The set-up scripts behave in a user's interactive shell: sourcing them changes no shell option,
never closes the shell, and exports what they say; scripts take paths relative to the caller."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bash(script, cwd=REPO, env=None):
    # -i: an interactive shell, as a user's terminal (where `exit` would close it).
    return subprocess.run(["bash", "--norc", "-i", "-c", script], cwd=cwd, capture_output=True,
                          text=True, env=env or dict(os.environ), timeout=300)


def versions():
    """The variables tools/versions.sh sets."""
    r = subprocess.run(["bash", "-c", f"source {REPO}/tools/versions.sh; "
                        "echo ORT_VERSION=$ORT_VERSION; echo OPENVINO_ORT_VERSION=$OPENVINO_ORT_VERSION; "
                        "echo OPENVINO_ORT_LIB=$OPENVINO_ORT_LIB"],
                       capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in r.stdout.splitlines())


def test_the_scripts_and_the_element_agree_on_the_runtimes():
    v = versions()
    runtime = (REPO / "src" / "engine" / "local" / "runtime.rs").read_text()
    assert f'pub const ORT_VERSION: &str = "{v["ORT_VERSION"]}";' in runtime
    assert f'pub const OPENVINO_ORT_VERSION: &str = "{v["OPENVINO_ORT_VERSION"]}";' in runtime
    assert f"onnxruntime=={v['ORT_VERSION']}" in (REPO / "tools" / "requirements.txt").read_text()
    # Where the element looks for the OpenVINO build (runtime.rs) is where the scripts put it.
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    assert v["OPENVINO_ORT_LIB"] == (f"{data}/nonlocalclassify/onnxruntime-openvino/onnxruntime/"
                                     f"capi/libonnxruntime.so.{v['OPENVINO_ORT_VERSION']}")
    assert '"nonlocalclassify/onnxruntime-openvino"' in runtime


def test_env_sh_exports_and_changes_no_option(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GST_PLUGIN_PATH", "ORT_DYLIB_PATH")}
    r = bash(f"""
        before=$(set +o; shopt -p)
        cd {tmp_path} && source {REPO}/tools/env.sh release
        after=$(set +o; shopt -p)
        [ "$before" = "$after" ] && echo options-unchanged
        false; echo still-here
        echo "GST_PLUGIN_PATH=$GST_PLUGIN_PATH"
        echo "ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
        echo "PATH=$PATH"
    """, env=env)
    out = r.stdout
    assert "options-unchanged" in out and "still-here" in out, r
    assert f"GST_PLUGIN_PATH={REPO}/target/release\n" in out, out
    ort = next(l for l in out.splitlines() if l.startswith("ORT_DYLIB_PATH="))[15:]
    assert Path(ort).is_file(), ort
    # The runtime the set-up installs for the element: ONNX Runtime's OpenVINO build.
    assert ort == versions()["OPENVINO_ORT_LIB"], ort
    assert f"PATH={REPO}/.venv/bin:" in out or os.environ.get("NONLOCAL_VENV"), out


def test_a_failing_setup_returns_and_leaves_the_shell_alone(tmp_path):
    # A venv that cannot be created makes tools/install-prereqs fail for real.
    env = dict(os.environ, NONLOCAL_VENV="/proc/no-such-dir/venv")
    env.pop("GST_PLUGIN_PATH", None)
    r = bash(f"""
        before=$(set +o; shopt -p)
        source {REPO}/tools/setup.sh; echo "status=$?"
        after=$(set +o; shopt -p)
        [ "$before" = "$after" ] && echo options-unchanged
        echo "GST_PLUGIN_PATH=${{GST_PLUGIN_PATH:-unset}}"
    """, cwd=tmp_path, env=env)
    assert "status=1" in r.stdout and "options-unchanged" in r.stdout, r
    assert "GST_PLUGIN_PATH=unset" in r.stdout, r
    assert "set-up failed" in r.stderr, r.stderr


def test_demo_takes_a_path_relative_to_the_caller(tmp_path):
    r = subprocess.run([REPO / "tools" / "demo", "clips/missing.mp4"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"'clips/missing.mp4' not found (a path relative to {tmp_path}" in r.stderr, r.stderr
