#!/usr/bin/env bash
# On the GPU machine: the Triton server of the `remote` phase of benches/gpu/run.sh, from the
# parts benches/gpu/remote-parts.sh made here (carried one per call, e.g. .gpu-remote/r0):
#
#   benches/gpu/remote-install.sh [PART_DIR ...]
#
# copies the given parts into $GPU_REMOTE/parts; once every part is there, checks them, unpacks
# them into $GPU_REMOTE/site, links libonnxruntime.so.<ORT_VERSION> and
# libonnxruntime_providers_cuda.so into its onnxruntime/capi from $ORT_DIR, and checks the result
# with $PY: the python-backend stub's libraries (libpython included), numpy<2 and onnxruntime-gpu
# imported from the site, and a CUDA session. Without arguments it only checks an installed site.
# Run it after the GPU bundle's unpack.sh (its ort folder and env.sh, which is sourced for the
# CUDA check when ORT_DYLIB_PATH is unset).
#
# Settings (environment): GPU_REMOTE (default /root/gpu-remote), ORT_DIR (default
# /root/gpu-bundle/ort), PY (default python3: the Python the server's models will run in),
# REMOTE_CHECK (1, the default: everything; import: no CUDA session; 0: no check).
# Exit status 0: installed and checked, or waiting for more parts (it says which); 1: a check
# failed; 2: a part or a setting is wrong.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/versions.sh
source "$ROOT/tools/versions.sh"
G=${GPU_REMOTE:-/root/gpu-remote}
ORT_DIR=${ORT_DIR:-/root/gpu-bundle/ort}
PY=${PY:-python3}
CHECK=${REMOTE_CHECK:-1}

die() { echo "remote-install: $*" >&2; exit 2; }
case ${1:-} in -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
fail() { echo "remote-install: $*" >&2; exit 1; }
case $CHECK in 0|1|import) ;; *) die "REMOTE_CHECK is 1, import or 0, not '$CHECK'" ;; esac
mkdir -p "$G/parts"

for part in "$@"; do
  if [ ! -f "$part/site.sha256" ] || [ ! -f "$part/site.parts" ] ||
    ! compgen -G "$part/site.tar.xz.part*" >/dev/null; then
    die "$part is not a part folder of benches/gpu/remote-parts.sh (site.tar.xz.partNN, site.sha256, site.parts): carry .gpu-remote/rN and name it here"
  fi
  if [ -f "$G/parts/site.sha256" ] && ! cmp -s "$part/site.sha256" "$G/parts/site.sha256"; then
    echo "remote-install: $G/parts held parts of another build: removed" >&2
    rm -f "$G"/parts/*
  fi
  cp "$part"/site.tar.xz.part* "$part/site.sha256" "$part/site.parts" "$G/parts/"
  echo "remote-install: copied $(cd "$part" && echo site.tar.xz.part*) into $G/parts"
done

if [ -f "$G/parts/site.parts" ]; then
  want=$(cat "$G/parts/site.parts")
  have=$(find "$G/parts" -maxdepth 1 -name 'site.tar.xz.part*' | wc -l)
  if [ "$have" -lt "$want" ]; then
    missing=()
    for ((i = 0; i < want; i++)); do
      [ -f "$G/parts/site.tar.xz.part$(printf %02d "$i")" ] || missing+=(".gpu-remote/r$i")
    done
    echo "remote-install: $have of $want parts in $G/parts; still to copy (a call each, carrying it): ${missing[*]}"
    exit 0
  fi
  cat "$G"/parts/site.tar.xz.part* | sha256sum -c --status "$G/parts/site.sha256" ||
    die "the parts in $G/parts do not add up to the site.tar.xz they were cut from (sha256): copy all $want parts of one build again"
  rm -rf "$G/site.new"
  mkdir -p "$G/site.new"
  cat "$G"/parts/site.tar.xz.part* | xz -dc | tar -xf - -C "$G/site.new" ||
    die "could not unpack the parts into $G/site.new (disk space? df -h $G)"
  rm -rf "$G/site"
  mv "$G/site.new" "$G/site"
  rm -rf "$G/parts"
  echo "remote-install: unpacked $G/site"
fi
SITE=$G/site
[ -d "$SITE/pytriton/tritonserver" ] ||
  die "no site in $SITE: carry the parts of benches/gpu/remote-parts.sh (.gpu-remote/rN) and name them here"

# ONNX Runtime's own libraries and the CUDA provider from the GPU bundle (the same wheel's).
for lib in "libonnxruntime.so.$ORT_VERSION" libonnxruntime_providers_cuda.so; do
  [ -f "$ORT_DIR/$lib" ] ||
    die "$ORT_DIR/$lib is missing: unpack the GPU bundle first (its parts, then unpack.sh), or set ORT_DIR to a folder holding onnxruntime-gpu $ORT_VERSION's $lib"
  ln -sf "$ORT_DIR/$lib" "$SITE/onnxruntime/capi/$lib"
done
echo "remote-install: linked libonnxruntime.so.$ORT_VERSION and libonnxruntime_providers_cuda.so from $ORT_DIR"
[ "$CHECK" != 0 ] || exit 0

# The Python the site was made for, and the stub's libraries.
stub=$(find "$SITE/pytriton/tritonserver/python_backend_stubs" -name triton_python_backend_stub | head -1)
[ -n "$stub" ] || fail "$SITE has no python-backend stub"
site_pyv=$(basename "$(dirname "$stub")")
pyv=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null) ||
  die "PY='$PY' does not run: set PY to the Python the server's models run in"
[ "$pyv" = "$site_pyv" ] ||
  fail "the site is for Python $site_pyv, but $PY is $pyv: make the parts with benches/gpu/remote-parts.sh --python-version $pyv, or set PY"
libdir=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
if [ -f "$libdir/libpython$pyv.so.1.0" ]; then
  echo "remote-install: libpython$pyv.so.1.0 in $libdir (for the stub)"
elif /sbin/ldconfig -p 2>/dev/null | grep -q "libpython$pyv\.so\.1\.0 "; then
  echo "remote-install: libpython$pyv.so.1.0 in the loader's cache (for the stub)"
else
  fail "libpython$pyv.so.1.0, which the python backend's stub links, is neither in $PY's LIBDIR (${libdir:-unset}) nor in the loader's cache: install that Python's shared library (Ubuntu: libpython${pyv}t64), or run the server's models in a Python that has it (PY)"
fi
unresolved=$(LD_LIBRARY_PATH="$SITE/nvidia_pytriton.libs:$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  ldd "$SITE/pytriton/tritonserver/bin/tritonserver" "$stub" \
  "$SITE/pytriton/tritonserver/backends/python/libtriton_python.so" 2>&1 | grep 'not found' | sort -u || true)
[ -z "$unresolved" ] || fail "libraries of tritonserver or its python backend are missing on this machine: $unresolved"

if [ "$CHECK" = 1 ] && [ -z "${ORT_DYLIB_PATH:-}" ] && [ -f "$(dirname "$ORT_DIR")/env.sh" ]; then
  # shellcheck disable=SC1091
  source "$(dirname "$ORT_DIR")/env.sh" ||
    echo "remote-install: $(dirname "$ORT_DIR")/env.sh failed; the CUDA check goes on without it" >&2
fi
PYTHONPATH=$SITE "$PY" - "$SITE" "$CHECK" "$ROOT/tests/models/probe.onnx" <<'EOF' || fail "the site's packages do not work with $PY (above)"
import os, sys
site, check, probe = sys.argv[1:]
import numpy as np
import onnxruntime as ort
for mod in (np, ort):
    if not os.path.realpath(mod.__file__).startswith(os.path.realpath(site)):
        sys.exit(f"{mod.__name__} came from {mod.__file__}, not from {site}")
if not np.__version__.startswith("1."):
    sys.exit(f"numpy {np.__version__}: the python backend needs numpy<2")
if "CUDAExecutionProvider" not in ort.get_available_providers():
    sys.exit(f"onnxruntime {ort.__version__} has no CUDA provider: {ort.get_available_providers()}")
line = f"numpy {np.__version__}, onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"
if check == "1":
    s = ort.InferenceSession(probe, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    if s.get_providers()[0] != "CUDAExecutionProvider":
        sys.exit(f"a CUDA session could not be opened (got {s.get_providers()}; ONNX Runtime's "
                 "reason above): are CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH (source the GPU "
                 "bundle's env.sh)?")
    s.run(None, {"video": np.zeros((2, 3, 4, 8, 8), np.float32)})
    line += "; a CUDA session ran"
print(f"remote-install: {line}")
EOF
echo "remote-install: ready: tools/triton-serve --python $(command -v "$PY") --site $SITE --provider cuda --repo DIR"
