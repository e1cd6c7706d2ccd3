#!/usr/bin/env bash
# Checks and measurements on a CUDA machine, in one go:
#   benches/gpu/run.sh [check|bench|bench-element|multi|graphs|kprof|compile|steps|remote|clips-*|prio-*|all]
#   (default all; multi needs two cards; remote needs benches/gpu/remote-install.sh first)
#   (bench is bench-torch, bench-c2d, bench-i3d and bench-table, which can run one by one into
#   the same $OUT; compile is compile-engine, compile-torch and compile-table likewise)
#
# check: the pipeline, error and batching tests with the CUDA provider, then tests/gpu.rs (CUDA and
#        CPU agree within float16 tolerance on every model; a GPU out-of-memory is one clear error).
# bench: PyTorch eager (fp16, channels_last, every form) and the throughput benchmark on the same
#        card, same weights, then one table (benches/gpu/table.py).
# compile: the engine, PyTorch eager and torch.compile (inductor) on C2D-NL-R50 and I3D-NL-R50
#        (stacked stem) at batch 1, 8 and 16, each PyTorch form checked against ONNX Runtime's
#        scores on the clips it is timed on; one table per batch size (table.py --compile).
# remote: the element's remote backend against a tritonserver on the same card (python backend,
#        ONNX Runtime's CUDA provider) beside the in-process engine and element, same model,
#        streams and clips: clips/s and latency median / p99 (see "remote" below).
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
MODELS_GIVEN=${MODELS-}
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


# ---- compile: torch.compile against eager and the engine -----------------------------------
# Settings (environment):
#   COMPILE_SET     standard (default), quick or full: which torch.compile modes run, see below
#   COMPILE_MODES, COMPILE_KNOBS, COMPILE_BUDGET_S, COMPILE_TIMEOUT_S   override the set's
#                   --modes, --inductor KEY=VALUE list (space-separated; "" for none), start no
#                   configuration after this many seconds (per network), and the hard time box
#                   per network (SIGTERM: the cut configuration and the rest are listed as such)
#   COMPILE_NETS    models, default "c2d-r50-nl-u8 i3d-r50-nl-u8-stacked"
#   COMPILE_BATCHES default 1,8,16
#   COMPILE_TORCH_ARGS  more torch_reference.py arguments (e.g. "--iters 20"; "--device cpu
#                   --dtype fp32" tries the plumbing on a machine without a card)
#   INDUCTOR_CACHE  TORCHINDUCTOR_CACHE_DIR, default $HOME/.cache/nonlocal-inductor: kept on the
#                   machine between commands (not under $OUT, which starts empty each time and
#                   returns only a few files), so a second run compiles from the cache and an
#                   autotuning cut by the time box resumes where it stopped
#   MODELS          where the models and their ONNX Runtime input/scores pairs go; for this phase
#                   default $HOME/.cache/nonlocal-models (out of $OUT for the same reason)
# Writes $OUT/compile-{machine.txt,bench.jsonl,bench.txt,torch.jsonl,torch.txt,table.md}.
compile_settings() {
  local modes knobs budget box
  case ${COMPILE_SET:-standard} in
    # Batch 8 first with the strongest modes (the issue's target), then what the time allows.
    # max-autotune's coordinate-descent tuning (launch settings of every element-wise kernel,
    # candidates compiled and timed one after another) is left out here, kept in "full".
    # (--modes takes each mode once: reduce-overhead@8/1/16 runs batch 8 first.)
    standard) modes=eager,max-autotune@8,reduce-overhead@8/1/16,max-autotune-no-cudagraphs@8
              modes=$modes,default@8
              knobs=coordinate_descent_tuning=False budget=130 box=200 ;;
    quick)    modes=eager,reduce-overhead,default@8 knobs= budget=150 box=240 ;;
    full)     modes=eager,default,reduce-overhead,max-autotune-no-cudagraphs,max-autotune
              knobs= budget= box=3600 ;;
    *) echo "compile: COMPILE_SET is standard, quick or full, not $COMPILE_SET" >&2; return 2 ;;
  esac
  C_MODES=${COMPILE_MODES:-$modes}
  C_KNOBS=${COMPILE_KNOBS-$knobs}
  C_BUDGET=${COMPILE_BUDGET_S-$budget}
  C_BOX=${COMPILE_TIMEOUT_S:-$box}
  C_NETS=${COMPILE_NETS:-c2d-r50-nl-u8 i3d-r50-nl-u8-stacked}
  C_BATCHES=${COMPILE_BATCHES:-1,8,16}
  C_CACHE=${INDUCTOR_CACHE:-${HOME:-/root}/.cache/nonlocal-inductor}
  C_MODELS=${MODELS_GIVEN:-${HOME:-/root}/.cache/nonlocal-models}
  mkdir -p "$C_MODELS"
}

# The model file of a compile network in $C_MODELS (carried in $BIN/models, else exported here,
# the exporter's output appended to LOG, default $OUT/compile-torch.txt); prints its path.
model_file() {
  local m=$1 log=${2:-$OUT/compile-torch.txt} f=$C_MODELS/$1.onnx args
  if [ ! -f "$f" ] && [ -f "$BIN/models/$m.onnx" ]; then cp "$BIN/models/$m.onnx" "$f"; fi
  if [ ! -f "$f" ]; then
    case $m in
      c2d-r50-nl-u8) args="--arch c2d-r50-nl --fp16 --uint8 --stem conv3d" ;;
      c2d-r50-nl-u8-2d) args="--arch c2d-r50-nl --fp16 --uint8 --form 2d" ;;
      i3d-r50-nl-u8-stacked) args="--arch i3d-r50-nl --fp16 --uint8 --stem stacked" ;;
      i3d-r50-nl-u8) args="--arch i3d-r50-nl --fp16 --uint8 --stem conv3d" ;;
      c2d-r50-nl-u8-s2d) args="--arch c2d-r50-nl --fp16 --uint8 --stem s2d" ;;
      c2d-r50-nl-u8-2d-s2d) args="--arch c2d-r50-nl --fp16 --uint8 --form 2d --stem s2d" ;;
      i3d-r50-nl-u8-s2d) args="--arch i3d-r50-nl --fp16 --uint8 --stem s2d" ;;
      # float32 weights: ONNX Runtime's fused convolution with activation is float32-only.
      i3d-r50-nl-u8-stacked-f32) args="--arch i3d-r50-nl --uint8 --stem stacked" ;;
      c2d-r50-nl-u8-s2d-f32) args="--arch c2d-r50-nl --uint8 --stem s2d" ;;
      *) echo "compile: no $f and no export recipe for $m" >&2; return 1 ;;
    esac
    # shellcheck disable=SC2086
    if ! timeout 300 "$PY" tools/export_model.py $args -o "$f.tmp.onnx" >> "$log" 2>&1; then
      rm -f "$f.tmp.onnx"
      return 1
    fi
    mv "$f.tmp.onnx" "$f"
  fi
  echo "$f"
}

# The model file of a compile network (model_file) and its ONNX Runtime input/scores pair
# (carried beside it, else written here by benches/ort_scores.py with the CPU provider); prints
# the model path.
compile_model() {
  local m=$1 f
  f=$(model_file "$m") || return 1
  for k in input scores; do
    if [ ! -f "$C_MODELS/$m.$k.npy" ] && [ -f "$BIN/models/$m.$k.npy" ]; then
      cp "$BIN/models/$m.$k.npy" "$C_MODELS/"
    fi
  done
  if [ ! -f "$C_MODELS/$m.scores.npy" ]; then
    "$PY" benches/ort_scores.py "$f" --out "$C_MODELS" >> "$OUT/compile-torch.txt" 2>&1 ||
      echo "compile: no ONNX Runtime scores for $m: its PyTorch rows are not checked" \
        >> "$OUT/compile-torch.txt"
  fi
  echo "$f"
}

compile_machine() {
  compile_settings || return
  {
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
      --format=csv
    "$PY" -c 'import torch, triton; print("torch", torch.__version__, "CUDA", torch.version.cuda,
"cuDNN", torch.backends.cudnn.version(), "Triton", triton.__version__)'
    echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "ORT: ${ORT_DYLIB_PATH:-unset}"
    echo "set ${COMPILE_SET:-standard}: modes $C_MODES; knobs ${C_KNOBS:-none}; budget" \
      "${C_BUDGET:-none} s; time box $C_BOX s per network; batches $C_BATCHES; cache $C_CACHE"
  } > "$OUT/compile-machine.txt" 2>&1
}

# The engine alone (clips from host memory) at the same batch sizes.
compile_engine() {
  compile_settings || return
  [ -f "$OUT/compile-machine.txt" ] || compile_machine
  local m f
  for m in $C_NETS; do
    f=$(compile_model "$m") || { echo "rc=1 $m: no model" >> "$OUT/compile-bench.txt"; continue; }
    timeout 300 "$BIN/throughput" --provider cuda --json "$OUT/compile-bench.jsonl" --model "$f" \
      --name "$m" --batches "$C_BATCHES" --streams 0 --clips 512 >> "$OUT/compile-bench.txt" 2>&1
    echo "rc=$? $m" >> "$OUT/compile-bench.txt"
  done
  grep -E "^\| engine|^rc=" "$OUT/compile-bench.txt"
}

# PyTorch on the same weights (read from the model file) and clips: every eager form, then the
# set's torch.compile modes on the 2-D form with SDPA, one process per network.
compile_torch() {
  compile_settings || return
  [ -f "$OUT/compile-machine.txt" ] || compile_machine
  mkdir -p "$C_CACHE"
  local m f k verify knobs
  for m in $C_NETS; do
    f=$(compile_model "$m") || { echo "rc=1 $m: no model" >> "$OUT/compile-torch.txt"; continue; }
    verify=()
    [ -f "$C_MODELS/$m.scores.npy" ] &&
      verify=(--verify "$C_MODELS/$m.input.npy" "$C_MODELS/$m.scores.npy")
    knobs=()
    for k in $C_KNOBS; do knobs+=(--inductor "$k"); done
    echo "== $m $(date -u '+%H:%M:%S UTC')" >> "$OUT/compile-torch.txt"
    TORCHINDUCTOR_CACHE_DIR=$C_CACHE PYTHONUNBUFFERED=1 timeout -k 20 "$C_BOX" \
      "$PY" benches/torch_reference.py --weights "$f" --batches "$C_BATCHES" --channels-last \
      --sweep --modes "$C_MODES" "${knobs[@]}" ${C_BUDGET:+--budget-s "$C_BUDGET"} \
      "${verify[@]}" --tol 3e-2 --json ${COMPILE_TORCH_ARGS:-} >> "$OUT/compile-torch.jsonl" \
      2>> "$OUT/compile-torch.txt"
    echo "rc=$? $m $(date -u '+%H:%M:%S UTC')" >> "$OUT/compile-torch.txt"
  done
  grep -E "^rc=|^==" "$OUT/compile-torch.txt"
}

compile_table() {
  compile_settings || return
  local engines
  engines=$(echo "$C_NETS" | tr ' ' ',')
  "$PY" benches/gpu/table.py --compile "$OUT/compile-bench.jsonl" "$OUT/compile-torch.jsonl" \
    --card <(sed -n '2,3p' "$OUT/compile-machine.txt" 2>/dev/null) --engines "$engines" \
    > "$OUT/compile-table.md" 2>&1
  cat "$OUT/compile-table.md"
}

compile_all() {
  : > "$OUT/compile-bench.jsonl"; : > "$OUT/compile-torch.jsonl"
  compile_machine; compile_engine; compile_torch; compile_table
}

# ---- steps: what moves the engine, measured against torch.compile in the same run ------------
# The engine's candidate steps beside its current defaults at batch 1 and 8 (COMPILE_BATCHES):
# the space-to-depth stem (--stem s2d) in both graph forms, CUDA graphs with the two lanes, a
# third lane; then PyTorch eager and torch.compile reduce-overhead (the best compiled form of
# the last table; COMPILE_MODES overrides) on the same weights, one table per batch size; then
# the element at 32 and 64 streams for I3D with both stems, and 100 live C2D cameras started
# all at once and one by one; and CUDA against the CPU on the new stems. A run is
# MODEL[@VARIANT] (variant_env's words). Phases: steps-engine, steps-torch, steps-table, steps-element,
# steps-check (steps runs the five).
STEP_RUNS=${STEP_RUNS:-c2d-r50-nl-u8 c2d-r50-nl-u8-s2d c2d-r50-nl-u8-2d-s2d c2d-r50-nl-u8-s2d@graph
c2d-r50-nl-u8-s2d@3lanes i3d-r50-nl-u8-stacked i3d-r50-nl-u8-s2d i3d-r50-nl-u8-s2d@graph
i3d-r50-nl-u8-s2d@3lanes}
# The environment of a run's variant: words joined by '+', each graph (CUDA graphs), 3lanes or
# 4lanes (NONLOCAL_CUDA_LANES), nice (the engine's threads at NONLOCAL_ENGINE_NICE=$PRIO_NICE,
# default -10) or nchw (channels-first convolutions, where ONNX Runtime fuses the activation into
# float32 ones); "" or base: the defaults. Fails on an unknown word.
variant_env() {
  local word env=
  for word in $(echo "$1" | tr '+' ' '); do
    case $word in
      base) ;;
      graph) env="$env NONLOCAL_CUDA_GRAPH=1" ;;
      3lanes|4lanes) env="$env NONLOCAL_CUDA_LANES=${word%lanes}" ;;
      nice) env="$env NONLOCAL_ENGINE_NICE=${PRIO_NICE:--10}" ;;
      nchw) env="$env NONLOCAL_CUDA_OPTIONS=prefer_nhwc=0" ;;
      resample) ;; # the element's resample=engine: a bench argument (resample_arg), no variable
      *) return 1 ;;
    esac
  done
  echo "$env"
}

# The bench's --resample for a variant: engine when one of its words is `resample` (nothing
# otherwise, so that builds before the argument run the other variants).
resample_arg() {
  case "+$1+" in
    *+resample+*) echo "--resample engine" ;;
  esac
}

steps_env() {
  export COMPILE_BATCHES=${COMPILE_BATCHES:-1,8}
  export COMPILE_MODES=${COMPILE_MODES:-eager,reduce-overhead@8/1}
}

steps_engine() {
  steps_env
  compile_settings || return
  [ -f "$OUT/compile-machine.txt" ] || compile_machine
  local run m variant f env
  for run in $STEP_RUNS; do
    m=${run%@*} variant=
    [ "$run" != "$m" ] && variant=${run#*@}
    env=$(variant_env "$variant") ||
      { echo "rc=2 $run: unknown variant $variant" >> "$OUT/compile-bench.txt"; continue; }
    f=$(compile_model "$m") || { echo "rc=1 $run: no model" >> "$OUT/compile-bench.txt"; continue; }
    # shellcheck disable=SC2086
    env $env timeout 300 "$BIN/throughput" --provider cuda --json "$OUT/compile-bench.jsonl" \
      --model "$f" --name "${run/@/-}" --batches "$C_BATCHES" --streams 0 --clips 512 \
      >> "$OUT/compile-bench.txt" 2>&1
    echo "rc=$? $run ${env:-defaults}" >> "$OUT/compile-bench.txt"
  done
  grep -E "^model|^\| engine|^rc=" "$OUT/compile-bench.txt"
}

steps_torch() {
  steps_env
  compile_torch
}

steps_table() {
  steps_env
  local engines
  engines=$(for run in $STEP_RUNS; do printf '%s,' "${run/@/-}"; done)
  COMPILE_NETS="$(echo "$engines" | tr ',' ' ')" compile_table
}

# CUDA and the CPU agree on the space-to-depth stems (tests/gpu.rs, the $BIN/gpu test binary).
steps_check() {
  steps_env
  compile_settings || return
  local m f models=
  for m in c2d-r50-nl-u8-s2d c2d-r50-nl-u8-2d-s2d i3d-r50-nl-u8-s2d; do
    f=$(compile_model "$m") && models=${models:+$models:}$f
  done
  NONLOCAL_GPU_MODELS=$models timeout 300 "$BIN/gpu" --ignored --exact \
    cuda_and_cpu_agree_within_fp16_tolerance --nocapture > "$OUT/steps-agree.txt" 2>&1
  echo "s2d stems, CUDA against the CPU: rc=$? $(grep 'test result' "$OUT/steps-agree.txt")" |
    tee -a "$OUT/summary.txt"
}

steps_element() {
  steps_env
  compile_settings || return
  local m f
  for m in i3d-r50-nl-u8-stacked i3d-r50-nl-u8-s2d; do
    f=$(compile_model "$m") || continue
    bench_run --model "$f" --name "$m" --batches 8 --streams 32,64 --clips 512
  done
  live_cameras || return
  grep -E "^model|^\| (engine|element|live)|^rc=" "$OUT/bench.txt"
}

# 100 live C2D cameras, started all at once and one by one over a clip period.
live_cameras() {
  local f
  f=$(compile_model c2d-r50-nl-u8) || return
  bench_run --model "$f" --name c2d-r50-nl-u8 --batches 1 --streams 0 --live-streams 100 \
    --live-seconds 30
  bench_run --model "$f" --name c2d-r50-nl-u8-staggered --batches 1 --streams 0 \
    --live-streams 100 --live-seconds 30 --live-stagger
}

# A build against another in one run: this build ($BIN) and the one to compare with ($BIN_OLD),
# one after the other, the engine and the element at 32 and 64 I3D streams, without and with
# CUDA graphs (CLIPS_ROUND names the round); made for page-locked clip buffers (docs/benchmarks.md,
# 2026-12-02: the element packing into buffers the engine lends against the build before them). clips-check: the CUDA tests of this build first;
# clips-live: 100 live C2D cameras on this build; clips-table: element/engine per row.
clips_check() {
  steps_env
  compile_settings || return
  # A real network first (the out-of-memory and refused-fusion tests take the first model), the
  # probe models (whose scores show each clip's slot) after; one test at a time (one of them
  # sets NONLOCAL_CUDA_OPTIONS).
  local m f models=
  for m in i3d-r50-nl-u8-stacked c2d-r50-nl-u8 i3d-r50-nl-u8-s2d; do
    f=$(compile_model "$m") && models=${models:+$models:}$f
  done
  for m in probe_u8 probe_nthwc_f16 probe_batch2; do
    models=${models:+$models:}$PWD/tests/models/$m.onnx
  done
  NONLOCAL_GPU_MODELS=$models timeout 400 "$BIN/gpu" --ignored --nocapture --test-threads=1 \
    > "$OUT/clips-gpu-tests.txt" 2>&1
  echo "CUDA tests of this build: rc=$? $(grep 'test result' "$OUT/clips-gpu-tests.txt")" |
    tee -a "$OUT/summary.txt"
}

clips_ab() {
  steps_env
  compile_settings || return
  if [ ! -x "${BIN_OLD:-}/throughput" ]; then
    echo "clips: BIN_OLD must hold the throughput bench and plugin of the build to compare with" |
      tee -a "$OUT/summary.txt"
    return 2
  fi
  local m=i3d-r50-nl-u8-stacked f build dir graph name
  f=$(compile_model "$m") || return
  for build in new old; do
    dir=$BIN
    [ "$build" = old ] && dir=$BIN_OLD
    for graph in 0 1; do
      name=$m-$build
      [ "$graph" = 1 ] && name=$name-graph
      NONLOCAL_CUDA_GRAPH=$graph GST_PLUGIN_PATH=$dir GST_REGISTRY=$OUT/registry-$build.bin \
        timeout 280 "$dir/throughput" --provider cuda --json "$OUT/clips.jsonl" --model "$f" \
        --name "$name-r${CLIPS_ROUND:-1}" --batches 8 --streams 32,64 --clips 1024 \
        >> "$OUT/clips.txt" 2>&1
      echo "rc=$? $name round ${CLIPS_ROUND:-1}" >> "$OUT/clips.txt"
    done
  done
  grep -E "^model|^\| (engine|element)|^rc=" "$OUT/clips.txt"
}

# The engine's threads at a higher priority than the pipelines' (NONLOCAL_ENGINE_NICE, needs
# root or CAP_SYS_NICE), more lanes and CUDA graphs, alone and together: this build, the engine
# at batch 8 and the element at 32 and 64 I3D streams per variant (PRIO_RUNS, variant_env's
# words), PRIO_ROUNDS rounds of them all (default 2; PRIO_ROUND_LIST names them instead, e.g. "2"
# for a second round in a later machine session); prio-table: element/engine per row. A run
# written old:VARIANT runs the bench in $BIN_OLD instead (a bench registers its own element), so
# that two builds alternate in one run; its rows are named old-VARIANT. The word `resample` runs
# the element with resample=engine (the centre crop's source pixels resampled on the card).
PRIO_RUNS=${PRIO_RUNS:-base graph nice nice+graph 3lanes+graph nice+3lanes+graph}
prio_ab() {
  steps_env
  compile_settings || return
  local m=i3d-r50-nl-u8-stacked f round run env dir build
  f=$(compile_model "$m") || return
  for round in ${PRIO_ROUND_LIST:-$(seq 1 "${PRIO_ROUNDS:-2}")}; do
    for run in $PRIO_RUNS; do
      dir=$BIN build=
      case $run in
        old:*) dir=${BIN_OLD:-} build=old- run=${run#old:}
               [ -x "$dir/throughput" ] ||
                 { echo "rc=2 old:$run: BIN_OLD holds no throughput bench" >> "$OUT/prio.txt"; continue; } ;;
      esac
      env=$(variant_env "$run") || { echo "rc=2 $run: unknown variant" >> "$OUT/prio.txt"; continue; }
      # shellcheck disable=SC2086
      env $env timeout 200 "$dir/throughput" --provider cuda --json "$OUT/prio.jsonl" \
        --model "$f" --name "$m-$build$run-r$round" --batches 8 --streams 32,64 --clips 1024 \
        $(resample_arg "$run") >> "$OUT/prio.txt" 2>&1
      echo "rc=$? $m $build$run round $round:${env:- defaults}" >> "$OUT/prio.txt"
    done
  done
  grep -E "^model|^engine threads|^\| (engine|element)|^rc=" "$OUT/prio.txt"
}

# resample-prof: where the card's time goes with resample=element and resample=engine: the
# throughput bench under kprof (CUPTI, every kernel and copy of the timed engine runs and of
# the element's pipelines, one range each), I3D at batch 8 and 32 element streams (RPROF_STREAMS).
resample_prof() {
  compile_settings || return
  local lib=$BIN/libkprof.so m=i3d-r50-nl-u8-stacked f cupti where
  [ -f "$lib" ] || { echo "resample-prof: $lib missing (cc -O2 -shared -fPIC -o $lib benches/gpu/kprof.c -ldl)"; return 1; }
  f=$(compile_model "$m") || return
  cupti=$("$PY" -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
  cupti=$(find "$cupti" -name 'libcupti.so*' 2>/dev/null | head -1)
  echo "CUPTI: ${cupti:-not found}" >> "$OUT/rprof.txt"
  for where in element engine; do
    CUDA_INJECTION64_PATH=$lib KPROF_CUPTI=$cupti KPROF_OUT=$OUT/rprof-$where.tsv \
      KPROF_LABEL="resample=$where:clips=1024" timeout 240 "$BIN/throughput" --provider cuda \
      --json "$OUT/rprof.jsonl" --model "$f" --name "$m-resample-$where" --batches 8 \
      --streams "${RPROF_STREAMS:-32}" --clips 1024 --resample "$where" >> "$OUT/rprof.txt" 2>&1
    echo "rc=$? resample=$where" >> "$OUT/rprof.txt"
    "$PY" benches/gpu/kprof.py "$OUT/rprof-$where.tsv" > "$OUT/rprof-$where.md" 2>&1
  done
  grep -E "^\| (engine|element)|per run|^rc=" "$OUT/rprof.txt"
}

clips_live() {
  steps_env
  compile_settings || return
  live_cameras || return
  grep -E "^model|^\| (engine|live)|^rc=" "$OUT/bench.txt"
}

# element/engine per run of a bench JSON file ($1, default clips) into $OUT/$1-table.md.
clips_table() {
  local name=${1:-clips}
  "$PY" - "$OUT/$name.jsonl" <<'PY' | tee "$OUT/$name-table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| run | engine batch 8 | element 32 | 32 / engine | element 64 | 64 / engine |")
print("|---|---|---|---|---|---|")
for name in dict.fromkeys(r["model"] for r in rows):
    mine = [r for r in rows if r["model"] == name]
    eng = next((r["clips_per_s"] for r in mine if r["kind"] == "engine"), None)
    el = {r["streams"]: r["clips_per_s"] for r in mine if r["kind"] == "element"}
    cells = [f"{eng:.1f}" if eng else "-"]
    for s in (32, 64):
        v = el.get(s)
        cells += [f"{v:.1f}" if v else "-", f"{v / eng:.2f}" if v and eng else "-"]
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
}

# ---- remote: the element's remote backend on the card against the in-process engine ----------
# The throughput bench on one card, one model, the same streams and clips: the in-process engine
# and element first (--provider cuda), then the same bench with --server on a tritonserver on
# 127.0.0.1 (the nvidia-pytriton wheel's, installed by benches/gpu/remote-install.sh) whose
# python-backend model runs ONNX Runtime's CUDA provider with the element's CUDA options
# (tools/nlexport/triton_python_model.py: instances KIND_CPU, the session on card 0; warmed up at
# every batch size before the server reports ready). One server per model, started after the
# in-process rows and stopped (its process group) before the next model. Settings (environment):
#   REMOTE_NETS       models (model_file's names), default "i3d-r50-nl-u8-stacked c2d-r50-nl-u8"
#   REMOTE_STREAMS    element streams, default 8,64; REMOTE_BATCHES engine batch sizes, default 8
#   REMOTE_CLIPS      clips per measurement, default 512
#   REMOTE_INSTANCES  the server's instances per model, default 2 (each a stub process with its
#                     own session, as the engine's two lanes); REMOTE_MAX_BATCH its max_batch_size
#                     (8) and REMOTE_QUEUE_US its dynamic batcher's queue delay (2000)
#   REMOTE_REQUESTS   --server-requests (batches in flight), default 4 (the element's default)
#   REMOTE_PROVIDER   the server's provider, cuda (default) or cpu; REMOTE_LOCAL_PROVIDER the
#                     in-process rows' (cuda)
#   REMOTE_SITE       the server's site folder, default /root/gpu-remote/site
#   REMOTE_PY         the Python the server's models run in, default $PY
#   REMOTE_SHM_MIB    the python backend's shared memory per instance at start (default 64)
#   REMOTE_DEADLINE_S the phase's time box in seconds (default 450): every step's timeout is cut
#                     to what is left, and a model with less than REMOTE_MODEL_MIN_S (150) left is
#                     skipped (said in the summary)
#   REMOTE_WORK       models' repository and server logs while running, default
#                     $HOME/.cache/nonlocal-remote (out of $OUT, which returns few files)
#   MODELS            where the models are (default $HOME/.cache/nonlocal-models, as compile)
# Writes $OUT/remote-{machine.txt,bench.txt,bench.jsonl,server.log}, a line per model to
# $OUT/summary.txt; prints the bench rows (clips/s, latency median / p99) and a table of both.
remote_settings() {
  compile_settings || return
  R_NETS=${REMOTE_NETS:-i3d-r50-nl-u8-stacked c2d-r50-nl-u8}
  R_STREAMS=${REMOTE_STREAMS:-8,64}
  R_BATCHES=${REMOTE_BATCHES:-8}
  R_CLIPS=${REMOTE_CLIPS:-512}
  R_INSTANCES=${REMOTE_INSTANCES:-2}
  R_MAX_BATCH=${REMOTE_MAX_BATCH:-8}
  R_QUEUE_US=${REMOTE_QUEUE_US:-2000}
  R_REQUESTS=${REMOTE_REQUESTS:-4}
  R_PROVIDER=${REMOTE_PROVIDER:-cuda}
  R_LOCAL=${REMOTE_LOCAL_PROVIDER:-cuda}
  R_SITE=${REMOTE_SITE:-/root/gpu-remote/site}
  R_PY=${REMOTE_PY:-$PY}
  R_SHM=$(( ${REMOTE_SHM_MIB:-64} * 1048576 ))
  R_DEADLINE=$(( SECONDS + ${REMOTE_DEADLINE_S:-450} ))
  R_MODEL_MIN=${REMOTE_MODEL_MIN_S:-150}
  R_WORK=${REMOTE_WORK:-${HOME:-/root}/.cache/nonlocal-remote}
  R_TXT=$OUT/remote-bench.txt R_JSON=$OUT/remote-bench.jsonl R_LOG=$OUT/remote-server.log
  R_PID=""
}

# A step's time box: BOX seconds, cut to what is left of the phase less 15 s (0: none left).
remote_box() {
  local left=$(( R_DEADLINE - SECONDS - 15 ))
  if [ "$left" -lt "$1" ]; then echo $(( left > 0 ? left : 0 )); else echo "$1"; fi
}

remote_stop() {
  [ -n "$R_PID" ] || return 0
  kill -TERM -- "-$R_PID" 2>/dev/null
  local i
  for i in $(seq 1 60); do
    kill -0 "$R_PID" 2>/dev/null || break
    [ "$i" = 40 ] && kill -KILL -- "-$R_PID" 2>/dev/null
    sleep 0.5
  done
  # Stubs outlive a killed server: their group goes too.
  kill -KILL -- "-$R_PID" 2>/dev/null
  R_PID=""
}

remote_say() { echo "$*" | tee -a "$R_TXT"; }

# The bench's error line since line $1 of the log, when a run failed (rc 124: its time box ran out).
remote_error() { tail -n "+$1" "$R_TXT" | grep -a "^Error:" | tail -n 1 | cut -c1-400; }

remote_one() {
  local m=$1 f t rc rep log out grpc line
  if [ "$(remote_box "$R_MODEL_MIN")" -lt "$R_MODEL_MIN" ]; then
    remote_say "rc=skip $m: less than ${R_MODEL_MIN} s of the phase's box left (REMOTE_DEADLINE_S)"
    echo "remote $m: skipped, out of time" >> "$OUT/summary.txt"
    return 1
  fi
  f=$(model_file "$m" "$R_TXT") ||
    { remote_say "rc=1 $m: no model file (export failed: $R_TXT; or MODELS)"; return 1; }
  remote_say "== $m $(date -u '+%H:%M:%S UTC'): $f"

  # In-process, on the card.
  t=$(remote_box 150)
  [ "$t" -ge 30 ] || { remote_say "rc=skip $m: out of time (REMOTE_DEADLINE_S)"; return 1; }
  line=$(wc -l < "$R_TXT")
  timeout -k 10 "$t" "$BIN/throughput" --provider "$R_LOCAL" --json "$R_JSON" --model "$f" \
    --name "$m" --batches "$R_BATCHES" --streams "$R_STREAMS" --clips "$R_CLIPS" >> "$R_TXT" 2>&1
  rc=$?
  remote_say "rc=$rc in-process $m ($R_LOCAL; time box $t s)"
  [ "$rc" = 0 ] || remote_error "$line"

  # The same model behind a local tritonserver.
  rep=$R_WORK/repo-$m log=$R_WORK/server-$m.log
  rm -rf "$rep" "$log"
  mkdir -p "$rep"
  if ! timeout 120 "$PY" tools/triton-repo --backend python --instances "$R_INSTANCES" \
      --max-batch "$R_MAX_BATCH" --queue-delay-us "$R_QUEUE_US" "$rep" "$f=$m" >> "$R_TXT" 2>&1; then
    remote_say "rc=1 remote $m: tools/triton-repo could not write the entry (above)"
    return 1
  fi
  t=$(remote_box 240)
  [ "$t" -ge 60 ] || { remote_say "rc=skip remote $m: out of time (REMOTE_DEADLINE_S)"; return 1; }
  out=$(timeout -k 5 "$t" tools/triton-serve --repo "$rep" --python "$R_PY" --site "$R_SITE" \
    --provider "$R_PROVIDER" --pid-file "$R_WORK/server.pid" --log "$log" \
    --ready-timeout $(( t > 20 ? t - 10 : 10 )) \
    --server-arg "--backend-config=python,shm-default-byte-size=$R_SHM" \
    --server-arg "--backend-config=python,shm-growth-byte-size=$R_SHM" 2>> "$R_TXT")
  rc=$?
  R_PID=$(cat "$R_WORK/server.pid" 2>/dev/null)
  grpc=$(echo "$out" | tr ' ' '\n' | sed -n 's/^grpc=//p')
  if [ "$rc" != 0 ] || [ -z "$grpc" ]; then
    [ "$rc" != 0 ] || rc=1
    remote_say "rc=$rc remote $m: tritonserver did not become ready (time box $t s; tools/triton-serve's reason above, the server's log in $R_LOG)"
    remote_stop
    { echo "== $m (not ready)"; cat "$log"; } >> "$R_LOG" 2>/dev/null
    echo "remote $m: server not ready (remote-server.log)" >> "$OUT/summary.txt"
    return 1
  fi
  remote_say "server $m: $out ($R_INSTANCES instances, provider $R_PROVIDER, ready $(date -u '+%H:%M:%S UTC'))"
  grep -h "warmed up\|CUDA provider\|cuDNN has no fused" "$log" >> "$R_TXT" 2>/dev/null
  t=$(remote_box 150)
  if [ "$t" -lt 30 ]; then
    remote_say "rc=skip remote $m: out of time (REMOTE_DEADLINE_S)"
    remote_stop
    return 1
  fi
  line=$(wc -l < "$R_TXT")
  timeout -k 10 "$t" "$BIN/throughput" --provider "$R_LOCAL" --json "$R_JSON" --model "$f" \
    --name "$m-remote" --server "$grpc" --server-model "$m" --server-requests "$R_REQUESTS" \
    --batches "$R_BATCHES" --streams "$R_STREAMS" --clips "$R_CLIPS" >> "$R_TXT" 2>&1
  rc=$?
  remote_say "rc=$rc remote $m (server $grpc, $R_REQUESTS requests in flight; time box $t s)"
  [ "$rc" = 0 ] || remote_error "$line"
  # The server's own count of requests against model runs (its dynamic batching).
  "$R_PY" - "${out##*http=}" "$m" 2>&1 <<'EOF' | tee -a "$R_TXT"
import json, sys, urllib.request
http, name = sys.argv[1].split()[0], sys.argv[2]
s = json.load(urllib.request.urlopen(f"http://{http}/v2/models/{name}/stats", timeout=10))
st = s["model_stats"][0]
print(f"server {name}: {st['inference_count']} clips in {st['execution_count']} model runs")
EOF
  remote_stop
  { echo "== $m"; cat "$log"; } >> "$R_LOG" 2>/dev/null
}

# One table of both backends, and the summary line of each model.
remote_table() {
  [ -s "$R_JSON" ] || { echo "remote: no measurements in $R_JSON" | tee -a "$OUT/summary.txt"; return 1; }
  "$R_PY" - "$R_JSON" "$OUT/summary.txt" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return (r["kind"], r.get("batch") or r.get("streams"))
by = {}
for r in rows:
    model = r["model"][: -len("-remote")] if r["backend"] == "remote" else r["model"]
    by.setdefault(model, {}).setdefault(key(r), {})[r["backend"] == "remote"] = r
# The bench's engine rows (per batch), by kind: clips in ordinary memory, in page-locked buffers.
ENGINE = {"engine": "engine", "engine-page-locked": "engine, page-locked clips"}
def cell(r):
    if r is None:
        return "-"
    p50, p99 = (r.get("batch_ms_p50"), r.get("batch_ms_p99")) if r["kind"] in ENGINE else \
        (r.get("latency_ms_p50"), r.get("latency_ms_p99"))
    return f"{r['clips_per_s']:.1f} ({p50:.1f} / {p99:.1f})"
print("| model | measurement | in-process, clips/s (p50 / p99 ms) | remote, clips/s (p50 / p99 ms) | remote / in-process |")
print("|---|---|---|---|---|")
with open(sys.argv[2], "a") as summary:
    for model, cells in by.items():
        parts = []
        for (kind, n), pair in sorted(cells.items(),
                                      key=lambda kv: (kv[0][0] not in ENGINE, kv[0][0], kv[0][1] or 0)):
            what = f"{ENGINE[kind]}, batch {n}" if kind in ENGINE else f"{kind}, {n} streams"
            local, remote = pair.get(False), pair.get(True)
            ratio = f"{remote['clips_per_s'] / local['clips_per_s']:.2f}" if local and remote else "-"
            print(f"| {model} | {what} | {cell(local)} | {cell(remote)} | {ratio} |")
            parts.append(f"{what}: {cell(local)} in-process, {cell(remote)} remote")
        summary.write(f"remote {model}: " + "; ".join(parts) + "\n")
EOF
}

remote() {
  remote_settings || return
  local m missing=""
  mkdir -p "$R_WORK"
  [ -x "$BIN/throughput" ] || missing="$BIN/throughput (the release bench binary, cargo bench --no-run)"
  [ -f "$BIN/libgstnonlocal.so" ] || missing="$missing $BIN/libgstnonlocal.so"
  [ -x "$R_SITE/pytriton/tritonserver/bin/tritonserver" ] ||
    missing="$missing $R_SITE/pytriton/tritonserver/bin/tritonserver (benches/gpu/remote-install.sh with the parts of benches/gpu/remote-parts.sh)"
  if [ -n "$missing" ]; then
    echo "remote: missing: $missing" | tee -a "$OUT/summary.txt" >&2
    return 1
  fi
  : > "$R_TXT"; : > "$R_JSON"; : > "$R_LOG"
  trap 'remote_stop' EXIT
  {
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
      --format=csv 2>&1
    echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "ORT (in-process): ${ORT_DYLIB_PATH:-unset}"
    echo "server models' Python: $(command -v "$R_PY") $("$R_PY" -V 2>&1)"
    PYTHONPATH=$R_SITE "$R_PY" -c 'import numpy, onnxruntime as o; print("server packages: numpy", numpy.__version__, "onnxruntime", o.__version__, o.get_available_providers())' 2>&1
    head -5 "$R_SITE/NONLOCAL-SITE.txt" 2>/dev/null
    df -h /dev/shm 2>&1 | tail -1
    echo "models $R_NETS; streams $R_STREAMS; batches $R_BATCHES; clips $R_CLIPS; server: $R_INSTANCES instances, max batch $R_MAX_BATCH, queue delay $R_QUEUE_US us, provider $R_PROVIDER; $R_REQUESTS requests in flight"
  } > "$OUT/remote-machine.txt" 2>&1
  for m in $R_NETS; do
    remote_one "$m"
  done
  remote_stop
  trap - EXIT
  grep -E "^model|^\| (engine|element)" "$R_TXT"
  remote_table | tee -a "$R_TXT"
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
  compile) compile_all ;;
  compile-engine) compile_engine ;;
  compile-torch) compile_torch ;;
  compile-table) compile_table ;;
  steps-engine) steps_engine ;;
  steps-torch) steps_torch ;;
  steps-table) steps_table ;;
  steps-element) steps_element ;;
  steps-check) steps_check ;;
  clips-check) clips_check ;;
  clips-ab) clips_ab ;;
  clips-live) clips_live ;;
  clips-table) clips_table ;;
  prio-ab) prio_ab ;;
  resample-prof) resample_prof ;;
  prio-table) clips_table prio ;;
  steps) steps_engine; steps_torch; steps_table; steps_element; steps_check ;;
  remote) remote ;;
  all) check; bench ;;
  *) echo "usage: $0 [check|bench|bench-element|multi|graphs|kprof|compile|steps|remote|clips-check|clips-ab|clips-live|clips-table|prio-ab|prio-table|resample-prof|all]" >&2; exit 2 ;;
esac
cat "$OUT/summary.txt" 2>/dev/null
