//! The inference engine: loads ONNX Runtime at run time, opens models, runs clip batches.
//!
//! ONNX Runtime is loaded dynamically (so `gst-inspect-1.0` works without it): from
//! `ORT_DYLIB_PATH` when set, else `libonnxruntime.so` on the library path, else the wheel inside
//! an active virtual environment (`$VIRTUAL_ENV`). Engines are shared: every element that opens the
//! same model file with the same execution provider and device gets the same session.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use half::f16;
use ort::ep::ArbitrarilyConfigurableExecutionProvider as _;
use ort::ep::ExecutionProvider as _;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, PrimitiveTensorElementType, TensorElementType, ValueType};

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
}

/// Whether an ONNX Runtime message reports exhausted device memory.
fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "out of memory",
        "failed to allocate",
        "bfcarena",
        "memoryallocation",
        "available memory of",
    ]
    .iter()
    .any(|k| m.contains(k))
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
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    F32(Vec<f32>),
    F16(Vec<f16>),
    U8(Vec<u8>),
}

impl Batch {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Batch::F32(v) => v.len(),
            Batch::F16(v) => v.len(),
            Batch::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` zeros of the element type `ty`.
    pub fn zeros(ty: InputType, len: usize) -> Batch {
        match ty {
            InputType::F32 => Batch::F32(vec![0.0; len]),
            InputType::F16 => Batch::F16(vec![f16::ZERO; len]),
            InputType::U8 => Batch::U8(vec![0; len]),
        }
    }

    fn input_type(&self) -> InputType {
        match self {
            Batch::F32(_) => InputType::F32,
            Batch::F16(_) => InputType::F16,
            Batch::U8(_) => InputType::U8,
        }
    }
}

/// The element types a batch can hold, with access to their slice in a [`Batch`].
trait BatchElement:
    PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static
{
    fn of(batch: &Batch) -> Option<&[Self]>;
}

impl BatchElement for f32 {
    fn of(batch: &Batch) -> Option<&[f32]> {
        match batch {
            Batch::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl BatchElement for f16 {
    fn of(batch: &Batch) -> Option<&[f16]> {
        match batch {
            Batch::F16(v) => Some(v),
            _ => None,
        }
    }
}

impl BatchElement for u8 {
    fn of(batch: &Batch) -> Option<&[u8]> {
        match batch {
            Batch::U8(v) => Some(v),
            _ => None,
        }
    }
}

/// Where one batch size's input is staged and bound to the session.
struct Staging {
    input: DynTensor,
    binding: IoBinding,
    /// CUDA graphs: the input and output on the card, bound once (a captured graph replays on
    /// the same addresses); the staging input is copied into `device_input` before each run.
    device: Option<(DynTensor, DynTensor)>,
}

/// Lanes of a CUDA engine (see `Engine::runners`): NONLOCAL_CUDA_LANES (1 to 4), else 2.
fn cuda_lanes() -> usize {
    lanes_from(std::env::var("NONLOCAL_CUDA_LANES").ok().as_deref())
}

fn lanes_from(value: Option<&str>) -> usize {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(2, |n| n.clamp(1, 4))
}

/// CUDA provider options set by default: channels-last convolutions with the bias (and folded
/// batch norm) fused into cuDNN's convolution kernel. Measured on an H100 (benches/gpu/run.sh
/// kprof): without them cuDNN adds each convolution's bias in a separate generic kernel (a third
/// of the GPU time of C2D-NL-R50) and converts layouts around every convolution.
const TUNED_CUDA_OPTIONS: [(&str, &str); 2] = [("prefer_nhwc", "1"), ("fuse_conv_bias", "1")];

/// The CUDA provider options for a session: the tuned defaults, then NONLOCAL_CUDA_OPTIONS
/// ("key=value,..." as ONNX Runtime names them) over them. `fused: false` leaves out
/// `fuse_conv_bias` (after cuDNN refused a fused convolution), as does `prefer_nhwc=0` unless
/// the variable asks for fusion itself (cuDNN fuses channels-last convolutions only).
fn cuda_options(fused: bool) -> Vec<(String, String)> {
    merge_options(
        &parse_options(&std::env::var("NONLOCAL_CUDA_OPTIONS").unwrap_or_default()),
        fused,
    )
}

fn merge_options(user: &[(String, String)], fused: bool) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = TUNED_CUDA_OPTIONS
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in user {
        options.retain(|(k, _)| k != key);
        options.push((key.clone(), value.clone()));
    }
    let set = |key: &str| user.iter().any(|(k, _)| k == key);
    let nhwc_off = options.iter().any(|(k, v)| k == "prefer_nhwc" && v == "0");
    if !fused || (nhwc_off && !set("fuse_conv_bias")) {
        options.retain(|(k, _)| k != "fuse_conv_bias");
    }
    options
}

fn parse_options(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Whether a run failed because cuDNN has no fused convolution for one of the model's layers.
fn is_fusion_failure(reason: &str) -> bool {
    reason.contains("CUDNN Frontend") || reason.contains("CUDNN_FE")
}

/// NONLOCAL_CUDA_GRAPH=1: capture each CUDA session's run as a CUDA graph and replay it (every
/// session sees one input shape); a tuning switch measured by benches/gpu/run.sh.
fn cuda_graphs() -> bool {
    std::env::var("NONLOCAL_CUDA_GRAPH").is_ok_and(|v| v == "1")
}

/// The session and its staging buffers (one per input shape met), behind the engine's lock.
struct Runner {
    /// The first session: all batch sizes on the CPU, batch size 1 under CUDA.
    session: Session,
    /// Under CUDA, a session for each other batch size, opened on first use: ONNX Runtime's CUDA
    /// convolutions re-plan whenever a session's input shape changes (hundreds of milliseconds
    /// per run on the Non-local networks when batch sizes alternate), so each session keeps one.
    per_batch: HashMap<i64, Session>,
    source: Option<Arc<SessionSource>>,
    /// Whether this runner's CUDA sessions were opened with fused convolutions.
    fused: bool,
    /// The batch size `session` runs under CUDA: the graph's fixed one, else 1.
    base_batch: i64,
    /// Allocates staging inputs: page-locked host memory under CUDA, so the copy to the card is
    /// one fast DMA transfer; the session's CPU allocator otherwise.
    allocator: Option<Allocator>,
    staging: HashMap<Vec<i64>, Staging>,
    /// Time spent so far copying clips into staging inputs, binding them (the transfer to the
    /// device) and running the graph.
    times: RunTimes,
    /// Why convolution fusion was turned off (cuDNN's refusal), if it was.
    unfused: Option<String>,
}

/// Where model runs spend their time (see [`Engine::run_times`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTimes {
    /// Copying clips into the staging input.
    pub fill: Duration,
    /// Binding the input: the copy to the device under CUDA.
    pub bind: Duration,
    /// The graph run and reading its output back.
    pub compute: Duration,
}

impl std::ops::Add for RunTimes {
    type Output = RunTimes;
    fn add(self, t: RunTimes) -> RunTimes {
        RunTimes {
            fill: self.fill + t.fill,
            bind: self.bind + t.bind,
            compute: self.compute + t.compute,
        }
    }
}

impl std::iter::Sum for RunTimes {
    fn sum<I: Iterator<Item = RunTimes>>(iter: I) -> RunTimes {
        iter.fold(RunTimes::default(), |a, t| a + t)
    }
}

/// Most staging buffers kept (shapes differ only by batch size unless elements override the
/// clip length of a model with a free time dimension).
const MAX_STAGING: usize = 16;

/// A score tensor (float32 or float16) as float32 values.
fn scores_of<T: ort::value::TensorValueTypeMarker + ?Sized>(
    value: &ort::value::Value<T>,
) -> ort::Result<Vec<f32>> {
    match value.try_extract_tensor::<f32>() {
        Ok((_, data)) => Ok(data.to_vec()),
        Err(_) => {
            let (_, data) = value.try_extract_tensor::<f16>()?;
            Ok(data.iter().map(|v| v.to_f32()).collect())
        }
    }
}

/// The staging input of `shape` (made on first use).
fn staging_for<'a>(
    staging: &'a mut HashMap<Vec<i64>, Staging>,
    session: &Session,
    allocator: Option<&Allocator>,
    graph_device: Option<i32>,
    shape: &[i64],
    io: &ModelIo,
) -> Result<&'a mut Staging, EngineError> {
    let err = |e: ort::Error| EngineError::Inference(e.to_string());
    if !staging.contains_key(shape) {
        if staging.len() >= MAX_STAGING {
            staging.clear();
        }
        let ty = match io.input_type {
            Ok(InputType::F32) => TensorElementType::Float32,
            Ok(InputType::F16) => TensorElementType::Float16,
            Ok(InputType::U8) => TensorElementType::Uint8,
            Err(ref other) => {
                return Err(EngineError::Inference(format!(
                    "unsupported input element type {other}"
                )))
            }
        };
        let allocator = allocator.unwrap_or_else(|| session.allocator());
        let input = DynTensor::new(allocator, ty, shape.to_vec()).map_err(err)?;
        let mut binding = session.create_binding().map_err(err)?;
        let device = match graph_device {
            Some(device) => {
                let card = Allocator::new(
                    session,
                    MemoryInfo::new(
                        AllocationDevice::CUDA,
                        device,
                        AllocatorType::Device,
                        MemoryType::Default,
                    )
                    .map_err(err)?,
                )
                .map_err(err)?;
                let device_input = DynTensor::new(&card, ty, shape.to_vec()).map_err(err)?;
                let mut out_shape = io.output_shape.clone();
                if let Some(b) = out_shape.first_mut() {
                    *b = shape[0];
                }
                if out_shape.iter().any(|&d| d < 1) {
                    return Err(EngineError::Inference(format!(
                        "CUDA graphs need a fixed output shape, not {:?}",
                        io.output_shape
                    )));
                }
                let out_ty = match &session.outputs()[0].dtype() {
                    ValueType::Tensor { ty, .. } => *ty,
                    _ => TensorElementType::Float32,
                };
                let mut device_output = DynTensor::new(&card, out_ty, out_shape).map_err(err)?;
                binding
                    .bind_input(io.input_name.as_str(), &device_input)
                    .map_err(err)?;
                binding
                    .bind_output(io.output_name.as_str(), &mut device_output)
                    .map_err(err)?;
                Some((device_input, device_output))
            }
            None => {
                let cpu = MemoryInfo::new(
                    AllocationDevice::CPU,
                    0,
                    AllocatorType::Device,
                    MemoryType::Default,
                )
                .map_err(err)?;
                binding
                    .bind_output_to_device(io.output_name.as_str(), &cpu)
                    .map_err(err)?;
                None
            }
        };
        staging.insert(
            shape.to_vec(),
            Staging {
                input,
                binding,
                device,
            },
        );
    }
    staging
        .get_mut(shape)
        .ok_or_else(|| EngineError::Inference("staging buffer missing".into()))
}

impl Runner {
    /// A runner around `session`; under CUDA (`source` given) with page-locked staging.
    fn new(
        session: Session,
        source: Option<Arc<SessionSource>>,
        io: &ModelIo,
        device: i32,
    ) -> Runner {
        // Page-locked staging under CUDA; without it (allocation refused), ordinary host memory.
        let allocator = source.as_ref().and_then(|_| {
            MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                device,
                AllocatorType::Device,
                MemoryType::CPUInput,
            )
            .and_then(|info| Allocator::new(&session, info))
            .ok()
        });
        Runner {
            fused: source
                .as_ref()
                .is_some_and(|s| s.fused.load(Ordering::Relaxed)),
            // Under CUDA each batch size gets its own session (see `Runner::per_batch`).
            source,
            per_batch: HashMap::new(),
            base_batch: io
                .input_shape
                .first()
                .copied()
                .filter(|&b| b > 0)
                .unwrap_or(1),
            session,
            allocator,
            staging: HashMap::new(),
            times: RunTimes::default(),
            unfused: None,
        }
    }

    /// Copy `items` (each `per` elements; the last one repeated up to the batch size of `shape`)
    /// into the staging input of `shape`, run, and return each item's scores. When cuDNN has no
    /// fused convolution for a layer of the model, the CUDA sessions are opened again without
    /// fusion and the batch is run again.
    fn run<T: BatchElement>(
        &mut self,
        shape: &[i64],
        io: &ModelIo,
        items: &[&[T]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        match self.run_once(shape, io, items) {
            Err(EngineError::Inference(reason)) if is_fusion_failure(&reason) => {
                let Some(source) = self.source.as_ref().filter(|_| self.fused) else {
                    return Err(EngineError::Inference(reason));
                };
                // Every lane's next sessions open without fusion; this lane's reopen now.
                source.fused.store(false, Ordering::Relaxed);
                self.fused = false;
                self.session = source.session(ProviderChoice::Cuda)?.0;
                self.per_batch.clear();
                self.staging.clear();
                self.unfused = Some(reason);
                self.run_once(shape, io, items)
            }
            other => other,
        }
    }

    fn run_once<T: BatchElement>(
        &mut self,
        shape: &[i64],
        io: &ModelIo,
        items: &[&[T]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let err = |e: &dyn std::fmt::Display| EngineError::Inference(e.to_string());
        let n = shape
            .first()
            .and_then(|&b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
            .ok_or_else(|| EngineError::Inference(format!("bad batch shape {shape:?}")))?;
        let per: usize = shape[1..]
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product();
        let last = items
            .last()
            .ok_or_else(|| EngineError::Inference("a batch without clips".into()))?;
        if items.len() > n || items.iter().any(|item| item.len() != per) {
            return Err(EngineError::Inference(format!(
                "{} clips of {:?} values for an input of shape {shape:?}",
                items.len(),
                items.iter().map(|i| i.len()).collect::<Vec<_>>()
            )));
        }
        let Runner {
            session,
            per_batch,
            source,
            base_batch,
            allocator,
            staging,
            times,
            ..
        } = self;
        let session = match source {
            Some(source) if shape[0] != *base_batch => match per_batch.entry(shape[0]) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(source.session(ProviderChoice::Cuda)?.0)
                }
            },
            _ => session,
        };
        let graph_device = source.as_ref().filter(|_| cuda_graphs()).map(|s| s.device);
        let staging = staging_for(
            staging,
            session,
            allocator.as_ref(),
            graph_device,
            shape,
            io,
        )?;
        let t0 = Instant::now();
        {
            let (_, data) = staging
                .input
                .try_extract_tensor_mut::<T>()
                .map_err(|e| err(&e))?;
            crate::fill::fill(data, per, items, last);
        }
        let Staging {
            input,
            binding,
            device,
        } = staging;
        let t1 = Instant::now();
        let flat = match device {
            Some((device_input, device_output)) => {
                input.copy_into(&mut *device_input).map_err(|e| err(&e))?;
                let t2 = Instant::now();
                session.run_binding(binding).map_err(|e| err(&e))?;
                let host = device_output
                    .to(AllocationDevice::CPU, 0)
                    .map_err(|e| err(&e))?;
                let flat = scores_of(&host).map_err(|e| err(&e))?;
                times.bind += t2 - t1;
                times.compute += t2.elapsed();
                flat
            }
            None => {
                binding
                    .bind_input(io.input_name.as_str(), &*input)
                    .map_err(|e| err(&e))?;
                let t2 = Instant::now();
                let outputs = session.run_binding(binding).map_err(|e| err(&e))?;
                let out = outputs
                    .values()
                    .next()
                    .ok_or_else(|| EngineError::Inference("the model returned no output".into()))?;
                let flat = scores_of(&out).map_err(|e| err(&e))?;
                times.bind += t2 - t1;
                times.compute += t2.elapsed();
                flat
            }
        };
        times.fill += t1 - t0;
        if !flat.len().is_multiple_of(n) || flat.is_empty() {
            return Err(EngineError::Inference(format!(
                "the model returned {} values for a batch of {n}",
                flat.len()
            )));
        }
        Ok(flat
            .chunks(flat.len() / n)
            .take(items.len())
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// What it takes to open (more) sessions of one model.
struct SessionSource {
    env: ort::environment::Environment,
    bytes: Arc<Vec<u8>>,
    shown: String,
    device: i32,
    gpu_mem_limit_mib: u32,
    /// Whether CUDA sessions fuse convolution and bias (cleared when cuDNN refuses one).
    fused: std::sync::atomic::AtomicBool,
}

impl SessionSource {
    /// A session on `choice`'s provider: (session, provider used, why CUDA was not used).
    fn session(
        &self,
        choice: ProviderChoice,
    ) -> Result<(Session, Provider, Option<String>), EngineError> {
        let (shown, device) = (&self.shown, self.device);
        let invalid = |e: &dyn std::fmt::Display| EngineError::ModelInvalid {
            path: shown.clone(),
            reason: e.to_string(),
        };
        // No spinning: the intra-op threads share the cores with the pipeline's own threads.
        let mut builder = Session::builder(&self.env)
            .and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
            .map_err(|e| invalid(&e))?;
        let mut provider = Provider::Cpu;
        let mut fallback_reason = None;
        if choice != ProviderChoice::Cpu {
            let mut cuda = ort::ep::CUDA::default().with_device_id(device);
            if self.gpu_mem_limit_mib > 0 {
                cuda = cuda.with_memory_limit(self.gpu_mem_limit_mib as usize * 1024 * 1024);
            }
            if cuda_graphs() {
                cuda = cuda.with_cuda_graph(true);
            }
            for (key, value) in cuda_options(self.fused.load(Ordering::Relaxed)) {
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
        let session = builder.commit_from_memory(&self.bytes).map_err(|e| {
            let reason = e.to_string();
            if provider == Provider::Cuda && is_out_of_memory(&reason) {
                EngineError::GpuOutOfMemory {
                    path: shown.clone(),
                    device,
                    reason,
                }
            } else {
                invalid(&e)
            }
        })?;
        Ok((session, provider, fallback_reason))
    }
}

/// An opened model: one ONNX Runtime session and what the element needs to know about it.
pub struct Engine {
    /// The lanes: each runs one batch at a time with its own sessions and staging; under CUDA
    /// there are two, so that one batch's copy-in, launch and read-back overlap another's compute.
    runners: Vec<Mutex<Runner>>,
    /// The lane to wait for when all are busy.
    next_lane: AtomicU64,
    pub path: PathBuf,
    pub io: ModelIo,
    pub metadata: ModelMetadata,
    pub provider: Provider,
    /// The CUDA device (when the provider is CUDA).
    pub device: i32,
    /// Why CUDA was not used when `auto` fell back to CPU.
    pub fallback_reason: Option<String>,
}

type EngineKey = (PathBuf, ProviderChoice, i32, u32);
static ENGINES: Mutex<Option<HashMap<EngineKey, Weak<SharedEngine>>>> = Mutex::new(None);

fn tensor_dims(ty: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

impl Engine {
    /// Open `path` (or return the engine already open for it with the same provider and device),
    /// with the batching thread every element using it submits clips to.
    pub fn shared(
        path: &Path,
        choice: ProviderChoice,
        device: i32,
    ) -> Result<Arc<SharedEngine>, EngineError> {
        Self::shared_limited(path, choice, device, 0)
    }

    /// [`Engine::shared`] with the CUDA memory arena limited to `gpu_mem_limit_mib` MiB (0: no
    /// limit); engines with different limits are different engines.
    pub fn shared_limited(
        path: &Path,
        choice: ProviderChoice,
        device: i32,
        gpu_mem_limit_mib: u32,
    ) -> Result<Arc<SharedEngine>, EngineError> {
        let key = (
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            choice,
            device,
            gpu_mem_limit_mib,
        );
        let mut guard = ENGINES
            .lock()
            .map_err(|_| EngineError::Inference("engine registry lock poisoned".into()))?;
        let map = guard.get_or_insert_with(HashMap::new);
        map.retain(|_, weak| weak.strong_count() > 0);
        if let Some(engine) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(engine);
        }
        let engine = Arc::new(SharedEngine::new(Engine::open_limited(
            path,
            choice,
            device,
            gpu_mem_limit_mib,
        )?)?);
        map.insert(key, Arc::downgrade(&engine));
        Ok(engine)
    }

    /// Open a model file with its own session.
    pub fn open(path: &Path, choice: ProviderChoice, device: i32) -> Result<Engine, EngineError> {
        Self::open_limited(path, choice, device, 0)
    }

    /// [`Engine::open`] with the CUDA memory arena limited to `gpu_mem_limit_mib` MiB (0: none).
    pub fn open_limited(
        path: &Path,
        choice: ProviderChoice,
        device: i32,
        gpu_mem_limit_mib: u32,
    ) -> Result<Engine, EngineError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| EngineError::ModelUnreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let source = SessionSource {
            env: runtime()?,
            bytes: Arc::new(bytes),
            shown: shown.clone(),
            device,
            gpu_mem_limit_mib,
            fused: true.into(),
        };
        let invalid = |e: &dyn std::fmt::Display| EngineError::ModelInvalid {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let (session, provider, fallback_reason) = source.session(choice)?;

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
        let source = Arc::new(source);
        let cuda = (provider == Provider::Cuda).then(|| Arc::clone(&source));
        let mut runners = vec![Mutex::new(Runner::new(session, cuda.clone(), &io, device))];
        if let Some(source) = &cuda {
            for _ in 1..cuda_lanes() {
                let (session, _, _) = source.session(ProviderChoice::Cuda)?;
                runners.push(Mutex::new(Runner::new(
                    session,
                    Some(Arc::clone(source)),
                    &io,
                    device,
                )));
            }
        }
        Ok(Engine {
            runners,
            next_lane: AtomicU64::new(0),
            path: path.to_path_buf(),
            io,
            metadata,
            provider,
            device,
            fallback_reason,
        })
    }

    /// The batch size the graph fixes, if any.
    pub fn fixed_batch(&self) -> Option<usize> {
        self.io
            .input_shape
            .first()
            .and_then(|&b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
    }

    /// Run one batch shaped `shape` (items concatenated in `batch`); returns each item's scores.
    pub fn run(&self, shape: [i64; 5], batch: &Batch) -> Result<Vec<Vec<f32>>, EngineError> {
        self.run_lane(None, shape, batch)
    }

    /// `run` on `lane` (None: the first free one; lanes are `0..lanes()`).
    pub fn run_lane(
        &self,
        lane: Option<usize>,
        shape: [i64; 5],
        batch: &Batch,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let n = usize::try_from(shape[0])
            .ok()
            .filter(|&n| n > 0 && batch.len().is_multiple_of(n))
            .ok_or_else(|| {
                EngineError::Inference(format!(
                    "{} input values for a batch shaped {shape:?}",
                    batch.len()
                ))
            })?;
        let per = batch.len() / n;
        fn items<T: BatchElement>(batch: &Batch, per: usize) -> Vec<&[T]> {
            T::of(batch)
                .map(|v| v.chunks_exact(per.max(1)).collect())
                .unwrap_or_default()
        }
        match batch {
            Batch::F32(_) => self.run_on(lane, &shape, &items::<f32>(batch, per)),
            Batch::F16(_) => self.run_on(lane, &shape, &items::<f16>(batch, per)),
            Batch::U8(_) => self.run_on(lane, &shape, &items::<u8>(batch, per)),
        }
    }

    /// Run `items` (at most `shape[0]`; the last repeated to fill the batch) as one batch on
    /// `lane` (None: the first free lane, else the next in turn).
    fn run_on<T: BatchElement>(
        &self,
        lane: Option<usize>,
        shape: &[i64],
        items: &[&[T]],
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
        runner.run(shape, &self.io, items).map_err(|e| match e {
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

    /// Where this engine's model runs have spent their time so far.
    pub fn run_times(&self) -> RunTimes {
        self.runners
            .iter()
            .filter_map(|r| r.lock().ok().map(|r| r.times))
            .sum()
    }

    /// Why the CUDA sessions run without fused convolutions, when cuDNN refused one of the
    /// model's layers (they are reopened without fusion and keep working, a little slower).
    pub fn unfused_reason(&self) -> Option<String> {
        self.runners
            .iter()
            .find_map(|r| r.lock().ok().and_then(|r| r.unfused.clone()))
    }

    /// Whether inputs are staged in page-locked memory (CUDA).
    pub fn pinned_staging(&self) -> bool {
        self.runners
            .first()
            .and_then(|r| r.lock().ok().map(|r| r.allocator.is_some()))
            .unwrap_or(false)
    }

    /// How many batches can be in flight at once (see `runners`).
    pub fn lanes(&self) -> usize {
        self.runners.len()
    }
}

/// Where a shared engine's inference thread spent its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineProfile {
    /// Model runs and the clip items they classified (padding excluded).
    pub runs: u64,
    pub items: u64,
    /// In model runs: copying clips into the staging input, transfers and compute.
    pub run: Duration,
    /// Between taking a batch and having answered it, outside model runs.
    pub other: Duration,
}

impl std::ops::Add for EngineProfile {
    type Output = EngineProfile;
    fn add(self, p: EngineProfile) -> EngineProfile {
        EngineProfile {
            runs: self.runs + p.runs,
            items: self.items + p.items,
            run: self.run + p.run,
            other: self.other + p.other,
        }
    }
}

impl std::iter::Sum for EngineProfile {
    fn sum<I: Iterator<Item = EngineProfile>>(iter: I) -> EngineProfile {
        iter.fold(EngineProfile::default(), |a, p| a + p)
    }
}

/// Batching parameters of a shared engine: the largest `max-batch` and the smallest
/// `batch-timeout` any of its users asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Most clip items (crops) per model run.
    pub max_batch: usize,
    /// How long the first waiting clip may wait for more to fill a batch.
    pub timeout: Duration,
}

/// Where a submitted request's scores (one vector per item) arrive.
pub type Scores = Receiver<Result<Vec<Vec<f32>>, String>>;

/// One element's clip(s) waiting for the batcher.
struct Request {
    /// Shape of one item (batch dimension 1); only requests of one shape share a batch.
    shape: [i64; 5],
    items: usize,
    data: Batch,
    reply: SyncSender<Result<Vec<Vec<f32>>, String>>,
}

#[derive(Default)]
struct BatchQueue {
    requests: VecDeque<Request>,
    stop: bool,
    /// None until the first user registers.
    batching: Option<Batching>,
}

struct BatchShared {
    queue: Mutex<BatchQueue>,
    cond: Condvar,
    /// Model runs and clip items run so far (for tests and tuning).
    runs: AtomicU64,
    items: AtomicU64,
    /// Time spent in model runs (staging copy, transfers and compute), in nanoseconds.
    run_ns: AtomicU64,
    /// Time between taking a batch and answering it, minus `run_ns` (gathering, bookkeeping).
    other_ns: AtomicU64,
    /// Clip buffers handed back after a run, for the next clips to be packed into.
    pool: Mutex<Vec<Batch>>,
    /// Batch sizes run once already (warm-up), by clip shape.
    warmed: Mutex<Vec<[i64; 5]>>,
}

/// An engine shared by every element that opened the same model with the same provider and
/// device, with one inference thread that batches the clips they submit.
pub struct SharedEngine {
    engine: Arc<Engine>,
    shared: Arc<BatchShared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::ops::Deref for SharedEngine {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

fn lock_queue(shared: &BatchShared) -> std::sync::MutexGuard<'_, BatchQueue> {
    shared.queue.lock().unwrap_or_else(|e| e.into_inner())
}

impl SharedEngine {
    fn new(engine: Engine) -> Result<Self, EngineError> {
        let engine = Arc::new(engine);
        let shared = Arc::new(BatchShared {
            queue: Mutex::new(BatchQueue::default()),
            cond: Condvar::new(),
            runs: AtomicU64::new(0),
            items: AtomicU64::new(0),
            run_ns: AtomicU64::new(0),
            other_ns: AtomicU64::new(0),
            pool: Mutex::new(Vec::new()),
            warmed: Mutex::new(Vec::new()),
        });
        // One batching thread per lane: while one lane's batch runs, the next forms and runs on
        // the other.
        let mut threads = Vec::new();
        for lane in 0..engine.lanes() {
            let (engine, shared) = (Arc::clone(&engine), Arc::clone(&shared));
            let spawned = std::thread::Builder::new()
                .name(format!("nonlocal-batch-{lane}"))
                .spawn(move || batch_loop(&engine, &shared, lane));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) if threads.is_empty() => {
                    return Err(EngineError::Inference(format!(
                        "cannot start the inference thread: {e}"
                    )))
                }
                Err(_) => break,
            }
        }
        Ok(Self {
            engine,
            shared,
            threads,
        })
    }

    /// Ask for batches of up to `max_batch` items, waiting at most `timeout` to fill one.
    pub fn register(&self, batching: Batching) {
        let mut q = lock_queue(&self.shared);
        q.batching = Some(match q.batching {
            None => batching,
            Some(b) => Batching {
                max_batch: b.max_batch.max(batching.max_batch),
                timeout: b.timeout.min(batching.timeout),
            },
        });
    }

    /// (model runs, clip items) so far: items / runs is the mean batch size.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.shared.runs.load(Ordering::Relaxed),
            self.shared.items.load(Ordering::Relaxed),
        )
    }

    /// Where the inference thread's time went so far.
    pub fn profile(&self) -> EngineProfile {
        let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        EngineProfile {
            runs: self.shared.runs.load(Ordering::Relaxed),
            items: self.shared.items.load(Ordering::Relaxed),
            run: ns(&self.shared.run_ns),
            other: ns(&self.shared.other_ns),
        }
    }

    /// A buffer of `len` elements of the model's input type to pack clips into (a recycled one
    /// when available; its old contents are to be overwritten).
    pub fn buffer(&self, len: usize) -> Batch {
        let ty = self.io.input_type.clone().unwrap_or(InputType::F32);
        let recycled = {
            let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.iter()
                .position(|b| b.input_type() == ty && b.len() == len)
                .map(|i| pool.swap_remove(i))
        };
        recycled.unwrap_or_else(|| Batch::zeros(ty, len))
    }

    /// Run every batch size the batcher can form for clips shaped `shape` once, so that the first
    /// clips do not pay for CUDA's kernel selection (seconds per new shape on some models). Does
    /// nothing on the CPU, whose first runs are not slower.
    pub fn warm_up(&self, shape: [i64; 5]) -> Result<(), EngineError> {
        if self.engine.provider != Provider::Cuda {
            return Ok(());
        }
        let max = self.batching().map_or(1, |b| b.max_batch.max(1));
        let sizes: Vec<usize> = match self.engine.fixed_batch() {
            Some(b) => vec![b],
            None => (0..usize::BITS)
                .map(|k| 1usize << k)
                .take_while(|&b| b <= max.next_power_of_two())
                .collect(),
        };
        let per: usize = shape[1..]
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product();
        for n in sizes {
            let mut batch_shape = shape;
            batch_shape[0] = n as i64;
            {
                let mut warmed = self.shared.warmed.lock().unwrap_or_else(|e| e.into_inner());
                if warmed.contains(&batch_shape) {
                    continue;
                }
                warmed.push(batch_shape);
            }
            let batch = self.buffer(per * n);
            // Under CUDA graphs ONNX Runtime captures after a regular run or two: run each size
            // three times here so that capture happens at start-up, not on the first clips.
            for lane in 0..self.engine.lanes() {
                for _ in 0..if cuda_graphs() { 3 } else { 1 } {
                    self.engine.run_lane(Some(lane), batch_shape, &batch)?;
                }
            }
        }
        Ok(())
    }

    /// The batching in force.
    pub fn batching(&self) -> Option<Batching> {
        lock_queue(&self.shared).batching
    }

    /// Submit `items` clip tensors shaped `shape` (batch dimension ignored) concatenated in
    /// `data`; the receiver gets their scores.
    pub fn submit(&self, shape: [i64; 5], items: usize, data: Batch) -> Scores {
        let (reply, rx) = sync_channel(1);
        let mut q = lock_queue(&self.shared);
        q.requests.push_back(Request {
            shape,
            items,
            data,
            reply,
        });
        self.shared.cond.notify_all();
        rx
    }
}

impl Drop for SharedEngine {
    fn drop(&mut self) {
        lock_queue(&self.shared).stop = true;
        self.shared.cond.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The batching thread: take the waiting requests (up to max-batch items, waiting up to the
/// timeout for more once one is there), run them as one batch, answer each.
fn batch_loop(engine: &Engine, shared: &BatchShared, lane: usize) {
    loop {
        let taken = {
            let mut q = lock_queue(shared);
            while q.requests.is_empty() && !q.stop {
                q = shared.cond.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.stop {
                return;
            }
            let batching = q.batching.unwrap_or(Batching {
                max_batch: 1,
                timeout: Duration::ZERO,
            });
            let deadline = Instant::now() + batching.timeout;
            let mut taken: Vec<Request> = Vec::new();
            let mut items = 0;
            loop {
                let mut full = false;
                while let Some(next) = q.requests.front() {
                    let fits = taken.first().is_none_or(|first| {
                        first.shape[1..] == next.shape[1..]
                            && items + next.items <= batching.max_batch
                    });
                    if !fits {
                        full = true;
                        break;
                    }
                    items += next.items;
                    taken.extend(q.requests.pop_front());
                }
                let now = Instant::now();
                if full || items >= batching.max_batch || now >= deadline || q.stop {
                    break;
                }
                q = shared
                    .cond
                    .wait_timeout(q, deadline - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            taken
        };
        let started = Instant::now();
        let run_before = shared.run_ns.load(Ordering::Relaxed);
        let result = run_requests(engine, &taken, shared, lane);
        let mut offset = 0;
        let mut spent = Vec::with_capacity(taken.len());
        for request in taken {
            let answer = match &result {
                Ok(scores) => scores
                    .get(offset..offset + request.items)
                    .map(<[Vec<f32>]>::to_vec)
                    .ok_or_else(|| "the model returned too few scores".to_string()),
                Err(e) => Err(e.to_string()),
            };
            offset += request.items;
            let _ = request.reply.send(answer);
            spent.push(request.data);
        }
        recycle(shared, spent);
        let total = started.elapsed().as_nanos() as u64;
        let run = shared.run_ns.load(Ordering::Relaxed) - run_before;
        shared
            .other_ns
            .fetch_add(total.saturating_sub(run), Ordering::Relaxed);
    }
}

/// Most clip buffers kept for reuse.
const POOL_SIZE: usize = 64;

/// Keep run clips' buffers for the next clips (saves allocating and zeroing tens of megabytes
/// per clip).
fn recycle(shared: &BatchShared, buffers: Vec<Batch>) {
    let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
    for buffer in buffers {
        if pool.len() < POOL_SIZE {
            pool.push(buffer);
        }
    }
}

/// Run requests as one batch (in chunks of the graph's fixed batch size, padded, if it has one).
fn run_requests(
    engine: &Engine,
    requests: &[Request],
    stats: &BatchShared,
    lane: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let Some(first) = requests.first() else {
        return Ok(Vec::new());
    };
    match first.data.input_type() {
        InputType::F32 => run_typed::<f32>(engine, requests, stats, lane),
        InputType::F16 => run_typed::<f16>(engine, requests, stats, lane),
        InputType::U8 => run_typed::<u8>(engine, requests, stats, lane),
    }
}

fn run_typed<T: BatchElement>(
    engine: &Engine,
    requests: &[Request],
    stats: &BatchShared,
    lane: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    // Every clip item of every request, as a slice of the request's own buffer: the only copy
    // is into the staging input.
    let mut items: Vec<&[T]> = Vec::new();
    for r in requests {
        let data = T::of(&r.data).ok_or_else(|| {
            EngineError::Inference("clips of different element types in one batch".into())
        })?;
        if r.items == 0 || !data.len().is_multiple_of(r.items) {
            return Err(EngineError::Inference(format!(
                "{} input values for {} clips",
                data.len(),
                r.items
            )));
        }
        items.extend(data.chunks_exact(data.len() / r.items));
    }
    // A graph with a fixed batch runs exactly that; otherwise batches are padded to a power of
    // two, so a CUDA session meets few input shapes (each new shape costs a cuDNN search).
    let step = engine
        .fixed_batch()
        .unwrap_or_else(|| items.len().next_power_of_two());
    let mut shape = requests[0].shape;
    shape[0] = step as i64;
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(step) {
        let started = Instant::now();
        scores.extend(engine.run_on(Some(lane), &shape, chunk)?);
        stats.runs.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        stats
            .run_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_options_are_key_value_pairs() {
        let got = parse_options(
            " prefer_nhwc=1, fuse_conv_bias = 1,,junk,=2,cudnn_conv_algo_search=HEURISTIC",
        );
        let want = [
            ("prefer_nhwc", "1"),
            ("fuse_conv_bias", "1"),
            ("cudnn_conv_algo_search", "HEURISTIC"),
        ];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
        assert!(parse_options("").is_empty());
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cuda_lanes_default_to_two_within_one_to_four() {
        assert_eq!(lanes_from(None), 2);
        assert_eq!(lanes_from(Some("1")), 1);
        assert_eq!(lanes_from(Some(" 3 ")), 3);
        assert_eq!(lanes_from(Some("0")), 1);
        assert_eq!(lanes_from(Some("99")), 4);
        assert_eq!(lanes_from(Some("two")), 2);
    }

    #[test]
    fn tuned_options_are_defaults_the_environment_overrides() {
        let tuned = pairs(&[("prefer_nhwc", "1"), ("fuse_conv_bias", "1")]);
        assert_eq!(merge_options(&[], true), tuned);
        // After cuDNN refused a fused convolution: channels-last only.
        assert_eq!(merge_options(&[], false), pairs(&[("prefer_nhwc", "1")]));
        // Channels-last off takes fusion with it (cuDNN fuses channels-last only)...
        assert_eq!(
            merge_options(&pairs(&[("prefer_nhwc", "0")]), true),
            pairs(&[("prefer_nhwc", "0")])
        );
        // ...unless fusion is asked for too; other keys are passed on.
        assert_eq!(
            merge_options(
                &pairs(&[
                    ("fuse_conv_bias", "1"),
                    ("prefer_nhwc", "0"),
                    ("use_tf32", "0")
                ]),
                true
            ),
            pairs(&[
                ("fuse_conv_bias", "1"),
                ("prefer_nhwc", "0"),
                ("use_tf32", "0")
            ])
        );
        assert!(is_fusion_failure(
            "Non-zero status code returned while running Conv node. Failed to initialize CUDNN Frontend"
        ));
        assert!(!is_fusion_failure("CUDA out of memory"));
    }
}
