#!/usr/bin/env bash
# Checks and measurements on a CUDA machine, in one go. Expects, under $BIN (default .gpu-run):
#   libgstnonlocal.so, element/errors test binaries (built with `cargo test --no-run`),
#   element_overhead (the release bench binary) and models/*.onnx; ONNX Runtime with CUDA on
#   ORT_DYLIB_PATH and GStreamer on the library path. Writes logs to $OUT (default ./gpu-out).
#   benches/gpu/run.sh
set -u
BIN=${BIN:-.gpu-run}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export GST_PLUGIN_PATH=$PWD/$BIN
# The test binaries find tests/models through the crate path they were built in.
SRC_DIR=${NONLOCAL_SRC_DIR:-}
if [ -n "$SRC_DIR" ] && [ ! -e "$SRC_DIR" ]; then
  mkdir -p "$(dirname "$SRC_DIR")" && ln -s "$PWD" "$SRC_DIR"
fi
{
  date -u '+%Y-%m-%d %H:%M UTC'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "ORT: $ORT_DYLIB_PATH"
} > "$OUT/machine.txt" 2>&1
gst-inspect-1.0 nonlocalclassify > "$OUT/inspect.txt" 2>&1
echo "inspect rc=$?" >> "$OUT/summary.txt"

# The pipeline tests run with execution-provider=auto, which is CUDA here.
NONLOCAL_EXPECT_CUDA=1 "$BIN/element" --test-threads=2 > "$OUT/element-tests.txt" 2>&1
echo "element tests rc=$? $(grep 'test result' "$OUT/element-tests.txt")" >> "$OUT/summary.txt"
NONLOCAL_EXPECT_CUDA=1 "$BIN/errors" > "$OUT/error-tests.txt" 2>&1
echo "error tests rc=$? $(grep 'test result' "$OUT/error-tests.txt")" >> "$OUT/summary.txt"
if [ -x "$BIN/batching" ]; then
  "$BIN/batching" > "$OUT/batching-tests.txt" 2>&1
  echo "batching tests rc=$? $(grep 'test result' "$OUT/batching-tests.txt")" >> "$OUT/summary.txt"
fi

# Element overhead on the GPU, then on the CPU, with each model given.
for m in "$BIN"/models/*.onnx; do
  for run in "cuda 1 32" "cuda 8 128" "cuda 32 256" "cpu 1 4"; do
    set -- $run
    echo "== $m provider $1, $2 streams, $3 clips" >> "$OUT/bench.txt"
    timeout 300 "$BIN/element_overhead" --model "$m" --provider "$1" --streams "$2" --clips "$3" \
      >> "$OUT/bench.txt" 2>&1
    echo "rc=$?" >> "$OUT/bench.txt"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$OUT/bench.txt"
  done
done
cat "$OUT/summary.txt"
