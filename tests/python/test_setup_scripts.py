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
