#!/usr/bin/env bash
# Which H.264 decode path the end-to-end benchmark will measure on this machine, and why:
#
#   benches/gpu/decode-path.sh            (prints the reasons, then one line "decode-path: PATH")
#   source benches/gpu/decode-path.sh     (defines decode_path, which prints the same)
#
# PATH is
#   nvdec  the driver has NVDEC (libnvcuvid.so.1 loads) and GStreamer has nvh264dec: the frames
#          are decoded on the card and reach nonlocalclassify in CUDA memory;
#   cpu    no NVDEC (or no nvh264dec), and GStreamer has a CPU decoder (avdec_h264, else
#          openh264dec): the frames are decoded by the host's CPUs into system memory;
#   none   no decoder at all (the benchmark cannot run: the reasons say what is missing).
# The GPU bundle's unpack.sh runs it on the card machine (benches/gpu/bundle-parts.sh); the
# decode phase of benches/gpu/run.sh runs it before measuring. Exit status 0 whichever the path.

# Whether the dynamic linker finds LIBRARY (a soname): the linker's cache (ldconfig -p), then the
# folders of LD_LIBRARY_PATH; prints where.
decode_find_library() {
  local lib=$1 dir line
  line=$({ ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } |
    awk -v l="$lib" '$1 == l { print $NF; exit }')
  if [ -n "$line" ]; then echo "$line"; return 0; fi
  local IFS=:
  for dir in ${LD_LIBRARY_PATH:-}; do
    [ -n "$dir" ] && [ -e "$dir/$lib" ] && { echo "$dir/$lib"; return 0; }
  done
  return 1
}

# Whether GStreamer has ELEMENT (gst-inspect-1.0 finds its factory).
decode_has_element() {
  command -v gst-inspect-1.0 >/dev/null && gst-inspect-1.0 --exists "$1" 2>/dev/null
}

decode_path() {
  local nvcuvid cuda path=none cpu= e
  if nvcuvid=$(decode_find_library libnvcuvid.so.1); then
    echo "NVDEC: libnvcuvid.so.1 at $nvcuvid"
  else
    echo "NVDEC: no libnvcuvid.so.1 (the driver's video decoder library; containers get it with NVIDIA_DRIVER_CAPABILITIES including video)"
  fi
  if cuda=$(decode_find_library libcuda.so.1); then
    echo "CUDA driver: libcuda.so.1 at $cuda"
  else
    echo "CUDA driver: no libcuda.so.1"
  fi
  if ! command -v gst-inspect-1.0 >/dev/null; then
    echo "GStreamer: no gst-inspect-1.0 on PATH (source the bundle's env.sh first)"
  elif decode_has_element nvh264dec; then
    echo "GStreamer: nvh264dec present"
  else
    echo "GStreamer: no nvh264dec (nvcodec registers it only where it can open CUDA and NVDEC)"
  fi
  for e in avdec_h264 openh264dec; do
    if decode_has_element "$e"; then cpu=$e; break; fi
  done
  echo "GStreamer CPU decoder: ${cpu:-none (avdec_h264: gstreamer1.0-libav; openh264dec: gstreamer1.0-plugins-bad)}"
  if [ -n "$nvcuvid" ] && decode_has_element nvh264dec; then
    path=nvdec
    echo "measured: nvh264dec on the card, frames into nonlocalclassify in CUDA memory (no cudadownload)"
  elif [ -n "$cpu" ]; then
    path=cpu
    echo "measured: $cpu on the host's CPUs, frames into nonlocalclassify in system memory"
  else
    echo "measured: nothing: no H.264 decoder"
  fi
  echo "decode-path: $path"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -u
  case ${1:-} in -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
  decode_path
fi
