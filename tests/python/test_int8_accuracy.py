"""The int8 default model keeps float32's answers: on every clip of the real videos the project
ships, other than the one it was calibrated on, its top-1 equals float32's; the top-5 overlap of
each clip is printed as a table (docs/models.md, "int8 models").

Both models run through the element (the nonlocal-classify program, consecutive clips, CPU).
tools/run-tests builds them (tools/default-model, tools/default-model --int8) and sets
NONLOCAL_MODEL and NONLOCAL_INT8_MODEL; without those the test looks in .cache/models and fails
if they are not there.
"""

import csv
import io
import os
import subprocess
from pathlib import Path

import onnx

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
VIDEOS = ["cleaning_pool.mp4", "filling_eyebrows.avi", "shooting_basketball.mp4"]
LABELS = {"cleaning_pool.mp4": "cleaning pool", "filling_eyebrows.avi": "filling eyebrows",
          "shooting_basketball.mp4": "shooting basketball"}
PROGRAM = Path(os.environ.get("NONLOCAL_CLASSIFY",
                              REPO / "target" / "debug" / "nonlocal-classify"))


def model(env, name):
    path = Path(os.environ.get(env) or REPO / ".cache" / "models" / name)
    assert path.is_file(), (f"{path} missing: run tools/run-tests, or tools/default-model "
                            f"{'--int8' if 'INT8' in env else ''} and set {env}")
    return path


def per_clip(model_path):
    """{(video, clip): [top-5 labels]} of every clip the element cuts (--clips 0)."""
    assert PROGRAM.exists(), f"{PROGRAM} missing: cargo build (tools/run-tests does it)"
    out = subprocess.run([str(PROGRAM), "--model", str(model_path), "--clips", "0",
                          "--output", "csv", *(str(DATA / v) for v in VIDEOS)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    clips = {}
    for row in csv.DictReader(io.StringIO(out.stdout)):
        clips.setdefault((Path(row["path"]).name, int(row["clip"])), []).append(row["label"])
    return clips


def test_int8_top1_equals_float32_on_every_shipped_clip(capsys):
    float_model = model("NONLOCAL_MODEL", "i3d-kinetics400.onnx")
    int8_model = model("NONLOCAL_INT8_MODEL", "i3d-kinetics400-int8.onnx")
    meta = {p.key: p.value for p in onnx.load(str(int8_model), load_external_data=False)
            .metadata_props}
    assert meta["quantization"].startswith("int8-qdq nncf "), meta["quantization"]
    calibrated = [line.split(" ")[0] for line in meta["calibration.videos"].splitlines()]
    assert calibrated == ["arm_wrestling.mp4"], meta["calibration.videos"]
    assert not set(calibrated) & set(VIDEOS), "the test clips must not be calibration clips"

    f32, i8 = per_clip(float_model), per_clip(int8_model)
    assert sorted(f32) == sorted(i8)
    # cleaning_pool 4 clips, filling_eyebrows 3, shooting_basketball 4 (25 fps, 64 frames).
    assert len(f32) == 11, sorted(f32)
    rows, differ = [], []
    for key in sorted(f32):
        a, b = f32[key], i8[key]
        assert len(a) == len(b) == 5, (key, a, b)
        overlap = len(set(a) & set(b))
        rows.append(f"| {key[0]} | {key[1]} | {a[0]} | {b[0]} | {overlap}/5 |")
        if a[0] != b[0]:
            differ.append(f"{key[0]} clip {key[1]}: float32 {a[0]!r}, int8 {b[0]!r}")
        assert overlap >= 3, (key, a, b)
        assert a[0] == LABELS[key[0]], (key, a)
    with capsys.disabled():
        print("\n| clip | # | float32 top-1 | int8 top-1 | top-5 overlap |\n|---|---|---|---|---|")
        print("\n".join(rows))
    assert not differ, differ
