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
use ort::ep::ExecutionProvider as _;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

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

    /// Append another batch of the same element type.
    fn extend(&mut self, other: &Batch) -> Result<(), EngineError> {
        match (self, other) {
            (Batch::F32(a), Batch::F32(b)) => a.extend_from_slice(b),
            (Batch::F16(a), Batch::F16(b)) => a.extend_from_slice(b),
            (Batch::U8(a), Batch::U8(b)) => a.extend_from_slice(b),
            _ => {
                return Err(EngineError::Inference(
                    "clips of different element types in one batch".into(),
                ))
            }
        }
        Ok(())
    }

    /// Elements `range` as a new batch.
    fn slice(&self, range: std::ops::Range<usize>) -> Batch {
        match self {
            Batch::F32(v) => Batch::F32(v[range].to_vec()),
            Batch::F16(v) => Batch::F16(v[range].to_vec()),
            Batch::U8(v) => Batch::U8(v[range].to_vec()),
        }
    }

    /// Repeat the last `per` elements until the batch holds `items` items of `per` elements.
    fn pad_items(&mut self, per: usize, items: usize) {
        fn pad<T: Clone>(v: &mut Vec<T>, per: usize, items: usize) {
            let start = v.len().saturating_sub(per);
            while v.len() < per * items && per > 0 && v.len() >= per {
                v.extend_from_within(start..start + per);
            }
        }
        match self {
            Batch::F32(v) => pad(v, per, items),
            Batch::F16(v) => pad(v, per, items),
            Batch::U8(v) => pad(v, per, items),
        }
    }
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
        let engine = Arc::new(SharedEngine::new(Engine::open(path, choice, device)?)?);
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

    /// The batch size the graph fixes, if any.
    pub fn fixed_batch(&self) -> Option<usize> {
        self.io
            .input_shape
            .first()
            .and_then(|&b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
    }

    /// Run one batch shaped `shape`; returns the scores of each batch item.
    pub fn run(&self, shape: [i64; 5], batch: &Batch) -> Result<Vec<Vec<f32>>, EngineError> {
        let err = |e: &dyn std::fmt::Display| EngineError::Inference(e.to_string());
        let n = usize::try_from(shape[0]).map_err(|e| err(&e))?;
        let shape = shape.to_vec();
        let value = match batch {
            Batch::F32(v) => {
                TensorRef::from_array_view((shape, v.as_slice())).map(|t| t.into_dyn())
            }
            Batch::F16(v) => {
                TensorRef::from_array_view((shape, v.as_slice())).map(|t| t.into_dyn())
            }
            Batch::U8(v) => TensorRef::from_array_view((shape, v.as_slice())).map(|t| t.into_dyn()),
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
}

/// An engine shared by every element that opened the same model with the same provider and
/// device, with one inference thread that batches the clips they submit.
pub struct SharedEngine {
    engine: Arc<Engine>,
    shared: Arc<BatchShared>,
    thread: Option<JoinHandle<()>>,
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
        });
        let thread = {
            let (engine, shared) = (Arc::clone(&engine), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("nonlocal-batch".into())
                .spawn(move || batch_loop(&engine, &shared))
                .map_err(|e| {
                    EngineError::Inference(format!("cannot start the inference thread: {e}"))
                })?
        };
        Ok(Self {
            engine,
            shared,
            thread: Some(thread),
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
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The batching thread: take the waiting requests (up to max-batch items, waiting up to the
/// timeout for more once one is there), run them as one batch, answer each.
fn batch_loop(engine: &Engine, shared: &BatchShared) {
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
        let result = run_requests(engine, &taken, shared);
        let mut offset = 0;
        for request in taken {
            let answer = match &result {
                Ok(scores) => Ok(scores[offset..offset + request.items].to_vec()),
                Err(e) => Err(e.to_string()),
            };
            offset += request.items;
            let _ = request.reply.send(answer);
        }
    }
}

/// Run requests as one batch (in chunks of the graph's fixed batch size, padded, if it has one).
fn run_requests(
    engine: &Engine,
    requests: &[Request],
    stats: &BatchShared,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let items: usize = requests.iter().map(|r| r.items).sum();
    let mut data = match requests.first() {
        Some(first) => first.data.clone(),
        None => return Ok(Vec::new()),
    };
    for r in &requests[1..] {
        data.extend(&r.data)?;
    }
    if items == 0 || !data.len().is_multiple_of(items) {
        return Err(EngineError::Inference(format!(
            "{} input values for {items} clips",
            data.len()
        )));
    }
    let per = data.len() / items;
    // A graph with a fixed batch runs exactly that; otherwise batches are padded to a power of
    // two, so a CUDA session meets few input shapes (each new shape costs a cuDNN search).
    let step = engine
        .fixed_batch()
        .unwrap_or_else(|| items.next_power_of_two());
    let mut scores = Vec::with_capacity(items);
    for start in (0..items).step_by(step) {
        let n = step.min(items - start);
        let mut chunk = data.slice(start * per..(start + n) * per);
        chunk.pad_items(per, step);
        let mut shape = requests[0].shape;
        shape[0] = step as i64;
        let mut out = engine.run(shape, &chunk)?;
        stats.runs.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(n as u64, Ordering::Relaxed);
        out.truncate(n);
        scores.extend(out);
    }
    Ok(scores)
}
