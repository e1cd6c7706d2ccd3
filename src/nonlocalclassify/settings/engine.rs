//! The model and where it runs: the provider and card, the shared engine's batching, and the
//! queue of clips waiting for it.

use super::{Property, Range};
use crate::engine::ProviderChoice;
use crate::nonlocalclassify::{ExecutionProvider, Leaky};

pub const DEVICE_ID: Range<i32> = Range::new(0, 63, 0);
pub const MAX_PENDING: Range<u32> = Range::new(1, 1024, 2);
pub const MAX_BATCH: Range<u32> = Range::new(1, 256, 8);
/// Milliseconds.
pub const BATCH_TIMEOUT: Range<u32> = Range::new(0, 10_000, 0);
/// MiB; 0: no limit.
pub const GPU_MEMORY_LIMIT: Range<u32> = Range::new(0, 1 << 20, 0);

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub model: Option<String>,
    pub execution_provider: ExecutionProvider,
    pub device_id: i32,
    pub gpu_memory_limit: u32,
    pub max_batch: u32,
    pub batch_timeout_ms: u32,
    pub max_pending: u32,
    pub leaky: Leaky,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            model: None,
            execution_provider: ExecutionProvider::default(),
            device_id: DEVICE_ID.default,
            gpu_memory_limit: GPU_MEMORY_LIMIT.default,
            max_batch: MAX_BATCH.default,
            batch_timeout_ms: BATCH_TIMEOUT.default,
            max_pending: MAX_PENDING.default,
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
                "Where inference runs: auto (CUDA if it can be created, else the CPU), cuda (an error without it) or cpu",
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
            ExecutionProvider::Cpu => ProviderChoice::Cpu,
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
