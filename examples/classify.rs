//! Classify video files into Kinetics-400 actions with the `nonlocalclassify` element: one
//! command for what `hub run nonlocal_kinetics400 --input_path VIDEO` / `--input_file LIST` did.
//!
//! Every video runs through its own pipeline,
//! `uridecodebin uri=… ! videoconvert ! nonlocalclassify … ! fakesink`, and its answer is the
//! element's `nonlocalclassify-summary` message (the scores averaged over every clip), printed as
//! a table or as one JSON object per line, `{"path": …, "labels": {label: probability, …}, …}`.
//!
//! ```text
//! cargo run --release --example classify -- tests/data/arm_wrestling.mp4
//! cargo run --release --example classify -- --input-file list.txt --output json --jobs 2
//! ```
//!
//! Clips (`--clips N`, default 10, the reference test protocol): a first, decode-only pipeline
//! prerolls the video and reads its duration and frame rate, giving F decoded frames. A clip spans
//! S = (clip-length − 1) · frame-stride + 1 frames (from the model, see the element). The element
//! gets `clip-stride` = max(⌊(F − S) / (N − 1)⌋, ⌊X / N⌋ + 1, 1) with X = F − 1 − (⌈T/2⌉ − 1) ·
//! frame-stride, T the clip length: the first term spreads N full clips from the first frame to
//! the last (the reference protocol); the second keeps the element's end-of-stream rule (a clip
//! that has at least half of its frames is completed by repeating its last one) from adding
//! clips beyond N, so short videos get N overlapping clips whose last one may be padded. The
//! summary's `clips` field reports how many clips were classified: N when the video has enough
//! frames for N distinct clip starts, fewer otherwise; a video shorter than half a clip cannot be
//! classified. `--clips 0` leaves `clip-stride` to the element: consecutive clips over the whole
//! video. When the duration or frame rate is unknown, the element's default is used too (with a
//! warning).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;
use anyhow::{anyhow, bail, Context};
use clap::{CommandFactory, Parser, ValueEnum};
use common::{find_model, with_detail};
use gst::glib;
use gst::prelude::*;
use gstnonlocal::config::{ClipConfig, Overrides};
use gstnonlocal::engine::{ProviderChoice, SharedEngine};
use indicatif::{ProgressBar, ProgressStyle};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

const AFTER_HELP: &str = "\
Inputs: paths or URIs (file://, http://, … anything uridecodebin reads), as arguments, with
--input-path, or listed in --input-file (one per line; blank lines and lines starting with '#'
are skipped; relative paths are taken from the current directory). Any container and codec
GStreamer can decode is accepted.

Model: --model, else the NONLOCAL_MODEL environment variable, else the project's default model
(tools/default-model, exported once into .cache/models).

Clips: with --clips N (default 10) the video's frame count F is estimated from its duration and
frame rate, and the element's clip-stride is set so that N clips spread from the first frame to
the last: clip-stride = max((F - S) / (N - 1), X / N + 1, 1), S being the span of one clip in
frames and X the last frame at which the element still starts a clip (it completes a clip that
has at least half of its frames by repeating its last one). Short videos get overlapping clips;
the 'clips' field of the output tells how many were classified. --clips 0: consecutive clips over
the whole video (the element's default). --crops three classifies left, centre and right crops of
every clip and averages them, so it runs the model three times per clip.

Output: per video the top-k labels with their probability, best first: the mean over every clip
of the element's per-clip scores (its nonlocalclassify-summary message). 'text' prints a table;
'json' prints one object per line: {\"path\": …, \"labels\": {label: probability, …}, \"clips\": N}
(with --verbose also \"frames\", the estimated frame count, and \"clip_stride\").

Errors: a video that cannot be read or classified prints 'error: PATH: reason' on stderr; the
others are still classified, and the exit status is 1. Results come in input order.";

#[derive(Parser, Debug)]
#[command(
    name = "classify",
    version,
    about = "Classify videos into Kinetics-400 actions with the nonlocalclassify GStreamer element",
    after_help = AFTER_HELP
)]
struct Args {
    /// Videos to classify (paths or URIs)
    #[arg(value_name = "VIDEO")]
    videos: Vec<String>,

    /// A video to classify (path or URI); repeatable
    #[arg(long = "input-path", value_name = "PATH")]
    input_path: Vec<String>,

    /// A file listing videos, one path or URI per line ('#' comments and blank lines skipped);
    /// repeatable
    #[arg(long = "input-file", value_name = "LIST")]
    input_file: Vec<PathBuf>,

    /// ONNX model [default: $NONLOCAL_MODEL, else the output of tools/default-model]
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Label file, one label per line [default: from the model]
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,

    /// Run on the GPU (the element's execution-provider=cuda); fails if CUDA is unavailable
    #[arg(long, conflicts_with = "provider")]
    use_gpu: bool,

    /// Where inference runs (auto = CUDA when available, else CPU)
    #[arg(long, value_enum, default_value_t = Provider::Cpu)]
    provider: Provider,

    /// CUDA device
    #[arg(long, value_name = "N", default_value_t = 0)]
    device_id: i32,

    /// Labels reported per video
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,

    /// Crops per clip: center, or three along the long side with scores averaged
    #[arg(long, value_enum, default_value_t = Crops::Center)]
    crops: Crops,

    /// Clips per video, spread evenly over it (0 = consecutive clips over the whole video)
    #[arg(long, value_name = "N", default_value_t = 10)]
    clips: u32,

    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,

    /// Videos classified at once (each in its own pipeline; the model is loaded once)
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,

    /// Print each video's frame count and clip stride (stderr; JSON: "frames", "clip_stride")
    #[arg(long, short = 'v')]
    verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Provider {
    Auto,
    Cuda,
    Cpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Crops {
    Center,
    Three,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

impl Provider {
    fn nick(self) -> &'static str {
        match self {
            Provider::Auto => "auto",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }

    fn choice(self) -> ProviderChoice {
        match self {
            Provider::Auto => ProviderChoice::Auto,
            Provider::Cuda => ProviderChoice::Cuda,
            Provider::Cpu => ProviderChoice::Cpu,
        }
    }
}

impl Crops {
    fn nick(self) -> &'static str {
        match self {
            Crops::Center => "center",
            Crops::Three => "three",
        }
    }
}

/// What every pipeline's classifier is set to.
struct Settings {
    model: PathBuf,
    labels: Option<PathBuf>,
    provider: Provider,
    device_id: i32,
    top_k: u32,
    crops: Crops,
    clips: u32,
    /// Frames per clip and the step between them, as the element resolves them from the model.
    clip_length: u32,
    frame_stride: u32,
}

impl Settings {
    fn apply(&self, element: &gst::Element) {
        element.set_property("model", self.model.to_string_lossy().as_ref());
        if let Some(labels) = &self.labels {
            element.set_property("labels", labels.to_string_lossy().as_ref());
        }
        element.set_property_from_str("execution-provider", self.provider.nick());
        element.set_property("device-id", self.device_id);
        element.set_property("top-k", self.top_k);
        element.set_property_from_str("crops", self.crops.nick());
    }

    /// Span of one clip in decoded frames.
    fn span(&self) -> u64 {
        (u64::from(self.clip_length) - 1) * u64::from(self.frame_stride) + 1
    }

    /// The last frame index at which the element still makes a clip (one that has at least half
    /// of its frames), for a video of `frames` frames; `None` when it makes none.
    fn last_start(&self, frames: u64) -> Option<u64> {
        let half = u64::from(self.clip_length).div_ceil(2);
        frames.checked_sub(1 + (half - 1) * u64::from(self.frame_stride))
    }

    /// Fewest decoded frames that give one clip.
    fn min_frames(&self) -> u64 {
        let half = u64::from(self.clip_length).div_ceil(2);
        (half - 1) * u64::from(self.frame_stride) + 1
    }

    /// `clip-stride` for `clips` clips over `frames` frames (see the module documentation).
    fn clip_stride(&self, frames: u64, clips: u32) -> u32 {
        let n = u64::from(clips.max(1));
        let x = self.last_start(frames).unwrap_or(0);
        let spread = if n > 1 {
            frames.saturating_sub(self.span()) / (n - 1)
        } else {
            0
        };
        let stride = spread.max(x / n + 1).max(1);
        u32::try_from(stride).unwrap_or(u32::MAX)
    }

    /// Clips the element makes over `frames` frames with `stride` between their starts.
    fn expected_clips(&self, frames: u64, stride: u32) -> u64 {
        let stride = if stride == 0 {
            u64::from(self.clip_length) * u64::from(self.frame_stride)
        } else {
            u64::from(stride)
        };
        self.last_start(frames).map_or(0, |x| x / stride.max(1) + 1)
    }
}

/// One video to classify: as given, and as a URI.
#[derive(Clone, Debug)]
struct Input {
    shown: String,
    uri: Result<String, String>,
}

fn to_input(text: &str) -> Input {
    let shown = text.to_string();
    if text.contains("://") && glib::uri_parse_scheme(text).is_some() {
        return Input {
            shown,
            uri: Ok(text.to_string()),
        };
    }
    let path = Path::new(text);
    let uri = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".to_string()),
        Err(e) => Err(e.to_string()),
        Ok(m) if m.is_dir() => Err("is a directory".to_string()),
        Ok(_) => std::path::absolute(path)
            .map_err(|e| e.to_string())
            .and_then(|abs| {
                glib::filename_to_uri(&abs, None)
                    .map(|u| u.to_string())
                    .map_err(|e| e.to_string())
            }),
    };
    Input { shown, uri }
}

fn read_list(list: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(list)
        .with_context(|| format!("cannot read the list {}", list.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the list {}", list.display()))?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

fn describe_error(e: &gst::message::Error) -> String {
    with_detail(&e.error(), e.debug())
}

fn describe_warning(w: &gst::message::Warning) -> String {
    with_detail(&w.error(), w.debug())
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
    fn frames(&self) -> Option<u64> {
        let rate = self.framerate.filter(|f| f.numer() > 0 && f.denom() > 0)?;
        let ns = self.duration?.nseconds() as u128;
        let frames = (ns * rate.numer() as u128 + rate.denom() as u128 * 500_000_000)
            / (rate.denom() as u128 * 1_000_000_000);
        u64::try_from(frames).ok().filter(|&f| f > 0)
    }
}

/// How long reading a video may take to give its first frame.
const DISCOVER_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(120);

/// The reason a pipeline did not start: the error it posted.
fn start_failure(bus: &gst::Bus) -> String {
    bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(e) => Some(describe_error(e)),
            _ => None,
        })
        .unwrap_or_else(|| "the pipeline cannot start".to_string())
}

/// Sets its pipeline to NULL when dropped.
struct Stopper(gst::Pipeline);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
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

/// The element's file-level answer.
struct Answer {
    labels: Vec<(String, f64)>,
    clips: u64,
    frames: Option<u64>,
    clip_stride: u32,
}

/// Progress and warnings of one video's run.
trait Report: Sync {
    fn clip(&self, video: &str, index: u64, expected: Option<u64>);
    fn warn(&self, text: String);
    fn note(&self, text: String);
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

fn classify(
    input: &Input,
    settings: &Settings,
    report: &dyn Report,
    verbose: bool,
) -> Result<Answer, String> {
    let uri = input.uri.clone()?;
    let shown = input.shown.as_str();
    let (frames, clip_stride) = if settings.clips == 0 {
        (None, 0)
    } else {
        let found = discover(&uri)?;
        match found.frames() {
            Some(frames) => (Some(frames), settings.clip_stride(frames, settings.clips)),
            None => {
                report.warn(format!(
                    "{shown}: duration or frame rate unknown; classifying consecutive clips over the whole video"
                ));
                (None, 0)
            }
        }
    };
    let expected = frames.map(|f| settings.expected_clips(f, clip_stride));
    if verbose {
        report.note(format!(
            "{shown}: {} frames, clips of {} frames every {} (span {}), clip-stride {} → {} clips",
            frames.map_or("unknown".into(), |f| f.to_string()),
            settings.clip_length,
            settings.frame_stride,
            settings.span(),
            if clip_stride == 0 {
                "from the model".to_string()
            } else {
                clip_stride.to_string()
            },
            expected.map_or("unknown".into(), |e| e.to_string()),
        ));
    }

    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|_| format!("the GStreamer element {factory} is missing"))
    };
    let pipeline = gst::Pipeline::new();
    let convert = make("videoconvert")?;
    let classifier = make("nonlocalclassify")?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()
        .map_err(|e| e.to_string())?;
    settings.apply(&classifier);
    classifier.set_property("clip-stride", clip_stride);
    pipeline
        .add_many([&convert, &classifier, &sink])
        .map_err(|e| e.to_string())?;
    gst::Element::link_many([&convert, &classifier, &sink]).map_err(|e| e.to_string())?;
    add_decoder(&pipeline, &uri, &convert).map_err(|e| e.to_string())?;
    let pipeline = Stopper(pipeline);
    let bus = pipeline.0.bus().ok_or("pipeline without bus")?;
    if pipeline.0.set_state(gst::State::Playing).is_err() {
        return Err(start_failure(&bus));
    }
    let mut summary = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => match e.structure() {
                Some(s) if s.name() == "nonlocalclassify" => {
                    if let Ok(index) = s.get::<u64>("clip-index") {
                        report.clip(shown, index, expected);
                    }
                }
                Some(s) if s.name() == "nonlocalclassify-summary" => {
                    summary = Some(summary_of(s)?);
                }
                _ => {}
            },
            gst::MessageView::Warning(w) => report.warn(describe_warning(w)),
            gst::MessageView::Error(e) => return Err(describe_error(e)),
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    let (labels, clips) =
        summary.ok_or("the stream ended without a nonlocalclassify-summary message")?;
    if clips == 0 {
        return Err(format!(
            "too short to classify: a clip needs at least {} decoded frames",
            settings.min_frames()
        ));
    }
    Ok(Answer {
        labels,
        clips,
        frames,
        clip_stride,
    })
}

/// Labels with their probability, serialised as a JSON object in rank order.
struct Ranked<'a>(&'a [(String, f64)]);

impl Serialize for Ranked<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, p) in self.0 {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    path: &'a str,
    labels: Ranked<'a>,
    clips: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clip_stride: Option<u32>,
}

fn render(answer: &Answer, shown: &str, output: Output, verbose: bool) -> String {
    match output {
        Output::Json => {
            let line = JsonLine {
                path: shown,
                labels: Ranked(&answer.labels),
                clips: answer.clips,
                frames: verbose.then_some(answer.frames),
                clip_stride: verbose.then_some(answer.clip_stride),
            };
            serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }
        Output::Text => {
            let mut text = format!(
                "{shown}  ({} clip{})\n  probability  label\n",
                answer.clips,
                if answer.clips == 1 { "" } else { "s" }
            );
            for (label, p) in &answer.labels {
                let _ = writeln!(text, "  {p:>11.4}  {label}");
            }
            text
        }
    }
}

struct BarReport {
    bar: ProgressBar,
    warned: Mutex<HashSet<String>>,
}

impl Report for BarReport {
    fn clip(&self, video: &str, index: u64, expected: Option<u64>) {
        let name = Path::new(video)
            .file_name()
            .map_or(video.into(), |n| n.to_string_lossy());
        let of = expected.map_or(String::new(), |e| format!("/{e}"));
        self.bar
            .set_message(format!("{name}: clip {}{of}", index + 1));
    }

    fn warn(&self, text: String) {
        let new = self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(text.clone());
        if new {
            self.bar.suspend(|| eprintln!("warning: {text}"));
        }
    }

    fn note(&self, text: String) {
        self.bar.suspend(|| eprintln!("{text}"));
    }
}

struct Setup {
    settings: Settings,
    /// Holds the classifier that keeps the model open.
    keeper: gst::Pipeline,
    inputs: Vec<Input>,
    /// What the element warned about when it opened the model.
    warnings: Vec<String>,
}

fn setup(args: &Args) -> anyhow::Result<Setup> {
    let mut names = args.videos.clone();
    names.extend(args.input_path.iter().cloned());
    for list in &args.input_file {
        names.extend(read_list(list)?);
    }
    if names.is_empty() {
        bail!("no videos given: the input files list none");
    }
    let model = find_model(args.model.clone())?;
    gst::init().context("GStreamer cannot be initialised")?;
    gstnonlocal::plugin_register_static().context("the nonlocal plugin cannot be registered")?;
    let provider = if args.use_gpu {
        Provider::Cuda
    } else {
        args.provider
    };
    let mut settings = Settings {
        model,
        labels: args.labels.clone(),
        provider,
        device_id: args.device_id,
        top_k: args.top_k,
        crops: args.crops,
        clips: args.clips,
        clip_length: 0,
        frame_stride: 0,
    };

    // Open the model once in an element kept in READY: its errors (missing file, no CUDA, bad
    // labels) are reported before any video, and every pipeline shares its ONNX Runtime session.
    let keeper = gst::Pipeline::new();
    let element = gst::ElementFactory::make("nonlocalclassify").build()?;
    settings.apply(&element);
    keeper.add(&element)?;
    let bus = keeper
        .bus()
        .ok_or_else(|| anyhow!("pipeline without bus"))?;
    let started = keeper.set_state(gst::State::Ready);
    let mut warnings = Vec::new();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => bail!("{}", describe_error(e)),
            gst::MessageView::Warning(w) => warnings.push(describe_warning(w)),
            _ => {}
        }
    }
    if started.is_err() {
        bail!(
            "the classifier cannot start with {}",
            settings.model.display()
        );
    }
    let engine = SharedEngine::local(&settings.model, provider.choice(), args.device_id, 0)?;
    let config = ClipConfig::resolve(&engine.metadata, &engine.io, Overrides::default())
        .with_context(|| format!("model {}", settings.model.display()))?;
    settings.clip_length = config.clip_length.max(1);
    settings.frame_stride = config.frame_stride.max(1);

    Ok(Setup {
        settings,
        keeper,
        inputs: names.iter().map(|n| to_input(n)).collect(),
        warnings,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.videos.is_empty() && args.input_path.is_empty() && args.input_file.is_empty() {
        Args::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "no videos given: pass paths, --input-path PATH or --input-file LIST",
            )
            .exit();
    }
    let Setup {
        settings,
        keeper,
        inputs,
        warnings,
    } = match setup(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(inputs.len() as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} videos  {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    let report = BarReport {
        bar: bar.clone(),
        warned: Mutex::default(),
    };
    // The model's warnings (random weights, no CUDA) come again from every pipeline: once is enough.
    for w in warnings {
        report.warn(w);
    }

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut failed = 0usize;
    std::thread::scope(|scope| {
        for _ in 0..(args.jobs as usize).min(inputs.len()) {
            let tx = tx.clone();
            let (next, inputs, settings, report) = (&next, &inputs, &settings, &report);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(input) = inputs.get(i) else { break };
                let outcome = classify(input, settings, report, args.verbose);
                if tx.send((i, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Print in input order as results arrive.
        let mut pending = BTreeMap::new();
        let mut shown = 0usize;
        let stdout = std::io::stdout();
        for (i, outcome) in rx {
            pending.insert(i, outcome);
            while let Some(outcome) = pending.remove(&shown) {
                let input = &inputs[shown];
                bar.suspend(|| match outcome {
                    Ok(answer) => {
                        let mut out = stdout.lock();
                        let _ = writeln!(
                            out,
                            "{}",
                            render(&answer, &input.shown, args.output, args.verbose)
                                .trim_end_matches('\n')
                        );
                        if args.output == Output::Text && shown + 1 < inputs.len() {
                            let _ = writeln!(out);
                        }
                        let _ = out.flush();
                    }
                    Err(reason) => {
                        failed += 1;
                        eprintln!("error: {}: {reason}", input.shown);
                    }
                });
                bar.inc(1);
                shown += 1;
            }
        }
    });
    bar.finish_and_clear();
    let _ = keeper.set_state(gst::State::Null);
    if failed > 0 {
        eprintln!(
            "{failed} of {} video{} could not be classified",
            inputs.len(),
            if inputs.len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
