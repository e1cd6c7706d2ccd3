# shellcheck shell=bash
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
