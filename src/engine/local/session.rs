//! Opening ONNX Runtime sessions of one model (on CUDA or CPU, with the CUDA options in force)
//! and reading the model's description (input, output, metadata) from a session.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ort::ep::ArbitrarilyConfigurableExecutionProvider as _;
use ort::ep::ExecutionProvider as _;
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::cuda::{cuda_options, is_out_of_memory};
use super::{Provider, ProviderChoice};
use crate::config::{InputType, ModelIo, ModelMetadata};
use crate::engine::{EngineError, ModelInfo};

/// What it takes to open (more) sessions of one model.
pub(super) struct SessionSource {
    pub(super) env: ort::environment::Environment,
    pub(super) bytes: Arc<Vec<u8>>,
    pub(super) shown: String,
    pub(super) device: i32,
    pub(super) gpu_mem_limit_mib: u32,
    /// Whether CUDA sessions fuse convolution and bias (cleared when cuDNN refuses one).
    pub(super) fused: std::sync::atomic::AtomicBool,
    /// Whether CUDA sessions capture and replay CUDA graphs (NONLOCAL_CUDA_GRAPH, read once when
    /// the model is opened, so that every session and run of it agree).
    pub(super) graphs: bool,
}

impl SessionSource {
    /// A session on `choice`'s provider: (session, provider used, why CUDA was not used).
    pub(super) fn session(
        &self,
        choice: ProviderChoice,
    ) -> Result<(Session, Provider, Option<String>), EngineError> {
        let (shown, device) = (&self.shown, self.device);
        let (mut builder, provider, fallback_reason) = self.builder(choice, true)?;
        let invalid = |e: &dyn std::fmt::Display| EngineError::ModelInvalid {
            path: shown.to_string(),
            reason: e.to_string(),
        };
        let session = builder.commit_from_memory(&self.bytes).map_err(|e| {
            let reason = e.to_string();
            if provider == Provider::Cuda && is_out_of_memory(&reason) {
                EngineError::GpuOutOfMemory {
                    path: shown.to_string(),
                    device,
                    reason,
                }
            } else {
                invalid(&e)
            }
        })?;
        Ok((session, provider, fallback_reason))
    }

    /// A session builder on `choice`'s provider: (builder, provider used, why CUDA was not
    /// used). `tuned`: with CUDA graphs (when asked for) and the tuned CUDA options, for the
    /// model's own sessions; without, for small helper graphs of varying shapes.
    pub(super) fn builder(
        &self,
        choice: ProviderChoice,
        tuned: bool,
    ) -> Result<(SessionBuilder, Provider, Option<String>), EngineError> {
        let (shown, device) = (&self.shown, self.device);
        let invalid = |e: &dyn std::fmt::Display| EngineError::ModelInvalid {
            path: shown.to_string(),
            reason: e.to_string(),
        };
        let mut builder = plain_builder(&self.env).map_err(|e| invalid(&e))?;
        let mut provider = Provider::Cpu;
        let mut fallback_reason = None;
        if choice != ProviderChoice::Cpu {
            let mut cuda = ort::ep::CUDA::default().with_device_id(device);
            if self.gpu_mem_limit_mib > 0 {
                cuda = cuda.with_memory_limit(self.gpu_mem_limit_mib as usize * 1024 * 1024);
            }
            if tuned && self.graphs {
                cuda = cuda.with_cuda_graph(true);
            }
            for (key, value) in cuda_options(self.fused.load(Ordering::Relaxed))
                .into_iter()
                .filter(|_| tuned)
            {
                cuda = cuda.with_arbitrary_config(key, value);
            }
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
        Ok((builder, provider, fallback_reason))
    }
}

/// A session builder on the CPU with the engine's threading: no spinning, since the intra-op
/// threads share the cores with the pipelines' own threads.
pub(super) fn plain_builder(env: &ort::environment::Environment) -> ort::Result<SessionBuilder> {
    Session::builder(env).and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
}

fn tensor_dims(ty: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

/// The model's description as `session` reads it: its first input and output (scores must be
/// float32 or float16) and its metadata.
pub(super) fn model_info(session: &Session, shown: &str) -> Result<ModelInfo, EngineError> {
    let invalid = |e: &dyn std::fmt::Display| EngineError::ModelInvalid {
        path: shown.to_string(),
        reason: e.to_string(),
    };
    let shape_err = |reason: String| EngineError::ModelShape {
        path: shown.to_string(),
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
        ModelMetadata::parse(|key| meta.custom(key)).map_err(|source| EngineError::Metadata {
            path: shown.to_string(),
            source,
        })?
    };
    Ok(ModelInfo {
        name: shown.to_string(),
        io,
        metadata,
    })
}
