#!/usr/bin/env bash
# Called by meson.build: cargo-builds the plugin and copies it to meson's output path.
# Usage: meson-cargo.sh SOURCE_DIR TARGET_DIR PROFILE(debug|release) OUTPUT [cargo args...]
set -euo pipefail
src=$1 target=$2 profile=$3 output=$4
shift 4
args=(build --lib --manifest-path "$src/Cargo.toml" --target-dir "$target")
[ "$profile" = release ] && args+=(--release)
cargo "${args[@]}" "$@"
cp "$target/$profile/libgstnonlocal.so" "$output"
