# The versions the project's scripts install, and where (sourced by tools/install-prereqs and
# tools/env.sh).
ORT_VERSION=1.31.1
# ONNX Runtime's OpenVINO build (PyPI onnxruntime-openvino), the runtime the element runs on
# (docs/runtimes.md). Installed apart from the .venv, whose onnxruntime package it would
# replace, into the user's data folder, where the element finds it with no variable set
# (src/engine/local/runtime.rs reads the same folder).
OPENVINO_ORT_VERSION=1.24.1
case ${XDG_DATA_HOME:-} in
  /*) OPENVINO_ORT_DIR=$XDG_DATA_HOME/nonlocalclassify/onnxruntime-openvino ;;
  *) OPENVINO_ORT_DIR=$HOME/.local/share/nonlocalclassify/onnxruntime-openvino ;;
esac
OPENVINO_ORT_LIB=$OPENVINO_ORT_DIR/onnxruntime/capi/libonnxruntime.so.$OPENVINO_ORT_VERSION
# NNCF, which quantizes int8 models (tools/export_model.py --int8); tools/requirements.txt pins it.
NNCF_VERSION=3.4.0
