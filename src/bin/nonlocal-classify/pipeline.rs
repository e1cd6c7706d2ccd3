//! One video's pipelines: a decode-only preroll for its duration and frame rate (`--clips N`),
//! then `uridecodebin ! videoconvert ! nonlocalclassify ! fakesink` whose bus gives its clips,
//! segments and summary (in objects mode, each object's; with `--detector` the detector chain
//! comes before the classifier, with `--boxes` a probe on the classifier's sink pad attaches
//! them); and the `--jobs` threads that run them, answers kept in input order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{anyhow, Context};
use gst::prelude::*;
use gstnonlocal::segments::Segment;
use gstnonlocal::ClipResult;

use crate::clips::Plan;
use crate::common::with_detail;
use crate::inputs::Input;
use crate::objects::Source;
use crate::progress::Report;
use crate::settings::Settings;
use crate::timeline::Span;

/// How long reading a video may take to give its first frame.
const DISCOVER_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(120);

/// The element's file-level answer (in objects mode each object's), its clips and its segments.
pub struct Answer {
    /// The summary's labels (none in objects mode: see `objects`).
    pub labels: Vec<(String, f64)>,
    /// Clips classified (in objects mode, of every object).
    pub clips: u64,
    pub frames: Option<u64>,
    pub clip_stride: u32,
    pub results: Vec<ClipResult>,
    pub segments: Vec<Span>,
    /// Objects mode: each object with at least one clip, by id.
    pub objects: Vec<ObjectAnswer>,
}

/// One object's summary (objects mode).
pub struct ObjectAnswer {
    pub id: u64,
    /// Its box on its last classified clip's last sampled frame (x, y, width, height).
    pub bbox: Option<[i32; 4]>,
    pub labels: Vec<(String, f64)>,
    pub clips: u64,
}

/// Classify every input, `jobs` at once, handing each outcome to `show` in input order as soon
/// as it and those before it are done.
pub fn classify_all(
    inputs: &[Input],
    settings: &Settings,
    report: &dyn Report,
    jobs: u32,
    verbose: bool,
    mut show: impl FnMut(usize, Result<Answer, String>),
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..(jobs as usize).min(inputs.len()) {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(input) = inputs.get(i) else { break };
                let outcome = classify(input, settings, report, verbose);
                if tx.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut shown = 0usize;
        for (i, outcome) in rx {
            pending.insert(i, outcome);
            while let Some(outcome) = pending.remove(&shown) {
                show(shown, outcome);
                shown += 1;
            }
        }
    });
}

/// One video's answer: its clips planned from its discovered frame count (with `--clips N`),
/// then classified.
fn classify(
    input: &Input,
    settings: &Settings,
    report: &dyn Report,
    verbose: bool,
) -> Result<Answer, String> {
    let uri = input.uri.clone()?;
    let shown = input.shown.as_str();
    let frames = if settings.clips == 0 {
        None
    } else {
        let frames = discover(&uri)?.frames(settings.sampling_rate);
        if frames.is_none() {
            report.warn(format!(
                "{shown}: duration or frame rate unknown; classifying consecutive clips over the whole video"
            ));
        }
        frames
    };
    let plan = settings.geometry.plan(frames, settings.clips);
    if verbose {
        report.note(format!("{shown}: {}", settings.geometry.describe(&plan)));
    }
    let posted = run(&uri, input, settings, &plan, report)?;
    if settings.objects {
        return objects_answer(posted, plan);
    }
    let (labels, clips) = posted
        .summaries
        .into_iter()
        .find(|s| s.object.is_none())
        .map(|s| (s.labels, s.clips))
        .ok_or("the stream ended without a nonlocalclassify-summary message")?;
    if clips == 0 {
        return Err(format!(
            "too short to classify: a clip needs at least {} decoded frames",
            settings.geometry.min_frames()
        ));
    }
    Ok(Answer {
        labels,
        clips,
        frames: plan.frames,
        clip_stride: plan.clip_stride,
        results: posted.results,
        segments: posted.segments,
        objects: Vec::new(),
    })
}

/// Objects mode's answer: each object's summary with its last box, by id; an error when no
/// object had a clip.
fn objects_answer(posted: Posted, plan: Plan) -> Result<Answer, String> {
    let mut objects: Vec<ObjectAnswer> = posted
        .summaries
        .into_iter()
        .filter_map(|s| {
            let id = s.object?;
            let bbox = posted
                .results
                .iter()
                .rev()
                .filter_map(|r| r.object)
                .find(|o| o.id == id)
                .map(|o| [o.x, o.y, o.w, o.h]);
            Some(ObjectAnswer {
                id,
                bbox,
                labels: s.labels,
                clips: s.clips,
            })
        })
        .filter(|o| o.clips > 0)
        .collect();
    objects.sort_by_key(|o| o.id);
    if objects.is_empty() {
        return Err(
            "no object was classified: no object had a box on enough frames for one clip (check the boxes' frame numbers, or the detector's objects and --object-types)"
                .into(),
        );
    }
    Ok(Answer {
        labels: Vec::new(),
        clips: objects.iter().map(|o| o.clips).sum(),
        frames: plan.frames,
        clip_stride: plan.clip_stride,
        results: posted.results,
        segments: posted.segments,
        objects,
    })
}

/// A `nonlocalclassify-summary`: its labels with their probability, its clip count, and its
/// object (objects mode).
struct Summary {
    labels: Vec<(String, f64)>,
    clips: u64,
    object: Option<u64>,
}

/// What the element posted on a video's bus.
#[derive(Default)]
struct Posted {
    summaries: Vec<Summary>,
    results: Vec<ClipResult>,
    segments: Vec<Span>,
}

/// Run the classifying pipeline to its end.
fn run(
    uri: &str,
    input: &Input,
    settings: &Settings,
    plan: &Plan,
    report: &dyn Report,
) -> Result<Posted, String> {
    let shown = input.shown.as_str();
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|_| format!("the GStreamer element {factory} is missing"))
    };
    let pipeline = gst::Pipeline::new();
    let convert = make("videoconvert")?;
    let detector = match &input.objects {
        Some(Source::Detector(d)) => d.elements()?,
        _ => Vec::new(),
    };
    let classifier = make("nonlocalclassify")?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .map_err(|e| e.to_string())?;
    settings.apply(&classifier);
    classifier.set_property("clip-stride", plan.clip_stride);
    if let Some(dir) = &input.dump {
        classifier.set_property("dump-inputs", dir.to_string_lossy().as_ref());
    }
    let chain: Vec<&gst::Element> = std::iter::once(&convert)
        .chain(&detector)
        .chain([&classifier, &sink])
        .collect();
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    #[cfg(feature = "analytics")]
    if let Some(Source::Boxes(boxes)) = &input.objects {
        let pad = classifier
            .static_pad("sink")
            .ok_or("the classifier has no sink pad")?;
        crate::objects::attach(&pad, &classifier, std::sync::Arc::clone(boxes));
    }
    add_decoder(&pipeline, uri, &convert).map_err(|e| e.to_string())?;
    let pipeline = Stopper(pipeline);
    let bus = pipeline.0.bus().ok_or("pipeline without bus")?;
    if pipeline.0.set_state(gst::State::Playing).is_err() {
        return Err(start_failure(&bus));
    }
    let mut posted = Posted::default();
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => match e.structure() {
                Some(s) if s.name() == "nonlocalclassify" => {
                    if let Some(result) = ClipResult::from_structure(s) {
                        report.clip(shown, result.clip_index, plan.expected);
                        posted.results.push(result);
                    }
                }
                Some(s) if s.name() == "nonlocalclassify-segment" => {
                    posted
                        .segments
                        .extend(Segment::from_structure(s).map(|segment| Span {
                            object: s.get::<u64>("object-id").ok(),
                            segment,
                        }));
                }
                Some(s) if s.name() == "nonlocalclassify-summary" => {
                    let (labels, clips) = summary_of(s)?;
                    posted.summaries.push(Summary {
                        labels,
                        clips,
                        object: s.get::<u64>("object-id").ok(),
                    });
                }
                _ => {}
            },
            gst::MessageView::Warning(w) => report.warn(describe_warning(w)),
            gst::MessageView::Error(e) => return Err(describe_error(e)),
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    Ok(posted)
}

fn summary_of(s: &gst::StructureRef) -> Result<(Vec<(String, f64)>, u64), String> {
    let bad = |f: &str| format!("the summary has no valid '{f}' field");
    let labels = s.get::<gst::Array>("labels").map_err(|_| bad("labels"))?;
    let scores = s.get::<gst::Array>("scores").map_err(|_| bad("scores"))?;
    let clips = s.get::<u64>("clips").map_err(|_| bad("clips"))?;
    let pairs = labels
        .iter()
        .zip(scores.iter())
        .map(|(l, v)| Some((l.get::<String>().ok()?, v.get::<f64>().ok()?)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("labels"))?;
    Ok((pairs, clips))
}

pub fn describe_error(e: &gst::message::Error) -> String {
    with_detail(&e.error(), e.debug())
}

pub fn describe_warning(w: &gst::message::Warning) -> String {
    with_detail(&w.error(), w.debug())
}

/// Sets its pipeline to NULL when dropped.
pub struct Stopper(pub gst::Pipeline);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The reason a pipeline did not start: the error it posted.
fn start_failure(bus: &gst::Bus) -> String {
    bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(e) => Some(describe_error(e)),
            _ => None,
        })
        .unwrap_or_else(|| "the pipeline cannot start".to_string())
}

/// Add `uridecodebin uri=…` to `pipeline`, linking its first decoded video stream to `sink`.
/// Audio and subtitle streams are left undecoded and unlinked; a URI without a decodable video
/// stream becomes an error message on the bus.
fn add_decoder(pipeline: &gst::Pipeline, uri: &str, sink: &gst::Element) -> anyhow::Result<()> {
    let decoder = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .context("uridecodebin is missing (install GStreamer's base plugins)")?;
    decoder.connect("autoplug-continue", false, |args| {
        let other = args
            .get(2)
            .and_then(|v| v.get::<gst::Caps>().ok())
            .and_then(|caps| caps.structure(0).map(|s| s.name().to_string()))
            .is_some_and(|name| {
                ["audio/", "text/", "subpicture/"]
                    .iter()
                    .any(|p| name.starts_with(p))
            });
        Some((!other).to_value())
    });
    pipeline.add(&decoder)?;
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| anyhow!("{} has no sink pad", sink.name()))?;
    let undecoded: Arc<Mutex<Option<String>>> = Arc::default();
    let pad_sink = sink_pad.clone();
    let pad_undecoded = Arc::clone(&undecoded);
    decoder.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        if name == "video/x-raw" {
            if !pad_sink.is_linked() {
                let _ = pad.link(&pad_sink);
            }
        } else if name.starts_with("video/") || name.starts_with("image/") {
            *pad_undecoded.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
        }
    });
    decoder.connect_no_more_pads(move |decoder| {
        if sink_pad.is_linked() {
            return;
        }
        match undecoded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
        {
            Some(caps) => gst::element_error!(
                decoder,
                gst::StreamError::CodecNotFound,
                ("no decoder for its video ({caps}): a GStreamer plugin is missing")
            ),
            None => gst::element_error!(decoder, gst::StreamError::WrongType, ("no video stream")),
        }
    });
    Ok(())
}

/// Duration and frame rate of the video stream, from a decode-only preroll.
struct Discovered {
    duration: Option<gst::ClockTime>,
    framerate: Option<gst::Fraction>,
}

impl Discovered {
    /// Frames of the video at `rate` (the element's sampling rate), else at its own frame rate.
    fn frames(&self, rate: Option<gst::Fraction>) -> Option<u64> {
        let rate = rate
            .or(self.framerate)
            .filter(|f| f.numer() > 0 && f.denom() > 0)?;
        let ns = self.duration?.nseconds() as u128;
        let frames = (ns * rate.numer() as u128 + rate.denom() as u128 * 500_000_000)
            / (rate.denom() as u128 * 1_000_000_000);
        u64::try_from(frames).ok().filter(|&f| f > 0)
    }
}

fn discover(uri: &str) -> Result<Discovered, String> {
    let pipeline = gst::Pipeline::new();
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    add_decoder(&pipeline, uri, &sink).map_err(|e| e.to_string())?;
    let pipeline = Stopper(pipeline);
    let bus = pipeline.0.bus().ok_or("pipeline without bus")?;
    match pipeline.0.set_state(gst::State::Paused) {
        // A live source: no duration.
        Ok(gst::StateChangeSuccess::NoPreroll) => {
            return Ok(Discovered {
                duration: None,
                framerate: None,
            })
        }
        Ok(_) => {}
        Err(_) => return Err(start_failure(&bus)),
    }
    let prerolled = bus
        .iter_timed(DISCOVER_TIMEOUT)
        .find_map(|msg| match msg.view() {
            gst::MessageView::AsyncDone(_) => Some(Ok(())),
            gst::MessageView::Error(e) => Some(Err(describe_error(e))),
            _ => None,
        });
    prerolled.unwrap_or_else(|| {
        Err(format!(
            "no video frame within {} s",
            DISCOVER_TIMEOUT.seconds()
        ))
    })?;
    let pad = sink.static_pad("sink").ok_or("fakesink without pad")?;
    let duration = pad
        .peer_query_duration::<gst::ClockTime>()
        .or_else(|| pipeline.0.query_duration::<gst::ClockTime>());
    let framerate = pad
        .current_caps()
        .and_then(|caps| caps.structure(0)?.get::<gst::Fraction>("framerate").ok());
    Ok(Discovered {
        duration,
        framerate,
    })
}
