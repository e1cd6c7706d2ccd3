# Shared set-up of tools/demo and tools/run-tests; source it from the repository root.
# Installs what is missing (Debian packages, a Python venv with ONNX Runtime), builds the plugin,
# and exports ORT_DYLIB_PATH, GST_PLUGIN_PATH and PATH for the venv. Safe to run again: every step
# checks first.
set -euo pipefail

ORT_VERSION=1.31.1
REPO=$(pwd)
VENV=${NONLOCAL_VENV:-$REPO/.venv}
CACHE=${NONLOCAL_CACHE:-$REPO/.cache}
APT_PACKAGES=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav gstreamer1.0-tools
  python3-venv python3-gi python3-gst-1.0)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi

# The distribution's Python with its PyGObject, plus ONNX Runtime and the model tool's packages.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the Python environment $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, onnx, numpy, pytest, hypothesis, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  say "installing onnxruntime==$ORT_VERSION, onnx, numpy, pytest, hypothesis into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REPO/tools/requirements.txt"
fi
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$VENV/bin/python" -c "import onnxruntime, pathlib; print(pathlib.Path(onnxruntime.__file__).parent / 'capi' / 'libonnxruntime.so.$ORT_VERSION')")}
export ORT_DYLIB_PATH
export PATH="$VENV/bin:$PATH"
export NONLOCAL_CACHE=$CACHE
mkdir -p "$CACHE"
