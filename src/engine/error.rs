//! What can go wrong opening a model or running it: every message names the file, value or
//! setting at fault and what to do.

use crate::config::ConfigError;

use super::local::{OPENVINO_ORT_VERSION, ORT_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "ONNX Runtime could not be loaded ({tried}). Install it with 'python3 -m pip install onnxruntime=={ORT_VERSION}' (or onnxruntime-gpu=={ORT_VERSION} for CUDA) and set ORT_DYLIB_PATH to the library inside the wheel, e.g. ORT_DYLIB_PATH=$(python3 -c 'import onnxruntime, pathlib; print(next((pathlib.Path(onnxruntime.__file__).parent / \"capi\").glob(\"libonnxruntime.so*\")))')"
    )]
    RuntimeMissing { tried: String },
    #[error("model file '{path}' cannot be read: {reason}; check the 'model' property")]
    ModelUnreadable { path: String, reason: String },
    #[error("model file '{path}' is not a valid ONNX model ({reason}); export it with tools/export_model.py")]
    ModelInvalid { path: String, reason: String },
    #[error("model '{path}': {reason}")]
    ModelShape { path: String, reason: String },
    #[error("model '{path}': {source}")]
    Metadata {
        path: String,
        #[source]
        source: ConfigError,
    },
    #[error(
        "CUDA was requested (execution-provider=cuda, device-id={device}) but ONNX Runtime could not create its CUDA execution provider: {reason}. Install onnxruntime-gpu=={ORT_VERSION} with CUDA 13 and cuDNN 9 and point ORT_DYLIB_PATH at it, or set execution-provider=cpu"
    )]
    CudaUnavailable { device: i32, reason: String },
    #[error(
        "execution-provider=openvino needs ONNX Runtime's OpenVINO build, but the ONNX Runtime loaded, {runtime} (version {version}), has no OpenVINO execution provider ({reason}). Install it with tools/install-prereqs, or 'python3 -m pip install --target ~/.local/share/nonlocalclassify/onnxruntime-openvino onnxruntime-openvino=={OPENVINO_ORT_VERSION}', where the element finds it when ORT_DYLIB_PATH is unset (else point ORT_DYLIB_PATH at its onnxruntime/capi/libonnxruntime.so.{OPENVINO_ORT_VERSION}); or set execution-provider=cpu"
    )]
    OpenVinoUnavailable {
        runtime: String,
        version: String,
        reason: String,
    },
    #[error(
        "OpenVINO cannot compile model '{path}' ({reason}); ONNX Runtime's CPU provider opens it: try execution-provider=cpu (auto falls back to it)"
    )]
    OpenVinoFailed { path: String, reason: String },
    #[error(
        "model '{path}' is quantized (int8: {nodes} quantization nodes), which ONNX Runtime's CUDA provider runs in float32 between extra conversions, slower than the float32 export: use the model's float32 export on CUDA, or run this one with execution-provider=openvino (or cpu)"
    )]
    QuantizedOnCuda { path: String, nodes: usize },
    #[error(
        "model '{path}' does not fit in the memory of CUDA device {device} ({reason}); free GPU memory, raise the gpu-memory-limit property, lower max-batch, or set execution-provider=cpu"
    )]
    GpuOutOfMemory {
        path: String,
        device: i32,
        reason: String,
    },
    #[error("inference failed: {0}")]
    Inference(String),
    /// The remote backend's failures (they name the servers and the model).
    #[error("{0}")]
    Remote(#[from] super::remote::RemoteError),
}
