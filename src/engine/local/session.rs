//! Opening ONNX Runtime sessions of one model (on CUDA, OpenVINO or the CPU provider, with the
//! CUDA and OpenVINO options in force) and reading the model's description (input, output,
//! metadata) from a session.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ort::ep::ArbitrarilyConfigurableExecutionProvider as _;
use ort::ep::ExecutionProvider as _;
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::cuda::{cuda_options, is_out_of_memory};
use super::quantized::refuse_quantized;
use super::runtime::runtime_info;
use super::{OpenVinoOptions, Provider, ProviderChoice};
use crate::config::{InputType, ModelIo, ModelMetadata};
use crate::engine::{EngineError, ModelInfo};

/// What it takes to open (more) sessions of one model.
pub(super) struct SessionSource {
    pub(super) env: ort::environment::Environment,
    pub(super) bytes: Arc<Vec<u8>>,
    pub(super) shown: String,
    pub(super) device: i32,
    pub(super) gpu_mem_limit_mib: u32,
    pub(super) openvino: OpenVinoOptions,
    /// The model's quantization nodes (`quantized::quantized_nodes`): a quantized model is
    /// refused under CUDA.
    pub(super) quantized_nodes: usize,
    /// Whether CUDA sessions fuse convolution and bias (cleared when cuDNN refuses one).
    pub(super) fused: std::sync::atomic::AtomicBool,
    /// Whether CUDA sessions capture and replay CUDA graphs (NONLOCAL_CUDA_GRAPH, read once when
    /// the model is opened, so that every session and run of it agree).
    pub(super) graphs: bool,
}

impl SessionSource {
    /// A session on `choice`'s provider: (session, provider used, why `auto` did not use a
    /// faster one). Under `auto`, a model OpenVINO cannot compile opens on the CPU provider.
    pub(super) fn session(
        &self,
        choice: ProviderChoice,
    ) -> Result<(Session, Provider, Option<String>), EngineError> {
        let (shown, device) = (&self.shown, self.device);
        let (mut builder, provider, fallback_reason) = self.builder(choice, true)?;
        refuse_quantized(provider, self.quantized_nodes, shown)?;
        let committed = builder.commit_from_memory(&self.bytes);
        match committed {
            Ok(session) => Ok((session, provider, fallback_reason)),
            Err(e) if provider == Provider::OpenVino => {
                // Whether the model is at fault or OpenVINO: the CPU provider tells.
                let (mut cpu, _, _) = self.builder(ProviderChoice::Cpu, true)?;
                let session = cpu.commit_from_memory(&self.bytes).map_err(|cpu_error| {
                    EngineError::ModelInvalid {
                        path: shown.to_string(),
                        reason: cpu_error.to_string(),
                    }
                })?;
                if choice != ProviderChoice::Auto {
                    return Err(EngineError::OpenVinoFailed {
                        path: shown.to_string(),
                        reason: e.to_string(),
                    });
                }
                let why = format!("OpenVINO could not compile the model: {e}");
                let reason = match fallback_reason {
                    Some(earlier) => format!("{earlier}; {why}"),
                    None => why,
                };
                Ok((session, Provider::Cpu, Some(reason)))
            }
            Err(e) => {
                let reason = e.to_string();
                Err(if provider == Provider::Cuda && is_out_of_memory(&reason) {
                    EngineError::GpuOutOfMemory {
                        path: shown.to_string(),
                        device,
                        reason,
                    }
                } else {
                    EngineError::ModelInvalid {
                        path: shown.to_string(),
                        reason,
                    }
                })
            }
        }
    }

    /// A session builder on `choice`'s provider: (builder, provider used, why `auto` did not
    /// use a faster one). Auto tries CUDA, then OpenVINO when the loaded ONNX Runtime has it,
    /// then takes the CPU provider. `tuned`: with CUDA graphs (when asked for) and the tuned CUDA
    /// options, for the model's own sessions; without, for small helper graphs of varying shapes.
    pub(super) fn builder(
        &self,
        choice: ProviderChoice,
        tuned: bool,
    ) -> Result<(SessionBuilder, Provider, Option<String>), EngineError> {
        let device = self.device;
        let mut builder = plain_builder(&self.env).map_err(|e| EngineError::ModelInvalid {
            path: self.shown.clone(),
            reason: e.to_string(),
        })?;
        let mut passed_over = Vec::new();
        if matches!(choice, ProviderChoice::Auto | ProviderChoice::Cuda) {
            match self.cuda(tuned).register(&mut builder) {
                Ok(()) => return Ok((builder, Provider::Cuda, None)),
                Err(e) if choice == ProviderChoice::Cuda => {
                    return Err(EngineError::CudaUnavailable {
                        device,
                        reason: e.to_string(),
                    })
                }
                Err(e) => passed_over.push(format!("CUDA: {e}")),
            }
        }
        if matches!(choice, ProviderChoice::Auto | ProviderChoice::OpenVino) {
            match self.register_openvino(&mut builder) {
                Ok(()) => {
                    let reason = (!passed_over.is_empty()).then(|| passed_over.join("; "));
                    return Ok((builder, Provider::OpenVino, reason));
                }
                Err(reason) if choice == ProviderChoice::OpenVino => {
                    let runtime = runtime_info()?;
                    return Err(EngineError::OpenVinoUnavailable {
                        runtime: runtime.path.display().to_string(),
                        version: runtime.version,
                        reason,
                    });
                }
                Err(reason) => passed_over.push(format!("OpenVINO: {reason}")),
            }
        }
        let reason = (!passed_over.is_empty()).then(|| passed_over.join("; "));
        Ok((builder, Provider::Cpu, reason))
    }

    /// CUDA's provider with the settings of this model's sessions (see [`Self::builder`]).
    fn cuda(&self, tuned: bool) -> ort::ep::CUDA {
        let mut cuda = ort::ep::CUDA::default().with_device_id(self.device);
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
        cuda
    }

    /// Add OpenVINO's provider on the CPU, with the options asked for, to `builder`; why not
    /// when the loaded ONNX Runtime has no OpenVINO provider or refuses it.
    fn register_openvino(&self, builder: &mut SessionBuilder) -> Result<(), String> {
        use ort::ep::OpenVINO;
        match OpenVINO::is_available() {
            Ok(true) => {}
            Ok(false) => {
                let cuda = ort::ep::CUDA::is_available().unwrap_or(false);
                return Err(if cuda { "a CUDA build" } else { "a CPU build" }.into());
            }
            Err(e) => return Err(e.to_string()),
        }
        let options = &self.openvino;
        let mut openvino = OpenVINO::default().with_device_type("CPU");
        if options.threads > 0 {
            openvino = openvino.with_num_threads(options.threads as usize);
        }
        if options.streams > 0 {
            openvino = openvino.with_arbitrary_config("num_streams", options.streams);
        }
        if let Some(dir) = &options.cache_dir {
            openvino = openvino.with_cache_dir(dir.display());
        }
        openvino.register(builder).map_err(|e| e.to_string())
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
