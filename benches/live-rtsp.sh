#!/usr/bin/env bash
# Result latency of a live RTSP camera classified on the CPU, leaky=newest against leaky=oldest,
# alternated round by round on one machine:
#   benches/live-rtsp.sh [ROUNDS] > OUT.txt
# Each round runs tests/rtsp.rs's two tests (tools/rtsp-serve streaming arm_wrestling.mp4 at
# 30 fps, `rtspsrc ! decodebin ! videoconvert ! nonlocalclassify model=<default> ! fakesink
# sync=true` for NONLOCAL_RTSP_SECONDS, default 60): newest, then oldest. Prints the machine, then
# each run's line (latency median / p99 / max, drops, one clip's inference, video rate and the
# load average) with the failure of any check that failed, then one summary line per leaky
# value. Needs tools/env.sh sourced and NONLOCAL_MODEL (tools/default-model).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); cpu: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src tests || echo ' (with uncommitted changes to src/ or tests/)')"
cargo test -q --test rtsp --no-run 2>/dev/null
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  # A run whose checks fail still reports its line; the failure follows it.
  { cargo test -q --test rtsp -- --include-ignored --nocapture --test-threads=1 2>&1 || true; } |
    sed -n -e "s/^[.i]*leaky=/round $r: leaky=/p" -e "s/^\(thread .* panicked at.*\)/round $r: \1/p" \
      -e "s/^\(latency p99 .*\|video .*\|nothing dropped\|\[.*\]\)$/round $r:   \1/p" |
    tee -a "$tmp"
done
python3 - "$tmp" <<'PY'
import re, sys
runs = {}
pattern = re.compile(
    r"leaky=(\w+):.*?(\d+) clips dropped; latency median ([\d.]+) s, p99 ([\d.]+) s.*"
    r"inference \(mean of \d+ runs\) ([\d.]+) s.* p99 ([\d.]+) against the mean run, "
    r"p99 ([\d.]+) against")
for line in open(sys.argv[1]):
    m = pattern.search(line)
    if m:
        runs.setdefault(m[1], []).append(m.groups()[1:])
for leaky, rs in sorted(runs.items()):
    col = lambda i: [float(r[i]) for r in rs]
    print(f"leaky={leaky}: {len(rs)} runs; latency medians {col(1)} s, p99s {col(2)} s; one clip's "
          f"inference {col(3)} s; p99 over twice it {col(4)}, over twice the runs each clip met "
          f"{col(5)}; dropped {[int(r[0]) for r in rs]}")
PY
