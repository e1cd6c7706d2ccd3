#!/usr/bin/env bash
# Checks and measurements on a CUDA machine, one phase per call, from the repository's root:
#
#   benches/gpu/run.sh PHASE          (no PHASE, or help: this text)
#
# Phases (each in benches/gpu/phases/, their shared helpers in benches/gpu/lib.sh):
#   check          the pipeline, error, batching and CUDA-memory tests with the CUDA provider, then
#                  tests/gpu.rs (CUDA and CPU agree within float16 tolerance on every model; a GPU
#                  out-of-memory is one clear error)
#   bench          PyTorch eager (fp16, channels_last, every form) and the throughput benchmark on
#                  the same card, same weights, then one table (benches/gpu/table.py); its parts
#                  bench-torch, bench-c2d, bench-i3d and bench-table run one by one into one $OUT
#   bench-element  the element against the engine alone at batch 8 (32 and 64 streams), and 100
#                  live cameras started one by one; no PyTorch
#   multi          the same model on one card, then on two (needs two cards)
#   graphs         CUDA graphs (NONLOCAL_CUDA_GRAPH=1) against plain runs, and CUDA/CPU agreement
#                  with graphs on
#   kprof          kernel profiles of the engine and of PyTorch's forms (needs $BIN/libkprof.so)
#   compile        the engine, PyTorch eager and torch.compile (inductor) on C2D-NL-R50 and
#                  I3D-NL-R50 (stacked stem) at batch 1, 8 and 16, each PyTorch form checked
#                  against ONNX Runtime's scores; one table per batch size (table.py --compile);
#                  its parts compile-engine, compile-torch and compile-table (settings COMPILE_*)
#   steps          the engine's candidate steps (STEP_RUNS) against torch.compile, the element
#                  and live cameras, CUDA against the CPU: steps-engine, steps-torch,
#                  steps-table, steps-element and steps-check in turn (each a phase too)
#   clips-check    the CUDA tests of this build on the real and the probe models
#   clips-ab       this build against $BIN_OLD: the engine at batch 8 and the element at 32 and
#                  64 I3D streams, without and with CUDA graphs (CLIPS_ROUND)
#   clips-live     100 live C2D cameras on this build
#   clips-table    element / engine per row of clips-ab
#   prio-ab        the engine's niceness, lanes, CUDA graphs and resampling, alone and together
#                  (PRIO_RUNS, PRIO_ROUNDS; old:VARIANT runs $BIN_OLD's bench)
#   prio-table     element / engine per row of prio-ab
#   resample-prof  kernel profiles of the element with resample=element and resample=engine
#   remote         the element's remote backend against a tritonserver on the same card (python
#                  backend, ONNX Runtime's CUDA provider) beside the in-process engine and element,
#                  same model, streams and clips: clips/s and latency median / p99 (settings
#                  REMOTE_*; needs benches/gpu/remote-install.sh first)
#   decode-files   the end-to-end benchmark's inputs: H.264 files at 480p and 1080p, 25 fps, made
#                  with nvh264enc where GStreamer has it, else x264enc (settings DECODE_*; runs
#                  without a card too)
#   decode-path    which decode path this machine measures: NVDEC into CUDA memory (the driver's
#                  libnvcuvid.so.1 and nvh264dec), else a CPU decoder (benches/gpu/decode-path.sh)
#   all            check, then bench
#
# Expects, under $BIN (default .gpu-run; benches/gpu/stage.sh builds it): libgstnonlocal.so, the
# release test binaries element, errors, batching, cuda_memory and gpu (`cargo test --release
# --no-run`), the throughput bench binary, and optionally models/*.onnx to add; ONNX Runtime with
# CUDA on ORT_DYLIB_PATH, GStreamer on the library path, and a Python with torch, numpy and onnx
# ($PY, default python3). The Non-local models (random weights, seed 0) are exported here. Logs go to
# $OUT (default ./gpu-out); each phase's file says what it writes and which settings it reads.
set -u
GPU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
case ${1:-} in
  help|-h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
PHASE=$1
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

# shellcheck source=benches/gpu/lib.sh
source "$GPU_DIR/lib.sh"
for phase_file in "$GPU_DIR"/phases/*.sh; do
  # shellcheck source=/dev/null
  source "$phase_file"
done

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
  decode-files) decode_files ;;
  decode-path) decode_check ;;
  all) check; bench ;;
  *) echo "run.sh: no phase '$PHASE'" >&2; usage >&2; exit 2 ;;
esac
cat "$OUT/summary.txt" 2>/dev/null
