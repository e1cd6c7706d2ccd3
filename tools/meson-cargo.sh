#!/usr/bin/env bash
# Called by meson.build: cargo-builds the plugin (and programs) and copies them into meson's
# output directory.
# Usage: meson-cargo.sh SOURCE_DIR TARGET_DIR PROFILE(debug|release) OUTDIR [cargo args...]
set -euo pipefail
src=$1 target=$2 profile=$3 outdir=$4
shift 4
args=(build --manifest-path "$src/Cargo.toml" --target-dir "$target")
[ "$profile" = release ] && args+=(--release)
cargo "${args[@]}" "$@"
cp "$target/$profile/libgstnonlocal.so" "$outdir/"
# Every program cargo built for this package.
if [[ " $* " == *" --bins "* ]]; then
  for bin in $(cargo metadata --no-deps --format-version 1 --manifest-path "$src/Cargo.toml" \
    | python3 -c 'import json, sys; print(" ".join(t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]))'); do
    cp "$target/$profile/$bin" "$outdir/"
  done
fi
