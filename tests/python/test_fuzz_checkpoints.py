"""Fuzzing of the checkpoint readers, tools/nlexport/checkpoints.py, with hypothesis.

Synthetic checkpoints of every format (tests/python/checkpoint_writers.py) are truncated, have
bytes flipped, overwritten, inserted or deleted, and Paddle directories get one of their files
mutated. Whatever the damage, `load_checkpoint` either returns float32 arrays under FAIR names or
raises a `CheckpointError` (a `ValueError`) whose message starts with the path it was given: never
another exception. Every load runs with its address space capped at 1 GiB more than the process
already has: a file of a few kilobytes that makes the reader ask for more (a length or index field
turned into billions) is a failure too, however the reader then reports it. Each test is capped at
about 100 examples to stay within seconds.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Hypothesis keeps caches in ./.hypothesis unless told otherwise: keep the work tree clean.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "nonlocal-hypothesis"))
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkpoint_writers as W  # noqa: E402
from nlexport import checkpoints as C  # noqa: E402

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def tiny_params() -> dict[str, np.ndarray]:
    """A few FAIR names of every kind (stem, BN, residual block, non-local, head), tiny shapes."""
    rng = np.random.default_rng(1)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    p = {"conv1_w": r(4, 3, 1, 3, 3)}
    for k in ("s", "b", "rm", "riv"):
        p[f"res_conv1_bn_{k}"] = r(4)
    p["res2_0_branch2a_w"] = r(4, 4, 3, 1, 1)
    p["res2_0_branch1_bn_rm"] = r(4)
    for part in ("theta", "phi", "g"):
        p[f"nonlocal_conv3_1_{part}_w"] = r(2, 4, 1, 1, 1)
        p[f"nonlocal_conv3_1_{part}_b"] = r(2)
    p["nonlocal_conv3_1_out_w"] = r(4, 2, 1, 1, 1)
    p["nonlocal_conv3_1_out_b"] = r(4)
    for k in ("s", "b", "rm", "riv"):
        p[f"nonlocal_conv3_1_bn_{k}"] = r(4)
    p["pred_w"] = r(5, 8)
    p["pred_b"] = r(5)
    return p


# name -> writer(directory, params) -> path of the file to mutate
FILE_WRITERS = {
    "fair-py2": lambda d, p: W.write_fair_pkl(d / "m.pkl", p),
    "fair-py3": lambda d, p: W.write_fair_pkl(d / "m.pkl", p, style="py3"),
    "paddle-pdparams": lambda d, p: W.write_paddle_pdparams(d / "m.pdparams", p),
    "paddle-pdparams-p4": lambda d, p: W.write_paddle_pdparams(d / "m.pdparams", p, protocol=4),
    "mmaction2-zip": lambda d, p: W.write_mmaction2_pth(d / "m.pth", p),
    "mmaction2-legacy": lambda d, p: W.write_mmaction2_pth(d / "m.pth", p, legacy=True),
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Bytes of one pristine file of each single-file format, and pristine Paddle directories."""
    base = tmp_path_factory.mktemp("pristine")
    params = tiny_params()
    files = {}
    for name, write in FILE_WRITERS.items():
        d = base / name
        d.mkdir()
        path = Path(write(d, params))
        files[name] = path.read_bytes()
        # The pristine file loads: the mutations below start from a valid checkpoint.
        fmt, loaded = C.load_checkpoint(path, allow_architecture_mismatch=True)
        assert fmt.split("-")[0] == name.split("-")[0] and loaded
    dirs = {
        "per-param": Path(W.write_paddle_dir(base / "pp", params)),
        "per-param-packed": Path(W.write_paddle_dir(base / "ppk", params, packed=True, pred_layout="fc")),
        "combined": Path(W.write_paddle_dir(base / "pc", params, layout="combined")),
    }
    for d in dirs.values():
        assert C.load_checkpoint(d)[1]
    return files, dirs


def edits(size: int):
    """One to three edits of a file of `size` bytes: truncations, bit flips, byte sets, overwrites,
    inserts and deletes (drawn as short tuples, so a failure report stays readable)."""
    at = st.integers(0, max(size - 1, 0))
    edit = st.one_of(
        st.tuples(st.just("truncate"), at),
        st.tuples(st.just("flip"), at, st.integers(0, 7)),
        st.tuples(st.just("byte"), at, st.sampled_from([0x00, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)),
        st.tuples(st.just("overwrite"), at, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("insert"), at, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), at, st.integers(1, 64)),
    )
    return st.lists(edit, min_size=1, max_size=3)


def apply_edits(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for kind, at, *arg in changes:
        at = min(at, max(len(out) - 1, 0))
        if kind == "truncate":
            del out[at:]
        elif kind == "flip" and out:
            out[at] ^= 1 << arg[0]
        elif kind == "byte" and out:
            out[at] = arg[0]
        elif kind == "overwrite":
            out[at : at + len(arg[0])] = arg[0]
        elif kind == "insert":
            out[at:at] = arg[0]
        elif kind == "delete":
            del out[at : at + arg[0]]
    return bytes(out)


MEMORY_HEADROOM = 1 << 30


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def memory_cap(headroom=MEMORY_HEADROOM):
    """Let the block allocate at most `headroom` more bytes of address space (RLIMIT_AS)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size() + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _caused_by_memory(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, MemoryError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def load(path, **kwargs):
    """`load_checkpoint` under the memory cap; running out of it fails the test."""
    p = Path(path)
    size = sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size
    try:
        with memory_cap():
            return C.load_checkpoint(path, **kwargs)
    except BaseException as exc:
        if _caused_by_memory(exc):
            pytest.fail(f"reading {size} bytes of {path} wanted more than {MEMORY_HEADROOM >> 20} MiB: "
                        f"{type(exc).__name__}: {exc}")
        raise


def check_load(path):
    """Load `path`: a result of float32 arrays, or a CheckpointError naming `path`."""
    try:
        fmt, params = load(path, allow_architecture_mismatch=True)
    except C.CheckpointError as exc:
        assert isinstance(exc, ValueError)
        assert str(exc).startswith(str(path)), str(exc)
        return
    except ValueError as exc:  # a ValueError that is not the module's own: still allowed
        pytest.fail(f"{type(exc).__name__} instead of CheckpointError for {path}: {exc}")
    assert fmt in C.FORMATS
    assert isinstance(params, dict)
    for name, value in params.items():
        assert C.is_fair_name(name), name
        assert isinstance(value, np.ndarray) and value.dtype == np.float32, name


@pytest.mark.parametrize("fmt", sorted(FILE_WRITERS))
def test_mutated_files(tmp_path, originals, fmt):
    files, _ = originals
    suffix = {"fair": ".pkl", "paddle": ".pdparams", "mmaction2": ".pth"}[fmt.split("-")[0]]
    path = tmp_path / ("fuzzed" + suffix)

    @FUZZ
    @given(changes=edits(len(files[fmt])))
    def run(changes):
        path.write_bytes(apply_edits(files[fmt], changes))
        check_load(path)

    run()


@pytest.mark.parametrize("fmt", sorted(FILE_WRITERS))
def test_every_truncation_point_sampled(tmp_path, originals, fmt):
    files, _ = originals
    data = files[fmt]
    path = tmp_path / "cut.bin"

    @FUZZ
    @given(cut=st.integers(0, len(data) - 1))
    def run(cut):
        path.write_bytes(data[:cut])
        with pytest.raises(C.CheckpointError) as err:
            load(path, allow_architecture_mismatch=True)
        assert str(err.value).startswith(str(path))

    run()


@pytest.mark.parametrize("layout", ["per-param", "per-param-packed", "combined"])
def test_mutated_paddle_directories(tmp_path, originals, layout):
    _, dirs = originals
    pristine = dirs[layout]
    names = sorted(p.name for p in pristine.iterdir())
    contents = {n: (pristine / n).read_bytes() for n in names}
    work = tmp_path / "m"

    @FUZZ
    @given(victim=st.sampled_from(names), data=st.data())
    def run(victim, data):
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(pristine, work)
        changes = data.draw(edits(len(contents[victim])), label="changes")
        (work / victim).write_bytes(apply_edits(contents[victim], changes))
        try:
            load(work)
        except C.CheckpointError as exc:
            # The message names the directory (or the damaged file inside it).
            assert str(exc).startswith(str(work)), str(exc)

    run()


@FUZZ
@given(data=st.binary(max_size=256), name=st.sampled_from(["x.pkl", "x.pth", "x.pdparams", "__params__"]))
def test_random_bytes(tmp_path_factory, data, name):
    path = tmp_path_factory.mktemp("rand") / name
    path.write_bytes(data)
    check_load(path)


# -- the committed corpus (tests/corpus/checkpoints) -------------------------------------------

CORPUS = REPO / "tests" / "corpus" / "checkpoints"
SUFFIX = {"fair": ".pkl", "paddle": ".pdparams", "mmaction2": ".pth"}


def write_corpus(directory: Path) -> None:
    """Seeds: one pristine file per format; regressions: inputs that once broke the reader."""
    directory.mkdir(parents=True, exist_ok=True)
    params = tiny_params()
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in FILE_WRITERS.items():
            d = Path(tmp) / name
            d.mkdir()
            data = Path(write(d, params)).read_bytes()
            (directory / f"seed-{name}{SUFFIX[name.split('-')[0]]}").write_bytes(data)
    # A LONG_BINPUT memo index of 2^31 - 1: made CPython's unpickler allocate 16 GiB.
    (directory / "regression-memo-index.pkl").write_bytes(
        b"\x80\x02}r" + struct.pack("<I", 0x7FFFFFFF) + b".")
    # A BINUNICODE length of 2^32 - 1 in a 20-byte file.
    (directory / "regression-string-length.pkl").write_bytes(
        b"\x80\x02X" + struct.pack("<I", 0xFFFFFFFF) + b"abc.")


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file())


def test_corpus_is_committed():
    names = [p.name for p in corpus_files()]
    assert {f"seed-{n}{SUFFIX[n.split('-')[0]]}" for n in FILE_WRITERS} <= set(names)
    assert any(n.startswith("regression-") for n in names)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_file(tmp_path, path):
    """Seeds load into float32 FAIR-named arrays; regressions are one clean CheckpointError."""
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    if path.name.startswith("seed-"):
        fmt, params = load(copy, allow_architecture_mismatch=True)
        assert params and all(v.dtype == np.float32 for v in params.values())
    else:
        with pytest.raises(C.CheckpointError):
            load(copy, allow_architecture_mismatch=True)


@pytest.mark.parametrize("path", [p for p in corpus_files() if p.name.startswith("seed-")],
                         ids=lambda p: p.name)
def test_mutated_corpus_seeds(tmp_path, path):
    data = path.read_bytes()
    target = tmp_path / ("fuzzed" + path.suffix)

    @FUZZ
    @given(changes=edits(len(data)))
    def run(changes):
        target.write_bytes(apply_edits(data, changes))
        check_load(target)

    run()


@pytest.mark.parametrize("opcode", [b"r", b"q", b"p"])
def test_huge_memo_index_needs_no_memory(tmp_path, opcode):
    """A memo index of 2^31 - 1 (one flipped byte of a LONG_BINPUT) must not make the reader
    allocate a memo table of that many entries (16 GiB): CPython's C unpickler does."""
    arg = {b"r": struct.pack("<I", 0x7FFFFFFF), b"q": b"\xff", b"p": b"2147483647\n"}[opcode]
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x02}" + opcode + arg + b".")
    check_load(path)


if __name__ == "__main__":
    # python3 tests/python/test_fuzz_checkpoints.py --write-corpus: (re)write the seeds.
    if sys.argv[1:] == ["--write-corpus"]:
        write_corpus(CORPUS)
    else:
        sys.exit("usage: test_fuzz_checkpoints.py --write-corpus")
