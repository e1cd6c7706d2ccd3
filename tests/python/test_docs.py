"""The documentation points at things that exist: every relative link and every repository path
the Markdown files name, and the README's shell commands parse."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
# Top-level folders and files whose paths the docs name in backticks or links.
TOP = ("tools/", "docs/", "tests/", "examples/", "benches/", "src/", "data/", ".ci/")
TOP_FILES = {"LICENSE", "README.md", "Cargo.toml", "meson.build", "meson_options.txt", "build.rs"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
# Paths produced by a build or a run, not kept in the repository.
GENERATED = ("target/", ".cache/", ".venv/", "tests/models/generated/")


def repo_paths(text):
    """Repository paths named in inline code: a token starting with a top-level folder (or a
    top-level file name), up to the first character that cannot be part of a path."""
    for code in CODE.findall(text):
        for token in re.split(r"[\s=:,;()'\"<>|]+", code):
            token = token.rstrip(".")
            if token.startswith(TOP) or token in TOP_FILES:
                if not any(c in token for c in "*?{}$…[]"):
                    yield token


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_exist(doc):
    text = doc.read_text()
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{doc.name}: links to missing files: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_named_repository_paths_exist(doc):
    missing = sorted({
        p for p in repo_paths(doc.read_text())
        if not p.startswith(GENERATED) and not (REPO / p).exists()
    })
    assert not missing, f"{doc.name}: names paths that do not exist: {missing}"


def test_the_path_scan_finds_what_it_should():
    # The scan itself must see paths, or the test above would pass on anything.
    found = set(repo_paths("run `tools/demo VIDEO` or `GST_PLUGIN_PATH=target/release`, see "
                           "`docs/design.md`, `src/engine.rs:12` and `tools/x*.py`"))
    assert found == {"tools/demo", "docs/design.md", "src/engine.rs"}
    assert "tools/demo" in set(repo_paths((REPO / "README.md").read_text()))


def shell_blocks(text):
    return re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S)


def test_readme_shell_commands_parse():
    blocks = shell_blocks((REPO / "README.md").read_text())
    assert len(blocks) >= 3
    for block in blocks:
        r = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
        assert r.returncode == 0, f"does not parse:\n{block}\n{r.stderr}"


def test_a_broken_command_would_be_caught():
    r = subprocess.run(["bash", "-n"], input="gst-launch-1.0 ! (\n", text=True,
                       capture_output=True)
    assert r.returncode != 0


def test_readme_is_for_users():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; details belong in docs/"
    head = "\n".join(lines[:80])
    for must in ("tools/demo", "tools/run-tests", "## Install", "## Pipelines", "| property"):
        assert must in head, f"{must!r} is not on the README's first screens"
