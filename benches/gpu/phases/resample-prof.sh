# shellcheck shell=bash
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
