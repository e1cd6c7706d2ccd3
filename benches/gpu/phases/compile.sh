# shellcheck shell=bash
# compile, compile-engine, compile-torch, compile-table: torch.compile against eager and the
# engine. Settings: compile_settings in benches/gpu/lib.sh. Writes
# $OUT/compile-{machine.txt,bench.jsonl,bench.txt,torch.jsonl,torch.txt,table.md}.

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
