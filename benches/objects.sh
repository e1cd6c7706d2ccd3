#!/usr/bin/env bash
# Objects mode (regions=objects) on the CPU: one 640×480 stream with 1, 4 and 16 boxed objects
# against frame mode and against the engine alone, in one process per round:
#   benches/objects.sh MODEL.onnx [ROUNDS] [CLIPS] [OBJECTS] > OUT.jsonl 2> OUT.txt
# Each round runs the throughput bench (release build, `--features analytics`) with
# `--provider cpu --batches 1 --streams 1 --objects OBJECTS --max-batch 1 --size 640x480
# --clips CLIPS` (OBJECTS default 1,4,16): the engine at batch 1, one frame-mode stream, then one
# stream per object count, whose boxes a pad probe adds (benches/throughput.rs). Rounds are
# alternated and summarised by benches/compare-builds.sh --forms.
# GstAnalytics needs GStreamer >= 1.24: on an older host this runs itself in the trixie lane's
# Debian 13 root (tools/analytics-lane trixie --shell), builds in target/analytics-lane, and the
# model's folder is mounted there (NONLOCAL_MODEL). ONNX Runtime: ORT_DYLIB_PATH, default the
# .venv's CPU build (the bench's CPU rows).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '4p' "$0" >&2; exit 2; }
model=$(readlink -f "$1") rounds=${2:-3} clips=${3:-8} objects=${4:-1,4,16}
if ! pkg-config --atleast-version=1.24 gstreamer-1.0 2>/dev/null; then
  if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    ORT_DYLIB_PATH=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)
    export ORT_DYLIB_PATH=$PWD/$ORT_DYLIB_PATH
  fi
  echo "commit : $(git describe --always --dirty) (on the host)" >&2
  NONLOCAL_MODEL=$model exec tools/analytics-lane trixie --shell \
    benches/objects.sh "$model" "$rounds" "$clips" "$objects"
fi
echo "GStreamer $(pkg-config --modversion gstreamer-1.0), ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-}" >&2
bench=$(cargo bench -q --features analytics --bench throughput --no-run --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "throughput" and m.get("executable"):
        print(m["executable"])')
forms=$(mktemp)
trap 'rm -f "$forms"' EXIT
echo "objects $bench -- --model $model --provider cpu --batches 1 --streams 1 --objects $objects --max-batch 1 --size 640x480" > "$forms"
benches/compare-builds.sh --forms "$forms" "$rounds" "$clips"
