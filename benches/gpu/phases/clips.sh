# shellcheck shell=bash
# A build against another in one run: this build ($BIN) and the one to compare with ($BIN_OLD),
# one after the other, the engine and the element at 32 and 64 I3D streams, without and with
# CUDA graphs (CLIPS_ROUND names the round); each build's bench registers its own element
# (GST_PLUGIN_PATH and a registry of its own). clips-check: the CUDA tests of this build first;
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
