//! The batching front every user of a model submits clips to: it gathers waiting clips into
//! batches (up to the largest `max-batch` asked for, waiting up to the smallest `batch-timeout`),
//! runs them on the [`Backend`] with one thread per lane, and answers each user with its clips'
//! scores. Backend-neutral: it knows clips, shapes and batch sizes, never how a model runs.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::InputType;

use super::batch::ValuesMut;
use super::sheet::{Reply, Reserved, SheetKey, Sheets};
use super::{Backend, Batch, EngineError, ModelInfo, RunTimes, SpanClips};

mod lane;

/// Batching parameters of a shared engine: the largest `max-batch` and the smallest
/// `batch-timeout` any of its users asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Most clip items (crops) per model run.
    pub max_batch: usize,
    /// How long the first waiting clip may wait for more to fill a batch.
    pub timeout: Duration,
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

summable!(EngineProfile {
    runs,
    items,
    run,
    other
});

/// Where a submitted request's scores (one vector per item) arrive.
pub type Scores = Receiver<Result<Vec<Vec<f32>>, String>>;

#[derive(Default)]
struct BatchQueue {
    /// Batches in formation, which submitters pack their clips into (see [`super::sheet`]).
    sheets: Sheets,
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
    /// Buffers handed back after a run (sheets, clip buffers), for the next to be packed into.
    pool: Mutex<Vec<Batch>>,
    /// Batch sizes run once already (warm-up), by clip shape.
    warmed: Mutex<Vec<[i64; 5]>>,
    /// Kinds of clips whose sheets were laid in (see `SharedEngine::lay_in_sheets`).
    laid_in: Mutex<Vec<SheetKey>>,
}

/// An engine shared by every element that opened the same model on the same backend, with
/// one batching thread per lane that batches the clips they submit.
pub struct SharedEngine {
    backend: Arc<dyn Backend>,
    shared: Arc<BatchShared>,
    threads: Vec<JoinHandle<()>>,
    /// What the batching threads' priority request came to (see [`super::priority`]).
    priority: Result<Option<i32>, String>,
}

/// The model's description: `engine.io`, `engine.metadata`, `engine.name`.
impl std::ops::Deref for SharedEngine {
    type Target = ModelInfo;
    fn deref(&self) -> &ModelInfo {
        self.backend.model()
    }
}

fn lock_queue(shared: &BatchShared) -> std::sync::MutexGuard<'_, BatchQueue> {
    shared.queue.lock().unwrap_or_else(|e| e.into_inner())
}

impl SharedEngine {
    /// A batching front around `backend` of its own (shared with nobody; see
    /// [`SharedEngine::shared`] for the engines elements share).
    pub fn new(backend: Box<dyn Backend>) -> Result<Self, EngineError> {
        let backend: Arc<dyn Backend> = Arc::from(backend);
        let shared = Arc::new(BatchShared {
            queue: Mutex::new(BatchQueue::default()),
            cond: Condvar::new(),
            runs: AtomicU64::new(0),
            items: AtomicU64::new(0),
            run_ns: AtomicU64::new(0),
            other_ns: AtomicU64::new(0),
            pool: Mutex::new(Vec::new()),
            warmed: Mutex::new(Vec::new()),
            laid_in: Mutex::new(Vec::new()),
        });
        // One batching thread per lane: while one lane's batch runs, the next forms and runs on
        // the other.
        let mut threads = Vec::new();
        // Each thread first reports what its priority request came to (the same request to the
        // same kernel: the first report stands for all).
        let (priority_tx, priority_rx) = sync_channel(backend.lanes().max(1));
        for lane in 0..backend.lanes().max(1) {
            let (backend, shared) = (Arc::clone(&backend), Arc::clone(&shared));
            let priority_tx = priority_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("nonlocal-batch-{lane}"))
                .spawn(move || {
                    let _ = priority_tx.send(super::priority::prefer_this_thread());
                    lane::batch_loop(&*backend, &shared, lane)
                });
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
        drop(priority_tx);
        let priority = priority_rx.recv().unwrap_or(Ok(None));
        Ok(Self {
            backend,
            shared,
            threads,
            priority,
        })
    }

    /// The backend, when it is a `B` (for what only that backend knows, e.g.
    /// [`super::LocalBackend::fallback_reason`]).
    pub fn backend<B: Backend>(&self) -> Option<&B> {
        (&*self.backend as &dyn Any).downcast_ref::<B>()
    }

    /// Where the model runs, for logs (see [`Backend::describe`]).
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// How many batches can be in flight at once (see [`Backend::lanes`]).
    pub fn lanes(&self) -> usize {
        self.backend.lanes()
    }

    /// How often [`SharedEngine::warm_up`] runs each batch size on each lane (see
    /// [`Backend::warm_up_runs`]).
    pub fn warm_up_runs(&self) -> usize {
        self.backend.warm_up_runs()
    }

    /// The niceness the batching threads run at when `NONLOCAL_ENGINE_NICE` asked for one
    /// (Ok(None): none was asked for; Err: why the kernel refused, the threads then keep the
    /// process's priority).
    pub fn thread_priority(&self) -> Result<Option<i32>, String> {
        self.priority.clone()
    }

    /// Where the backend's model runs have spent their time so far.
    pub fn run_times(&self) -> RunTimes {
        self.backend.run_times()
    }

    /// Run one batch shaped `shape` (items concatenated in `batch`) straight away, outside the
    /// batcher; returns each item's scores.
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
        batch.with_items(batch.len() / n, |items| {
            self.backend.run(lane, shape, items)
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

    /// A buffer of `len` elements of the model's input type to pack clips into, in ordinary
    /// memory (a recycled one when available, its old contents to be overwritten), for
    /// [`SharedEngine::submit`] or [`SharedEngine::run`]. Clips submitted from it are copied
    /// into the batch they join; [`SharedEngine::slot`] lets them be packed there instead.
    pub fn buffer(&self, len: usize) -> Batch {
        let ty = self.input_type();
        self.recycled(ty, len, false)
            .unwrap_or_else(|| Batch::zeros(ty, len))
    }

    /// As [`SharedEngine::buffer`], but in memory the backend lends when it does (page-locked
    /// under CUDA, see [`Backend::clip_buffer`]): a batch in one such buffer, run with
    /// [`SharedEngine::run`], goes to the card in one DMA transfer, with no copy on the host (the
    /// batches the engine forms are such buffers, see [`SharedEngine::slot`]). Falls back to
    /// ordinary memory.
    pub fn page_locked_buffer(&self, len: usize) -> Batch {
        let ty = self.input_type();
        self.recycled(ty, len, true)
            .or_else(|| self.backend.clip_buffer(ty, len))
            .unwrap_or_else(|| Batch::zeros(ty, len))
    }

    /// A pooled buffer of `len` values of `ty`, lent by the backend or not.
    fn recycled(&self, ty: InputType, len: usize, lent: bool) -> Option<Batch> {
        let mut pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.iter()
            .position(|b| b.input_type() == ty && b.len() == len && b.is_lent() == lent)
            .map(|i| pool.swap_remove(i))
    }

    /// Run every batch size the batcher can form for clips shaped `shape` on every lane, as often
    /// as the backend asks ([`Backend::warm_up_runs`]), so that the first clips do not pay for
    /// the backend's first runs (CUDA's kernel selection: seconds per new shape on some models),
    /// and lay in the buffers of the first batches clips shaped `shape` form (see
    /// `lay_in_sheets`).
    pub fn warm_up(&self, shape: [i64; 5]) -> Result<(), EngineError> {
        let ty = self.input_type();
        self.lay_in_sheets(SheetKey::new(shape, None, ty));
        let repeats = self.backend.warm_up_runs();
        if repeats == 0 {
            return Ok(());
        }
        let max = self.batching().map_or(1, |b| b.max_batch.max(1));
        let mut sizes: Vec<usize> = (1..=max).map(|n| self.run_size(n)).collect();
        sizes.dedup();
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
            for lane in 0..self.lanes() {
                for _ in 0..repeats {
                    self.run_lane(Some(lane), batch_shape, &batch)?;
                }
            }
        }
        Ok(())
    }

    /// Put buffers for [`SHEETS_LAID_IN`] per lane batches of `key`'s clips in the pool (fewer
    /// past [`SHEET_BYTES_LAID_IN`]), once per kind of clip, when the backend lends them
    /// (page-locked memory under CUDA): taking page-locked memory costs milliseconds per batch,
    /// which the first batches of dozens of streams would otherwise wait for. Whoever reserves
    /// room for a new kind meanwhile waits for the buffers rather than take its own.
    fn lay_in_sheets(&self, key: SheetKey) {
        let mut laid = self
            .shared
            .laid_in
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if laid.contains(&key) {
            return;
        }
        laid.push(key);
        let capacity = self.batching().map_or(1, |b| b.max_batch.max(1));
        let len = self.sheet_len(&key, capacity);
        let bytes = len * key.ty.size();
        let wanted = (SHEETS_LAID_IN * self.lanes().max(1))
            .min(SHEET_BYTES_LAID_IN / bytes.max(1))
            .max(1);
        let held = {
            let pool = self.shared.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.iter()
                .filter(|b| b.is_lent() && b.input_type() == key.ty && b.len() == len)
                .count()
        };
        let buffers: Vec<Batch> = (held..wanted)
            .map_while(|_| self.backend.clip_buffer(key.ty, len))
            .collect();
        recycle(&self.shared, buffers);
    }

    /// The model's input element type (float32 where the model's is not one of ours, which
    /// its first run then reports).
    fn input_type(&self) -> InputType {
        self.io.input_type.clone().unwrap_or(InputType::F32)
    }

    /// The batch size `items` waiting clips run at (at least 1).
    fn run_size(&self, items: usize) -> usize {
        self.backend.run_size(items).max(1)
    }

    /// The batching in force.
    pub fn batching(&self) -> Option<Batching> {
        lock_queue(&self.shared).batching
    }

    /// Submit `items` clip tensors shaped `shape` (batch dimension ignored) concatenated in
    /// `data`; the receiver gets their scores. The clips are copied into the batch they join
    /// (see [`SharedEngine::slot`] to pack them there in the first place).
    pub fn submit(&self, shape: [i64; 5], items: usize, data: Batch) -> Scores {
        let key = SheetKey::new(shape, None, data.input_type());
        self.submit_copy(key, items, &data)
    }

    /// Whether the backend resamples clips sent as source spans ([`SharedEngine::submit_spans`]).
    pub fn resamples(&self) -> bool {
        self.backend.resamples()
    }

    /// Submit `items` clips sent as source spans (`what`; concatenated uint8 in `data`) for the
    /// backend to resample into items of the model input shaped `shape`.
    pub fn submit_spans(
        &self,
        shape: [i64; 5],
        what: SpanClips,
        items: usize,
        data: Batch,
    ) -> Scores {
        let key = SheetKey::new(shape, Some(what), InputType::U8);
        self.submit_copy(key, items, &data)
    }

    fn submit_copy(&self, key: SheetKey, items: usize, data: &Batch) -> Scores {
        let copied = self.reserve(key, items).and_then(|mut slot| {
            slot.values()
                .copy_from(data)
                .map_err(EngineError::Inference)?;
            Ok(slot)
        });
        match copied {
            Ok(slot) => slot.submit(),
            Err(e) => {
                let (tx, rx) = sync_channel(1);
                let _ = tx.send(Err(e.to_string()));
                rx
            }
        }
    }

    /// Room for `items` clip items shaped `shape` (batch dimension ignored) in the batch now
    /// forming, to pack them into straight and then [`Slot::submit`] them: the batching thread
    /// runs that batch as it stands, with no copy of its own (page-locked memory under CUDA).
    pub fn slot(&self, shape: [i64; 5], items: usize) -> Result<Slot, EngineError> {
        let ty = self.input_type();
        self.reserve(SheetKey::new(shape, None, ty), items)
    }

    /// As [`SharedEngine::slot`], for one clip sent as source spans (`what`) for the backend to
    /// resample into an item of the model input shaped `shape`.
    pub fn span_slot(&self, shape: [i64; 5], what: SpanClips) -> Result<Slot, EngineError> {
        self.reserve(SheetKey::new(shape, Some(what), InputType::U8), 1)
    }

    fn reserve(&self, key: SheetKey, items: usize) -> Result<Slot, EngineError> {
        if items == 0 || key.per_item() == 0 {
            return Err(EngineError::Inference(format!(
                "{items} clip items of shape {:?}: nothing to run",
                key.shape
            )));
        }
        self.lay_in_sheets(key);
        let slot = |reserved| Slot {
            shared: Arc::clone(&self.shared),
            reserved: Some(reserved),
            ty: key.ty,
        };
        let capacity = {
            let mut q = lock_queue(&self.shared);
            if let Some(r) = q.sheets.reserve(&key, items) {
                return Ok(slot(r));
            }
            q.batching.map_or(1, |b| b.max_batch).max(items)
        };
        // A new sheet's buffer, found or allocated outside the lock (page-locked memory takes
        // milliseconds to allocate).
        let data = self.sheet_buffer(key.ty, self.sheet_len(&key, capacity));
        let mut q = lock_queue(&self.shared);
        if let Some(r) = q.sheets.reserve(&key, items) {
            drop(q);
            recycle(&self.shared, vec![data]);
            return Ok(slot(r));
        }
        let opened = q.sheets.open(key, capacity, items, data);
        let unused = q.sheets.sweep();
        drop(q);
        recycle(&self.shared, unused);
        match opened {
            Ok(r) => Ok(slot(r)),
            Err(_) => Err(EngineError::Inference(format!(
                "no room for {items} clip items of shape {:?}",
                key.shape
            ))),
        }
    }

    /// Values in the buffer of a sheet of `key` with room for `capacity` items: a whole number
    /// of the backend's runs, so that the last, padded one reads only the sheet.
    fn sheet_len(&self, key: &SheetKey, capacity: usize) -> usize {
        let step = self.run_size(capacity);
        capacity.div_ceil(step) * step * key.per_item()
    }

    /// A sheet's buffer of `len` values of `ty`: a pooled one, else one the backend lends
    /// (page-locked under CUDA), else an ordinary vector.
    fn sheet_buffer(&self, ty: InputType, len: usize) -> Batch {
        self.recycled(ty, len, true)
            .or_else(|| self.backend.clip_buffer(ty, len))
            .or_else(|| self.recycled(ty, len, false))
            .unwrap_or_else(|| Batch::zeros(ty, len))
    }
}

/// Room in a batch in formation for one request's clip items (see [`SharedEngine::slot`]): pack
/// them into [`Slot::values`], then [`Slot::submit`]. Dropped unsubmitted, the room is given up
/// (the batch runs without waiting for it).
pub struct Slot {
    shared: Arc<BatchShared>,
    /// None once submitted or given up.
    reserved: Option<Reserved>,
    ty: InputType,
}

// SAFETY: the reserved values are this slot's alone (reserved under the batcher's lock, read by
// a batching thread only once the slot is submitted or dropped), wherever the slot goes.
unsafe impl Send for Slot {}

impl Slot {
    /// The reserved values: the request's items one after another.
    pub fn values(&mut self) -> ValuesMut<'_> {
        let Some(r) = self.reserved.as_ref() else {
            return ValuesMut::U8(&mut []);
        };
        // SAFETY: `r.ptr` starts `r.len` values of `self.ty` inside the sheet's buffer, which
        // lives while the sheet is queued (it cannot run while this reservation is pending, and
        // `shared` keeps the queue alive); no other slot reaches them (see `unsafe impl Send`).
        unsafe {
            match self.ty {
                InputType::F32 => {
                    ValuesMut::F32(std::slice::from_raw_parts_mut(r.ptr.cast(), r.len))
                }
                InputType::F16 => {
                    ValuesMut::F16(std::slice::from_raw_parts_mut(r.ptr.cast(), r.len))
                }
                InputType::U8 => ValuesMut::U8(std::slice::from_raw_parts_mut(r.ptr, r.len)),
            }
        }
    }

    /// Hand the packed items to the batcher; the receiver gets their scores.
    pub fn submit(mut self) -> Scores {
        let (tx, rx) = sync_channel(1);
        if let Some(r) = self.reserved.take() {
            let mut q = lock_queue(&self.shared);
            let reply = Reply {
                first: r.first,
                items: r.items,
                tx,
            };
            q.sheets.submit(&r, reply);
            self.shared.cond.notify_all();
        }
        rx
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(r) = self.reserved.take() {
            let unused = {
                let mut q = lock_queue(&self.shared);
                q.sheets.release(&r);
                q.sheets.sweep()
            };
            self.shared.cond.notify_all();
            recycle(&self.shared, unused);
        }
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

/// Sheets laid in per lane before the first clips of a kind (see `SharedEngine::lay_in_sheets`).
const SHEETS_LAID_IN: usize = 4;

/// Most bytes of sheets laid in.
const SHEET_BYTES_LAID_IN: usize = 512 << 20;

/// Most ordinary (not lent) bytes kept for reuse.
const POOL_BYTES: usize = 1 << 30;

/// Keep run sheets' and clips' buffers for the next (saves allocating and zeroing tens of
/// megabytes per batch): ordinary ones up to [`POOL_BYTES`], and every one the backend lent
/// (their number is the backend's to bound, and giving page-locked memory back and taking it
/// again costs far more than keeping it).
fn recycle(shared: &BatchShared, buffers: Vec<Batch>) {
    let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = |b: &Batch| b.len() * b.input_type().size();
    let mut kept: usize = pool.iter().filter(|b| !b.is_lent()).map(bytes).sum();
    for buffer in buffers {
        if buffer.is_lent() {
            pool.push(buffer);
        } else if kept + bytes(&buffer) <= POOL_BYTES {
            kept += bytes(&buffer);
            pool.push(buffer);
        }
    }
}
