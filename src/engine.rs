//! The inference engine: loads ONNX Runtime at run time, opens models, runs clip batches.
//!
//! ONNX Runtime is loaded dynamically (so `gst-inspect-1.0` works without it): from
//! `ORT_DYLIB_PATH` when set, else `libonnxruntime.so` on the library path, else the wheel inside
//! an active virtual environment (`$VIRTUAL_ENV`). Engines are shared: every element that opens the
//! same model file with the same execution provider and device gets the same session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use half::f16;
use ort::ep::ExecutionProvider as _;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use crate::config::{ConfigError, InputType, ModelIo, ModelMetadata};

/// ONNX Runtime version the project is built and tested with.
pub const ORT_VERSION: &str = "1.31.1";

/// Which execution provider to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderChoice {
    /// CUDA when it can be created, else CPU (with a warning).
    Auto,
    Cuda,
    Cpu,
}

/// The execution provider a session actually uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Cuda,
    Cpu,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
}

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
    #[error("inference failed: {0}")]
    Inference(String),
}

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

/// Input data of one batch, in the model's element type.
pub enum Batch {
    F32(Vec<f32>),
    F16(Vec<f16>),
    U8(Vec<u8>),
}

/// An opened model: one ONNX Runtime session and what the element needs to know about it.
pub struct Engine {
    session: Mutex<Session>,
    pub path: PathBuf,
    pub io: ModelIo,
    pub metadata: ModelMetadata,
    pub provider: Provider,
    /// Why CUDA was not used when `auto` fell back to CPU.
    pub fallback_reason: Option<String>,
}

type EngineKey = (PathBuf, ProviderChoice, i32);
static ENGINES: Mutex<Option<HashMap<EngineKey, Weak<Engine>>>> = Mutex::new(None);

fn tensor_dims(ty: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

impl Engine {
    /// Open `path` (or return the engine already open for it with the same provider and device).
    pub fn shared(
        path: &Path,
        choice: ProviderChoice,
        device: i32,
    ) -> Result<Arc<Engine>, EngineError> {
        let key = (
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            choice,
            device,
        );
        let mut guard = ENGINES
            .lock()
            .map_err(|_| EngineError::Inference("engine registry lock poisoned".into()))?;
        let map = guard.get_or_insert_with(HashMap::new);
        map.retain(|_, weak| weak.strong_count() > 0);
        if let Some(engine) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(engine);
        }
        let engine = Arc::new(Engine::open(path, choice, device)?);
        map.insert(key, Arc::downgrade(&engine));
        Ok(engine)
    }

    /// Open a model file with its own session.
    pub fn open(path: &Path, choice: ProviderChoice, device: i32) -> Result<Engine, EngineError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| EngineError::ModelUnreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let env = runtime()?;
        let invalid = |e: &dyn std::fmt::Display| EngineError::ModelInvalid {
            path: shown.clone(),
            reason: e.to_string(),
        };
        // No spinning: the intra-op threads share the cores with the pipeline's own threads.
        let mut builder = Session::builder(&env)
            .and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
            .map_err(|e| invalid(&e))?;
        let mut provider = Provider::Cpu;
        let mut fallback_reason = None;
        if choice != ProviderChoice::Cpu {
            let cuda = ort::ep::CUDA::default().with_device_id(device);
            match cuda.register(&mut builder) {
                Ok(()) => provider = Provider::Cuda,
                Err(e) if choice == ProviderChoice::Cuda => {
                    return Err(EngineError::CudaUnavailable {
                        device,
                        reason: e.to_string(),
                    })
                }
                Err(e) => fallback_reason = Some(e.to_string()),
            }
        }
        let session = builder
            .commit_from_memory(&bytes)
            .map_err(|e| invalid(&e))?;

        let shape_err = |reason: String| EngineError::ModelShape {
            path: shown.clone(),
            reason,
        };
        let input = session
            .inputs()
            .first()
            .ok_or_else(|| shape_err("the model has no input".into()))?;
        let output = session
            .outputs()
            .first()
            .ok_or_else(|| shape_err("the model has no output".into()))?;
        let (in_ty, in_shape) = tensor_dims(input.dtype())
            .ok_or_else(|| shape_err(format!("input '{}' is not a tensor", input.name())))?;
        let (out_ty, out_shape) = tensor_dims(output.dtype())
            .ok_or_else(|| shape_err(format!("output '{}' is not a tensor", output.name())))?;
        if !matches!(
            out_ty,
            TensorElementType::Float32 | TensorElementType::Float16
        ) {
            return Err(shape_err(format!(
                "output '{}' has element type {out_ty:?}; scores must be float32 or float16",
                output.name()
            )));
        }
        let io = ModelIo {
            input_name: input.name().to_string(),
            input_shape: in_shape,
            input_type: match in_ty {
                TensorElementType::Float32 => Ok(InputType::F32),
                TensorElementType::Float16 => Ok(InputType::F16),
                TensorElementType::Uint8 => Ok(InputType::U8),
                other => Err(format!("{other:?}")),
            },
            output_name: output.name().to_string(),
            output_shape: out_shape,
        };
        let metadata = {
            let meta = session.metadata().map_err(|e| invalid(&e))?;
            ModelMetadata::parse(|key| meta.custom(key)).map_err(|source| {
                EngineError::Metadata {
                    path: shown.clone(),
                    source,
                }
            })?
        };
        Ok(Engine {
            session: Mutex::new(session),
            path: path.to_path_buf(),
            io,
            metadata,
            provider,
            fallback_reason,
        })
    }

    /// Run one batch shaped `shape`; returns the scores of each batch item.
    pub fn run(&self, shape: [i64; 5], batch: Batch) -> Result<Vec<Vec<f32>>, EngineError> {
        let err = |e: &dyn std::fmt::Display| EngineError::Inference(e.to_string());
        let n = usize::try_from(shape[0]).map_err(|e| err(&e))?;
        let shape = shape.to_vec();
        let value = match batch {
            Batch::F32(v) => Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
            Batch::F16(v) => Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
            Batch::U8(v) => Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        }
        .map_err(|e| err(&e))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| EngineError::Inference("session lock poisoned".into()))?;
        let outputs = session
            .run(ort::inputs![self.io.input_name.as_str() => value])
            .map_err(|e| err(&e))?;
        let out = &outputs[0];
        let flat: Vec<f32> = match out.try_extract_tensor::<f32>() {
            Ok((_, data)) => data.to_vec(),
            Err(_) => {
                let (_, data) = out.try_extract_tensor::<f16>().map_err(|e| err(&e))?;
                data.iter().map(|v| v.to_f32()).collect()
            }
        };
        if n == 0 || !flat.len().is_multiple_of(n) {
            return Err(EngineError::Inference(format!(
                "the model returned {} values for a batch of {n}",
                flat.len()
            )));
        }
        Ok(flat.chunks(flat.len() / n).map(<[f32]>::to_vec).collect())
    }
}
