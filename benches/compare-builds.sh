#!/usr/bin/env bash
# Forms of the throughput benchmark on the CPU, alternated round by round on one machine:
#   benches/compare-builds.sh OLD_BENCH NEW_BENCH MODEL.onnx [ROUNDS] [CLIPS] > OUT.jsonl
#   benches/compare-builds.sh --forms FORMS_FILE [ROUNDS] [CLIPS] > OUT.jsonl
# OLD_BENCH and NEW_BENCH are bench executables, or git revisions of this repository: the bench of
# a revision is built (release) from its files (git archive) with this tree's target folder, so
# that the dependencies it shares with this tree are not compiled again, and kept as
# target/compare-builds/throughput-REV.
# Two builds: each round runs the old build then the new one (`--model MODEL --provider cpu
# --batches 1 --streams 1 --max-batch 1 --clips CLIPS`: the engine alone at batch 1 and one element
# stream). The same build under two environments compares a setting: OLD_ENV and NEW_ENV
# ("K=V ...") are each side's environment, BENCH_ARGS replaces the bench's settings after
# --provider cpu, e.g.
#   NEW_ENV=NONLOCAL_ENGINE_NICE=-10 BENCH_ARGS="--batches 8 --streams 8 --max-batch 8" \
#     benches/compare-builds.sh BENCH BENCH MODEL.onnx 3 64
# Any number of forms: FORMS_FILE has one form a line (blank lines and `#` comments skipped),
#   NAME BENCH [K=V ...] -- BENCH_ARGS...
# run as `env K=V ... BENCH BENCH_ARGS... --clips CLIPS`, the forms in the file's order each round
# (A B C A B C ...); the first form is the one the others are divided by.
# Every row of the JSON output gets "build" (the form's name; old/new with two builds), "round"
# and the one-minute load average before and after its run ("load_before", "load_after"). To
# stderr: the machine (lscpu), date, commit, the command and `uptime` before and after, then a
# summary per measurement (engine batch, element streams, objects): each form's median clips/s
# (and median latency), its ratio to the first form's median, and the ratios of each round's
# pair (form ÷ first form in the same round), whose spread is the run's noise; within each form,
# every element and objects row ÷ the same round's engine row at batch 1, and each objects row ÷
# the same round's one-stream element row (frame mode). Each run's own table goes to stderr too.
set -euo pipefail
usage() {
  sed -n '2,3p' "$0" >&2
  exit 2
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
repo=$(cd "$(dirname "$0")/.." && pwd)
# The bench executable $1 names: itself, or the build of a git revision.
bench_of() {
  local sha out src
  if [ -x "$1" ] && [ -f "$1" ]; then echo "$1"; return; fi
  sha=$(git -C "$repo" rev-parse --short "$1^{commit}") || { echo "no bench or revision $1" >&2; exit 2; }
  out=$repo/target/compare-builds/throughput-$sha
  if [ ! -x "$out" ]; then
    src=$repo/target/compare-builds/src-$sha
    rm -rf "$src" && mkdir -p "$src"
    git -C "$repo" archive "$sha" | tar -x -C "$src"
    echo "building the bench of $sha in $src" >&2
    (cd "$src" && CARGO_TARGET_DIR=$repo/target cargo bench -q --bench throughput --no-run \
      --message-format=json) | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "throughput" and m.get("executable"):
        print(m["executable"])' | { read -r exe; cp "$exe" "$out"; }
    rm -rf "$src"
  fi
  echo "$out"
}
forms=$tmp/forms
if [ "${1:-}" = --forms ]; then
  [ $# -ge 2 ] || usage
  grep -v '^[[:space:]]*\(#\|$\)' "$2" > "$forms"
  rounds=${3:-3} clips=${4:-6}
else
  [ $# -ge 3 ] || usage
  old=$(bench_of "$1") new=$(bench_of "$2") model=$3 rounds=${4:-3} clips=${5:-6}
  args="--model $model --provider cpu ${BENCH_ARGS:---batches 1 --streams 1 --max-batch 1}"
  printf '%s\n' "old $old ${OLD_ENV:-} -- $args" "new $new ${NEW_ENV:-} -- $args" > "$forms"
fi
load() { cut -d' ' -f1 /proc/loadavg; }
upt() { uptime 2>/dev/null || echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }
{
  echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(nproc) cores"
  echo "date   : $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit : $(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "command: $0 $*"
  echo "rounds : $rounds, clips $clips; forms:"
  sed 's/^/  /' "$forms"
  echo "uptime before: $(upt)"
} >&2
for r in $(seq 1 "$rounds"); do
  while read -r -a words; do
    name=${words[0]} bin=${words[1]} envs=() bench_args=() i=2
    while [ $i -lt ${#words[@]} ] && [ "${words[i]}" != -- ]; do envs+=("${words[i]}"); i=$((i + 1)); done
    bench_args=("${words[@]:i+1}")
    before=$(load)
    env "${envs[@]}" "$bin" "${bench_args[@]}" --clips "$clips" --json "$tmp/$name-$r.jsonl" \
      > "$tmp/$name-$r.txt" 2>&1 < /dev/null ||
      { echo "$name, round $r failed:" >&2; grep -v "^ *[0-9]*: \|^ *at " "$tmp/$name-$r.txt" |
          tail -8 >&2; exit 1; }
    sed "s/^/[$name, round $r] /" "$tmp/$name-$r.txt" >&2
    python3 - "$tmp/$name-$r.jsonl" "$name" "$r" "$before" "$(load)" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    row.update(build=sys.argv[2], round=int(sys.argv[3]), load_before=float(sys.argv[4]),
               load_after=float(sys.argv[5]))
    print(json.dumps(row, sort_keys=True))
PY
  done < "$forms"
done | tee "$tmp/all.jsonl"
echo "uptime after: $(upt)" >&2
python3 - "$tmp/all.jsonl" >&2 <<'PY'
import json, statistics, sys
rows = [json.loads(x) for x in open(sys.argv[1])]
forms = list(dict.fromkeys(r["build"] for r in rows))
def what(r):
    if r["kind"].startswith("engine"):
        return f'{r["kind"]}, batch {r["batch"]}'
    if r["kind"] == "objects":
        return f'objects, {r["objects"]} on one stream'
    return f'{r["kind"]}, {r["streams"]} streams'
first = forms[0]
for w in dict.fromkeys(what(r) for r in rows):
    by = {(r["build"], r["round"]): r for r in rows if what(r) == w}
    med = {}
    for f in forms:
        v = [by[k]["clips_per_s"] for k in sorted(by) if k[0] == f]
        if not v:
            continue
        med[f] = statistics.median(v)
        lat = [by[k]["latency_ms_p50"] for k in sorted(by) if k[0] == f and "latency_ms_p50" in by[k]]
        lat = f", latency p50 median {statistics.median(lat) / 1e3:.2f} s" if lat else ""
        print(f"{w:32} {f:12}: median {med[f]:.4f} clips/s of {['%.4f' % x for x in v]}{lat}")
    for f in forms[1:]:
        if f not in med or first not in med:
            continue
        pairs = [by[f, r]["clips_per_s"] / by[first, r]["clips_per_s"]
                 for (g, r) in sorted(by) if g == f and (first, r) in by]
        print(f"{w:32} {f + '/' + first:12}: {med[f] / med[first]:.3f} of the medians; "
              f"per round {['%.3f' % x for x in pairs]}")
def engine_row(r):
    """The engine row an element or objects row is set against: batch N for N element streams
    where the same form measured it in the same round, else batch 1."""
    n = r.get("streams", 1) if r["kind"] == "element" else 1
    for b in (n, 1):
        for e in rows:
            if (e["kind"] == "engine" and e["batch"] == b and e["build"] == r["build"]
                    and e["round"] == r["round"]):
                return e
    return None
for f in forms:
    for w in dict.fromkeys(what(r) for r in rows if r["build"] == f
                           and r["kind"] in ("element", "objects")):
        mine = [r for r in rows if r["build"] == f and what(r) == w]
        pairs = [(r["clips_per_s"] / e["clips_per_s"], e["batch"]) for r in mine
                 if (e := engine_row(r))]
        if pairs:
            v = [x for x, _ in pairs]
            print(f"{f}: {w} ÷ engine at batch {pairs[0][1]}: median {statistics.median(v):.3f}, "
                  f"per round {['%.3f' % x for x in v]}")
        if w.startswith("objects"):
            v = [r["clips_per_s"] / b["clips_per_s"] for r in mine for b in rows
                 if b["build"] == f and b["round"] == r["round"] and what(b) == "element, 1 streams"]
            if v:
                print(f"{f}: {w} ÷ frame mode (element, 1 stream): median "
                      f"{statistics.median(v):.3f}, per round {['%.3f' % x for x in v]}")
loads = [r[k] for r in rows for k in ("load_before", "load_after")]
print(f"load average (1 min) over the runs: {min(loads):.1f}-{max(loads):.1f}")
PY
