# Source this from a shell: `source tools/setup.sh` (from any directory).
# Installs what is missing (tools/install-prereqs), builds the plugin (release), and exports
#   ORT_DYLIB_PATH   ONNX Runtime's OpenVINO build (tools/install-prereqs installs it; the
#                    element finds it without this too), unless already set
#   GST_PLUGIN_PATH  target/release, where the plugin is built (prepended)
#   PATH             the .venv's bin directory first (python, pytest)
#   NONLOCAL_CACHE   where the default model is kept (.cache)
# It changes no shell option and never exits your shell: on failure it says why and returns 1.
_nl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if "$_nl_root/tools/install-prereqs" \
  && (cd "$_nl_root" && cargo build --release --lib) \
  && source "$_nl_root/tools/env.sh" release; then
  printf 'nonlocalclassify: ready (GST_PLUGIN_PATH=%s)\n' "$GST_PLUGIN_PATH" >&2
  unset _nl_root
else
  printf 'nonlocalclassify: set-up failed (see above); nothing was exported\n' >&2
  unset _nl_root
  return 1 2>/dev/null || exit 1
fi
