# shellcheck shell=bash disable=SC2034,SC2153
# Helpers every phase of benches/gpu/run.sh shares, sourced by it after its settings (BIN, OUT,
# PY, MODELS, MODELS_GIVEN): the exported models, one throughput bench run, the compile
# settings and the model files of the phases from compile on, a run's variant environment and
# the live cameras. (For shellcheck: the C_* settings set here are read by the phases, MODELS
# is run.sh's.)

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

bench_run() { timeout 420 "$BIN/throughput" --provider cuda --json "$OUT/bench.jsonl" "$@" \
                >> "$OUT/bench.txt" 2>&1
              echo "rc=$? $*" >> "$OUT/bench.txt"; }

# ---- compile settings: the compile phase's, read as well by steps, clips, prio, resample-prof and
# remote for their models. Settings (environment):
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
compile_settings() {
  local modes knobs budget box
  case ${COMPILE_SET:-standard} in
    # Batch 8 first with the strongest modes (batch 8 is where the engine is compared with
    # torch.compile), then what the time allows. max-autotune's coordinate-descent tuning (launch
    # settings of every element-wise kernel, candidates compiled and timed one after another)
    # does not finish inside this set's time box, so it is left out here and kept in "full".
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

# The steps phase's batch sizes and modes, which clips and prio take too.
steps_env() {
  export COMPILE_BATCHES=${COMPILE_BATCHES:-1,8}
  export COMPILE_MODES=${COMPILE_MODES:-eager,reduce-overhead@8/1}
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
