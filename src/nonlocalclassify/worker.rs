//! The element's inference worker: one thread per element that packs each finished clip's crops
//! into the batch the shared engine is forming, submits them, waits for its scores and publishes them
//! (smoothing, ranking, segments, the result meta queue and element messages), in clip order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::dump::InputDump;
use super::queue::Item;
use super::{Leaky, CAT};
use crate::config::ClipConfig;
use crate::engine::remote::model::is_lost;
use crate::engine::{Scores, SharedEngine, SpanClips, ValuesMut};
use crate::preprocess::{pack_clip, CentreSpan, CropPosition, ScaledFrame, TensorElement};
use crate::results::{clip_scores, ClipResult, ObjectRef, Smoother, Summary, MESSAGE_NAME};
use crate::sampling::Clip;
use crate::segments::{self, Hysteresis, Segment, Segmenter};

/// A clip on its way to the worker.
pub(super) struct Job {
    pub(super) clip: Clip<ScaledFrame>,
    /// The clip's frames are source spans of this geometry, for the engine to resample.
    pub(super) span: Option<CentreSpan>,
    pub(super) generation: u64,
    pub(super) stream_time: Option<u64>,
    pub(super) running_time: Option<u64>,
    pub(super) arrived: Instant,
    /// The object the clip was cropped around (objects mode).
    pub(super) object: Option<ObjectRef>,
    /// The last clip of the object's track (objects mode: completed when the track ended).
    pub(super) last: bool,
}

/// What the worker is handed, in order.
pub(super) enum Work {
    Clip(Box<Job>),
    /// An object's track ended: its last segment and its summary are posted, its results
    /// forgotten.
    Ended {
        object: u64,
        generation: u64,
    },
}

impl Item for Work {
    fn is_clip(&self) -> bool {
        matches!(self, Work::Clip(_))
    }

    fn object(&self) -> Option<u64> {
        match self {
            Work::Clip(job) => job.object.map(|o| o.id),
            Work::Ended { .. } => None,
        }
    }

    fn is_last(&self) -> bool {
        matches!(self, Work::Clip(job) if job.last)
    }
}

/// The queue of work for the worker.
pub(super) type Queue = super::queue::Queue<Work>;

/// The results of the whole frame, or of one object: smoothing, the summary and segments.
pub(super) struct Results {
    pub(super) smoother: Smoother,
    pub(super) summary: Summary,
    pub(super) segments: Segmenter,
}

impl Results {
    fn reset(&mut self) {
        self.smoother.reset();
        self.summary.reset();
        self.segments.reset();
    }

    /// The last segment (closed now) and the summary, with its segments, of these results; both
    /// name `object` when they are an object's.
    pub(super) fn finish(
        &mut self,
        labels: &[String],
        top_k: usize,
        dropped: u64,
        object: Option<u64>,
    ) -> (Option<gst::Structure>, gst::Structure) {
        let last = self
            .segments
            .finish()
            .map(|s| segment_structure(&s, object));
        let mut summary = self.summary.to_structure(labels, top_k, dropped);
        summary.set(
            "segments",
            gst::Array::new(
                self.segments
                    .segments()
                    .iter()
                    .map(|s| segment_structure(s, object)),
            ),
        );
        if let Some(id) = object {
            summary.set("object-id", id);
        }
        (last, summary)
    }
}

/// A segment as messages carry it, with `object-id` for an object's.
fn segment_structure(segment: &Segment, object: Option<u64>) -> gst::Structure {
    let mut s = segment.to_structure();
    if let Some(id) = object {
        s.set("object-id", id);
    }
    s
}

/// Per-stream result state, touched by the worker and reset by flushes: the whole frame's
/// results, and each live object's.
pub(super) struct Post {
    pub(super) frame: Results,
    pub(super) objects: HashMap<u64, Results>,
    smoothing: u32,
    hysteresis: Hysteresis,
    labels: Arc<Vec<String>>,
}

impl Post {
    pub(super) fn new(smoothing: u32, hysteresis: Hysteresis, labels: Arc<Vec<String>>) -> Self {
        Self {
            frame: Self::fresh(smoothing, hysteresis, &labels),
            objects: HashMap::new(),
            smoothing,
            hysteresis,
            labels,
        }
    }

    fn fresh(smoothing: u32, hysteresis: Hysteresis, labels: &Arc<Vec<String>>) -> Results {
        Results {
            smoother: Smoother::new(smoothing),
            summary: Summary::default(),
            segments: Segmenter::new(hysteresis, Arc::clone(labels)),
        }
    }

    /// The results a clip of `object` (or of the whole frame) goes to.
    fn results(&mut self, object: Option<u64>) -> &mut Results {
        match object {
            None => &mut self.frame,
            Some(id) => {
                let (smoothing, hysteresis) = (self.smoothing, self.hysteresis);
                let labels = &self.labels;
                self.objects
                    .entry(id)
                    .or_insert_with(|| Self::fresh(smoothing, hysteresis, labels))
            }
        }
    }

    fn reset(&mut self) {
        self.frame.reset();
        self.objects.clear();
    }
}

/// What the streaming thread and the worker share.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) cond: Condvar,
    pub(super) post: Mutex<Post>,
    pub(super) ready: Mutex<Vec<ClipResult>>,
    pub(super) dropped: AtomicU64,
    /// Objects refused a track (objects mode, `max-objects`).
    pub(super) objects_dropped: AtomicU64,
    pub(super) failed: AtomicBool,
    /// Whether the stream is live (known from its first buffer).
    pub(super) live: AtomicBool,
    /// Which clip a live stream drops when `max-pending` clips are pending.
    pub(super) leaky: Leaky,
}

impl Shared {
    /// Forget every result of the current stream (flush, stream start).
    pub(super) fn reset_results(&self) {
        lock(&self.ready).clear();
        lock(&self.post).reset();
        self.dropped.store(0, Ordering::SeqCst);
        self.objects_dropped.store(0, Ordering::SeqCst);
    }

    /// Hand a clip to the worker: live streams drop a clip when `max` are pending (which one:
    /// `leaky`, see [`super::queue::Queue::offer`]), others wait.
    pub(super) fn enqueue(&self, job: Job, live: bool, max: usize) -> Result<(), gst::FlowError> {
        let mut q = lock(&self.queue);
        if !live {
            return self.push(q, Work::Clip(Box::new(job)), max);
        }
        if q.flushing || q.stop {
            return Err(gst::FlowError::Flushing);
        }
        for work in q.offer(Work::Clip(Box::new(job)), max, self.leaky) {
            if let Work::Clip(job) = work {
                let dropped = self.dropped.fetch_add(1, Ordering::SeqCst) + 1;
                gst::debug!(CAT, "Dropped clip {} ({} so far)", job.clip.index, dropped);
            }
        }
        self.cond.notify_all();
        Ok(())
    }

    /// Tell the worker that an object's track ended (after its clips already handed over).
    pub(super) fn end_object(&self, object: u64, max: usize) -> Result<(), gst::FlowError> {
        let q = lock(&self.queue);
        let generation = q.generation;
        self.push(q, Work::Ended { object, generation }, max)
    }

    fn push(
        &self,
        mut q: MutexGuard<'_, Queue>,
        work: Work,
        max: usize,
    ) -> Result<(), gst::FlowError> {
        while q.jobs.len() >= max && !q.flushing && !q.stop {
            q = self.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.flushing || q.stop {
            return Err(gst::FlowError::Flushing);
        }
        q.jobs.push_back(work);
        self.cond.notify_all();
        Ok(())
    }

    /// Wait until the worker has finished every queued clip (or a flush/stop interrupts).
    pub(super) fn drain(&self) {
        let mut q = lock(&self.queue);
        while (!q.jobs.is_empty() || q.busy) && !q.flushing && !q.stop {
            q = self.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data is still
    // consistent for our uses (queues and counters), so keep going rather than panic here too.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the worker needs, fixed for one READY→PAUSED→READY cycle.
pub(super) struct WorkerConfig {
    pub(super) engine: Arc<SharedEngine>,
    pub(super) config: ClipConfig,
    pub(super) labels: Arc<Vec<String>>,
    pub(super) crops: Vec<CropPosition>,
    pub(super) top_k: usize,
    /// Clips of this element that fill one of its batches (`max-batch` over the crops per clip).
    pub(super) batch_clips: usize,
    /// `dump-inputs`: where each clip's packed input is written.
    pub(super) dump: Option<InputDump>,
}

/// Why a clip has no scores.
pub(super) enum ClipError {
    /// Packing it, running the model or reading its scores failed.
    Inference(String),
    /// Its input could not be written to `dump-inputs`.
    Dump(String),
}

impl ClipError {
    /// Post the element error of clip `index` of model `model`.
    fn post(self, element: &super::NonLocalClassify, index: u64, model: &str) {
        match self {
            ClipError::Inference(reason) => gst::element_error!(
                element,
                gst::StreamError::Failed,
                ("Inference failed on clip {}: model '{}': {}", index, model, reason)
            ),
            ClipError::Dump(reason) => gst::element_error!(
                element,
                gst::ResourceError::Write,
                (
                    "Cannot write the input of clip {} to dump-inputs: {}: free space there or set dump-inputs to another directory",
                    index,
                    reason
                )
            ),
        }
    }
}

impl From<String> for ClipError {
    fn from(reason: String) -> Self {
        ClipError::Inference(reason)
    }
}

/// Pack the clip's crops (one per crop position) into `data`, `clip_elements` values each.
pub(super) fn pack_crops<T: TensorElement>(
    frames: &[&ScaledFrame],
    cfg: &WorkerConfig,
    data: &mut [T],
) -> Result<(), String> {
    let per = cfg.config.clip_elements();
    for (chunk, pos) in data.chunks_mut(per).zip(cfg.crops.iter()) {
        pack_clip(
            frames,
            cfg.config.crop_size,
            *pos,
            &cfg.config.norm,
            cfg.config.layout,
            chunk,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Pack a clip's crops straight into the batch the engine is forming and hand them over; with
/// `dump-inputs`, the packed values are written to the clip's file first.
pub(super) fn submit(cfg: &WorkerConfig, job: &Job) -> Result<Scores, ClipError> {
    let (clip, span) = (&job.clip, job.span);
    let frames: Vec<&ScaledFrame> = clip.frames.iter().map(|f| f.as_ref()).collect();
    let shape = cfg.config.input_shape(1);
    if let Some(span) = span {
        let what = SpanClips {
            span,
            frames: frames.len(),
            layout: cfg.config.layout,
        };
        let mut slot = cfg
            .engine
            .span_slot(shape, what)
            .map_err(|e| e.to_string())?;
        let ValuesMut::U8(data) = slot.values() else {
            return Err(ClipError::Inference(
                "resample=engine needs a model with uint8 input".into(),
            ));
        };
        for (chunk, frame) in data
            .chunks_exact_mut(what.clip_len() / what.frames.max(1))
            .zip(&frames)
        {
            if (frame.width, frame.height) != (span.width, span.height) {
                return Err(ClipError::Inference(format!(
                    "a frame of {}x{} source pixels in a clip of {}x{} spans",
                    frame.width, frame.height, span.width, span.height
                )));
            }
            chunk.copy_from_slice(&frame.data);
        }
        return Ok(slot.submit());
    }
    let mut slot = cfg
        .engine
        .slot(shape, cfg.crops.len())
        .map_err(|e| e.to_string())?;
    match slot.values() {
        ValuesMut::F32(v) => pack_crops(&frames, cfg, v)?,
        ValuesMut::F16(v) => pack_crops(&frames, cfg, v)?,
        ValuesMut::U8(v) => pack_crops(&frames, cfg, v)?,
    }
    if let Some(dump) = &cfg.dump {
        let shape = cfg.config.input_shape(cfg.crops.len());
        dump.write(clip.index, job.object.map(|o| o.id), &shape, &slot.values())
            .map_err(ClipError::Dump)?;
    }
    Ok(slot.submit())
}

/// Wait for a submitted clip's crop scores and combine them.
pub(super) fn receive(cfg: &WorkerConfig, rx: Scores) -> Result<Vec<f64>, String> {
    let outputs = rx
        .recv()
        .map_err(|_| "the inference thread stopped".to_string())??;
    if outputs.iter().any(|o| o.len() != cfg.config.num_classes) {
        return Err(format!(
            "the model returned a score vector of the wrong size (expected {})",
            cfg.config.num_classes
        ));
    }
    Ok(clip_scores(&outputs, cfg.config.output_kind))
}

/// Work handed to the engine: a clip with its pending scores, or an object's end.
enum Submitted {
    Clip(Box<Job>, Result<Scores, ClipError>),
    Ended(u64, u64),
}

/// Post an object's last segment and summary, and forget its results (skipped when a flush
/// made it stale).
fn end_object(
    shared: &Shared,
    cfg: &WorkerConfig,
    object: u64,
    generation: u64,
    element: &super::NonLocalClassify,
) {
    let (last, summary) = {
        let q = lock(&shared.queue);
        if q.generation != generation {
            return;
        }
        let mut post = lock(&shared.post);
        let Some(mut results) = post.objects.remove(&object) else {
            return;
        };
        drop(q);
        let dropped = shared.dropped.load(Ordering::SeqCst);
        let (last, mut summary) = results.finish(&cfg.labels, cfg.top_k, dropped, Some(object));
        summary.set(
            "objects-dropped",
            shared.objects_dropped.load(Ordering::SeqCst),
        );
        (last, summary)
    };
    if element.imp().posts_messages() && !shared.failed.load(Ordering::SeqCst) {
        for structure in last.into_iter().chain([summary]) {
            let _ = element.post_message(
                gst::message::Element::builder(structure)
                    .src(element)
                    .build(),
            );
        }
    }
}

pub(super) fn worker_loop(
    shared: Arc<Shared>,
    cfg: WorkerConfig,
    element: glib::WeakRef<super::NonLocalClassify>,
) {
    loop {
        // Every clip waiting now goes to the batcher at once, so one stream's clips can share a
        // batch too; results are published in clip order. A live stream dropping its oldest
        // clips hands over one batch at a time: a clip in the engine can no longer make way for
        // a newer one.
        let works: Vec<Work> = {
            let mut q = lock(&shared.queue);
            loop {
                if q.stop {
                    return;
                }
                if !q.jobs.is_empty() {
                    q.busy = true;
                    shared.cond.notify_all();
                    let live = shared.live.load(Ordering::SeqCst);
                    let one_batch =
                        (live && shared.leaky == Leaky::Oldest).then_some(cfg.batch_clips);
                    break q.take(one_batch);
                }
                q = shared.cond.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let submitted: Vec<_> = works
            .into_iter()
            .map(|work| match work {
                Work::Clip(job) => {
                    let rx = submit(&cfg, &job);
                    Submitted::Clip(job, rx)
                }
                Work::Ended { object, generation } => Submitted::Ended(object, generation),
            })
            .collect();
        for work in submitted {
            let (job, rx) = match work {
                Submitted::Clip(job, rx) => (job, rx),
                Submitted::Ended(object, generation) => {
                    if let Some(element) = element.upgrade() {
                        end_object(&shared, &cfg, object, generation, &element);
                    }
                    continue;
                }
            };
            let outcome = rx.and_then(|rx| Ok(receive(&cfg, rx)?));
            match (outcome, element.upgrade()) {
                (Ok(scores), Some(element)) => publish(&shared, &cfg, &job, scores, &element),
                // A live stream keeps flowing while the servers are lost: the clip is dropped
                // and counted; results resume when a server answers again.
                (Err(ClipError::Inference(reason)), Some(_))
                    if is_lost(&reason) && shared.live.load(Ordering::SeqCst) =>
                {
                    let dropped = shared.dropped.fetch_add(1, Ordering::SeqCst) + 1;
                    gst::warning!(
                        CAT,
                        "Dropped clip {} ({} so far): {}",
                        job.clip.index,
                        dropped,
                        reason
                    );
                }
                // One error per stream: the clips queued behind a failed one fail the same way.
                (Err(error), Some(element)) if !shared.failed.swap(true, Ordering::SeqCst) => {
                    error.post(&element, job.clip.index, &cfg.engine.name);
                }
                _ => {}
            }
            lock(&shared.queue).done();
        }
        let mut q = lock(&shared.queue);
        q.busy = false;
        shared.cond.notify_all();
    }
}

/// Smooth, rank, record and post one clip's scores (skipped when a flush made them stale).
pub(super) fn publish(
    shared: &Shared,
    cfg: &WorkerConfig,
    job: &Job,
    scores: Vec<f64>,
    element: &super::NonLocalClassify,
) {
    let (result, closed) = {
        // Held until the result is queued for the meta, so a flush either comes before (and the
        // result is dropped) or after (and clears it).
        let q = lock(&shared.queue);
        if q.generation != job.generation {
            return;
        }
        let mut post = lock(&shared.post);
        let object = job.object.map(|o| o.id);
        let post = post.results(object);
        post.summary.add(
            &scores,
            job.clip.timestamp,
            job.clip.duration,
            (job.stream_time, job.running_time),
        );
        let smoothed = post.smoother.push(scores);
        let (labels, ranked) = ClipResult::ranked(&smoothed, &cfg.labels, cfg.top_k);
        let closed = post.segments.push(segments::ClipScores {
            clip_index: job.clip.index,
            start: segments::Times {
                pts: job.clip.timestamp,
                stream: job.stream_time,
                running: job.running_time,
            },
            duration: job.clip.duration,
            scores: &smoothed,
        });
        let result = ClipResult {
            timestamp: job.clip.timestamp,
            stream_time: job.stream_time,
            running_time: job.running_time,
            duration: job.clip.duration,
            clip_index: job.clip.index,
            labels,
            scores: ranked,
            dropped: shared.dropped.load(Ordering::SeqCst),
            latency: u64::try_from(job.arrived.elapsed().as_nanos()).unwrap_or(u64::MAX),
            object: job.object,
        };
        // Queue the meta before posting: whoever reacts to the message and pushes a buffer must
        // find the result attached to it.
        lock(&shared.ready).push(result.clone());
        drop(q);
        (result, closed)
    };
    gst::debug!(
        CAT,
        obj = element,
        "Clip {}: {:?} {:?} in {} ms",
        result.clip_index,
        result.label(),
        result.score(),
        result.latency / 1_000_000
    );
    // Read per result: post-messages may change in PLAYING.
    if element.imp().posts_messages() {
        let msg = gst::message::Element::builder(result.to_structure(MESSAGE_NAME))
            .src(element)
            .build();
        let _ = element.post_message(msg);
        if let Some(segment) = closed {
            let structure = segment_structure(&segment, result.object.map(|o| o.id));
            let msg = gst::message::Element::builder(structure)
                .src(element)
                .build();
            let _ = element.post_message(msg);
        }
    }
}
