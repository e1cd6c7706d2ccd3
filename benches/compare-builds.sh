#!/usr/bin/env bash
# Two builds of the throughput benchmark on the CPU, alternated in one run on one machine:
#   benches/compare-builds.sh OLD_BENCH NEW_BENCH MODEL.onnx [ROUNDS] [CLIPS] > OUT.jsonl
# Each round runs the old build then the new one (`--provider cpu --batches 1 --streams 1
# --max-batch 1 --clips CLIPS`: the engine alone at batch 1 and one element stream); every row
# of the JSON output gets "build" (old/new) and "round". A summary per build goes to stderr:
# the median clips/s of the engine and element rows and new/old.
# The same build under two environments compares a setting: OLD_ENV and NEW_ENV ("K=V ...") are
# each side's environment, BENCH_ARGS replaces the bench's settings after --provider cpu, e.g.
#   NEW_ENV=NONLOCAL_ENGINE_NICE=-10 BENCH_ARGS="--batches 8 --streams 8 --max-batch 8" \
#     benches/compare-builds.sh BENCH BENCH MODEL.onnx 3 64
set -euo pipefail
old=$1 new=$2 model=$3 rounds=${4:-3} clips=${5:-6}
read -r -a bench_args <<< "${BENCH_ARGS:---batches 1 --streams 1 --max-batch 1}"
read -r -a old_env <<< "${OLD_ENV:-}"
read -r -a new_env <<< "${NEW_ENV:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  for b in old new; do
    bin=$old envs=("${old_env[@]}")
    [ "$b" = new ] && bin=$new envs=("${new_env[@]}")
    env "${envs[@]}" "$bin" --model "$model" --provider cpu "${bench_args[@]}" \
      --clips "$clips" --json "$tmp/$b-$r.jsonl" > "$tmp/$b-$r.txt" 2>&1 ||
      { echo "$b build, round $r failed:" >&2; grep -v "^ *[0-9]*: \|^ *at " "$tmp/$b-$r.txt" |
          tail -8 >&2; exit 1; }
    python3 - "$tmp/$b-$r.jsonl" "$b" "$r" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    row.update(build=sys.argv[2], round=int(sys.argv[3]))
    print(json.dumps(row, sort_keys=True))
PY
  done
done | tee "$tmp/all.jsonl"
python3 - "$tmp/all.jsonl" >&2 <<'PY'
import json, statistics, sys
rows = [json.loads(x) for x in open(sys.argv[1])]
med = {}
for kind in ("engine", "element"):
    for b in ("old", "new"):
        v = [r["clips_per_s"] for r in rows if r["kind"] == kind and r["build"] == b]
        med[kind, b] = statistics.median(v)
        print(f"{kind:7} {b}: median {med[kind, b]:.4f} clips/s of {['%.4f' % x for x in v]}")
    print(f"{kind:7} new/old: {med[kind, 'new'] / med[kind, 'old']:.3f}")
PY
