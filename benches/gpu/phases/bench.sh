# shellcheck shell=bash
# bench, bench-torch, bench-c2d, bench-i3d, bench-table, bench-element: PyTorch eager and the
# throughput benchmark on the same card and weights, one table (benches/gpu/table.py).

# PyTorch's forms at batch 1 and 8 on the same weights, and the card.
bench_torch() {
  export_models
  : > "$OUT/torch.jsonl"
  for arch in c2d-r50-nl i3d-r50-nl; do
    for b in 1 8; do
      "$PY" benches/torch_reference.py --weights "$MODELS/$arch-u8.onnx" --batch "$b" \
        --channels-last --sweep --json >> "$OUT/torch.jsonl" 2>> "$OUT/torch.err"
    done
  done
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv \
    > "$OUT/card.txt" 2>&1
}

# The engine and the element with the engine's CUDA defaults (prefer_nhwc=1, fuse_conv_bias=1);
# `-untuned`: the CUDA provider's own defaults; `-1lane`: one batch in flight instead of two;
# `-ball`: test sources that draw every frame (pattern=ball) instead of copying a static one;
# `-stacked`: I3D exported with `--stem stacked`.
bench_c2d() {
  export_models
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8 \
    --batches 1,2,4,8,16 --streams 1,8,32,64 --clips 512 --live-streams 100 --live-seconds 30
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8-staggered --batches 8 \
    --streams 0 --live-streams 100 --live-seconds 30 --live-stagger
  NONLOCAL_CUDA_OPTIONS=prefer_nhwc=0 bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" \
    --name c2d-r50-nl-u8-untuned --batches 1,8 --streams 0
  NONLOCAL_CUDA_LANES=1 bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" \
    --name c2d-r50-nl-u8-1lane --batches 1,8 --streams 64 --clips 512
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8-ball --batches 8 \
    --streams 64 --clips 512 --pattern ball
  bench_run --model "$MODELS/c2d-r50-nl-u8-2d.onnx" --name c2d-r50-nl-u8-2d --batches 1,8,16 \
    --streams 0
  bench_run --model "$MODELS/c2d-r50-nl-f16.onnx" --name c2d-r50-nl-f16 --batches 1,8 \
    --streams 8 --clips 256
}

bench_i3d() {
  export_models
  bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" --name i3d-r50-nl-u8 \
    --batches 1,2,4,8,16 --streams 1,8,32,64 --clips 256
  NONLOCAL_CUDA_OPTIONS=prefer_nhwc=0 bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" \
    --name i3d-r50-nl-u8-untuned --batches 1,8 --streams 0
  NONLOCAL_CUDA_LANES=1 bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" \
    --name i3d-r50-nl-u8-1lane --batches 1,8 --streams 64 --clips 256
  bench_run --model "$MODELS/i3d-r50-nl-u8-stacked.onnx" --name i3d-r50-nl-u8-stacked \
    --batches 1,2,4,8,16 --streams 8,32,64 --clips 256
  NONLOCAL_CUDA_LANES=1 bench_run --model "$MODELS/i3d-r50-nl-u8-stacked.onnx" \
    --name i3d-r50-nl-u8-stacked-1lane --batches 1,8 --streams 0
  bench_run --model "$MODELS/i3d-r50-nl-u8.onnx" --name i3d-r50-nl-u8-ball --batches 8 \
    --streams 64 --clips 256 --pattern ball
  bench_run --model "$MODELS/i3d-r50-nl-f16.onnx" --name i3d-r50-nl-f16 --batches 1,8 \
    --streams 8 --clips 128
  if [ -f "$MODELS/i3d-kinetics400-u8.onnx" ]; then
    bench_run --model "$MODELS/i3d-kinetics400-u8.onnx" --name i3d-kinetics400-u8 \
      --batches 1,8 --streams 8 --clips 128
  fi
}

# The element against the engine alone at batch 8 (32 and 64 streams), and the latency of 100
# live cameras started one by one; no PyTorch (compare with a `bench` run's table).
bench_element() {
  export_models
  for m in c2d-r50-nl-u8 i3d-r50-nl-u8-stacked i3d-r50-nl-u8; do
    bench_run --model "$MODELS/$m.onnx" --name "$m" --batches 1,8 --streams 32,64 --clips 512
  done
  bench_run --model "$MODELS/c2d-r50-nl-u8.onnx" --name c2d-r50-nl-u8-staggered --batches 1 \
    --streams 0 --live-streams 100 --live-seconds 30 --live-stagger
  grep -E "^model|^\| (engine|element|live)|^rc=" "$OUT/bench.txt"
}

bench_table() {
  "$PY" benches/gpu/table.py "$OUT/bench.jsonl" "$OUT/torch.jsonl" > "$OUT/table.md" 2>&1
  cat "$OUT/table.md"
}

bench() {
  : > "$OUT/bench.jsonl"
  bench_torch; bench_c2d; bench_i3d; bench_table
}
