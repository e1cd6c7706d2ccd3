//! The streaming thread in objects mode (`regions=objects`): each buffer's boxes are read from
//! its GstAnalytics metadata, tracked, and each object's sampled frames cropped around it (only
//! the crop's pixels converted); finished clips and ended tracks go to the worker. Results are
//! related to each object's box on the buffers that carry them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use gst::subclass::prelude::*;

#[cfg(feature = "analytics")]
use super::CAT;
#[cfg(feature = "analytics")]
use crate::analytics;
use crate::objects::{Detection, ObjectClip, ObjectsConfig, Refusal, StreamObjects, TypeFilter};
use crate::preprocess::Scaler;
use crate::results::{ClipResult, ObjectRef};
use crate::sampling::FrameTiming;

use super::frames::{frame_view, map_readable};
use super::imp::{NonLocalClassify, State};
#[cfg(feature = "analytics")]
use super::worker::lock;
use super::worker::Shared;

/// Step of the element's clock when a buffer has no timestamp (a 25 fps frame).
const UNTIMED_STEP: u64 = 40_000_000;

/// Buffers without any object detection after which a stream that never had one is warned
/// about (10 s at 25 fps): objects mode with nothing upstream boxing objects classifies nothing.
const NO_BOXES_WARNING: u64 = 250;

/// What one buffer gave in objects mode.
pub(super) struct ObjectsFrame {
    /// The last clips of the objects in `ended`.
    pub(super) finished: Vec<ObjectClip>,
    /// Objects whose tracks ended (or whose id moved elsewhere and starts afresh).
    pub(super) ended: Vec<u64>,
    /// Clips this buffer completed.
    pub(super) clips: Vec<ObjectClip>,
    /// Objects refused a track on this buffer (`max-objects`).
    pub(super) dropped: u64,
    /// Trouble with this buffer's boxes seen for the first time in this stream: one warning
    /// each.
    pub(super) warnings: Vec<String>,
}

/// Objects mode's streaming state, from READY→PAUSED to PAUSED→READY.
pub(super) struct ObjectsState {
    stream: StreamObjects,
    filter: TypeFilter,
    crop_size: u32,
    /// Each live object's box on the buffer being processed (object id, mtd id).
    pub(super) on_buffer: Vec<(u64, u32)>,
    /// The clock tracks time out by: the latest buffer's PTS, or counted on without one.
    clock: Option<u64>,
    warned: HashSet<&'static str>,
    /// Buffers so far, while none had a detection (None once one had).
    without_boxes: Option<u64>,
    /// Which results each buffer's analytics metadata carries.
    #[cfg(feature = "analytics")]
    pub(super) carrier: crate::analytics::ObjectCarrier,
}

impl ObjectsState {
    pub(super) fn new(config: ObjectsConfig, filter: TypeFilter, crop_size: u32) -> Self {
        Self {
            stream: StreamObjects::new(config),
            filter,
            crop_size,
            on_buffer: Vec::new(),
            clock: None,
            warned: HashSet::new(),
            without_boxes: Some(0),
            #[cfg(feature = "analytics")]
            carrier: Default::default(),
        }
    }

    /// Live objects.
    pub(super) fn live(&self) -> usize {
        self.stream.len()
    }

    /// Forget every object (flush, caps change, new stream); warnings may come again.
    pub(super) fn reset(&mut self) {
        self.stream.reset();
        self.on_buffer.clear();
        self.clock = None;
        self.warned.clear();
        self.without_boxes = Some(0);
        #[cfg(feature = "analytics")]
        self.carrier.reset();
    }

    /// End of stream: every object's clips in progress and the ids of every live object.
    pub(super) fn finish(&mut self) -> (Vec<ObjectClip>, Vec<u64>) {
        self.on_buffer.clear();
        self.stream.finish()
    }

    /// The next buffer: its boxes read, tracked, and the frames its objects' clips sample
    /// cropped with `scaler`; the frame is mapped only when a clip samples it (`cuda_memory`:
    /// [`map_readable`]). Errors name the frame's trouble (mapping, layout, cropping).
    pub(super) fn frame(
        &mut self,
        buf: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        timing: FrameTiming,
        scaler: &mut Scaler,
        cuda_memory: bool,
    ) -> Result<ObjectsFrame, String> {
        let (width, height) = (info.width(), info.height());
        let (detections, unread) = self.detections(buf, width, height);
        self.without_boxes = match self.without_boxes {
            Some(n) if detections.is_empty() => Some(n + 1),
            _ => None,
        };
        let now = match (timing.pts, self.clock) {
            (Some(pts), _) => pts,
            (None, Some(last)) => last.saturating_add(timing.duration.unwrap_or(UNTIMED_STEP)),
            (None, None) => 0,
        };
        self.clock = Some(now);
        let crop_size = self.crop_size;
        let mut mapped: Option<gst_video::VideoFrameRef<&gst::BufferRef>> = None;
        let out = self
            .stream
            .frame(now, timing, &detections, width, height, |square| {
                if mapped.is_none() {
                    mapped = Some(map_readable(buf, info, cuda_memory)?);
                }
                let frame = mapped.as_ref().ok_or("cannot map the frame for reading")?;
                let view = frame_view(frame)
                    .ok_or_else(|| format!("unsupported frame layout ({:?})", info.format()))?;
                scaler
                    .scale_square(&view, square, crop_size)
                    .map_err(|e| e.to_string())
            })?;
        self.on_buffer = out
            .objects
            .objects
            .iter()
            .filter_map(|seen| Some((seen.id, seen.mtd?)))
            .collect();
        let mut warnings = Vec::new();
        let mut warn_once = |key: &'static str, text: String| {
            if self.warned.insert(key) {
                warnings.push(text);
            }
        };
        for refusal in &out.objects.refused {
            let key = match refusal {
                Refusal::Empty => "empty",
                Refusal::Outside => "outside",
                Refusal::DuplicateId => "duplicate",
            };
            warn_once(
                key,
                format!(
                    "Ignoring {} (first seen at {}; later ones are ignored without a warning)",
                    refusal.describe(),
                    describe_time(timing.pts)
                ),
            );
        }
        if self.without_boxes == Some(NO_BOXES_WARNING) {
            warn_once(
                "no boxes",
                format!(
                    "regions=objects has found no object detection on the stream's first {NO_BOXES_WARNING} buffers: put a detector upstream (e.g. onnxinference ! ssdobjectdetector) or an application adding GstAnalytics object detections, or set regions=frame"
                ),
            );
        }
        if unread > 0 {
            warn_once(
                "unread",
                format!(
                    "A buffer carries {} object detections; only the first {} are read (first seen at {})",
                    detections.len() + unread,
                    detections.len(),
                    describe_time(timing.pts)
                ),
            );
        }
        if !out.objects.jumped.is_empty() {
            warn_once(
                "jumped",
                format!(
                    "Tracking id {} moved to a box far from its last one at {}: its clips restart there",
                    out.objects.jumped[0],
                    describe_time(timing.pts)
                ),
            );
        }
        if out.objects.dropped > 0 {
            warn_once(
                "dropped",
                format!(
                    "More objects than max-objects={} at {}: the others are dropped and counted (objects-dropped); raise max-objects or filter with object-types",
                    self.stream.max_objects(),
                    describe_time(timing.pts)
                ),
            );
        }
        let mut ended = out.objects.ended.clone();
        ended.extend(&out.objects.jumped);
        #[cfg(feature = "analytics")]
        for id in &ended {
            self.carrier.forget(*id);
        }
        Ok(ObjectsFrame {
            finished: out.finished,
            ended,
            clips: out.clips,
            dropped: out.objects.dropped,
            warnings,
        })
    }

    #[cfg(feature = "analytics")]
    fn detections(&self, buf: &gst::BufferRef, width: u32, height: u32) -> (Vec<Detection>, usize) {
        crate::analytics::detections(buf, width, height, |kind| self.filter.accepts(kind))
    }

    /// Without GstAnalytics (GStreamer < 1.24) no box can be read; objects mode is refused at
    /// start, so this is never called with boxes to find.
    #[cfg(not(feature = "analytics"))]
    fn detections(&self, _buf: &gst::BufferRef, _w: u32, _h: u32) -> (Vec<Detection>, usize) {
        let _ = &self.filter;
        (Vec::new(), 0)
    }
}

fn describe_time(pts: Option<u64>) -> String {
    pts.map_or_else(
        || "a buffer without timestamp".to_string(),
        |t| format!("{}", gst::ClockTime::from_nseconds(t)),
    )
}

impl NonLocalClassify {
    /// regions=objects: track this buffer's boxes, relate results to them, hand finished clips
    /// and ended tracks to the worker.
    pub(super) fn transform_objects(
        &self,
        mut guard: std::sync::MutexGuard<'_, Option<State>>,
        buf: &mut gst::BufferRef,
        fresh: &[ClipResult],
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let (info, timing) = self.frame_timing(state, buf)?;
        let cuda_memory = state.cuda_memory;
        let (Some(objects), scaler) = (state.objects.as_mut(), &mut state.scaler) else {
            return Err(gst::FlowError::Error);
        };
        let frame = objects
            .frame(buf, &info, timing, scaler, cuda_memory)
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "Cannot crop the objects of the frame at {}: {}",
                        describe_time(buf.pts().map(|t| t.nseconds())),
                        e
                    )
                );
                gst::FlowError::Error
            })?;
        #[cfg(feature = "analytics")]
        {
            let mode = lock(&self.settings).output.analytics_meta;
            for (result, od) in objects.carrier.carry(mode, fresh, &objects.on_buffer) {
                if let Err(e) = analytics::add_object_result(buf, &result, od) {
                    gst::warning!(CAT, imp = self, "Cannot attach analytics meta: {}", e);
                }
            }
        }
        #[cfg(not(feature = "analytics"))]
        let _ = fresh;
        for warning in &frame.warnings {
            gst::element_imp_warning!(self, gst::StreamError::Format, ("{}", warning));
        }
        if frame.dropped > 0 {
            state
                .shared
                .objects_dropped
                .fetch_add(frame.dropped, Ordering::SeqCst);
        }
        let live = state.live.unwrap_or(false);
        // A clip queue as deep as max-pending for each live object, and for each object whose
        // track ends on this buffer while its last clips go over.
        let max = state.max_pending * (objects.live() + frame.ended.len()).max(1);
        let shared = Arc::clone(&state.shared);
        drop(guard);
        self.hand_over(&shared, frame.finished, true, live, max)?;
        for id in frame.ended {
            shared.end_object(id, max)?;
        }
        self.hand_over(&shared, frame.clips, false, live, max)?;
        Ok(gst::FlowSuccess::Ok)
    }

    /// Queue objects' clips for the worker; `last`: the last clips of tracks that ended.
    pub(super) fn hand_over(
        &self,
        shared: &Shared,
        clips: Vec<ObjectClip>,
        last: bool,
        live: bool,
        max: usize,
    ) -> Result<(), gst::FlowError> {
        for c in clips {
            let (x, y, w, h) = c.boxf.pixels();
            let object = ObjectRef {
                id: c.object,
                x,
                y,
                w,
                h,
            };
            let mut job = self.make_job(c.clip, None, Some(object), shared);
            job.last = last;
            shared.enqueue(job, live, max)?;
        }
        Ok(())
    }
}
