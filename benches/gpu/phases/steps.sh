# shellcheck shell=bash
# steps: what moves the engine, measured against torch.compile in the same run
# The engine's candidate steps beside its current defaults at batch 1 and 8 (COMPILE_BATCHES):
# the space-to-depth stem (--stem s2d) in both graph forms, CUDA graphs with the two lanes, a
# third lane; then PyTorch eager and torch.compile reduce-overhead (the best compiled form in
# the compile phase's table; COMPILE_MODES overrides) on the same weights, one table per batch
# size; then the element at 32 and 64 streams for I3D with both stems, and 100 live C2D cameras
# started all at once and one by one; and CUDA against the CPU on the s2d stems. A run is
# MODEL[@VARIANT] (variant_env's words). Phases: steps-engine, steps-torch, steps-table, steps-element,
# steps-check (steps runs the five).
STEP_RUNS=${STEP_RUNS:-c2d-r50-nl-u8 c2d-r50-nl-u8-s2d c2d-r50-nl-u8-2d-s2d c2d-r50-nl-u8-s2d@graph
c2d-r50-nl-u8-s2d@3lanes i3d-r50-nl-u8-stacked i3d-r50-nl-u8-s2d i3d-r50-nl-u8-s2d@graph
i3d-r50-nl-u8-s2d@3lanes}

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
