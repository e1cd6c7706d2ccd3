# Exports the project's environment into the shell that sources it, after tools/install-prereqs:
#   source tools/env.sh [release|debug]     (the plugin build GST_PLUGIN_PATH points at)
# ORT_DYLIB_PATH (unless already set: ONNX Runtime's OpenVINO build tools/install-prereqs
# installed, which the element also finds without it), GST_PLUGIN_PATH, PATH (the .venv first) and
# NONLOCAL_CACHE. Changes no shell option; returns 1 if the .venv or the runtime is missing.
_nl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/versions.sh
source "$_nl_root/tools/versions.sh"
_nl_venv=${NONLOCAL_VENV:-$_nl_root/.venv}
if [ ! -x "$_nl_venv/bin/python" ]; then
  printf 'nonlocalclassify: %s is missing: run tools/install-prereqs first\n' "$_nl_venv" >&2
  unset _nl_root _nl_venv
  return 1
fi
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  if [ ! -f "$OPENVINO_ORT_LIB" ]; then
    printf 'nonlocalclassify: %s is missing: run tools/install-prereqs first\n' "$OPENVINO_ORT_LIB" >&2
    unset _nl_root _nl_venv
    return 1
  fi
  export ORT_DYLIB_PATH=$OPENVINO_ORT_LIB
fi
case ":$PATH:" in *":$_nl_venv/bin:"*) ;; *) export PATH="$_nl_venv/bin:$PATH" ;; esac
export GST_PLUGIN_PATH="$_nl_root/target/${1:-release}${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export NONLOCAL_CACHE=${NONLOCAL_CACHE:-$_nl_root/.cache}
mkdir -p "$NONLOCAL_CACHE"
unset _nl_root _nl_venv
