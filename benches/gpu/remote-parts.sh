#!/usr/bin/env bash
# Builds, from wheels downloaded here, the Triton server that the `remote` phase of
# benches/gpu/run.sh runs on a GPU machine, as parts small enough to carry one per call:
#
#   benches/gpu/remote-parts.sh [--python-version 3.12] [--part-mib 55] [OUT]   (OUT: .gpu-remote)
#
# The server's folder (a "site", one folder for PYTHONPATH) holds:
#   - nvidia-pytriton 0.7.0: tritonserver 2.51, its libraries and the python backend, with the
#     python-backend stub of --python-version only (the wheel's libpython copy for another
#     version's stub left out);
#   - numpy 1.26.4 (the bundled python backend returns empty outputs with numpy 2);
#   - onnxruntime-gpu (tools/versions.sh's ORT_VERSION) without libonnxruntime.so.*,
#     libonnxruntime_providers_cuda.so and libonnxruntime_providers_tensorrt.so: the install
#     links the first two from the GPU bundle's ort folder (the same files, from the same wheel),
#     TensorRT is not used.
# onnxruntime-gpu's other needs (flatbuffers, packaging, protobuf, sympy) are on the GPU
# machine's Python already, and `import onnxruntime` needs none of them.
#
# The folder, tarred and compressed with xz, is split into OUT/r0, OUT/r1, ... (each a piece
# site.tar.xz.partNN, site.sha256 and site.parts); OUT/wheels keeps the downloads for the next
# build. benches/gpu/remote-install.sh copies the parts on the machine and assembles them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/versions.sh
source "$ROOT/tools/versions.sh"
PYTRITON_VERSION=0.7.0
NUMPY_VERSION=1.26.4
pyv=3.12 part_mib=55 out=.gpu-remote

die() { echo "remote-parts: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) pyv=$2; shift ;;
    --part-mib) part_mib=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) out=$1 ;;
  esac
  shift
done
case $pyv in 3.[0-9]|3.[0-9][0-9]) ;; *) die "--python-version takes 3.N, not '$pyv'" ;; esac
case $part_mib in ''|*[!0-9]*) die "--part-mib takes a whole number of MiB, not '$part_mib'" ;; esac
for tool in unzip xz split sha256sum python3; do
  command -v "$tool" >/dev/null || die "$tool is missing here (install it: apt-get install unzip xz-utils coreutils python3)"
done
mkdir -p "$out/wheels"
out=$(cd "$out" && pwd)
W=$out/wheels
tag=cp${pyv/./}

# Downloads (kept in OUT/wheels): the wheels for an x86-64 Linux with glibc 2.35 or later.
fetch() {  # NAME VERSION FILE-GLOB
  local name=$1 version=$2 glob=$3 f
  for f in "$W"/$glob; do [ -f "$f" ] && return 0; done
  echo "remote-parts: downloading $name==$version for Python $pyv" >&2
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyv" \
    --implementation cp --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$W" "$name==$version" ||
    die "pip could not download $name==$version for Python $pyv into $W (network, or no such wheel)"
}
fetch nvidia-pytriton "$PYTRITON_VERSION" "nvidia_pytriton-$PYTRITON_VERSION-*.whl"
fetch numpy "$NUMPY_VERSION" "numpy-$NUMPY_VERSION-$tag-*.whl"
fetch onnxruntime-gpu "$ORT_VERSION" "onnxruntime_gpu-$ORT_VERSION-$tag-*.whl"
one() { local f; for f in "$W"/$1; do [ -f "$f" ] && { echo "$f"; return 0; }; done; die "no $1 in $W"; }
pytriton_whl=$(one "nvidia_pytriton-$PYTRITON_VERSION-*.whl")
numpy_whl=$(one "numpy-$NUMPY_VERSION-$tag-*.whl")
ort_whl=$(one "onnxruntime_gpu-$ORT_VERSION-$tag-*.whl")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
site=$work/site
mkdir -p "$site"
ort_left_out=("onnxruntime/capi/libonnxruntime.so.*" "onnxruntime/capi/libonnxruntime_providers_cuda.so"
  "onnxruntime/capi/libonnxruntime_providers_tensorrt.so")
unzip -q "$pytriton_whl" -d "$site"
unzip -q "$numpy_whl" -d "$site"
unzip -q "$ort_whl" -d "$site" -x "${ort_left_out[@]}"
if compgen -G "$site/*.data" >/dev/null; then
  die "a wheel has a .data folder ($(cd "$site" && echo ./*.data)), which unzipping does not install: install it with pip instead"
fi

# The stub of one Python version; the wheel's grafted libpython copies no remaining stub links.
stubs=$site/pytriton/tritonserver/python_backend_stubs
[ -f "$stubs/$pyv/triton_python_backend_stub" ] ||
  die "nvidia-pytriton $PYTRITON_VERSION has no python-backend stub for Python $pyv (it has: $(cd "$stubs" && echo *))"
for d in "$stubs"/*; do [ "$(basename "$d")" = "$pyv" ] || rm -rf "$d"; done
for lib in "$site"/nvidia_pytriton.libs/libpython3*; do
  [ -f "$lib" ] || continue
  grep -qaF "$(basename "$lib")" "$stubs/$pyv/triton_python_backend_stub" || rm -f "$lib"
done
# The RECORD of onnxruntime-gpu without the files left out (the install links two of them back).
python3 - "$site" "$ORT_VERSION" <<'EOF'
import pathlib, sys
site, version = pathlib.Path(sys.argv[1]), sys.argv[2]
record = site / f"onnxruntime_gpu-{version}.dist-info" / "RECORD"
lines = record.read_text().splitlines(keepends=True)
record.write_text("".join(l for l in lines if (site / l.split(",")[0]).exists()
                          or not l.startswith("onnxruntime/capi/")))
EOF
cat > "$site/NONLOCAL-SITE.txt" <<EOF
Triton server site for Python $pyv (benches/gpu/remote-parts.sh, $(date -u '+%Y-%m-%d %H:%M UTC')):
$(basename "$pytriton_whl") (python-backend stub $pyv only)
$(basename "$numpy_whl")
$(basename "$ort_whl") without ${ort_left_out[*]}
(benches/gpu/remote-install.sh links libonnxruntime.so.$ORT_VERSION and libonnxruntime_providers_cuda.so)
EOF

echo "remote-parts: compressing $(du -sm "$site" | cut -f1) MiB (xz, a few minutes)" >&2
tar -C "$site" -cf - . | xz -6 -T0 > "$work/site.tar.xz"
sha=$(sha256sum < "$work/site.tar.xz" | cut -d' ' -f1)
rm -rf "$out"/r[0-9]*
(cd "$work" && split -b "${part_mib}M" -d -a 2 site.tar.xz site.tar.xz.part)
parts=("$work"/site.tar.xz.part*)
i=0
for p in "${parts[@]}"; do
  mkdir -p "$out/r$i"
  mv "$p" "$out/r$i/"
  echo "$sha  -" > "$out/r$i/site.sha256"
  echo "${#parts[@]}" > "$out/r$i/site.parts"
  i=$((i + 1))
done
echo "remote-parts: $out: ${#parts[@]} part(s) of at most $part_mib MiB, site.tar.xz sha256 $sha"
du -sh "$out"/r[0-9]*
