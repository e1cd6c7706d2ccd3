#!/usr/bin/env bash
# Builds, on a Debian 12 host, the portable runtime bundle that benches/gpu/run.sh needs on an
# x86-64 Linux card machine that has an NVIDIA driver and CUDA 13 + cuDNN 9 libraries but no ONNX
# Runtime and no GStreamer:
#
#   benches/gpu/bundle-parts.sh [--dry-run] [OUT]      (OUT: .gpu-bundle)
#
#   - ONNX Runtime (tools/versions.sh's ORT_VERSION) with its CUDA provider, from the
#     onnxruntime-gpu wheel;
#   - the GStreamer 1.22 runtime (core, base plugins, gst-launch-1.0, gst-inspect-1.0) as Debian
#     packages;
#   - for the end-to-end benchmark (decoding files into nonlocalclassify, benches/gpu/phases/
#     decode.sh): qtdemux and mp4mux (isomp4), h264parse (videoparsersbad), nvcodec (nvh264dec,
#     nvh264enc, cudaupload, cudadownload; with GStreamer's CUDA library, so the element offers
#     CUDA memory), openh264dec (the CPU decoder where the card has no NVDEC) and x264enc (the
#     encoder where it has no NVENC): only these plugins of their packages, with the libraries
#     they link that a card machine lacks (C and C++ runtimes, zlib and the like are the
#     machine's own);
#   - decode-path.sh (benches/gpu/decode-path.sh), which says which decode path will be measured.
# The bundle is compressed with xz and split into parts of at most 50 MiB, one folder a part:
# OUT/p0 ... OUT/pN; OUT/pN/unpack.sh, run on the machine after every part is in
# /root/gpu-bundle/parts, checks and unpacks them into /root/gpu-bundle, then prints whether the
# driver has NVDEC (libnvcuvid.so.1) and which decode path will be measured. --dry-run prints
# what would be bundled and downloads nothing. Needs apt-get (after apt-get update), python3 with
# pip, unzip, xz and dpkg-deb.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/versions.sh
source "$ROOT/tools/versions.sh"

dry=0 out=.gpu-bundle
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bundle-parts: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) out=$1 ;;
  esac
  shift
done

# The GStreamer runtime: core, base plugins and tools, and what they link.
GST_PACKAGES=(libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-base
  gstreamer1.0-tools liborc-0.4-0 libunwind8 libdw1 libelf1 libglib2.0-0 libffi8 libcap2 libogg0
  libtheora0)
# The decode benchmark's plugins (only these files of their packages are kept) ...
DECODE_PLUGINS=(libgstisomp4.so libgstvideoparsersbad.so libgstnvcodec.so libgstopenh264.so
  libgstx264.so)
DECODE_PLUGIN_PACKAGES=(gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly)
# ... and the libraries they link beyond the runtime above (ldd of the five plugins on Debian 12,
# less libc6, libgcc-s1, libstdc++6, zlib1g, liblzma5, libbz2-1.0 and libexpat1, which a card
# machine has): GStreamer's bad and GL libraries (libgstcuda-1.0 among them), the GL dispatch
# and window-system libraries libgstgl-1.0 links (nothing of them runs without a display), H.264
# codecs.
DECODE_PACKAGES=(libgstreamer-plugins-bad1.0-0 libgstreamer-gl1.0-0 libpcre2-8-0 libgl1 libegl1
  libglx0 libglvnd0 libgbm1 libdrm2 libwayland-client0 libwayland-cursor0 libwayland-egl1
  libwayland-server0 libx11-6 libx11-xcb1 libxcb1 libxau6 libxdmcp6 libgudev-1.0-0 libudev1
  libbsd0 libmd0 libopenh264-7 libx264-164)

if [ "$dry" = 1 ]; then
  echo "onnxruntime-gpu $ORT_VERSION: libonnxruntime.so.$ORT_VERSION, libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so"
  echo "GStreamer runtime packages: ${GST_PACKAGES[*]}"
  echo "decode plugins: ${DECODE_PLUGINS[*]} (from ${DECODE_PLUGIN_PACKAGES[*]})"
  echo "decode libraries: ${DECODE_PACKAGES[*]}"
  echo "scripts: env.sh, decode-path.sh; unpack.sh in the last part"
  exit 0
fi

for tool in apt-get dpkg-deb unzip xz split sha256sum python3; do
  command -v "$tool" >/dev/null || { echo "bundle-parts: $tool is missing here" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/ort" "$work/root/gst" "$work/debs" "$work/plugin-debs" "$work/plugins"

echo "bundle-parts: fetching the onnxruntime-gpu $ORT_VERSION wheel" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$work" "onnxruntime-gpu==$ORT_VERSION"
unzip -q -j -o "$work"/onnxruntime_gpu-*.whl \
  "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" \
  'onnxruntime/capi/libonnxruntime_providers_shared.so' \
  'onnxruntime/capi/libonnxruntime_providers_cuda.so' -d "$work/root/ort"
ln -sf "libonnxruntime.so.$ORT_VERSION" "$work/root/ort/libonnxruntime.so"

echo "bundle-parts: fetching the GStreamer packages" >&2
(cd "$work/debs" && apt-get download -q "${GST_PACKAGES[@]}" "${DECODE_PACKAGES[@]}" >/dev/null 2>&1) ||
  { echo "bundle-parts: apt-get download failed: run 'apt-get update' first" >&2; exit 1; }
(cd "$work/plugin-debs" && apt-get download -q "${DECODE_PLUGIN_PACKAGES[@]}" >/dev/null 2>&1) ||
  { echo "bundle-parts: apt-get download failed: run 'apt-get update' first" >&2; exit 1; }
for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$work/root/gst"; done
for d in "$work"/plugin-debs/*.deb; do dpkg-deb -x "$d" "$work/plugins"; done
plugin_dir=usr/lib/x86_64-linux-gnu/gstreamer-1.0
for p in "${DECODE_PLUGINS[@]}"; do
  [ -f "$work/plugins/$plugin_dir/$p" ] ||
    { echo "bundle-parts: no $p in ${DECODE_PLUGIN_PACKAGES[*]}" >&2; exit 1; }
  cp "$work/plugins/$plugin_dir/$p" "$work/root/gst/$plugin_dir/"
done

cat > "$work/root/env.sh" <<'ENV'
# Source this on the card machine after unpack.sh: ONNX Runtime (CUDA) and GStreamer from the
# bundle, CUDA and cuDNN from the machine's own Python packages.
B=/root/gpu-bundle
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')
export ORT_DYLIB_PATH=$B/ort/libonnxruntime.so
export LD_LIBRARY_PATH=$B/ort:$B/gst/usr/lib/x86_64-linux-gnu:$NV/cu13/lib:$NV/cudnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export GST_PLUGIN_SYSTEM_PATH=$B/gst/usr/lib/x86_64-linux-gnu/gstreamer-1.0
export GST_PLUGIN_SCANNER=$B/gst/usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner
export GST_REGISTRY=$B/registry.bin
export PATH=$B/gst/usr/bin:$PATH
ENV
cp "$ROOT/benches/gpu/decode-path.sh" "$work/root/decode-path.sh"
chmod +x "$work/root/decode-path.sh"

echo "bundle-parts: compressing (a few minutes)" >&2
tar -C "$work/root" -cf - . | xz -6 -T0 > "$work/bundle.tar.xz"
rm -rf "$out"
mkdir -p "$out"
(cd "$out" && split -b 50M -d -a 1 "$work/bundle.tar.xz" bundle.part)
n=0
for f in "$out"/bundle.part*; do mkdir -p "$out/p$n"; mv "$f" "$out/p$n/"; n=$((n + 1)); done
last=$((n - 1))
sum=$(sha256sum "$work/bundle.tar.xz" | cut -d' ' -f1)
cat > "$out/p$last/unpack.sh" <<UNPACK
#!/usr/bin/env bash
# Reassembles the bundle from the parts copied into /root/gpu-bundle/parts, checks it, unpacks it
# there, then says whether the driver has NVDEC and which decode path will be measured.
set -euo pipefail
here=\$(cd "\$(dirname "\$0")" && pwd)
mkdir -p /root/gpu-bundle/parts
cd /root/gpu-bundle
cp "\$here"/bundle.part* parts/
echo "$sum  -" > want.sha256
cat parts/bundle.part* | sha256sum -c want.sha256 >/dev/null ||
  { echo "bundle parts incomplete or corrupt: copy all $n parts first" >&2; exit 1; }
cat parts/bundle.part* | xz -dc | tar -xf -
rm -rf parts
echo "unpacked: now 'source /root/gpu-bundle/env.sh'"
# The decode path, with the bundle's GStreamer (a subshell: nothing stays set).
(set +eu; source /root/gpu-bundle/env.sh 2>/dev/null; bash /root/gpu-bundle/decode-path.sh) || true
UNPACK
chmod +x "$out/p$last/unpack.sh"
echo "bundle-parts: $n parts in $out (p0..p$last); sha256 $sum"
