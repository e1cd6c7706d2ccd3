//! The batching front every user of a model submits clips to: it gathers waiting clips into
//! batches (up to the largest `max-batch` asked for, waiting up to the smallest `batch-timeout`),
//! runs them on the [`Backend`] with one thread per lane, and answers each user with its clips'
//! scores. Backend-neutral: it knows clips, shapes and batch sizes, never how a model runs.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use half::f16;

use crate::config::InputType;

use super::batch::ClipElement;
use super::{Backend, Batch, EngineError, ModelInfo, RunTimes, SpanClips};

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

/// Where a submitted request's scores (one vector per item) arrive.
pub type Scores = Receiver<Result<Vec<Vec<f32>>, String>>;

/// One element's clip(s) waiting for the batcher.
struct Request {
    /// Shape of one item (batch dimension 1); only requests of one shape share a batch.
    shape: [i64; 5],
    /// Clips sent as source spans for the backend to resample (only requests of equal spans
    /// share a batch); None: packed model input items.
    spans: Option<SpanClips>,
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
                    batch_loop(&*backend, &shared, lane)
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
    /// memory (a recycled one when available, its old contents to be overwritten). The element
    /// packs into these: measured on an H200 at 32 and 64 I3D streams, packing into page-locked
    /// buffers made the element slower in 11 of 12 same-run pairs, by 3-19 % (docs/benchmarks.md).
    pub fn buffer(&self, len: usize) -> Batch {
        let ty = self.io.input_type.clone().unwrap_or(InputType::F32);
        self.recycled(ty, len, false)
            .unwrap_or_else(|| Batch::zeros(ty, len))
    }

    /// As [`SharedEngine::buffer`], but in memory the backend lends when it does (page-locked
    /// under CUDA, see [`Backend::clip_buffer`]): a batch of such clips goes to the card one DMA
    /// transfer per clip, with no copy on the host (the engine alone ran 18-22 % faster so on an
    /// H200, I3D at batch 8). Falls back to ordinary memory.
    pub fn page_locked_buffer(&self, len: usize) -> Batch {
        let ty = self.io.input_type.clone().unwrap_or(InputType::F32);
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
    /// the backend's first runs (CUDA's kernel selection: seconds per new shape on some models).
    pub fn warm_up(&self, shape: [i64; 5]) -> Result<(), EngineError> {
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

    /// The batch size `items` waiting clips run at (at least 1).
    fn run_size(&self, items: usize) -> usize {
        self.backend.run_size(items).max(1)
    }

    /// The batching in force.
    pub fn batching(&self) -> Option<Batching> {
        lock_queue(&self.shared).batching
    }

    /// Submit `items` clip tensors shaped `shape` (batch dimension ignored) concatenated in
    /// `data`; the receiver gets their scores.
    pub fn submit(&self, shape: [i64; 5], items: usize, data: Batch) -> Scores {
        self.submit_request(shape, None, items, data)
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
        self.submit_request(shape, Some(what), items, data)
    }

    fn submit_request(
        &self,
        shape: [i64; 5],
        spans: Option<SpanClips>,
        items: usize,
        data: Batch,
    ) -> Scores {
        let (reply, rx) = sync_channel(1);
        let mut q = lock_queue(&self.shared);
        q.requests.push_back(Request {
            shape,
            spans,
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
fn batch_loop(backend: &dyn Backend, shared: &BatchShared, lane: usize) {
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
                            && first.spans == next.spans
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
        let result = run_requests(backend, &taken, shared, lane);
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
/// per clip): up to [`POOL_SIZE`] ordinary ones, and every one the backend lent (their number is
/// the backend's to bound, and giving page-locked memory back and taking it again costs far more
/// than keeping it).
fn recycle(shared: &BatchShared, buffers: Vec<Batch>) {
    let mut pool = shared.pool.lock().unwrap_or_else(|e| e.into_inner());
    for buffer in buffers {
        if buffer.is_lent() || pool.iter().filter(|b| !b.is_lent()).count() < POOL_SIZE {
            pool.push(buffer);
        }
    }
}

/// Run requests as one batch (in chunks of the backend's run size, e.g. the graph's fixed batch).
fn run_requests(
    backend: &dyn Backend,
    requests: &[Request],
    stats: &BatchShared,
    lane: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let Some(first) = requests.first() else {
        return Ok(Vec::new());
    };
    if let Some(what) = first.spans {
        return run_typed::<u8>(backend, requests, stats, lane, Some(&what));
    }
    match first.data.input_type() {
        InputType::F32 => run_typed::<f32>(backend, requests, stats, lane, None),
        InputType::F16 => run_typed::<f16>(backend, requests, stats, lane, None),
        InputType::U8 => run_typed::<u8>(backend, requests, stats, lane, None),
    }
}

fn run_typed<T: ClipElement>(
    backend: &dyn Backend,
    requests: &[Request],
    stats: &BatchShared,
    lane: usize,
    spans: Option<&SpanClips>,
) -> Result<Vec<Vec<f32>>, EngineError> {
    // Every clip item of every request, as a slice of the request's own buffer: the only copy
    // is the backend's, into its input.
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
    let step = backend.run_size(items.len()).max(1);
    let mut shape = requests[0].shape;
    shape[0] = step as i64;
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(step) {
        let started = Instant::now();
        scores.extend(match spans {
            Some(what) => backend.run_spans(Some(lane), shape, what, T::bytes(chunk)?)?,
            None => backend.run(Some(lane), shape, T::items(chunk))?,
        });
        stats.runs.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        stats
            .run_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    Ok(scores)
}
