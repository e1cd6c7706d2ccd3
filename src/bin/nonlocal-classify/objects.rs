//! Objects mode in the program (`--regions objects`): where each video's boxes come from — a
//! MOT boxes file attached to the decoded frames as GstAnalytics object detections (with a
//! tracking id each when it has one) by a probe before the classifier, or GStreamer's detector
//! chain (`onnxinference ! ssdobjectdetector ! [ioutracker]`) — and the checks that objects mode
//! can run here at all.

use std::path::PathBuf;
#[cfg(feature = "analytics")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::bail;
use gst::prelude::*;

use crate::args::Args;
use crate::boxes::Boxes;

/// Where a video's objects come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Its `--boxes` file.
    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    Boxes(Arc<Boxes>),
    /// `--detector`.
    Detector(Arc<Detector>),
}

/// GStreamer's detector chain, as this GStreamer has it.
#[derive(Debug)]
pub struct Detector {
    model: PathBuf,
    labels: Option<PathBuf>,
    /// `ssdtensordec` (1.28) or `ssdobjectdetector` (1.26).
    decoder: &'static str,
    /// `ioutracker` is there (1.28).
    tracker: bool,
}

/// The elements the detector chain needs: (name, what has it).
const ONNXINFERENCE: (&str, &str) = (
    "onnxinference",
    "gst-plugins-bad's onnx plugin, GStreamer 1.26 or newer (Debian 13: gstreamer1.0-plugins-bad)",
);
const DECODERS: [&str; 2] = ["ssdtensordec", "ssdobjectdetector"];

impl Detector {
    /// The chain for `model`; an error naming the element this GStreamer lacks.
    fn find(model: PathBuf, labels: Option<PathBuf>) -> anyhow::Result<Self> {
        let found = |name: &str| gst::ElementFactory::find(name).is_some();
        let version = gst::version_string();
        if !found(ONNXINFERENCE.0) {
            bail!(
                "--detector runs the detector with GStreamer's {} element, which {version} lacks: it needs {}",
                ONNXINFERENCE.0,
                ONNXINFERENCE.1
            );
        }
        let Some(decoder) = DECODERS.into_iter().find(|d| found(d)) else {
            bail!(
                "--detector decodes the detector's boxes with GStreamer's ssdobjectdetector element, which {version} lacks: it needs gst-plugins-bad 1.26 or newer"
            );
        };
        if !model.is_file() {
            bail!(
                "the detector {} is not a file: pass --detector MODEL.onnx",
                model.display()
            );
        }
        if let Some(labels) = labels.as_ref().filter(|l| !l.is_file()) {
            bail!(
                "the detector's labels {} is not a file: pass --detector-labels FILE (one class name a line)",
                labels.display()
            );
        }
        Ok(Self {
            model,
            labels,
            decoder,
            tracker: found("ioutracker"),
        })
    }

    /// `videoscale ! onnxinference model-file=… ! ssd… [label-file=…] ! [ioutracker]`, in order.
    pub fn elements(&self) -> Result<Vec<gst::Element>, String> {
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| format!("the GStreamer element {factory} is missing"))
        };
        let inference = make("onnxinference")?;
        inference.set_property("model-file", self.model.to_string_lossy().as_ref());
        let decoder = make(self.decoder)?;
        if let Some(labels) = &self.labels {
            decoder.set_property("label-file", labels.to_string_lossy().as_ref());
        }
        let mut chain = vec![make("videoscale")?, inference, decoder];
        if self.tracker {
            chain.push(make("ioutracker")?);
        }
        Ok(chain)
    }
}

/// Each video's source of objects (`None` for every video in frame mode); an error when objects
/// mode cannot run here, a boxes file cannot be read, or the boxes files are not one per video.
pub fn sources(args: &Args, videos: usize) -> anyhow::Result<Vec<Option<Source>>> {
    if args.regions() != gstnonlocal::nonlocalclassify::Regions::Objects {
        return Ok(vec![None; videos]);
    }
    if !cfg!(feature = "analytics") {
        bail!(
            "objects mode (--regions objects, --boxes, --detector) needs GStreamer 1.24 or newer: it passes boxes as GstAnalytics metadata, which this nonlocal-classify was built without (it runs on {}; build it with `cargo build --features analytics` against GStreamer 1.24 or newer)",
            gst::version_string()
        );
    }
    gst::init()?;
    if let Some(model) = &args.detector {
        let detector = Arc::new(Detector::find(model.clone(), args.detector_labels.clone())?);
        return Ok(vec![Some(Source::Detector(detector)); videos]);
    }
    if args.boxes.len() != videos {
        bail!(
            "{} boxes file{} for {videos} video{}: pass --boxes FILE once per video, in the order of the videos",
            args.boxes.len(),
            if args.boxes.len() == 1 { "" } else { "s" },
            if videos == 1 { "" } else { "s" }
        );
    }
    args.boxes
        .iter()
        .map(|path| Ok(Some(Source::Boxes(Arc::new(Boxes::read(path)?)))))
        .collect()
}

/// Attach `boxes` to the buffers going through `pad`, by frame number (the first buffer is frame
/// 1): each box an object detection of type `person`, related (`RELATE_TO`) to a tracking mtd
/// carrying its id when it has one. A buffer that cannot take them is posted as an error by
/// `element`.
#[cfg(feature = "analytics")]
pub fn attach(pad: &gst::Pad, element: &gst::Element, boxes: Arc<Boxes>) {
    let frames = AtomicU64::new(0);
    let element = element.downgrade();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let frame = frames.fetch_add(1, Ordering::SeqCst) + 1;
        let on_frame = boxes.on_frame(frame);
        if on_frame.is_empty() {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
            let buffer = buffer.make_mut();
            if let Err(e) = add_boxes(buffer, on_frame) {
                if let Some(element) = element.upgrade() {
                    gst::element_error!(
                        element,
                        gst::StreamError::Failed,
                        ("cannot attach the boxes of frame {frame}: {e}")
                    );
                }
                return gst::PadProbeReturn::Drop;
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(feature = "analytics")]
fn add_boxes(
    buffer: &mut gst::BufferRef,
    boxes: &[crate::boxes::MotBox],
) -> Result<(), gst::glib::BoolError> {
    use gst_analytics::prelude::*;
    let seen = buffer.pts().unwrap_or(gst::ClockTime::ZERO);
    let mut meta = gst_analytics::AnalyticsRelationMeta::add(buffer);
    let person = gst::glib::Quark::from_str("person");
    for b in boxes {
        let od = meta
            .add_od_mtd(person, b.x, b.y, b.w, b.h, b.confidence)?
            .id();
        if let Some(id) = b.id {
            let track = meta.add_tracking_mtd(id, seen)?.id();
            meta.set_relation(gst_analytics::RelTypes::RELATE_TO, od, track)?;
        }
    }
    Ok(())
}
