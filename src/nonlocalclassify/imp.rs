//! GStreamer glue of `nonlocalclassify`: properties, caps, events and the streaming thread.
//!
//! The streaming thread only converts and scales the frames that clips sample (see
//! [`crate::sampling`]) and hands finished clips to a worker thread through a bounded queue
//! (`max-pending`). The worker (`super::worker`) packs tensors, runs the [`SharedEngine`], and
//! posts results as element messages; the streaming thread attaches finished results as
//! `NonLocalClassifyMeta` to the next buffer it pushes.

use std::path::PathBuf;
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
use gst_video::prelude::*;

use super::worker::{lock, worker_loop, Job, Post, Queue, Shared, WorkerConfig};
use super::{Crops, ExecutionProvider, Resample};
#[cfg(feature = "analytics")]
use crate::analytics::{self, AnalyticsMeta, Carrier};
use crate::config::{ClipConfig, Overrides};
use crate::engine::remote::{RemoteSettings, Secret};
use crate::engine::{Batching, LocalBackend, ProviderChoice, SharedEngine};
use crate::labels;
use crate::meta::NonLocalClassifyMeta;
use crate::preprocess::{
    CentreSpan, CropPosition, FrameView, PixelFormat, ScaledFrame, Scaler, YuvMatrix, YuvRange,
};
use crate::results::{ClipResult, Smoother, Summary, MESSAGE_NAME};
use crate::sampling::{Clip, ClipSampler, FrameTiming, Sampling};
use crate::segments::{self, Hysteresis, Segmenter};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "nonlocalclassify",
        gst::DebugColorFlags::empty(),
        Some("Non-local network action classifier"),
    )
});

const DEFAULT_TOP_K: u32 = 5;
const DEFAULT_SMOOTHING: u32 = 1;
const DEFAULT_DEVICE_ID: i32 = 0;
const DEFAULT_MAX_PENDING: u32 = 2;
const DEFAULT_POST_MESSAGES: bool = true;
const DEFAULT_MAX_BATCH: u32 = 8;
const DEFAULT_BATCH_TIMEOUT_MS: u32 = 0;
// Property ranges: what a model can take and a user can mean (docs/design.md, "Properties").
const MAX_CLIP_LENGTH: u32 = 1024;
const MAX_FRAME_STRIDE: u32 = 64;
const MAX_CLIP_STRIDE: u32 = 100_000_000;
const MAX_TOP_K: u32 = 1000;
const MAX_SMOOTHING: u32 = 1000;
const MAX_DEVICE_ID: i32 = 63;
const MAX_PENDING: u32 = 1024;
const MAX_BATCH: u32 = 256;
const MAX_BATCH_TIMEOUT_MS: u32 = 10_000;
const MAX_GPU_MEMORY_MIB: u32 = 1 << 20;
const DEFAULT_SEGMENT_HYSTERESIS: u32 = 2;
const DEFAULT_SEGMENT_MARGIN: f64 = 0.0;
const MAX_SEGMENT_HYSTERESIS: u32 = 1000;
const DEFAULT_SERVER_TIMEOUT_MS: u32 = 10_000;
const MAX_SERVER_TIMEOUT_MS: u32 = 3_600_000;
const DEFAULT_SERVER_REQUESTS: u32 = 4;
const MAX_SERVER_REQUESTS: u32 = 64;

#[derive(Debug, Clone)]
struct Settings {
    model: Option<String>,
    labels: Option<String>,
    clip_length: u32,
    frame_stride: u32,
    clip_stride: u32,
    top_k: u32,
    crops: Crops,
    resample: Resample,
    smoothing: u32,
    execution_provider: ExecutionProvider,
    device_id: i32,
    max_pending: u32,
    post_messages: bool,
    max_batch: u32,
    batch_timeout_ms: u32,
    gpu_memory_limit: u32,
    /// `clip-fps` as num/den: 0 = the model's `clip.fps`, negative = by frame count.
    clip_fps: (i32, i32),
    segment_hysteresis: u32,
    segment_margin: f64,
    #[cfg(feature = "analytics")]
    analytics_meta: AnalyticsMeta,
    /// The remote backend (docs/design.md, "Remote inference"): used when `server` is set.
    server: Option<String>,
    server_model: Option<String>,
    server_timeout_ms: u32,
    server_requests: u32,
    server_ca: Option<String>,
    server_cert: Option<String>,
    server_key: Option<String>,
    /// Prints as `<redacted>`.
    server_token: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            labels: None,
            clip_length: 0,
            frame_stride: 0,
            clip_stride: 0,
            top_k: DEFAULT_TOP_K,
            crops: Crops::Center,
            resample: Resample::Element,
            smoothing: DEFAULT_SMOOTHING,
            execution_provider: ExecutionProvider::Auto,
            device_id: DEFAULT_DEVICE_ID,
            max_pending: DEFAULT_MAX_PENDING,
            post_messages: DEFAULT_POST_MESSAGES,
            max_batch: DEFAULT_MAX_BATCH,
            batch_timeout_ms: DEFAULT_BATCH_TIMEOUT_MS,
            gpu_memory_limit: 0,
            clip_fps: (0, 1),
            segment_hysteresis: DEFAULT_SEGMENT_HYSTERESIS,
            segment_margin: DEFAULT_SEGMENT_MARGIN,
            #[cfg(feature = "analytics")]
            analytics_meta: AnalyticsMeta::default(),
            server: None,
            server_model: None,
            server_timeout_ms: DEFAULT_SERVER_TIMEOUT_MS,
            server_requests: DEFAULT_SERVER_REQUESTS,
            server_ca: None,
            server_cert: None,
            server_key: None,
            server_token: None,
        }
    }
}

impl Settings {
    /// The remote backend's settings when `server` is set (the model name on the server:
    /// `server-model`, else the stem of the `model` file, as `export_model.py --triton-repo`
    /// names its entry).
    fn remote(&self) -> Option<Result<RemoteSettings, String>> {
        let servers = self.server.as_deref().filter(|s| !s.trim().is_empty())?;
        let name = self
            .server_model
            .clone()
            .filter(|m| !m.trim().is_empty())
            .or_else(|| {
                let model = self.model.as_deref()?;
                let stem = std::path::Path::new(model).file_stem()?;
                Some(stem.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let path = |p: &Option<String>| p.as_ref().filter(|p| !p.is_empty()).map(PathBuf::from);
        Some(
            RemoteSettings::new(
                servers,
                &name,
                std::time::Duration::from_millis(u64::from(self.server_timeout_ms.max(1))),
                self.server_requests.max(1) as usize,
                path(&self.server_ca),
                path(&self.server_cert),
                path(&self.server_key),
                self.server_token.as_ref().map(Secret::expose),
            )
            .map_err(|e| e.to_string()),
        )
    }
}

/// The opened model, from NULL→READY to READY→NULL.
struct Loaded {
    engine: Arc<SharedEngine>,
    config: ClipConfig,
    labels: Arc<Vec<String>>,
}

/// Streaming state, from READY→PAUSED to PAUSED→READY.
struct State {
    info: Option<gst_video::VideoInfo>,
    sampler: ClipSampler<ScaledFrame>,
    scaler: Scaler,
    scale_size: u32,
    /// With the centre crop alone, only that square of each frame is scaled (`scale_centre`).
    centre_crop: Option<u32>,
    /// resample=engine: frames are kept as the source pixels of their centre crop
    /// (`centre_span`), for the engine to resample; the stream's span geometry once known.
    engine_resample: bool,
    span: Option<CentreSpan>,
    live: Option<bool>,
    max_pending: usize,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    /// Which results the analytics metadata of each buffer carries.
    #[cfg(feature = "analytics")]
    carrier: Carrier,
}

#[derive(Default)]
pub struct NonLocalClassify {
    settings: Mutex<Settings>,
    loaded: Mutex<Option<Loaded>>,
    state: Mutex<Option<State>>,
}

fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match format {
        V::Rgb => PixelFormat::Rgb,
        V::Bgr => PixelFormat::Bgr,
        V::Rgbx => PixelFormat::Rgbx,
        V::Bgrx => PixelFormat::Bgrx,
        V::Xrgb => PixelFormat::Xrgb,
        V::Xbgr => PixelFormat::Xbgr,
        V::Rgba => PixelFormat::Rgba,
        V::Bgra => PixelFormat::Bgra,
        V::Argb => PixelFormat::Argb,
        V::Abgr => PixelFormat::Abgr,
        V::I420 => PixelFormat::I420,
        V::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

const FORMATS: &[gst_video::VideoFormat] = &[
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
];

impl NonLocalClassify {
    /// Whether results are posted as element messages (read per result: `post-messages` may
    /// change in PLAYING).
    pub(super) fn posts_messages(&self) -> bool {
        lock(&self.settings).post_messages
    }

    /// NULL→READY: open the model and resolve the clip configuration.
    fn load(&self) -> Result<Loaded, gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let remote = settings.remote();
        if let Some(Err(reason)) = &remote {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ("{}", reason)
            ));
        }
        let Some(model) = settings.model.clone().or_else(|| {
            remote
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|r| r.model.clone())
        }) else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No model set: set the 'model' property to the path of an .onnx file, or 'server' and 'server-model' to a model on a KServe v2 inference server")
            ));
        };
        let choice = match settings.execution_provider {
            ExecutionProvider::Auto => ProviderChoice::Auto,
            ExecutionProvider::Cuda => ProviderChoice::Cuda,
            ExecutionProvider::Cpu => ProviderChoice::Cpu,
        };
        let opened = match remote {
            None => SharedEngine::local(
                &PathBuf::from(&model),
                choice,
                settings.device_id,
                settings.gpu_memory_limit,
            ),
            Some(Err(reason)) => Err(crate::engine::EngineError::Inference(reason)),
            // Blocks up to server-timeout (the state change, never the streaming thread).
            Some(Ok(remote)) => SharedEngine::remote(remote),
        };
        let engine = opened.map_err(|e| {
            use crate::engine::EngineError as E;
            let kind = match e {
                E::ModelUnreadable { .. } => gst::ResourceError::OpenRead,
                E::GpuOutOfMemory { .. } => gst::ResourceError::NoSpaceLeft,
                E::RuntimeMissing { .. } | E::CudaUnavailable { .. } => gst::ResourceError::Failed,
                E::Remote(_) => gst::ResourceError::OpenReadWrite,
                _ => gst::ResourceError::Settings,
            };
            gst::error_msg!(kind, ("{}", e))
        })?;
        let model = engine.name.clone();
        let config = ClipConfig::resolve(
            &engine.metadata,
            &engine.io,
            Overrides {
                clip_length: settings.clip_length,
                frame_stride: settings.frame_stride,
                clip_stride: settings.clip_stride,
            },
        )
        .and_then(|c| c.with_clip_fps(settings.clip_fps.0, settings.clip_fps.1))
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("model '{}': {}", model, e)))?;
        engine.register(Batching {
            max_batch: settings.max_batch.max(1) as usize,
            timeout: std::time::Duration::from_millis(u64::from(settings.batch_timeout_ms)),
        });
        let (labels, source) = labels::resolve(
            settings.labels.as_deref().map(std::path::Path::new),
            engine.metadata.labels.as_deref(),
            config.num_classes,
        )
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))?;

        let local = engine.backend::<LocalBackend>();
        if let Some(reason) = local.and_then(|l| l.fallback_reason.as_ref()) {
            // Nothing is wrong: auto means "CUDA if there is one". Asking for cuda is an error.
            gst::info!(
                CAT,
                imp = self,
                "CUDA is not available, running on CPU (execution-provider=auto could not create the CUDA execution provider: {})",
                reason
            );
        }
        match engine.thread_priority() {
            Ok(Some(nice)) => {
                gst::info!(CAT, imp = self, "Inference threads at niceness {}", nice)
            }
            Ok(None) => {}
            Err(reason) => gst::warning!(
                CAT,
                imp = self,
                "Inference threads keep the process's priority: {}",
                reason
            ),
        }
        if engine.metadata.random_weights() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                (
                    "Model '{}' has random weights (model.weights=random): its labels are meaningless",
                    model
                )
            );
        }
        gst::info!(
            CAT,
            imp = self,
            "Model {} on {}: clips of {} frames every {} (next clip after {}, {}), {}² crops from short side {}, {:?} {:?}, {} classes, labels from {:?}",
            model,
            engine.describe(),
            config.clip_length,
            config.frame_stride,
            config.clip_stride,
            config
                .clip_fps
                .map_or("by frame count".to_string(), |r| format!("by time at {r} fps")),
            config.crop_size,
            config.scale_size,
            config.layout,
            config.input_type,
            config.num_classes,
            source
        );
        // Under CUDA, run every batch size once now rather than make the first clips wait.
        engine.warm_up(config.input_shape(1)).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ("model '{}' failed its first run: {}", model, e)
            )
        })?;
        if let Some(reason) = local.and_then(LocalBackend::unfused_reason) {
            gst::info!(
                CAT,
                imp = self,
                "cuDNN has no fused convolution for a layer of {}: running without fusion ({})",
                model,
                reason
            );
        }
        Ok(Loaded {
            engine,
            config,
            labels: Arc::new(labels),
        })
    }

    /// Frame index and clip reset (stream start, flush, caps change).
    fn reset_stream(state: &mut State) {
        state.sampler.reset();
        state.live = None;
    }

    /// Forget every result of the current stream (flush, stream start).
    fn reset_results(shared: &Shared) {
        lock(&shared.ready).clear();
        let mut post = lock(&shared.post);
        post.smoother.reset();
        post.summary.reset();
        post.segments.reset();
        shared.dropped.store(0, Ordering::SeqCst);
    }

    fn query_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        self.obj().sink_pad().peer_query(&mut q) && q.result().0
    }

    /// Hand a clip to the worker: live streams drop it when `max-pending` clips wait, others wait.
    fn enqueue(shared: &Shared, job: Job, live: bool, max: usize) -> Result<(), gst::FlowError> {
        let mut q = lock(&shared.queue);
        if live && q.jobs.len() >= max {
            let dropped = shared.dropped.fetch_add(1, Ordering::SeqCst) + 1;
            gst::debug!(CAT, "Dropped clip {} ({} so far)", job.clip.index, dropped);
            return Ok(());
        }
        while q.jobs.len() >= max && !q.flushing && !q.stop {
            q = shared.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.flushing || q.stop {
            return Err(gst::FlowError::Flushing);
        }
        q.jobs.push_back(job);
        shared.cond.notify_all();
        Ok(())
    }

    /// Wait until the worker has finished every queued clip (or a flush/stop interrupts).
    fn drain(shared: &Shared) {
        let mut q = lock(&shared.queue);
        while (!q.jobs.is_empty() || q.busy) && !q.flushing && !q.stop {
            q = shared.cond.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A clip's job; `span`: the geometry of its frames when they are source spans the engine
    /// resamples (resample=engine).
    fn make_job(&self, clip: Clip<ScaledFrame>, span: Option<CentreSpan>, shared: &Shared) -> Job {
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
        }
    }
}

/// Convert a mapped video frame into the preprocessing module's view.
fn frame_view<'a>(
    frame: &'a gst_video::VideoFrameRef<&'a gst::BufferRef>,
) -> Option<FrameView<'a>> {
    let info = frame.info();
    let format = pixel_format(info.format())?;
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for i in 0..(frame.n_planes() as usize).min(3) {
        planes[i] = frame.plane_data(i as u32).ok()?;
        strides[i] = usize::try_from(frame.plane_stride()[i]).ok()?;
    }
    let colorimetry = info.colorimetry();
    Some(FrameView {
        format,
        width: frame.width(),
        height: frame.height(),
        planes,
        strides,
        matrix: if colorimetry.matrix() == gst_video::VideoColorMatrix::Bt709 {
            YuvMatrix::Bt709
        } else {
            YuvMatrix::Bt601
        },
        range: if colorimetry.range() == gst_video::VideoColorRange::Range0_255 {
            YuvRange::Full
        } else {
            YuvRange::Limited
        },
    })
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
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Path of the .onnx model file (read when the element goes from NULL to READY)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("labels")
                    .nick("Labels")
                    .blurb("Path of a label file, one label per line (default: the model's metadata, else Kinetics-400 for 400 outputs, else class-N)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("clip-length")
                    .nick("Clip length")
                    .blurb("Frames per clip, 1 to 1024 (0 = from the model)")
                    .maximum(MAX_CLIP_LENGTH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("frame-stride")
                    .nick("Frame stride")
                    .blurb("Take every Nth decoded frame inside a clip, 1 to 64 (0 = from the model)")
                    .maximum(MAX_FRAME_STRIDE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("clip-stride")
                    .nick("Clip stride")
                    .blurb("Decoded frames between the starts of consecutive clips, 1 to 100000000 (0 = clip-length × frame-stride: back to back)")
                    .maximum(MAX_CLIP_STRIDE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("top-k")
                    .nick("Top K")
                    .blurb("Labels reported per result, best first (at most the model's classes)")
                    .minimum(1)
                    .maximum(MAX_TOP_K)
                    .default_value(DEFAULT_TOP_K)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("crops", Crops::Center)
                    .nick("Crops")
                    .blurb("Crops per clip: center, or three along the long side with scores averaged")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("resample", Resample::Element)
                    .nick("Resample")
                    .blurb("Where sampled frames are resampled to the crop: element (on the streaming thread) or engine (a batch at a time on the model's CUDA card, slower on the CPU provider; needs crops=center and a uint8 model run in this process)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("smoothing")
                    .nick("Smoothing")
                    .blurb("Average the scores of the last N clips before reporting (clips; 1 = no smoothing)")
                    .minimum(1)
                    .maximum(MAX_SMOOTHING)
                    .default_value(DEFAULT_SMOOTHING)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(
                    "execution-provider",
                    ExecutionProvider::Auto,
                )
                .nick("Execution provider")
                .blurb("Where inference runs: auto (CUDA if it can be created, else the CPU), cuda (an error without it) or cpu")
                .mutable_ready()
                .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("CUDA device index, as CUDA numbers the cards")
                    .minimum(0)
                    .maximum(MAX_DEVICE_ID)
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-pending")
                    .nick("Max pending")
                    .blurb("Clips waiting for inference; live: further clips are dropped and counted, not live: upstream waits")
                    .minimum(1)
                    .maximum(MAX_PENDING)
                    .default_value(DEFAULT_MAX_PENDING)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-batch")
                    .nick("Max batch")
                    .blurb("Most clips (crops) per model run; clips of every element sharing the model are batched together (the engine uses the largest value its users ask for)")
                    .minimum(1)
                    .maximum(MAX_BATCH)
                    .default_value(DEFAULT_MAX_BATCH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-timeout")
                    .nick("Batch timeout")
                    .blurb("Milliseconds the first waiting clip may wait for others to fill a batch (0 = run what is waiting; the engine uses the smallest value its users ask for)")
                    .maximum(MAX_BATCH_TIMEOUT_MS)
                    .default_value(DEFAULT_BATCH_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("gpu-memory-limit")
                    .nick("GPU memory limit")
                    .blurb("Most MiB of GPU memory each CUDA session's memory arena may hold (0 = no limit); elements with different limits use different engines")
                    .maximum(MAX_GPU_MEMORY_MIB)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                gst::ParamSpecFraction::builder("clip-fps")
                    .nick("Clip FPS")
                    .blurb("Sample clips by time at this frame rate: each model frame is the decoded frame nearest its instant by PTS (0/1 = the model's clip.fps, else by frame count; -1/1 = by frame count)")
                    .minimum(gst::Fraction::new(-1, 1))
                    .maximum(gst::Fraction::new(1000, 1))
                    .default_value(gst::Fraction::new(0, 1))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("segment-hysteresis")
                    .nick("Segment hysteresis")
                    .blurb("Consecutive clips a new label must lead for before the current segment ends")
                    .minimum(1)
                    .maximum(MAX_SEGMENT_HYSTERESIS)
                    .default_value(DEFAULT_SEGMENT_HYSTERESIS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("segment-margin")
                    .nick("Segment margin")
                    .blurb("How much higher than the current segment label's score a new label's score must be to count as leading")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_SEGMENT_MARGIN)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("model-info")
                    .nick("Model info")
                    .blurb("The clip settings in use, from READY on: clip-length, frame-stride, clip-stride, clip-fps (0/1 when sampling by frame count), crop-size, scale-size, classes")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("server")
                    .nick("Server")
                    .blurb("KServe v2 gRPC inference servers (Triton) to run the model on instead of this process: host:port, http://host:port or https://host:port (TLS), several separated by commas (clips are spread over the ready ones); unset = ONNX Runtime in-process")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("server-model")
                    .nick("Server model")
                    .blurb("Name of the model on the servers (default: the stem of the 'model' file name, as export_model.py --triton-repo names it)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("server-timeout")
                    .nick("Server timeout")
                    .blurb("Milliseconds a batch may wait for the servers' answer, retries and reconnections included, and the start for a ready server; then live streams drop the clips (counted), others fail")
                    .minimum(1)
                    .maximum(MAX_SERVER_TIMEOUT_MS)
                    .default_value(DEFAULT_SERVER_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("server-requests")
                    .nick("Server requests")
                    .blurb("Batches in flight to the servers at once (their batchers merge requests of every client)")
                    .minimum(1)
                    .maximum(MAX_SERVER_REQUESTS)
                    .default_value(DEFAULT_SERVER_REQUESTS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("server-ca")
                    .nick("Server CA")
                    .blurb("PEM file of the CA that signed the servers' TLS certificates (turns TLS on; the certificates are checked against it)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("server-cert")
                    .nick("Server client certificate")
                    .blurb("PEM file of the client certificate sent to the servers (mutual TLS; with server-key)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("server-key")
                    .nick("Server client key")
                    .blurb("PEM file of the private key of server-cert")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("server-token")
                    .nick("Server token")
                    .blurb("Bearer token sent to the servers (authorization header, for servers behind an authenticating proxy); write-only, never logged")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post an element message with each result and a summary at end of stream")
                    .default_value(DEFAULT_POST_MESSAGES)
                    .mutable_playing()
                    .build(),
                #[cfg(feature = "analytics")]
                glib::ParamSpecEnum::builder_with_default("analytics-meta", AnalyticsMeta::default())
                    .nick("Analytics meta")
                    .blurb("Which buffers carry each result as GstAnalytics metadata (a classification related to a box around the frame): first-buffer (the first buffer pushed after the result) or every-buffer (every buffer until the next result, so an overlay shows the current action)")
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model = value.get().unwrap_or_default(),
            "labels" => s.labels = value.get().unwrap_or_default(),
            "clip-length" => s.clip_length = value.get().unwrap_or_default(),
            "frame-stride" => s.frame_stride = value.get().unwrap_or_default(),
            "clip-stride" => s.clip_stride = value.get().unwrap_or_default(),
            "top-k" => s.top_k = value.get().unwrap_or(DEFAULT_TOP_K),
            "crops" => s.crops = value.get().unwrap_or_default(),
            "resample" => s.resample = value.get().unwrap_or_default(),
            "smoothing" => s.smoothing = value.get().unwrap_or(DEFAULT_SMOOTHING),
            "execution-provider" => s.execution_provider = value.get().unwrap_or_default(),
            "device-id" => s.device_id = value.get().unwrap_or(DEFAULT_DEVICE_ID),
            "max-pending" => s.max_pending = value.get().unwrap_or(DEFAULT_MAX_PENDING),
            "post-messages" => s.post_messages = value.get().unwrap_or(DEFAULT_POST_MESSAGES),
            "max-batch" => s.max_batch = value.get().unwrap_or(DEFAULT_MAX_BATCH),
            "batch-timeout" => s.batch_timeout_ms = value.get().unwrap_or(DEFAULT_BATCH_TIMEOUT_MS),
            "gpu-memory-limit" => s.gpu_memory_limit = value.get().unwrap_or_default(),
            "clip-fps" => {
                let f = value
                    .get::<gst::Fraction>()
                    .unwrap_or(gst::Fraction::new(0, 1));
                s.clip_fps = (f.numer(), f.denom());
            }
            "segment-hysteresis" => {
                s.segment_hysteresis = value.get().unwrap_or(DEFAULT_SEGMENT_HYSTERESIS)
            }
            "segment-margin" => s.segment_margin = value.get().unwrap_or(DEFAULT_SEGMENT_MARGIN),
            #[cfg(feature = "analytics")]
            "analytics-meta" => s.analytics_meta = value.get().unwrap_or_default(),
            "server" => s.server = value.get().unwrap_or_default(),
            "server-model" => s.server_model = value.get().unwrap_or_default(),
            "server-timeout" => {
                s.server_timeout_ms = value.get().unwrap_or(DEFAULT_SERVER_TIMEOUT_MS)
            }
            "server-requests" => s.server_requests = value.get().unwrap_or(DEFAULT_SERVER_REQUESTS),
            "server-ca" => s.server_ca = value.get().unwrap_or_default(),
            "server-cert" => s.server_cert = value.get().unwrap_or_default(),
            "server-key" => s.server_key = value.get().unwrap_or_default(),
            "server-token" => {
                s.server_token = value
                    .get::<Option<String>>()
                    .unwrap_or_default()
                    .filter(|t| !t.is_empty())
                    .map(Secret::new)
            }
            other => gst::warning!(CAT, imp = self, "Unknown property {}", other),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model.to_value(),
            "labels" => s.labels.to_value(),
            "clip-length" => s.clip_length.to_value(),
            "frame-stride" => s.frame_stride.to_value(),
            "clip-stride" => s.clip_stride.to_value(),
            "top-k" => s.top_k.to_value(),
            "crops" => s.crops.to_value(),
            "resample" => s.resample.to_value(),
            "smoothing" => s.smoothing.to_value(),
            "execution-provider" => s.execution_provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "max-pending" => s.max_pending.to_value(),
            "post-messages" => s.post_messages.to_value(),
            "max-batch" => s.max_batch.to_value(),
            "batch-timeout" => s.batch_timeout_ms.to_value(),
            "gpu-memory-limit" => s.gpu_memory_limit.to_value(),
            "clip-fps" => gst::Fraction::new(s.clip_fps.0, s.clip_fps.1).to_value(),
            "segment-hysteresis" => s.segment_hysteresis.to_value(),
            "segment-margin" => s.segment_margin.to_value(),
            "model-info" => {
                drop(s);
                lock(&self.loaded)
                    .as_ref()
                    .map(|l| model_info(&l.config))
                    .to_value()
            }
            #[cfg(feature = "analytics")]
            "analytics-meta" => s.analytics_meta.to_value(),
            "server" => s.server.to_value(),
            "server-model" => s.server_model.to_value(),
            "server-timeout" => s.server_timeout_ms.to_value(),
            "server-requests" => s.server_requests.to_value(),
            "server-ca" => s.server_ca.to_value(),
            "server-cert" => s.server_cert.to_value(),
            "server-key" => s.server_key.to_value(),
            _ => pspec.default_value().clone(),
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
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .build();
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
            match self.load() {
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
        let engine_resample = settings.resample == Resample::Engine;
        if engine_resample && settings.crops != Crops::Center {
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
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
            post: Mutex::new(Post {
                smoother: Smoother::new(settings.smoothing),
                summary: Summary::default(),
                segments: Segmenter::new(
                    Hysteresis {
                        clips: settings.segment_hysteresis,
                        margin: settings.segment_margin,
                    },
                    Arc::clone(&loaded.labels),
                ),
            }),
            ready: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            live: AtomicBool::new(false),
        });
        let worker_cfg = WorkerConfig {
            engine: Arc::clone(&loaded.engine),
            config: config.clone(),
            labels: Arc::clone(&loaded.labels),
            crops: match settings.crops {
                Crops::Center => vec![CropPosition::Center],
                Crops::Three => vec![CropPosition::Start, CropPosition::Center, CropPosition::End],
            },
            top_k: settings.top_k.max(1) as usize,
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
        *lock(&self.state) = Some(State {
            info: None,
            sampler: ClipSampler::with_rate(
                Sampling {
                    clip_length: config.clip_length,
                    frame_stride: config.frame_stride,
                    clip_stride: config.clip_stride,
                },
                config.clip_fps,
            ),
            scaler: Scaler::new(),
            scale_size: config.scale_size,
            centre_crop: (settings.crops == Crops::Center).then_some(config.crop_size),
            engine_resample,
            span: None,
            live: None,
            max_pending: settings.max_pending.max(1) as usize,
            shared,
            worker: Some(worker),
            #[cfg(feature = "analytics")]
            carrier: Carrier::default(),
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
        let mut guard = lock(&self.state);
        if let Some(state) = guard.as_mut() {
            if state.info.as_ref().is_some_and(|old| *old != info) {
                gst::debug!(CAT, imp = self, "Caps changed: restarting clips");
                Self::reset_stream(state);
            }
            state.info = Some(info);
        }
        drop(guard);
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
                    Self::reset_results(&shared);
                }
                EventView::StreamStart(_) => {
                    if let Some(state) = lock(&self.state).as_mut() {
                        Self::reset_stream(state);
                        #[cfg(feature = "analytics")]
                        state.carrier.reset();
                    }
                    Self::reset_results(&shared);
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
        #[cfg(feature = "analytics")]
        {
            // As analytics metadata: on this buffer only, or on every buffer until the next.
            let mode = lock(&self.settings).analytics_meta;
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
        let frame = if state.sampler.wants(timing) {
            let mapped =
                gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info).map_err(|_| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Decode,
                        (
                            "Cannot map frame {} for reading",
                            state.sampler.next_index()
                        )
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
            let job = self.make_job(clip, span, &shared);
            Self::enqueue(&shared, job, live, max)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl NonLocalClassify {
    /// EOS: complete or drop the clip in progress, wait for every result, post the summary.
    /// Returns false when a flush interrupted it.
    fn finish_stream(&self, shared: &Arc<Shared>) -> bool {
        let (clips, frames, sampling, span) = match lock(&self.state).as_mut() {
            Some(state) => {
                // Model frames: decoded frames, or sampling instants when sampling by time.
                let (frames, sampling) = (state.sampler.covered(), state.sampler.sampling());
                (state.sampler.finish(), frames, sampling, state.span)
            }
            None => return true,
        };
        let max = lock(&self.state).as_ref().map_or(1, |s| s.max_pending);
        for clip in clips {
            let job = self.make_job(clip, span, shared);
            // Never drop at EOS, live or not: every pending result is posted before EOS.
            if Self::enqueue(shared, job, false, max).is_err() {
                return false;
            }
        }
        Self::drain(shared);
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
        if settings.post_messages && !shared.failed.load(Ordering::SeqCst) {
            let labels = lock(&self.loaded)
                .as_ref()
                .map(|l| Arc::clone(&l.labels))
                .unwrap_or_default();
            let (last_segment, structure) = {
                let mut post = lock(&shared.post);
                let last = post.segments.finish();
                let mut structure = post.summary.to_structure(
                    &labels,
                    settings.top_k.max(1) as usize,
                    shared.dropped.load(Ordering::SeqCst),
                );
                structure.set(
                    "segments",
                    segments::segments_array(post.segments.segments()),
                );
                (last, structure)
            };
            if let Some(segment) = last_segment {
                let _ = self.obj().post_message(
                    gst::message::Element::builder(segment.to_structure())
                        .src(&*self.obj())
                        .build(),
                );
            }
            let _ = self.obj().post_message(
                gst::message::Element::builder(structure)
                    .src(&*self.obj())
                    .build(),
            );
        }
        true
    }
}

/// The `model-info` structure: the clip settings resolved from the model and the properties.
fn model_info(config: &ClipConfig) -> gst::Structure {
    let fps = config.clip_fps.map_or(gst::Fraction::new(0, 1), |r| {
        gst::Fraction::new(r.num as i32, r.den as i32)
    });
    gst::Structure::builder("nonlocalclassify-model-info")
        .field("clip-length", config.clip_length)
        .field("frame-stride", config.frame_stride)
        .field("clip-stride", config.clip_stride)
        .field("clip-fps", fps)
        .field("crop-size", config.crop_size)
        .field("scale-size", config.scale_size)
        .field("classes", config.num_classes as u64)
        .build()
}
