//! GStreamer glue of `nonlocalclassify`: properties, caps, events and the streaming thread.
//!
//! The streaming thread only converts and scales the frames that clips sample (see
//! [`crate::sampling`]) and hands finished clips to a worker thread through a bounded queue
//! (`max-pending`). The worker (`super::worker`) packs tensors, runs the [`SharedEngine`], and
//! posts results as element messages; the streaming thread attaches finished results as
//! `NonLocalClassifyMeta` to the next buffer it pushes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use gst::glib;
use gst::prelude::MulDiv;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::cuda_memory::{self, context_card, context_device, CUDA_CONTEXT_TYPE};
use super::dump::InputDump;
use super::frames::{frame_view, map_readable, pixel_format};
use super::load::{model_info, Loaded};
use super::objects::ObjectsState;
use super::settings::Settings;
use super::worker::{lock, worker_loop, Job, Post, Queue, Shared, WorkerConfig};
use super::{Crops, Regions, Resample, CAT};
#[cfg(feature = "analytics")]
use crate::analytics::{self, Carrier};
use crate::meta::NonLocalClassifyMeta;
use crate::objects::ObjectsConfig;
use crate::preprocess::{CentreSpan, ScaledFrame, Scaler};
use crate::results::{ClipResult, ObjectRef, MESSAGE_NAME};
use crate::sampling::{Clip, ClipSampler, FrameTiming, Sampling};

/// Streaming state, from READY→PAUSED to PAUSED→READY.
pub(super) struct State {
    pub(super) info: Option<gst_video::VideoInfo>,
    /// The negotiated caps carry `memory:CUDAMemory` (see [`cuda_memory`]).
    pub(super) cuda_memory: bool,
    pub(super) sampler: ClipSampler<ScaledFrame>,
    pub(super) scaler: Scaler,
    pub(super) scale_size: u32,
    /// With the centre crop alone, only that square of each frame is scaled (`scale_centre`).
    pub(super) centre_crop: Option<u32>,
    /// resample=engine: frames are kept as the source pixels of their centre crop
    /// (`centre_span`), for the engine to resample; the stream's span geometry once known.
    pub(super) engine_resample: bool,
    pub(super) span: Option<CentreSpan>,
    pub(super) live: Option<bool>,
    pub(super) max_pending: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) worker: Option<JoinHandle<()>>,
    /// Which results the analytics metadata of each buffer carries.
    #[cfg(feature = "analytics")]
    pub(super) carrier: Carrier,
    /// regions=objects: the stream's objects.
    pub(super) objects: Option<ObjectsState>,
}

#[derive(Default)]
pub struct NonLocalClassify {
    pub(super) settings: Mutex<Settings>,
    loaded: Mutex<Option<Loaded>>,
    state: Mutex<Option<State>>,
}

impl NonLocalClassify {
    /// Whether results are posted as element messages (read per result: `post-messages` may
    /// change in PLAYING).
    pub(super) fn posts_messages(&self) -> bool {
        lock(&self.settings).output.post_messages
    }

    /// Frame index and clip reset (stream start, flush, caps change).
    fn reset_stream(state: &mut State) {
        state.sampler.reset();
        state.live = None;
        if let Some(objects) = state.objects.as_mut() {
            objects.reset();
        }
    }

    /// The card of the CUDA context upstream shares (a `gst.cuda.context` context query), if any.
    fn cuda_card(&self) -> Option<u32> {
        let mut q = gst::query::Context::new(CUDA_CONTEXT_TYPE);
        if !self.obj().sink_pad().peer_query(&mut q) {
            return None;
        }
        q.context().and_then(context_device)
    }

    fn query_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        self.obj().sink_pad().peer_query(&mut q) && q.result().0
    }

    /// A clip's job; `span`: the geometry of its frames when they are source spans the engine
    /// resamples (resample=engine).
    pub(super) fn make_job(
        &self,
        clip: Clip<ScaledFrame>,
        span: Option<CentreSpan>,
        object: Option<ObjectRef>,
        shared: &Shared,
    ) -> Job {
        let segment = self.obj().segment();
        let (stream_time, running_time) =
            match (clip.timestamp, segment.downcast_ref::<gst::ClockTime>()) {
                (Some(ts), Some(seg)) => {
                    let ts = gst::ClockTime::from_nseconds(ts);
                    (
                        seg.to_stream_time(ts).map(|t| t.nseconds()),
                        seg.to_running_time(ts).map(|t| t.nseconds()),
                    )
                }
                _ => (None, None),
            };
        Job {
            clip,
            span,
            generation: lock(&shared.queue).generation,
            stream_time,
            running_time,
            arrived: Instant::now(),
            object,
            last: false,
        }
    }
}

impl NonLocalClassify {
    /// The negotiated video info and the buffer's timing; learns whether the stream is live
    /// from its first buffer.
    pub(super) fn frame_timing(
        &self,
        state: &mut State,
        buf: &gst::BufferRef,
    ) -> Result<(gst_video::VideoInfo, FrameTiming), gst::FlowError> {
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        if state.live.is_none() {
            let live = self.query_live();
            state.live = Some(live);
            state.shared.live.store(live, Ordering::SeqCst);
        }
        let fps = info.fps();
        let duration = buf.duration().map(|d| d.nseconds()).or_else(|| {
            (fps.numer() > 0 && fps.denom() > 0).then(|| {
                gst::ClockTime::SECOND
                    .nseconds()
                    .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                    .unwrap_or(0)
            })
        });
        let timing = FrameTiming {
            pts: buf.pts().map(|t| t.nseconds()),
            duration,
        };
        Ok((info, timing))
    }
}

// ---------------------------------------------------------------------------------------------
// GObject / GStreamer boilerplate
// ---------------------------------------------------------------------------------------------

#[glib::object_subclass]
impl ObjectSubclass for NonLocalClassify {
    const NAME: &'static str = "GstNonLocalClassify";
    type Type = super::NonLocalClassify;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for NonLocalClassify {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut specs: Vec<glib::ParamSpec> = Settings::properties()
                .iter()
                .map(|p| p.spec.clone())
                .collect();
            specs.push(
                glib::ParamSpecBoxed::builder::<gst::Structure>("model-info")
                    .nick("Model info")
                    .blurb("The clip settings in use, from READY on: clip-length, frame-stride, clip-stride, clip-fps (0/1 when sampling by frame count), crop-size, scale-size, classes")
                    .read_only()
                    .build(),
            );
            specs
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match Settings::property(pspec.name()) {
            Some(p) => p.set(&mut lock(&self.settings), value),
            None => gst::warning!(CAT, imp = self, "Unknown property {}", pspec.name()),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "model-info" {
            return lock(&self.loaded)
                .as_ref()
                .map(|l| model_info(&l.config))
                .to_value();
        }
        match Settings::property(pspec.name()) {
            Some(p) => p.get(&mut lock(&self.settings)),
            None => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for NonLocalClassify {}

impl ElementImpl for NonLocalClassify {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Non-local network action classifier",
                "Filter/Analyzer/Video",
                "Classifies clips of video into Kinetics-400 actions with a Non-local neural network (ONNX Runtime, CUDA or CPU); video passes through, results are posted as messages and attached as NonLocalClassifyMeta",
                "nonlocalclassify developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // CUDA memory only where GStreamer's CUDA library is (docs/design.md, "Video in CUDA memory").
            let caps = cuda_memory::template_caps(cuda_memory::cuda_library_loadable());
            ["src", "sink"]
                .into_iter()
                .filter_map(|name| {
                    let direction = if name == "src" {
                        gst::PadDirection::Src
                    } else {
                        gst::PadDirection::Sink
                    };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            let settings = lock(&self.settings).clone();
            match self.load(&settings) {
                Ok(loaded) => *lock(&self.loaded) = Some(loaded),
                Err(msg) => {
                    self.post_error_message(msg);
                    return Err(gst::StateChangeError);
                }
            }
        }
        let res = self.parent_change_state(transition);
        if transition == gst::StateChange::ReadyToNull {
            *lock(&self.loaded) = None;
        }
        res
    }
}

impl BaseTransformImpl for NonLocalClassify {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let loaded = lock(&self.loaded);
        let Some(loaded) = loaded.as_ref() else {
            return Err(gst::error_msg!(
                gst::CoreError::StateChange,
                ("No model loaded: the element must go through NULL→READY with a 'model' set")
            ));
        };
        let config = &loaded.config;
        let objects_mode = settings.objects.regions == Regions::Objects;
        if objects_mode {
            check_objects_mode(&settings)?;
        }
        let engine_resample = settings.sampling.resample == Resample::Engine;
        if engine_resample && settings.sampling.crops != Crops::Center {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("resample=engine takes the centre crop only, not crops=three: set crops=center or resample=element")
            ));
        }
        if engine_resample && !loaded.engine.resamples() {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("resample=engine needs a model with uint8 input run in this process ({} on {} is not): set resample=element", loaded.engine.name, loaded.engine.describe())
            ));
        }
        let dump = match settings.engine.dump_inputs.as_deref() {
            None => None,
            Some(_) if engine_resample => {
                return Err(gst::error_msg!(
                    gst::LibraryError::Settings,
                    ("dump-inputs writes the model input the element packs, which resample=engine leaves to the engine: set resample=element, or unset dump-inputs")
                ))
            }
            Some(dir) => Some(InputDump::create(Path::new(dir)).map_err(|reason| {
                gst::error_msg!(
                    gst::ResourceError::OpenWrite,
                    ("Cannot create the dump-inputs directory {}: set dump-inputs to a directory that can be written", reason)
                )
            })?),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
            post: Mutex::new(Post::new(
                settings.output.smoothing,
                settings.output.hysteresis(),
                Arc::clone(&loaded.labels),
            )),
            ready: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            objects_dropped: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            live: AtomicBool::new(false),
            leaky: settings.engine.leaky,
        });
        let crops = settings.sampling.crop_positions();
        let worker_cfg = WorkerConfig {
            engine: Arc::clone(&loaded.engine),
            config: config.clone(),
            labels: Arc::clone(&loaded.labels),
            batch_clips: (settings.engine.batching().max_batch / crops.len().max(1)).max(1),
            crops,
            top_k: settings.output.top_k(),
            dump,
        };
        let worker_shared = Arc::clone(&shared);
        let element = self.obj().downgrade();
        let worker = std::thread::Builder::new()
            .name("nonlocal-infer".into())
            .spawn(move || worker_loop(worker_shared, worker_cfg, element))
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Failed,
                    ("Cannot start the inference thread: {}", e)
                )
            })?;
        let sampling = Sampling {
            clip_length: config.clip_length,
            frame_stride: config.frame_stride,
            clip_stride: config.clip_stride,
        };
        *lock(&self.state) = Some(State {
            info: None,
            cuda_memory: false,
            sampler: ClipSampler::with_rate(sampling, config.clip_fps),
            scaler: Scaler::new(),
            scale_size: config.scale_size,
            centre_crop: (settings.sampling.crops == Crops::Center).then_some(config.crop_size),
            engine_resample,
            span: None,
            live: None,
            max_pending: settings.engine.max_pending.max(1) as usize,
            shared,
            worker: Some(worker),
            #[cfg(feature = "analytics")]
            carrier: Carrier::default(),
            objects: objects_mode.then(|| {
                ObjectsState::new(
                    ObjectsConfig {
                        tracker: settings.objects.tracker(),
                        sampling,
                        rate: config.clip_fps,
                    },
                    settings.objects.filter(),
                    config.crop_size,
                )
            }),
        });
        gst::debug!(CAT, imp = self, "Started on {}", loaded.engine.describe());
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = lock(&self.state).take();
        if let Some(mut state) = state {
            {
                let mut q = lock(&state.shared.queue);
                q.stop = true;
                q.jobs.clear();
                state.shared.cond.notify_all();
            }
            if let Some(worker) = state.worker.take() {
                if worker.join().is_err() {
                    gst::warning!(CAT, imp = self, "Inference thread panicked");
                }
            }
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Invalid caps {}", incaps))?;
        if pixel_format(info.format()).is_none() {
            return Err(gst::loggable_error!(
                CAT,
                "Unsupported format in {}",
                incaps
            ));
        }
        let cuda = cuda_memory::is_cuda_memory(incaps);
        if cuda {
            let device_id = lock(&self.settings).engine.device_id;
            let card = context_card(device_id, self.cuda_card());
            gst::info!(CAT, imp = self, "Video in CUDA memory: {}", card.describe());
        }
        let mut guard = lock(&self.state);
        let mut ending = None;
        if let Some(state) = guard.as_mut() {
            state.cuda_memory = cuda;
            if state.info.as_ref().is_some_and(|old| *old != info) {
                gst::debug!(CAT, imp = self, "Caps changed: restarting clips");
                // Objects' clips so far are finished as at a track's end.
                ending = state.objects.as_mut().map(|o| {
                    let (clips, ended) = o.finish();
                    (clips, ended, Arc::clone(&state.shared), state.max_pending)
                });
                Self::reset_stream(state);
            }
            state.info = Some(info);
        }
        drop(guard);
        if let Some((clips, ended, shared, max)) = ending {
            // A flush interrupting this drops them, as it drops every clip.
            if self.hand_over(&shared, clips, true, false, max).is_ok() {
                for id in ended {
                    let _ = shared.end_object(id, max);
                }
            }
        }
        self.parent_set_caps(incaps, outcaps)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        let shared = lock(&self.state).as_ref().map(|s| Arc::clone(&s.shared));
        if let Some(shared) = shared {
            match event.view() {
                EventView::FlushStart(_) => {
                    let mut q = lock(&shared.queue);
                    q.flushing = true;
                    q.generation += 1;
                    q.jobs.clear();
                    lock(&shared.ready).clear();
                    shared.cond.notify_all();
                }
                EventView::FlushStop(_) => {
                    lock(&shared.queue).flushing = false;
                    if let Some(state) = lock(&self.state).as_mut() {
                        Self::reset_stream(state);
                        #[cfg(feature = "analytics")]
                        state.carrier.reset();
                    }
                    shared.reset_results();
                }
                EventView::StreamStart(_) => {
                    if let Some(state) = lock(&self.state).as_mut() {
                        Self::reset_stream(state);
                        #[cfg(feature = "analytics")]
                        state.carrier.reset();
                    }
                    shared.reset_results();
                }
                EventView::Eos(_) if !self.finish_stream(&shared) => return false,
                _ => {}
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let shared = Arc::clone(&state.shared);
        if shared.failed.load(Ordering::SeqCst) {
            return Err(gst::FlowError::Error);
        }
        // Results finished since the last buffer ride on this one.
        let fresh: Vec<ClipResult> = lock(&shared.ready).drain(..).collect();
        for result in &fresh {
            if let Err(e) = NonLocalClassifyMeta::add(buf, result) {
                gst::warning!(CAT, imp = self, "Cannot attach meta: {}", e);
            }
        }
        if state.objects.is_some() {
            return self.transform_objects(guard, buf, &fresh);
        }
        #[cfg(feature = "analytics")]
        {
            // As analytics metadata: on this buffer only, or on every buffer until the next.
            let mode = lock(&self.settings).output.analytics_meta;
            let (width, height) = state
                .info
                .as_ref()
                .map_or((0, 0), |i| (i.width(), i.height()));
            for result in state.carrier.carry(mode, &fresh) {
                if let Err(e) = analytics::add_result(buf, result, width, height) {
                    gst::warning!(CAT, imp = self, "Cannot attach analytics meta: {}", e);
                }
            }
        }

        let (info, timing) = self.frame_timing(state, buf)?;
        let frame = if state.sampler.wants(timing) {
            // Only sampled frames are mapped (CUDA memory: copied to the host here, and only here).
            let mapped = map_readable(buf, &info, state.cuda_memory).map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Decode,
                    ("Cannot read frame {}: {}", state.sampler.next_index(), e)
                );
                gst::FlowError::Error
            })?;
            let view = frame_view(&mapped).ok_or_else(|| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("Unsupported frame layout ({:?})", info.format())
                );
                gst::FlowError::NotNegotiated
            })?;
            let scaled = match state.centre_crop {
                Some(crop) if state.engine_resample => state
                    .scaler
                    .centre_span(&view, state.scale_size, crop)
                    .map(|(span, geometry)| {
                        state.span = Some(geometry);
                        span
                    }),
                Some(crop) => state.scaler.scale_centre(&view, state.scale_size, crop),
                None => state.scaler.scale(&view, state.scale_size),
            };
            let scaled = scaled.map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "Cannot preprocess frame {}: {}",
                        state.sampler.next_index(),
                        e
                    )
                );
                gst::FlowError::Error
            })?;
            Some(scaled)
        } else {
            None
        };
        let clips = state.sampler.push(frame, timing);
        let live = state.live.unwrap_or(false);
        let max = state.max_pending;
        let span = state.span;
        drop(guard);
        for clip in clips {
            let job = self.make_job(clip, span, None, &shared);
            shared.enqueue(job, live, max)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl NonLocalClassify {
    /// EOS: complete or drop the clip in progress, wait for every result, post the summary.
    /// Returns false when a flush interrupted it.
    fn finish_stream(&self, shared: &Arc<Shared>) -> bool {
        let (clips, frames, sampling, span, objects) = match lock(&self.state).as_mut() {
            Some(state) => {
                // Model frames: decoded frames, or sampling instants when sampling by time.
                let (frames, sampling) = (state.sampler.covered(), state.sampler.sampling());
                let objects = state.objects.as_mut().map(ObjectsState::finish);
                (
                    state.sampler.finish(),
                    frames,
                    sampling,
                    state.span,
                    objects,
                )
            }
            None => return true,
        };
        let max = lock(&self.state).as_ref().map_or(1, |s| s.max_pending);
        for clip in clips {
            let job = self.make_job(clip, span, None, shared);
            // Never drop at EOS, live or not: every pending result is posted before EOS.
            if shared.enqueue(job, false, max).is_err() {
                return false;
            }
        }
        // Each object's last clips, then its end: its last segment and summary.
        let objects_mode = objects.is_some();
        if let Some((clips, ended)) = objects {
            if self.hand_over(shared, clips, true, false, max).is_err()
                || ended
                    .into_iter()
                    .any(|id| shared.end_object(id, max).is_err())
            {
                return false;
            }
        }
        shared.drain();
        if lock(&shared.queue).flushing {
            return false;
        }
        // Results no buffer can carry any more travel downstream as serialized events, before EOS.
        let late: Vec<ClipResult> = lock(&shared.ready).drain(..).collect();
        for result in late {
            let event = gst::event::CustomDownstream::new(result.to_structure(MESSAGE_NAME));
            if !self.obj().src_pad().push_event(event) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "Downstream refused the result event of clip {}",
                    result.clip_index
                );
            }
        }
        if frames > 0 && frames < sampling.min_frames() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Failed,
                (
                    "The stream ended after {} frames, too short for one clip: a clip of {} frames every {} needs at least {}; lower clip-length or frame-stride, or classify a longer video",
                    frames,
                    sampling.clip_length,
                    sampling.frame_stride.max(1),
                    sampling.min_frames()
                )
            );
        }
        let settings = lock(&self.settings).clone();
        if settings.output.post_messages && !shared.failed.load(Ordering::SeqCst) && !objects_mode {
            let labels = lock(&self.loaded)
                .as_ref()
                .map(|l| Arc::clone(&l.labels))
                .unwrap_or_default();
            let (last, summary) = lock(&shared.post).frame.finish(
                &labels,
                settings.output.top_k(),
                shared.dropped.load(Ordering::SeqCst),
                None,
            );
            for structure in last.into_iter().chain([summary]) {
                let _ = self.obj().post_message(
                    gst::message::Element::builder(structure)
                        .src(&*self.obj())
                        .build(),
                );
            }
        }
        true
    }
}

/// Settings objects mode cannot run with, as the error that says what to change.
fn check_objects_mode(settings: &Settings) -> Result<(), gst::ErrorMessage> {
    let refuse = |why: &str| Err(gst::error_msg!(gst::LibraryError::Settings, ("{}", why)));
    if !cfg!(feature = "analytics") {
        return refuse("regions=objects reads the boxes of upstream detectors from GstAnalytics metadata, which this build of the plugin lacks: build it against GStreamer 1.24 or newer with the cargo feature analytics, or set regions=frame");
    }
    if settings.sampling.crops != Crops::Center {
        return refuse("regions=objects classifies one square crop around each object, not crops=three: set crops=center");
    }
    if settings.sampling.resample != Resample::Element {
        return refuse("regions=objects crops each object on the streaming thread, not with resample=engine: set resample=element");
    }
    Ok(())
}
