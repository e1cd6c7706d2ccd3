# shellcheck shell=bash
# Kernel-level profiles (benches/gpu/kprof.c, built as $BIN/libkprof.so) of the engine at batch 8
# under CUDA provider options, and of PyTorch's forms on the same weights; throughput of each
# variant in $OUT/kprof.jsonl, profiles summarised in $OUT/kprof.md.
kprof() {
  export_models
  local lib=$BIN/libkprof.so P=$OUT/kprof.tsv J=$OUT/kprof.jsonl cupti
  [ -f "$lib" ] || { echo "kprof: $lib missing (cc -O2 -shared -fPIC -o $lib benches/gpu/kprof.c -ldl)"; return 1; }
  cupti=$("$PY" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
  cupti=$(find "$cupti" "$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)" \
    -name 'libcupti.so*' 2>/dev/null | head -1)
  echo "CUPTI: ${cupti:-not found}" >> "$OUT/kprof.txt"
  : > "$P"; : > "$J"
  prof() { local label=$1; shift
    CUDA_INJECTION64_PATH=$lib KPROF_CUPTI=$cupti KPROF_OUT=$P KPROF_LABEL=$label "$@"; }
  ort() { local m=$1 name=$2 opts=$3
    NONLOCAL_CUDA_OPTIONS=$opts prof "ort $name:clips=512" timeout 240 "$BIN/throughput" \
      --provider cuda --json "$J" --model "$MODELS/$m.onnx" --name "$name" --batches 8 \
      --streams 0 --clips 512 >> "$OUT/kprof.txt" 2>&1
    echo "rc=$? $name ($opts)" >> "$OUT/kprof.txt"; }
  # The engine's defaults (prefer_nhwc=1, fuse_conv_bias=1) and the CUDA provider's own
  # (prefer_nhwc=0, which also leaves fusion out).
  for m in c2d-r50-nl-u8 i3d-r50-nl-u8; do
    ort "$m" "$m" ""
    ort "$m" "$m-plain" "prefer_nhwc=0"
  done
  ort c2d-r50-nl-u8-2d c2d-r50-nl-u8-2d ""
  ort i3d-r50-nl-u8-stacked i3d-r50-nl-u8-stacked ""
  for spec in c2d-r50-nl:2d: i3d-r50-nl:2d:--sdpa; do
    IFS=: read -r arch form sdpa <<< "$spec"
    prof "torch $arch $form${sdpa:+ sdpa}:clips=1200" "$PY" benches/torch_reference.py \
      --weights "$MODELS/$arch-u8.onnx" --batch 8 --iters 50 --repeats 3 --channels-last \
      --form "$form" $sdpa --json >> "$OUT/kprof-torch.jsonl" 2>> "$OUT/kprof.txt"
  done
  "$PY" benches/gpu/kprof.py "$P" > "$OUT/kprof.md" 2>&1
  grep -E "^\| engine|^rc=|^model" "$OUT/kprof.txt"
  head -20 "$OUT/kprof.md"
}
