//! The local backend: the model run by ONNX Runtime in this process, on CUDA, on OpenVINO (on
//! the CPU) or on ONNX Runtime's own CPU provider.
//!
//! ONNX Runtime is loaded at run time ([`runtime`]). Each model is read once and opened in one
//! session per lane ([`runner`]); under CUDA there are several lanes, a session per batch size,
//! inputs on the card ([`staging`]) that clips are copied into from page-locked clip buffers
//! ([`host`]) on a stream of each lane ([`cudart`]), and the tuning of [`cuda`]; under OpenVINO
//! a lane per OpenVINO stream asked for ([`OpenVinoOptions`]).

mod cuda;
mod cudart;
mod host;
mod quantized;
mod resample;
mod runner;
mod runtime;
mod session;
mod staging;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use half::f16;

pub use runtime::{
    installed_dir, installed_runtime, runtime, runtime_info, RuntimeInfo, OPENVINO_ORT_VERSION,
    ORT_VERSION,
};

use super::{Backend, Batch, EngineError, Items, ModelInfo, RunTimes, SpanClips};
use crate::config::InputType;
use cuda::{cuda_graphs, cuda_lanes, is_out_of_memory};
use host::PageLocked;
use runner::{Feed, Runner, TensorElement};
use session::{model_info, SessionSource};

/// Which execution provider to run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProviderChoice {
    /// CUDA when it can be created, else OpenVINO when the loaded ONNX Runtime has it and it
    /// compiles the model, else ONNX Runtime's CPU provider (the reason kept in
    /// [`LocalBackend::fallback_reason`]).
    #[default]
    Auto,
    Cuda,
    /// OpenVINO's execution provider on the CPU (an OpenVINO build of ONNX Runtime).
    OpenVino,
    Cpu,
}

/// The execution provider a session actually uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Cuda,
    OpenVino,
    Cpu,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cuda => "cuda",
            Provider::OpenVino => "openvino",
            Provider::Cpu => "cpu",
        }
    }

    /// The choice that opens more sessions on this provider.
    fn choice(self) -> ProviderChoice {
        match self {
            Provider::Cuda => ProviderChoice::Cuda,
            Provider::OpenVino => ProviderChoice::OpenVino,
            Provider::Cpu => ProviderChoice::Cpu,
        }
    }
}

/// Options of OpenVINO's execution provider; 0 and None leave OpenVINO's own default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpenVinoOptions {
    /// Threads of OpenVINO's CPU inference (`num_of_threads`).
    pub threads: u32,
    /// OpenVINO streams (`num_streams`): the cores split into this many groups, each running one
    /// inference; the engine runs as many lanes (batches in flight), each its own session.
    pub streams: u32,
    /// Where OpenVINO keeps the models it compiled (`cache_dir`), so that opening the model again
    /// skips the compilation.
    pub cache_dir: Option<PathBuf>,
}

/// Where and how a model runs in this process; two elements with equal settings (and model)
/// share one engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalSettings {
    pub choice: ProviderChoice,
    /// The CUDA device.
    pub device: i32,
    /// Most MiB each CUDA session's memory arena may hold (0: no limit).
    pub gpu_mem_limit_mib: u32,
    pub openvino: OpenVinoOptions,
}

impl LocalSettings {
    /// `choice` with every other setting at its default (device 0, no limits).
    pub fn on(choice: ProviderChoice) -> LocalSettings {
        LocalSettings {
            choice,
            ..LocalSettings::default()
        }
    }
}

/// A model opened by ONNX Runtime in this process: its lanes of sessions and what the element
/// needs to know about it.
pub struct LocalBackend {
    /// The lanes: each runs one batch at a time with its own sessions and staging; under CUDA
    /// there are two, so that one batch's copy-in, launch and read-back overlap another's compute.
    runners: Vec<Mutex<Runner>>,
    /// The lane to wait for when all are busy.
    next_lane: AtomicU64,
    pub path: PathBuf,
    model: ModelInfo,
    pub provider: Provider,
    /// The CUDA device (when the provider is CUDA).
    pub device: i32,
    /// Under `auto`, why a faster provider was not used (CUDA, then OpenVINO).
    pub fallback_reason: Option<String>,
    /// Under CUDA, where clip buffers are lent from (see [`Backend::clip_buffer`]).
    page_locked: Option<PageLocked>,
    /// Whether its CUDA sessions run CUDA graphs (the sessions' [`SessionSource::graphs`]).
    graphs: bool,
}

impl LocalBackend {
    /// Open a model file: one session per lane, on the provider and with the options of
    /// `settings`.
    pub fn open(path: &Path, settings: &LocalSettings) -> Result<LocalBackend, EngineError> {
        let device = settings.device;
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| EngineError::ModelUnreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let quantized_nodes = quantized::quantized_nodes(&bytes);
        let source = SessionSource {
            env: runtime()?,
            bytes: Arc::new(bytes),
            shown: shown.clone(),
            device,
            gpu_mem_limit_mib: settings.gpu_mem_limit_mib,
            openvino: settings.openvino.clone(),
            quantized_nodes,
            fused: true.into(),
            graphs: cuda_graphs(),
        };
        let (session, provider, fallback_reason) = source.session(settings.choice)?;
        let model = model_info(&session, &shown)?;
        let io = &model.io;
        let source = Arc::new(source);
        let cuda = (provider == Provider::Cuda).then(|| Arc::clone(&source));
        let page_locked = cuda
            .as_ref()
            .and_then(|_| PageLocked::new(&session, device));
        let mut runners = vec![Mutex::new(Runner::new(session, cuda.clone(), io))];
        let lanes = match provider {
            Provider::Cuda => cuda_lanes(),
            Provider::OpenVino => settings.openvino.streams.max(1) as usize,
            Provider::Cpu => 1,
        };
        for _ in 1..lanes {
            let (session, _, _) = source.session(provider.choice())?;
            runners.push(Mutex::new(Runner::new(session, cuda.clone(), io)));
        }
        Ok(LocalBackend {
            runners,
            next_lane: AtomicU64::new(0),
            path: path.to_path_buf(),
            model,
            provider,
            device,
            fallback_reason,
            page_locked,
            graphs: source.graphs,
        })
    }

    /// Run `items` (at most `shape[0]`; the last repeated to fill the batch) as one batch on
    /// `lane` (None: the first free lane, else the next in turn).
    fn run_on<T: TensorElement>(
        &self,
        lane: Option<usize>,
        shape: &[i64],
        items: &[&[T]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        // Straight from the clips to the card when the batch lies in one page-locked buffer this
        // backend lent; through a page-locked staging input otherwise.
        let block = self
            .page_locked
            .as_ref()
            .is_some_and(|p| in_one_block(p, shape, items));
        self.feed(lane, shape, Feed::Items { items, block })
    }

    /// Run `feed` as one batch on `lane` (see [`LocalBackend::run_on`]).
    fn feed<T: TensorElement>(
        &self,
        lane: Option<usize>,
        shape: &[i64],
        feed: Feed<'_, T>,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let poisoned = |_| EngineError::Inference("session lock poisoned".into());
        let free = match lane {
            Some(_) => None,
            None => self.runners.iter().find_map(|r| r.try_lock().ok()),
        };
        let mut runner = match free {
            Some(runner) => runner,
            None => {
                let n = self.runners.len().max(1);
                let k = lane
                    .unwrap_or_else(|| self.next_lane.fetch_add(1, Ordering::Relaxed) as usize % n);
                self.runners
                    .get(k % n)
                    .ok_or_else(|| EngineError::Inference("no runner".into()))?
                    .lock()
                    .map_err(poisoned)?
            }
        };
        runner
            .run(shape, &self.model.io, feed)
            .map_err(|e| match e {
                EngineError::Inference(reason)
                    if self.provider == Provider::Cuda && is_out_of_memory(&reason) =>
                {
                    EngineError::GpuOutOfMemory {
                        path: self.path.display().to_string(),
                        device: self.device,
                        reason,
                    }
                }
                other => other,
            })
    }

    /// Why the CUDA sessions run without fused convolutions, when cuDNN refused one of the
    /// model's layers (they are reopened without fusion and keep working, a little slower).
    pub fn unfused_reason(&self) -> Option<String> {
        self.runners
            .iter()
            .find_map(|r| r.lock().ok().and_then(|r| r.unfused.clone()))
    }

    /// Whether clip buffers are lent in page-locked memory (CUDA).
    pub fn page_locked_clips(&self) -> bool {
        self.page_locked.is_some()
    }
}

impl Backend for LocalBackend {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    fn describe(&self) -> String {
        self.provider.name().to_string()
    }

    /// See `runners`.
    fn lanes(&self) -> usize {
        self.runners.len()
    }

    fn run(
        &self,
        lane: Option<usize>,
        shape: [i64; 5],
        items: Items<'_>,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        match items {
            Items::F32(items) => self.run_on::<f32>(lane, &shape, items),
            Items::F16(items) => self.run_on::<f16>(lane, &shape, items),
            Items::U8(items) => self.run_on::<u8>(lane, &shape, items),
        }
    }

    /// Clips sent as source spans are resampled by a small graph on the model's own provider
    /// (`resample`), written straight into the batch's input.
    fn resamples(&self) -> bool {
        self.model.io.input_type == Ok(InputType::U8)
    }

    fn run_spans(
        &self,
        lane: Option<usize>,
        shape: [i64; 5],
        what: &SpanClips,
        items: &[&[u8]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        if !self.resamples() {
            return Err(EngineError::Inference(format!(
                "{}: resampling clips in the engine needs a model with uint8 input",
                self.path.display()
            )));
        }
        // The clips' spans as they lie in a sheet of lent memory, or copied into staging.
        let per = what.clip_len() as i64;
        let block = self
            .page_locked
            .as_ref()
            .is_some_and(|p| in_one_block(p, &[items.len() as i64, per], items));
        self.feed::<u8>(lane, &shape, Feed::Spans { what, items, block })
    }

    /// A graph with a fixed batch runs exactly that; otherwise batches are padded to a power of
    /// two, so a CUDA session meets few input shapes (each new shape costs a cuDNN search).
    fn run_size(&self, items: usize) -> usize {
        self.model
            .fixed_batch()
            .unwrap_or_else(|| items.next_power_of_two())
    }

    /// Under CUDA, once per batch size (kernel selection); under CUDA graphs three times, since
    /// ONNX Runtime captures after a regular run or two (so capture happens at start-up, not on
    /// the first clips). None on the CPU (either provider), where OpenVINO compiles the model
    /// when the session opens and a warm-up run would cost as much as a clip.
    fn warm_up_runs(&self) -> usize {
        match self.provider {
            Provider::Cpu | Provider::OpenVino => 0,
            Provider::Cuda if self.graphs => 3,
            Provider::Cuda => 1,
        }
    }

    /// Page-locked memory under CUDA (see [`host`]).
    fn clip_buffer(&self, ty: InputType, len: usize) -> Option<Batch> {
        self.page_locked.as_ref()?.buffer(ty, len)
    }

    fn run_times(&self) -> RunTimes {
        self.runners
            .iter()
            .filter_map(|r| r.lock().ok().map(|r| r.times))
            .sum()
    }
}

/// Whether a batch of `items` shaped `shape` lies one after another in one buffer `lent` holds,
/// with room for the whole batch (padding rows included).
fn in_one_block<T>(lent: &PageLocked, shape: &[i64], items: &[&[T]]) -> bool {
    let n = shape
        .first()
        .and_then(|&b| usize::try_from(b).ok())
        .unwrap_or(0);
    let per: usize = shape[1..]
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .product();
    let Some(first) = items.first() else {
        return false;
    };
    let in_order = items
        .iter()
        .enumerate()
        .all(|(k, i)| i.len() == per && i.as_ptr() == first.as_ptr().wrapping_add(k * per));
    in_order
        && n >= items.len()
        && lent.holds(first.as_ptr().cast(), n * per * std::mem::size_of::<T>())
}
