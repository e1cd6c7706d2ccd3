# shellcheck shell=bash
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
