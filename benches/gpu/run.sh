#!/usr/bin/env bash
# Checks and measurements on a CUDA machine, in one go:
#   benches/gpu/run.sh [check|bench|bench-element|multi|graphs|kprof|compile|steps|all]   (default all;
#   multi needs two cards)
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

# The model file of a compile network (carried in $BIN/models, else exported here) and its
# ONNX Runtime input/scores pair (carried beside it, else written here by benches/ort_scores.py
# with the CPU provider); prints the model path.
compile_model() {
  local m=$1 f=$C_MODELS/$1.onnx args
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
      *) echo "compile: no $f and no export recipe for $m" >&2; return 1 ;;
    esac
    # shellcheck disable=SC2086
    "$PY" tools/export_model.py $args -o "$f" >> "$OUT/compile-torch.txt" 2>&1 || return 1
  fi
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
# MODEL[@graph|@3lanes]. Phases: steps-engine, steps-torch, steps-table, steps-element,
# steps-check (steps runs the five).
STEP_RUNS=${STEP_RUNS:-c2d-r50-nl-u8 c2d-r50-nl-u8-s2d c2d-r50-nl-u8-2d-s2d c2d-r50-nl-u8-s2d@graph
c2d-r50-nl-u8-s2d@3lanes i3d-r50-nl-u8-stacked i3d-r50-nl-u8-s2d i3d-r50-nl-u8-s2d@graph
i3d-r50-nl-u8-s2d@3lanes}
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
    case $variant in
      graph) env=NONLOCAL_CUDA_GRAPH=1 ;;
      3lanes) env=NONLOCAL_CUDA_LANES=3 ;;
      '') env= ;;
      *) echo "rc=2 $run: unknown variant $variant" >> "$OUT/compile-bench.txt"; continue ;;
    esac
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
  f=$(compile_model c2d-r50-nl-u8) || return
  bench_run --model "$f" --name c2d-r50-nl-u8 --batches 1 --streams 0 --live-streams 100 \
    --live-seconds 30
  bench_run --model "$f" --name c2d-r50-nl-u8-staggered --batches 1 --streams 0 \
    --live-streams 100 --live-seconds 30 --live-stagger
  grep -E "^model|^\| (engine|element|live)|^rc=" "$OUT/bench.txt"
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
  steps) steps_engine; steps_torch; steps_table; steps_element; steps_check ;;
  all) check; bench ;;
  *) echo "usage: $0 [check|bench|bench-element|multi|graphs|kprof|compile|steps|all]" >&2; exit 2 ;;
esac
cat "$OUT/summary.txt" 2>/dev/null
