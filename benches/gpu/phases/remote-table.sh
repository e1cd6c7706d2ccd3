# shellcheck shell=bash
# The remote phase's table (benches/gpu/phases/remote.sh).

# One table of both backends, and the summary line of each model.
remote_table() {
  [ -s "$R_JSON" ] || { echo "remote: no measurements in $R_JSON" | tee -a "$OUT/summary.txt"; return 1; }
  "$R_PY" - "$R_JSON" "$OUT/summary.txt" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return (r["kind"], r.get("batch") or r.get("streams"))
by = {}
for r in rows:
    model = r["model"][: -len("-remote")] if r["backend"] == "remote" else r["model"]
    by.setdefault(model, {}).setdefault(key(r), {})[r["backend"] == "remote"] = r
# The bench's engine rows (per batch), by kind: clips in ordinary memory, in page-locked buffers.
ENGINE = {"engine": "engine", "engine-page-locked": "engine, page-locked clips"}
def cell(r):
    if r is None:
        return "-"
    p50, p99 = (r.get("batch_ms_p50"), r.get("batch_ms_p99")) if r["kind"] in ENGINE else \
        (r.get("latency_ms_p50"), r.get("latency_ms_p99"))
    return f"{r['clips_per_s']:.1f} ({p50:.1f} / {p99:.1f})"
print("| model | measurement | in-process, clips/s (p50 / p99 ms) | remote, clips/s (p50 / p99 ms) | remote / in-process |")
print("|---|---|---|---|---|")
with open(sys.argv[2], "a") as summary:
    for model, cells in by.items():
        parts = []
        for (kind, n), pair in sorted(cells.items(),
                                      key=lambda kv: (kv[0][0] not in ENGINE, kv[0][0], kv[0][1] or 0)):
            what = f"{ENGINE[kind]}, batch {n}" if kind in ENGINE else f"{kind}, {n} streams"
            local, remote = pair.get(False), pair.get(True)
            ratio = f"{remote['clips_per_s'] / local['clips_per_s']:.2f}" if local and remote else "-"
            print(f"| {model} | {what} | {cell(local)} | {cell(remote)} | {ratio} |")
            parts.append(f"{what}: {cell(local)} in-process, {cell(remote)} remote")
        summary.write(f"remote {model}: " + "; ".join(parts) + "\n")
EOF
}
