//! `nonlocal-classify`: classify video files into Kinetics-400 actions with the
//! `nonlocalclassify` element: one command for what `hub run nonlocal_kinetics400 --input_path
//! VIDEO` / `--input_file LIST` did, plus what happens when (`--timeline`, docs/timeline.md).
//!
//! Every video runs through its own pipeline,
//! `uridecodebin uri=… ! videoconvert ! nonlocalclassify … ! fakesink`, and its answer is the
//! element's `nonlocalclassify-summary` message (the scores averaged over every clip), printed as
//! a table or as one JSON object per line, `{"path": …, "labels": {label: probability, …}, …}`;
//! or its `nonlocalclassify-segment` messages as a timeline (JSON lines, WebVTT, SubRip); or its
//! per-clip `nonlocalclassify` messages as CSV.
//!
//! ```text
//! nonlocal-classify tests/data/arm_wrestling.mp4
//! nonlocal-classify --input-file list.txt --output json --jobs 2
//! nonlocal-classify --timeline vtt long_video.mp4 > long_video.vtt
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
//! video (the default of `--timeline` and `--output csv`). When the duration or frame rate is
//! unknown, the element's default is used too (with a warning). When the element samples by time
//! (the model's `clip.fps` or `--clip-fps`), frames are model frames: F = duration × that rate.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

mod common;
mod timeline;
use anyhow::{anyhow, bail, Context};
use clap::{CommandFactory, Parser, ValueEnum};
use common::{find_model, with_detail};
use gst::glib;
use gst::prelude::*;
use gstnonlocal::segments::Segment;
use gstnonlocal::ClipResult;
use indicatif::{ProgressBar, ProgressStyle};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

const AFTER_HELP: &str = "\
Inputs: paths or URIs (file://, http://, … anything uridecodebin reads), as arguments, with
--input-path, or listed in --input-file (one per line; blank lines and lines starting with '#'
are skipped; relative paths are taken from the current directory). Any container and codec
GStreamer can decode is accepted.

Model: --model, else the NONLOCAL_MODEL environment variable, else the project's default model
(tools/default-model, exported once into .cache/models). With --server ADDRESSES the clips are
classified by KServe v2 gRPC inference servers (Triton) running the model named --server-model
(default: the stem of --model), e.g. one served by tools/triton-serve.

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
(with --verbose also \"frames\", the estimated frame count, and \"clip_stride\"). 'csv' prints
every clip instead: path,clip,start,end,rank,label,score (seconds of stream time, one row per
reported label).

Timeline: --timeline json|vtt|srt prints the video's action segments instead (the element's
nonlocalclassify-segment messages): one JSON object per segment and line, or WebVTT / SubRip
subtitles ('mpv --sub-file=video.vtt video.mp4' shows them). With --timeline-dir DIR each video's
timeline is written to DIR/<name>.jsonl|vtt|srt and stdout keeps --output. A new label must lead
for --hysteresis clips (by more than --margin) before a segment changes.

PaddleHub spellings: --input_path, --input_file and --use_gpu [True|False] work as in 'hub run'.

Errors: a video that cannot be read or classified prints 'error: PATH: reason' on stderr; the
others are still classified, and the exit status is 1. Results come in input order.";

#[derive(Parser, Debug)]
#[command(
    name = "nonlocal-classify",
    version,
    about = "Classify videos into Kinetics-400 actions with the nonlocalclassify GStreamer element",
    after_help = AFTER_HELP
)]
struct Args {
    /// Videos to classify (paths or URIs)
    #[arg(value_name = "VIDEO")]
    videos: Vec<String>,

    /// A video to classify (path or URI); repeatable
    #[arg(long = "input-path", alias = "input_path", value_name = "PATH")]
    input_path: Vec<String>,

    /// A file listing videos, one path or URI per line ('#' comments and blank lines skipped);
    /// repeatable
    #[arg(long = "input-file", alias = "input_file", value_name = "LIST")]
    input_file: Vec<PathBuf>,

    /// ONNX model [default: $NONLOCAL_MODEL, else the output of tools/default-model]
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Label file, one label per line [default: from the model]
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,

    /// Run on the GPU (the element's execution-provider=cuda); fails if CUDA is unavailable.
    /// `--use-gpu=false` (or PaddleHub's `--use_gpu False`) runs on the CPU
    #[arg(long = "use-gpu", alias = "use_gpu", conflicts_with = "provider", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_bool)]
    use_gpu: Option<bool>,

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
    /// [default: 10; 0 with --timeline or --output csv]
    #[arg(long, value_name = "N")]
    clips: Option<u32>,

    /// Sample clips by time at this frame rate (the element's clip-fps: 0 = the model's
    /// clip.fps, -1 = count decoded frames)
    #[arg(long, value_name = "FPS", allow_hyphen_values = true, value_parser = parse_fps)]
    clip_fps: Option<gst::Fraction>,

    /// Output format: the file-level answer as a table or JSON lines, or every clip as CSV
    #[arg(long, value_enum)]
    output: Option<Output>,

    /// Print each video's action segments instead (JSON lines, WebVTT or SubRip)
    #[arg(long, value_enum, value_name = "FORMAT")]
    timeline: Option<timeline::Format>,

    /// Write each video's timeline to DIR/<video name>.jsonl|vtt|srt instead of stdout
    #[arg(long, value_name = "DIR", requires = "timeline")]
    timeline_dir: Option<PathBuf>,

    /// Consecutive clips a new label must lead for before a segment changes (segment-hysteresis)
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    hysteresis: u32,

    /// How much higher a new label's score must be to lead (segment-margin, 0 to 1)
    #[arg(long, value_name = "SCORE", default_value_t = 0.0, value_parser = parse_margin)]
    margin: f64,

    /// Videos classified at once (each in its own pipeline; the model is loaded once)
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,

    /// Print each video's frame count and clip stride (stderr; JSON: "frames", "clip_stride")
    #[arg(long, short = 'v')]
    verbose: bool,

    /// Classify on KServe v2 gRPC inference servers (Triton) instead of in this process:
    /// host:port, several separated by commas (the element's 'server')
    #[arg(long, value_name = "ADDRESSES")]
    server: Option<String>,

    /// The model's name on the servers [default: the stem of --model]
    #[arg(long, value_name = "NAME", requires = "server")]
    server_model: Option<String>,

    /// Milliseconds a batch may wait for the servers (the element's 'server-timeout')
    #[arg(long, value_name = "MS", default_value_t = 10_000, requires = "server",
          value_parser = clap::value_parser!(u32).range(1..))]
    server_timeout: u32,

    /// Batches in flight to the servers at once (the element's 'server-requests')
    #[arg(long, value_name = "N", default_value_t = 4, requires = "server",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    server_requests: u32,

    /// PEM file of the CA of the servers' TLS certificates (turns TLS on)
    #[arg(long, value_name = "FILE", requires = "server")]
    server_ca: Option<PathBuf>,

    /// PEM files of a client certificate and its key (mutual TLS)
    #[arg(long, value_name = "FILE", requires_all = ["server", "server_key"])]
    server_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires_all = ["server", "server_cert"])]
    server_key: Option<PathBuf>,

    /// File holding a bearer token for the servers (read once; never printed)
    #[arg(long, value_name = "FILE", requires = "server")]
    server_token_file: Option<PathBuf>,
}

/// The element's `server*` properties, when classifying on inference servers.
struct Remote {
    server: String,
    model: String,
    timeout_ms: u32,
    requests: u32,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    token: Option<String>,
}

impl Remote {
    fn from_args(args: &Args) -> anyhow::Result<Option<Remote>> {
        let Some(server) = args.server.clone() else {
            return Ok(None);
        };
        let model = match (&args.server_model, &args.model) {
            (Some(name), _) => name.clone(),
            (None, Some(file)) => file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, None) => {
                bail!("--server needs --server-model NAME (the model's name on the servers)")
            }
        };
        let token = match &args.server_token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("--server-token-file {}", file.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Some(Remote {
            server,
            model,
            timeout_ms: args.server_timeout,
            requests: args.server_requests,
            ca: args.server_ca.clone(),
            cert: args.server_cert.clone(),
            key: args.server_key.clone(),
            token,
        }))
    }

    fn apply(&self, element: &gst::Element) {
        element.set_property("server", &self.server);
        element.set_property("server-model", &self.model);
        element.set_property("server-timeout", self.timeout_ms);
        element.set_property("server-requests", self.requests);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        element.set_property("server-ca", path(&self.ca));
        element.set_property("server-cert", path(&self.cert));
        element.set_property("server-key", path(&self.key));
        element.set_property("server-token", self.token.as_deref());
    }
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
    Csv,
}

/// `true`/`false` as PaddleHub's `--use_gpu` takes them (Python's True and False too).
fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("'{text}' is not true or false")),
    }
}

/// `--use_gpu True` (PaddleHub) becomes `--use-gpu=True`, so that `--use-gpu VIDEO` still takes
/// VIDEO as a video.
fn join_use_gpu(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for arg in args {
        let joined = match out.last().and_then(|l| l.to_str()) {
            Some(flag @ ("--use_gpu" | "--use-gpu")) => arg
                .to_str()
                .filter(|v| parse_bool(v).is_ok())
                .map(|v| format!("{flag}={v}")),
            _ => None,
        };
        match joined {
            Some(j) => *out.last_mut().expect("a flag before") = j.into(),
            None => out.push(arg),
        }
    }
    out
}

fn parse_fps(text: &str) -> Result<gst::Fraction, String> {
    let bad =
        || format!("'{text}' is not a frame rate: give e.g. 25, 29.97 or 30000/1001, 0 or -1");
    match text.trim() {
        "0" => return Ok(gst::Fraction::new(0, 1)),
        "-1" => return Ok(gst::Fraction::new(-1, 1)),
        _ => {}
    }
    let rate = gstnonlocal::sampling::Rate::parse(text).ok_or_else(bad)?;
    let num = i32::try_from(rate.num).map_err(|_| bad())?;
    let den = i32::try_from(rate.den).map_err(|_| bad())?;
    Ok(gst::Fraction::new(num, den))
}

fn parse_margin(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|m| (0.0..=1.0).contains(m))
        .ok_or_else(|| format!("'{text}' is not a score margin from 0 to 1"))
}

impl Provider {
    fn nick(self) -> &'static str {
        match self {
            Provider::Auto => "auto",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
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
    clip_fps: Option<gst::Fraction>,
    hysteresis: u32,
    margin: f64,
    /// Frames per clip and the step between them, as the element resolves them from the model.
    clip_length: u32,
    frame_stride: u32,
    /// The rate the element samples at (its model-info), `None` by frame count.
    sampling_rate: Option<gst::Fraction>,
    remote: Option<Remote>,
}

impl Settings {
    fn apply(&self, element: &gst::Element) {
        if let Some(remote) = &self.remote {
            remote.apply(element);
        } else {
            element.set_property("model", self.model.to_string_lossy().as_ref());
        }
        if let Some(labels) = &self.labels {
            element.set_property("labels", labels.to_string_lossy().as_ref());
        }
        element.set_property_from_str("execution-provider", self.provider.nick());
        element.set_property("device-id", self.device_id);
        element.set_property("top-k", self.top_k);
        element.set_property_from_str("crops", self.crops.nick());
        if let Some(fps) = self.clip_fps {
            element.set_property("clip-fps", fps);
        }
        element.set_property("segment-hysteresis", self.hysteresis);
        element.set_property("segment-margin", self.margin);
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

/// The element's file-level answer, its clips and its segments.
struct Answer {
    labels: Vec<(String, f64)>,
    clips: u64,
    frames: Option<u64>,
    clip_stride: u32,
    results: Vec<ClipResult>,
    segments: Vec<Segment>,
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
        match found.frames(settings.sampling_rate) {
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
    let (mut results, mut segments) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => match e.structure() {
                Some(s) if s.name() == "nonlocalclassify" => {
                    if let Some(result) = ClipResult::from_structure(s) {
                        report.clip(shown, result.clip_index, expected);
                        results.push(result);
                    }
                }
                Some(s) if s.name() == "nonlocalclassify-segment" => {
                    segments.extend(Segment::from_structure(s));
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
        results,
        segments,
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
        Output::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            for result in &answer.results {
                for row in timeline::csv_rows(shown, result) {
                    let _ = writer.write_record(&row);
                }
            }
            writer
                .into_inner()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        }
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
    let remote = Remote::from_args(args)?;
    let model = match &remote {
        Some(r) => args
            .model
            .clone()
            .unwrap_or_else(|| PathBuf::from(&r.model)),
        None => find_model(args.model.clone())?,
    };
    gst::init().context("GStreamer cannot be initialised")?;
    gstnonlocal::plugin_register_static().context("the nonlocal plugin cannot be registered")?;
    let provider = match args.use_gpu {
        Some(true) => Provider::Cuda,
        Some(false) => Provider::Cpu,
        None => args.provider,
    };
    let per_clip = args.timeline.is_some() || args.output == Some(Output::Csv);
    let mut settings = Settings {
        model,
        labels: args.labels.clone(),
        provider,
        device_id: args.device_id,
        top_k: args.top_k,
        crops: args.crops,
        clips: args.clips.unwrap_or(if per_clip { 0 } else { 10 }),
        clip_fps: args.clip_fps,
        hysteresis: args.hysteresis,
        margin: args.margin,
        clip_length: 0,
        frame_stride: 0,
        sampling_rate: None,
        remote,
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
    // The clip settings the element resolved from the model and the properties.
    let info = element
        .property::<Option<gst::Structure>>("model-info")
        .ok_or_else(|| anyhow!("the classifier did not report its clip settings"))?;
    let field = |name: &str| {
        info.get::<u32>(name)
            .with_context(|| format!("the classifier's model-info has no '{name}'"))
    };
    settings.clip_length = field("clip-length")?.max(1);
    settings.frame_stride = field("frame-stride")?.max(1);
    settings.sampling_rate = info
        .get::<gst::Fraction>("clip-fps")
        .ok()
        .filter(|f| f.numer() > 0);

    Ok(Setup {
        settings,
        keeper,
        inputs: names.iter().map(|n| to_input(n)).collect(),
        warnings,
    })
}

/// Where each video's answer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// `--output` on stdout (and the timeline into `--timeline-dir`, if any).
    Answer(Output),
    /// The timeline on stdout.
    Timeline(timeline::Format),
}

fn main() -> ExitCode {
    let args = Args::parse_from(join_use_gpu(std::env::args_os()));
    if args.videos.is_empty() && args.input_path.is_empty() && args.input_file.is_empty() {
        Args::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "no videos given: pass paths, --input-path PATH or --input-file LIST",
            )
            .exit();
    }
    let shown_as = match (args.timeline, &args.timeline_dir, args.output) {
        (Some(_), None, Some(_)) => Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--timeline prints the timeline on stdout, so --output has nowhere to go: drop one, or write timelines into files with --timeline-dir DIR",
            )
            .exit(),
        (Some(format), None, None) => Shown::Timeline(format),
        (_, _, output) => Shown::Answer(output.unwrap_or(Output::Text)),
    };
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
    let timeline_files = match timeline_files(&args, &inputs, shown_as) {
        Ok(files) => files,
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
                        if let (Some(path), Some(format)) =
                            (timeline_files.get(shown), args.timeline)
                        {
                            let text = timeline::render(&input.shown, &answer.segments, format);
                            if let Err(e) = std::fs::write(path, text) {
                                failed += 1;
                                eprintln!("error: {}: cannot write it: {e}", path.display());
                            }
                        }
                        let mut out = stdout.lock();
                        match shown_as {
                            // Subtitles as they are written to a file, blank line after the
                            // last cue included.
                            Shown::Timeline(format) => {
                                let text = timeline::render(&input.shown, &answer.segments, format);
                                let _ = out.write_all(text.as_bytes());
                            }
                            Shown::Answer(output) => {
                                if output == Output::Csv && shown == 0 {
                                    let _ = writeln!(out, "{}", timeline::CSV_HEADER.join(","));
                                }
                                let text = render(&answer, &input.shown, output, args.verbose);
                                let text = text.trim_end_matches('\n');
                                if !text.is_empty() {
                                    let _ = writeln!(out, "{text}");
                                }
                            }
                        }
                        if shown_as == Shown::Answer(Output::Text) && shown + 1 < inputs.len() {
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

/// The file each video's timeline goes to with `--timeline-dir` (none without it). Subtitles of
/// several videos cannot share stdout.
fn timeline_files(args: &Args, inputs: &[Input], shown: Shown) -> anyhow::Result<Vec<PathBuf>> {
    let (Some(format), Some(dir)) = (args.timeline, &args.timeline_dir) else {
        if matches!(shown, Shown::Timeline(f) if f != timeline::Format::Json) && inputs.len() > 1 {
            bail!(
                "--timeline {} with {} videos: subtitles are one file per video; pass --timeline-dir DIR",
                args.timeline.map_or("", |f| f.extension()),
                inputs.len()
            );
        }
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the timeline directory {}", dir.display()))?;
    let mut seen = HashSet::new();
    inputs
        .iter()
        .map(|input| {
            let name = input
                .shown
                .rsplit(['/', '\\'])
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("video");
            let stem = Path::new(name)
                .file_stem()
                .map_or(name.into(), |s| s.to_string_lossy());
            let path = dir.join(format!("{stem}.{}", format.extension()));
            if !seen.insert(path.clone()) {
                bail!(
                    "two videos would write {}: give them different names or classify them separately",
                    path.display()
                );
            }
            Ok(path)
        })
        .collect()
}
