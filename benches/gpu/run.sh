#!/usr/bin/env bash
# Checks and measurements on a CUDA machine, in one go:
#   benches/gpu/run.sh [check|bench|bench-element|multi|graphs|kprof|all]   (default all; multi
#   needs two cards)
#   (bench is bench-torch, bench-c2d, bench-i3d and bench-table, which can run one by one into
#   the same $OUT)
#
# check: the pipeline, error and batching tests with the CUDA provider, then tests/gpu.rs (CUDA and
#        CPU agree within float16 tolerance on every model; a GPU out-of-memory is one clear error).
# bench: PyTorch eager (fp16, channels_last, every form) and the throughput benchmark on the same
#        card, same weights, then one table (benches/gpu/table.py).
#
# Expects, under $BIN (default .gpu-run): libgstnonlocal.so, the release test binaries element,
# errors, batching and gpu (`cargo test --release --no-run`), the throughput bench binary, and
# optionally models/*.onnx to add; ONNX Runtime with CUDA on ORT_DYLIB_PATH, GStreamer on the
# library path, and a Python with torch, numpy and onnx ($PY, default python3). The Non-local
# models (random weights, seed 0) are exported here. Logs go to $OUT (default ./gpu-out).
set -u
PHASE=${1:-all}
BIN=${BIN:-.gpu-run}
OUT=${OUT:-gpu-out}
PY=${PY:-python3}
MODELS=${MODELS:-$OUT/models}
mkdir -p "$OUT" "$MODELS"
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
export GST_PLUGIN_PATH=$BIN
# The test binaries find tests/models through the crate path they were built in.
SRC_DIR=${NONLOCAL_SRC_DIR:-}
if [ -n "$SRC_DIR" ] && [ ! -e "$SRC_DIR" ]; then
  mkdir -p "$(dirname "$SRC_DIR")" && ln -s "$PWD" "$SRC_DIR"
fi

export_models() {
  # float16 weights; uint8 input normalised on the card (what the element feeds best), and the
  # float16-input form for comparison; I3D with FAIR's one-convolution stem (--stem conv3d) and
  # with the exporter's default stacked stem.
  [ -f "$MODELS/c2d-r50-nl-u8-2d.onnx" ] ||
    "$PY" tools/export_model.py --arch c2d-r50-nl --fp16 --uint8 --form 2d \
      -o "$MODELS/c2d-r50-nl-u8-2d.onnx" >> "$OUT/export.txt" 2>&1
  [ -f "$MODELS/i3d-r50-nl-u8-stacked.onnx" ] ||
    "$PY" tools/export_model.py --arch i3d-r50-nl --fp16 --uint8 --stem stacked \
      -o "$MODELS/i3d-r50-nl-u8-stacked.onnx" >> "$OUT/export.txt" 2>&1
  for arch in c2d-r50-nl i3d-r50-nl; do
    [ -f "$MODELS/$arch-u8.onnx" ] ||
      "$PY" tools/export_model.py --arch "$arch" --fp16 --uint8 --stem conv3d \
        -o "$MODELS/$arch-u8.onnx"
    [ -f "$MODELS/$arch-f16.onnx" ] ||
      "$PY" tools/export_model.py --arch "$arch" --fp16 --stem conv3d -o "$MODELS/$arch-f16.onnx"
  done >> "$OUT/export.txt" 2>&1
  cp "$BIN"/models/*.onnx "$MODELS/" 2>/dev/null || true
}

check() {
  {
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo "ORT: $ORT_DYLIB_PATH"
  } > "$OUT/machine.txt" 2>&1
  gst-inspect-1.0 nonlocalclassify > "$OUT/inspect.txt" 2>&1
  echo "inspect rc=$?" >> "$OUT/summary.txt"
  # The pipeline tests run with execution-provider=auto, which is CUDA here.
  for t in element errors batching; do
    NONLOCAL_EXPECT_CUDA=1 timeout 300 "$BIN/$t" --test-threads=2 > "$OUT/$t-tests.txt" 2>&1
    echo "$t tests rc=$? $(grep 'test result' "$OUT/$t-tests.txt")" >> "$OUT/summary.txt"
  done
  export_models
  NONLOCAL_GPU_MODELS=$(ls "$MODELS"/*.onnx | tr '\n' ':' | sed 's/:$//') \
    timeout 300 "$BIN/gpu" --ignored --test-threads=1 --nocapture > "$OUT/gpu-tests.txt" 2>&1
  echo "gpu tests rc=$? $(grep 'test result' "$OUT/gpu-tests.txt")" >> "$OUT/summary.txt"
}

bench_run() { timeout 420 "$BIN/throughput" --provider cuda --json "$OUT/bench.jsonl" "$@" \
                >> "$OUT/bench.txt" 2>&1
              echo "rc=$? $*" >> "$OUT/bench.txt"; }

# PyTorch's forms at batch 1 and 8 on the same weights, and the card.
bench_torch() {
  export_models
  : > "$OUT/torch.jsonl"
  for arch in c2d-r50-nl i3d-r50-nl; do
    for b in 1 8; do
      "$PY" benches/torch_reference.py --weights "$MODELS/$arch-u8.onnx" --batch "$b" \
        --channels-last --sweep --json >> "$OUT/torch.jsonl" 2>> "$OUT/torch.err"
    done
  done
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv \
    > "$OUT/card.txt" 2>&1
}

# The engine and the element with the engine's CUDA defaults (prefer_nhwc=1, fuse_conv_bias=1);
# `-untuned`: the CUDA provider's own defaults; `-1lane`: one batch in flight instead of two;
# `-ball`: test sources that draw every frame (pattern=ball) instead of copying a static one;
# `-stacked`: I3D exported with `--stem stacked`.
bench_c2d() {
  export_models
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8 \
    --batches 1,2,4,8,16 --streams 1,8,32,64 --clips 512 --live-streams 100 --live-seconds 30
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8-staggered --batches 8 \
    --streams 0 --live-streams 100 --live-seconds 30 --live-stagger
  NONLOCAL_CUDA_OPTIONS=prefer_nhwc=0 bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" \
    --name c2d-r50-nl-u8-untuned --batches 1,8 --streams 0
  NONLOCAL_CUDA_LANES=1 bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" \
    --name c2d-r50-nl-u8-1lane --batches 1,8 --streams 64 --clips 512
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8-ball --batches 8 \
    --streams 64 --clips 512 --pattern ball
  bench_run --model "$MODELS/c2d-r50-nl-u8-2d.onnx" --name c2d-r50-nl-u8-2d --batches 1,8,16 \
    --streams 0
  bench_run --model "$MODELS/c2d-r50-nl-f16.onnx" --name c2d-r50-nl-f16 --batches 1,8 \
    --streams 8 --clips 256
}

bench_i3d() {
  export_models
  bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" --name i3d-r50-nl-u8 \
    --batches 1,2,4,8,16 --streams 1,8,32,64 --clips 256
  NONLOCAL_CUDA_OPTIONS=prefer_nhwc=0 bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" \
    --name i3d-r50-nl-u8-untuned --batches 1,8 --streams 0
  NONLOCAL_CUDA_LANES=1 bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" \
    --name i3d-r50-nl-u8-1lane --batches 1,8 --streams 64 --clips 256
  bench_run --model "$MODELS/i3d-r50-nl-u8-stacked.onnx" --name i3d-r50-nl-u8-stacked \
    --batches 1,2,4,8,16 --streams 8,32,64 --clips 256
  NONLOCAL_CUDA_LANES=1 bench_run --model "$MODELS/i3d-r50-nl-u8-stacked.onnx" \
    --name i3d-r50-nl-u8-stacked-1lane --batches 1,8 --streams 0
  bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" --name i3d-r50-nl-u8-ball --batches 8 \
    --streams 64 --clips 256 --pattern ball
  bench_run --model "$MODELS/i3d-r50-nl-f16.onnx" --name i3d-r50-nl-f16 --batches 1,8 \
    --streams 8 --clips 128
  if [ -f "$MODELS/i3d-kinetics400-u8.onnx" ]; then
    bench_run --model "$MODELS/i3d-kinetics400-u8.onnx" --name i3d-kinetics400-u8 \
      --batches 1,8 --streams 8 --clips 128
  fi
}

# The element against the engine alone at batch 8 (32 and 64 streams), and the latency of 100
# live cameras started one by one; no PyTorch (compare with a `bench` run's table).
bench_element() {
  export_models
  for m in c2d-r50-nl-u8 i3d-r50-nl-u8-stacked i3d-r50-nl-u8; do
    bench_run --model "$MODELS/$m.onnx" --name "$m" --batches 1,8 --streams 32,64 --clips 512
  done
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8-staggered --batches 1 \
    --streams 0 --live-streams 100 --live-seconds 30 --live-stagger
  grep -E "^model|^\| (engine|element|live)|^rc=" "$OUT/bench.txt"
}

bench_table() {
  "$PY" benches/gpu/table.py "$OUT/bench.jsonl" "$OUT/torch.jsonl" > "$OUT/table.md" 2>&1
  cat "$OUT/table.md"
}

bench() {
  : > "$OUT/bench.jsonl"
  bench_torch; bench_c2d; bench_i3d; bench_table
}

# Two cards: the same model on one card, then on both (an engine each; engine runs on both at
# once, element streams alternating between them).
multi() {
  export_models
  J=$OUT/multi.jsonl
  : > "$J"
  nvidia-smi --query-gpu=index,name,driver_version --format=csv > "$OUT/cards.txt" 2>&1
  for devs in 0 0,1; do
    for m in c2d-r50-nl-u8 i3d-r50-nl-u8; do
      timeout 240 "$BIN/throughput" --provider cuda --json "$J" --devices "$devs" \
        --model "$MODELS/$m.onnx" --name "$m" --batches 8,16 --streams 64 --clips 512 \
        >> "$OUT/multi.txt" 2>&1
      echo "rc=$? $m devices $devs" >> "$OUT/multi.txt"
    done
  done
  grep -E "^devices|^model|^\| (engine|element)" "$OUT/multi.txt"
}

# CUDA graphs (NONLOCAL_CUDA_GRAPH=1) against plain runs of the same models, and the CUDA/CPU
# agreement with graphs on.
graphs() {
  export_models
  J=$OUT/graphs.jsonl
  : > "$J"
  NONLOCAL_CUDA_GRAPH=1 NONLOCAL_GPU_MODELS="$MODELS/c2d-r50-nl-u8.onnx:$MODELS/i3d-r50-nl-u8.onnx" \
    timeout 300 "$BIN/gpu" --ignored --exact cuda_and_cpu_agree_within_fp16_tolerance \
    --nocapture > "$OUT/graphs-agree.txt" 2>&1
  echo "agreement with CUDA graphs rc=$? $(grep 'test result' "$OUT/graphs-agree.txt")"
  for m in c2d-r50-nl-u8 i3d-r50-nl-u8; do
    for g in 0 1; do
      NONLOCAL_CUDA_GRAPH=$g timeout 240 "$BIN/throughput" --provider cuda --json "$J" \
        --model "$MODELS/$m.onnx" --name "$m-graph$g" --batches 1,8 --streams 8 --clips 256 \
        >> "$OUT/graphs.txt" 2>&1
      echo "rc=$? $m graph=$g" >> "$OUT/graphs.txt"
    done
  done
  grep -E "^model|^\| (engine|element)|^rc=" "$OUT/graphs.txt"
}

# Kernel-level profiles (benches/gpu/kprof.c, built as $BIN/libkprof.so) of the engine at batch 8
# under CUDA provider options, and of PyTorch's forms on the same weights; throughput of each
# variant in $OUT/kprof.jsonl, profiles summarised in $OUT/kprof.md.
kprof() {
  export_models
  local lib=$BIN/libkprof.so P=$OUT/kprof.tsv J=$OUT/kprof.jsonl cupti
  [ -f "$lib" ] || { echo "kprof: $lib missing (cc -O2 -shared -fPIC -o $lib benches/gpu/kprof.c -ldl)"; return 1; }
  cupti=$("$PY" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
  cupti=$(find "$cupti" "$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)" \
    -name 'libcupti.so*' 2>/dev/null | head -1)
  echo "CUPTI: ${cupti:-not found}" >> "$OUT/kprof.txt"
  : > "$P"; : > "$J"
  prof() { local label=$1; shift
    CUDA_INJECTION64_PATH=$lib KPROF_CUPTI=$cupti KPROF_OUT=$P KPROF_LABEL=$label "$@"; }
  ort() { local m=$1 name=$2 opts=$3
    NONLOCAL_CUDA_OPTIONS=$opts prof "ort $name:clips=512" timeout 240 "$BIN/throughput" \
      --provider cuda --json "$J" --model "$MODELS/$m.onnx" --name "$name" --batches 8 \
      --streams 0 --clips 512 >> "$OUT/kprof.txt" 2>&1
    echo "rc=$? $name ($opts)" >> "$OUT/kprof.txt"; }
  # The engine's defaults (prefer_nhwc=1, fuse_conv_bias=1) and the CUDA provider's own
  # (prefer_nhwc=0, which also leaves fusion out).
  for m in c2d-r50-nl-u8 i3d-r50-nl-u8; do
    ort "$m" "$m" ""
    ort "$m" "$m-plain" "prefer_nhwc=0"
  done
  ort c2d-r50-nl-u8-2d c2d-r50-nl-u8-2d ""
  ort i3d-r50-nl-u8-stacked i3d-r50-nl-u8-stacked ""
  for spec in c2d-r50-nl:2d: i3d-r50-nl:2d:--sdpa; do
    IFS=: read -r arch form sdpa <<< "$spec"
    prof "torch $arch $form${sdpa:+ sdpa}:clips=1200" "$PY" benches/torch_reference.py \
      --weights "$MODELS/$arch-u8.onnx" --batch 8 --iters 50 --repeats 3 --channels-last \
      --form "$form" $sdpa --json >> "$OUT/kprof-torch.jsonl" 2>> "$OUT/kprof.txt"
  done
  "$PY" benches/gpu/kprof.py "$P" > "$OUT/kprof.md" 2>&1
  grep -E "^\| engine|^rc=|^model" "$OUT/kprof.txt"
  head -20 "$OUT/kprof.md"
}

case "$PHASE" in
  kprof) kprof ;;
  bench-torch) bench_torch ;;
  bench-c2d) bench_c2d ;;
  bench-i3d) bench_i3d ;;
  bench-table) bench_table ;;
  bench-element) bench_element ;;
  graphs) graphs ;;
  check) check ;;
  bench) bench ;;
  multi) multi ;;
  all) check; bench ;;
  *) echo "usage: $0 [check|bench|multi|graphs|kprof|all]" >&2; exit 2 ;;
esac
cat "$OUT/summary.txt" 2>/dev/null
