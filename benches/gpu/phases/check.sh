# shellcheck shell=bash
# check: the pipeline, error and batching tests with the CUDA provider, then tests/gpu.rs on the
# exported models; machine, inspect and test results in $OUT.

check() {
  {
    date -u '+%Y-%m-%d %H:%M UTC'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo "ORT: $ORT_DYLIB_PATH"
  } > "$OUT/machine.txt" 2>&1
  gst-inspect-1.0 nonlocalclassify > "$OUT/inspect.txt" 2>&1
  echo "inspect rc=$?" >> "$OUT/summary.txt"
  # The pipeline tests run with execution-provider=auto, which is CUDA here; cuda_memory checks
  # the caps the element offers with the machine's GStreamer CUDA library.
  for t in element errors batching cuda_memory; do
    NONLOCAL_EXPECT_CUDA=1 timeout 300 "$BIN/$t" --test-threads=2 > "$OUT/$t-tests.txt" 2>&1
    echo "$t tests rc=$? $(grep 'test result' "$OUT/$t-tests.txt")" >> "$OUT/summary.txt"
  done
  export_models
  NONLOCAL_GPU_MODELS=$(ls "$MODELS"/*.onnx | tr '\n' ':' | sed 's/:$//') \
    timeout 300 "$BIN/gpu" --ignored --test-threads=1 --nocapture > "$OUT/gpu-tests.txt" 2>&1
  echo "gpu tests rc=$? $(grep 'test result' "$OUT/gpu-tests.txt")" >> "$OUT/summary.txt"
}
