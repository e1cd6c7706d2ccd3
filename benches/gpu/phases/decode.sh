# shellcheck shell=bash
# decode: the inputs and the decode path of the end-to-end benchmark (files decoded in the
# pipeline, into nonlocalclassify).
#   decode-files  makes DECODE_FILES H.264 files (MP4) per size of DECODE_SIZES at 25 fps, each
#                 DECODE_SECONDS long, with the project's own GStreamer pipeline: videotestsrc
#                 (a different pattern per file) ! nvh264enc where GStreamer has it, else x264enc
#                 ! h264parse ! mp4mux; files already made are kept. Writes DECODE_DIR/files.txt
#                 (name, size, frames, encoder) and a line to $OUT/summary.txt. Runs on a machine
#                 without a card too (x264enc).
#   decode-path   which decode path this machine measures (benches/gpu/decode-path.sh: NVDEC into
#                 CUDA memory, or the CPU) into $OUT/decode-path.txt and $OUT/summary.txt.
# Settings (environment): DECODE_FILES (default 8), DECODE_SECONDS (default 10), DECODE_SIZES
# (heights, 16:9, default "480 1080"), DECODE_ENCODER (auto, the default, nvh264enc or x264enc),
# DECODE_DIR (default $HOME/.cache/nonlocal-decode: kept on the machine between commands, not
# under $OUT, which returns only a few files).

# shellcheck source=benches/gpu/decode-path.sh
source "$GPU_DIR/decode-path.sh"

# The encoder element and its settings for a HEIGHT (bit rates in kbit/s of a typical stream).
decode_encoder() {
  local height=$1 enc=${DECODE_ENCODER:-auto} rate
  case $height in 480) rate=1500 ;; 720) rate=3000 ;; *) rate=$((height * 6)) ;; esac
  if [ "$enc" = auto ]; then
    enc=x264enc
    decode_has_element nvh264enc && enc=nvh264enc
  fi
  case $enc in
    nvh264enc) echo "nvh264enc bitrate=$rate gop-size=50" ;;
    x264enc) echo "x264enc bitrate=$rate key-int-max=50 speed-preset=veryfast" ;;
    *) echo "decode: DECODE_ENCODER is auto, nvh264enc or x264enc, not '$enc'" >&2; return 2 ;;
  esac
}

decode_files() {
  local n=${DECODE_FILES:-8} secs=${DECODE_SECONDS:-10} sizes=${DECODE_SIZES:-480 1080}
  local dir=${DECODE_DIR:-${HOME:-/root}/.cache/nonlocal-decode}
  local patterns=(ball smpte pinwheel spokes zone-plate gamut circular checkers-8)
  local height width enc i name f frames made=0 failed=0
  case "$n$secs" in *[!0-9]*|'') echo "decode: DECODE_FILES and DECODE_SECONDS are whole numbers" >&2; return 2 ;; esac
  frames=$((secs * 25))
  mkdir -p "$dir"
  for height in $sizes; do
    case $height in ''|*[!0-9]*) echo "decode: DECODE_SIZES holds heights, not '$height'" >&2; return 2 ;; esac
    width=$(( (height * 16 / 9 + 1) / 2 * 2 ))
    enc=$(decode_encoder "$height") || return
    for ((i = 0; i < n; i++)); do
      name=$(printf 'h264-%sp-%02d.mp4' "$height" "$i")
      f=$dir/$name
      [ -s "$f" ] && continue
      # shellcheck disable=SC2086
      if timeout 600 gst-launch-1.0 -q videotestsrc num-buffers="$frames" \
          pattern="${patterns[i % ${#patterns[@]}]}" \
          ! "video/x-raw,format=NV12,width=$width,height=$height,framerate=25/1" \
          ! $enc ! h264parse ! mp4mux ! filesink location="$f.tmp" >> "$OUT/decode-files.txt" 2>&1 &&
        [ -s "$f.tmp" ]; then
        mv "$f.tmp" "$f"
        printf '%s %sx%s %s %s\n' "$name" "$width" "$height" "$frames" "${enc%% *}" >> "$dir/files.txt"
        made=$((made + 1))
      else
        rm -f "$f.tmp"
        echo "decode: $name failed (${enc%% *}): see $OUT/decode-files.txt" >&2
        failed=$((failed + 1))
      fi
    done
  done
  echo "decode files: $made made, $failed failed, $(find "$dir" -name 'h264-*.mp4' | wc -l) in $dir ($n per size of $sizes, $secs s at 25 fps)" |
    tee -a "$OUT/summary.txt"
  [ "$failed" -eq 0 ]
}

decode_check() {
  decode_path > "$OUT/decode-path.txt" 2>&1
  cat "$OUT/decode-path.txt"
  grep '^decode-path:' "$OUT/decode-path.txt" >> "$OUT/summary.txt"
}
