//! Loading ONNX Runtime at run time, once per process.
//!
//! ONNX Runtime is loaded dynamically (so `gst-inspect-1.0` works without it): from
//! `ORT_DYLIB_PATH` when set, else `libonnxruntime.so` on the library path, else the wheel inside
//! an active virtual environment (`$VIRTUAL_ENV`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::engine::EngineError;

/// ONNX Runtime version the project is built and tested with.
pub const ORT_VERSION: &str = "1.31.1";

/// The process-wide ONNX Runtime environment.
static RUNTIME: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn runtime_candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(path)];
    }
    let mut paths = vec![
        PathBuf::from("libonnxruntime.so"),
        PathBuf::from("libonnxruntime.so.1"),
    ];
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        if let Ok(entries) = std::fs::read_dir(Path::new(&venv).join("lib")) {
            for entry in entries.flatten() {
                let capi = entry.path().join("site-packages/onnxruntime/capi");
                paths.push(capi.join(format!("libonnxruntime.so.{ORT_VERSION}")));
            }
        }
    }
    paths
}

/// Load ONNX Runtime once per process; later calls return the same environment.
pub fn runtime() -> Result<ort::environment::Environment, EngineError> {
    let mut guard = RUNTIME
        .lock()
        .map_err(|_| EngineError::Inference("runtime lock poisoned".into()))?;
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    let mut tried = Vec::new();
    for path in runtime_candidates() {
        match ort::init_from(&path) {
            Ok(builder) => {
                let env = builder.with_name("nonlocalclassify").build().map_err(|e| {
                    EngineError::RuntimeMissing {
                        tried: format!("{}: {e}", path.display()),
                    }
                })?;
                *guard = Some(env.clone());
                return Ok(env);
            }
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    Err(EngineError::RuntimeMissing {
        tried: tried.join("; "),
    })
}
