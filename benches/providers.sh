#!/usr/bin/env bash
# ONNX Runtime's CPU provider against OpenVINO's, float32 and int8, on the CPU:
#   benches/providers.sh [ROUNDS] [CLIPS] > OUT.jsonl 2> OUT.txt
# Three forms of the throughput bench (release build), alternated round by round by
# benches/compare-builds.sh --forms, each `--batches 1,4 --streams 1,4` (BENCH_ARGS replaces
# that) with CLIPS clips a measurement:
#   cpu-f32   the default model (float32) on the CPU provider of the .venv's ONNX Runtime (the
#             CPU build, tools/versions.sh ORT_VERSION)
#   ov-f32    the same model on OpenVINO's provider (execution-provider=openvino) of ONNX
#             Runtime's OpenVINO build (OPENVINO_ORT_LIB)
#   ov-int8   the default model's int8 QDQ form (tools/default-model --int8) on OpenVINO's provider
# The summary divides each form by cpu-f32, measurement by measurement, and each element row by
# its engine row (element N streams ÷ engine at batch N).
# MODEL_F32 and MODEL_INT8 replace the two models (e.g. I3D-NL-R50's exports).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} clips=${2:-4}
# shellcheck source=tools/versions.sh
source tools/versions.sh
cpu_lib=$PWD/$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so."$ORT_VERSION")
[ -f "$OPENVINO_ORT_LIB" ] || { echo "no $OPENVINO_ORT_LIB: run tools/install-prereqs" >&2; exit 1; }
bench=$(cargo bench -q --bench throughput --no-run --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "throughput" and m.get("executable"):
        print(m["executable"])')
f32=${MODEL_F32:-$(tools/default-model)}
int8=${MODEL_INT8:-$(tools/default-model --int8)}
args=${BENCH_ARGS:---batches 1,4 --streams 1,4}
forms=$(mktemp)
trap 'rm -f "$forms"' EXIT
cat > "$forms" <<EOF
cpu-f32 $bench ORT_DYLIB_PATH=$cpu_lib -- --model $f32 --provider cpu $args
ov-f32 $bench ORT_DYLIB_PATH=$OPENVINO_ORT_LIB -- --model $f32 --provider openvino $args
ov-int8 $bench ORT_DYLIB_PATH=$OPENVINO_ORT_LIB -- --model $int8 --provider openvino $args
EOF
benches/compare-builds.sh --forms "$forms" "$rounds" "$clips"
