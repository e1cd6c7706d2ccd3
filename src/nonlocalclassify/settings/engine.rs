//! The model and where it runs: the provider and card, the shared engine's batching, the queue
//! of clips waiting for it, and where the model's inputs are written (`dump-inputs`).

use std::path::PathBuf;

use super::{Property, Range};
use crate::engine::{LocalSettings, OpenVinoOptions, ProviderChoice};
use crate::nonlocalclassify::{ExecutionProvider, Leaky};

pub const DEVICE_ID: Range<i32> = Range::new(0, 63, 0);
pub const MAX_PENDING: Range<u32> = Range::new(1, 1024, 2);
pub const MAX_BATCH: Range<u32> = Range::new(1, 256, 8);
/// Milliseconds.
pub const BATCH_TIMEOUT: Range<u32> = Range::new(0, 10_000, 0);
/// MiB; 0: no limit.
pub const GPU_MEMORY_LIMIT: Range<u32> = Range::new(0, 1 << 20, 0);
/// 0: OpenVINO's own choice (every core).
pub const OPENVINO_THREADS: Range<u32> = Range::new(0, 1024, 0);
/// 0: OpenVINO's own choice (one stream); each stream is a lane with its own session.
pub const OPENVINO_STREAMS: Range<u32> = Range::new(0, 16, 0);

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub model: Option<String>,
    pub execution_provider: ExecutionProvider,
    pub device_id: i32,
    pub gpu_memory_limit: u32,
    pub openvino_threads: u32,
    pub openvino_streams: u32,
    pub openvino_cache_dir: Option<String>,
    pub max_batch: u32,
    pub batch_timeout_ms: u32,
    pub max_pending: u32,
    /// The directory each clip's model input is written to (`dump-inputs`).
    pub dump_inputs: Option<String>,
    pub leaky: Leaky,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            model: None,
            execution_provider: ExecutionProvider::default(),
            device_id: DEVICE_ID.default,
            gpu_memory_limit: GPU_MEMORY_LIMIT.default,
            openvino_threads: OPENVINO_THREADS.default,
            openvino_streams: OPENVINO_STREAMS.default,
            openvino_cache_dir: None,
            max_batch: MAX_BATCH.default,
            batch_timeout_ms: BATCH_TIMEOUT.default,
            max_pending: MAX_PENDING.default,
            dump_inputs: None,
            leaky: Leaky::default(),
        }
    }
}

impl EngineSettings {
    pub fn properties() -> Vec<Property<Self>> {
        vec![
            Property::string(
                "model",
                "Model",
                "Path of the .onnx model file (read when the element goes from NULL to READY)",
                |s| &mut s.model,
            ),
            Property::enumeration(
                "execution-provider",
                "Execution provider",
                "Where inference runs: auto (CUDA if it can be created, else OpenVINO if the ONNX Runtime loaded has it and it compiles the model, else ONNX Runtime's CPU provider), cuda or openvino (an error without it), or cpu (ONNX Runtime's own CPU provider, in every build)",
                false,
                |s| &mut s.execution_provider,
            ),
            Property::int(
                "device-id",
                "Device ID",
                "CUDA device index, as CUDA numbers the cards",
                DEVICE_ID,
                |s| &mut s.device_id,
            ),
            Property::uint(
                "gpu-memory-limit",
                "GPU memory limit",
                "Most MiB of GPU memory each CUDA session's memory arena may hold (0 = no limit); elements with different limits use different engines",
                GPU_MEMORY_LIMIT,
                |s| &mut s.gpu_memory_limit,
            ),
            Property::uint(
                "openvino-threads",
                "OpenVINO threads",
                "Threads of OpenVINO's CPU inference (0 = OpenVINO's choice, every core); elements with different values use different engines",
                OPENVINO_THREADS,
                |s| &mut s.openvino_threads,
            ),
            Property::uint(
                "openvino-streams",
                "OpenVINO streams",
                "OpenVINO streams, the cores split into groups that each run one batch (0 = OpenVINO's choice, one); the engine keeps this many batches in flight, each stream with its own session",
                OPENVINO_STREAMS,
                |s| &mut s.openvino_streams,
            ),
            Property::string(
                "openvino-cache-dir",
                "OpenVINO cache directory",
                "Directory where OpenVINO keeps the models it compiled, so that opening a model again skips compiling it (unset = no cache)",
                |s| &mut s.openvino_cache_dir,
            ),
            Property::uint(
                "max-batch",
                "Max batch",
                "Most clips (crops) per model run; clips of every element sharing the model are batched together (the engine uses the largest value its users ask for)",
                MAX_BATCH,
                |s| &mut s.max_batch,
            ),
            Property::uint(
                "batch-timeout",
                "Batch timeout",
                "Milliseconds the first waiting clip may wait for others to fill a batch (0 = run what is waiting; the engine uses the smallest value its users ask for)",
                BATCH_TIMEOUT,
                |s| &mut s.batch_timeout_ms,
            ),
            Property::uint(
                "max-pending",
                "Max pending",
                "Clips waiting for inference; live: clips beyond it are dropped and counted (which ones: leaky; with leaky=oldest the clips being classified count too), not live: upstream waits",
                MAX_PENDING,
                |s| &mut s.max_pending,
            ),
            Property::string(
                "dump-inputs",
                "Dump inputs",
                "Directory (created if missing) into which each clip's model input, exactly as packed for the engine, is written as a NumPy .npy file: clip-NNNNNN.npy, object-ID-clip-NNNNNN.npy in objects mode (unset = none; for calibrating int8 models, tools/export_model.py --int8)",
                |s| &mut s.dump_inputs,
            ),
            Property::enumeration(
                "leaky",
                "Leaky",
                "Which clip a live stream drops when max-pending clips are pending: oldest (the default, for cameras that want the freshest answer: the oldest waiting one goes, a clip waits behind at most max-pending - 1 others) or newest (the clip just finished goes: the clips already waiting are classified, however late); not live: nothing is dropped",
                false,
                |s| &mut s.leaky,
            ),
        ]
    }

    /// The engine's provider choice.
    pub fn provider(&self) -> ProviderChoice {
        match self.execution_provider {
            ExecutionProvider::Auto => ProviderChoice::Auto,
            ExecutionProvider::Cuda => ProviderChoice::Cuda,
            ExecutionProvider::OpenVino => ProviderChoice::OpenVino,
            ExecutionProvider::Cpu => ProviderChoice::Cpu,
        }
    }

    /// Where and how the engine runs the model in this process.
    pub fn local(&self) -> LocalSettings {
        LocalSettings {
            choice: self.provider(),
            device: self.device_id,
            gpu_mem_limit_mib: self.gpu_memory_limit,
            openvino: OpenVinoOptions {
                threads: self.openvino_threads,
                streams: self.openvino_streams,
                cache_dir: self
                    .openvino_cache_dir
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from),
            },
        }
    }

    /// The engine's batching request.
    pub fn batching(&self) -> crate::engine::Batching {
        crate::engine::Batching {
            max_batch: self.max_batch.max(1) as usize,
            timeout: std::time::Duration::from_millis(u64::from(self.batch_timeout_ms)),
        }
    }
}
