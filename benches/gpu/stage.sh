#!/usr/bin/env bash
# Builds what benches/gpu/run.sh expects under $BIN, for a CUDA machine without Rust:
#   benches/gpu/stage.sh [DIR]      (default .gpu-run)
# the release plugin (libgstnonlocal.so), the release test binaries element, errors, batching,
# cuda_memory and gpu, and the throughput bench binary, each copied into DIR (stripped of debug
# symbols, so that a build fits beside the runtime parts a machine session carries).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.gpu-run}
mkdir -p "$dir"
cargo build --release --lib
cp target/release/libgstnonlocal.so "$dir/"
executables() {
  # The executable of each artefact cargo reports (one JSON object per line).
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}
{
  cargo test --release --no-run --test element --test errors --test batching --test cuda_memory \
    --test gpu \
    --message-format=json
  cargo bench --no-run --bench throughput --message-format=json
} | executables | while read -r name path; do
  cp "$path" "$dir/$name"
done
strip --strip-debug "$dir"/* 2>/dev/null || true
ls -la "$dir"
