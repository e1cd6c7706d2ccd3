//! The command line: every option, its help, and the parsers of values clap does not know.
//! Defaults and ranges of the options that set an element property are the element's own
//! (`gstnonlocal::nonlocalclassify::settings`), so the two cannot drift.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::RangedI64ValueParser;
use clap::{CommandFactory, Parser, ValueEnum};
use gstnonlocal::nonlocalclassify::settings::{engine, objects, output, server, Range};
use gstnonlocal::nonlocalclassify::{Crops, ExecutionProvider, Regions};

use crate::output::Shown;
use crate::timeline;

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

Who is doing what: --regions objects classifies each object (person) on its own, in a square
cropped around its box, with its own clips, results, segments and summary. The boxes come from
--boxes FILE, one per video in the order of the videos: MOT-challenge text, one box a line,
'frame,id,x,y,w,h[,conf,...]' (frames from 1 in decoding order, pixels of the decoded frame,
id -1: no identity, the element associates such boxes itself; further columns are ignored), or
from --detector MODEL.onnx run by GStreamer's own onnxinference and SSD decoder (GStreamer 1.26
or newer; ioutracker, 1.28, tracks them when present). Either implies --regions objects. Each
answer names its object: 'person ID' with its last box (x,y,w,h) in the table, \"object_id\" and
\"box\" in JSON, CSV and timelines. Needs GStreamer 1.24 or newer (GstAnalytics).

PaddleHub spellings: --input_path, --input_file and --use_gpu [True|False] work as in 'hub run'.

Errors: a video that cannot be read or classified prints 'error: PATH: reason' on stderr; the
others are still classified, and the exit status is 1. Results come in input order.";

/// Classify videos into Kinetics-400 actions with the nonlocalclassify GStreamer element
#[derive(Parser, Debug)]
#[command(name = "nonlocal-classify", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Videos to classify (paths or URIs)
    #[arg(value_name = "VIDEO")]
    pub videos: Vec<String>,

    /// A video to classify (path or URI); repeatable
    #[arg(long = "input-path", alias = "input_path", value_name = "PATH")]
    pub input_path: Vec<String>,

    /// A file listing videos, one path or URI per line ('#' comments and blank lines skipped);
    /// repeatable
    #[arg(long = "input-file", alias = "input_file", value_name = "LIST")]
    pub input_file: Vec<PathBuf>,

    /// ONNX model [default: $NONLOCAL_MODEL, else the output of tools/default-model]
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,

    /// Label file, one label per line [default: from the model]
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Run on the GPU (the element's execution-provider=cuda); fails if CUDA is unavailable.
    /// `--use-gpu=false` (or PaddleHub's `--use_gpu False`) runs on the CPU
    #[arg(long = "use-gpu", alias = "use_gpu", conflicts_with = "provider", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL",
          value_parser = parse_bool)]
    pub use_gpu: Option<bool>,

    /// Where inference runs: cpu (ONNX Runtime's CPU provider), openvino (OpenVINO's, on the
    /// CPU; needs ONNX Runtime's OpenVINO build, which tools/install-prereqs installs), cuda, or
    /// auto (CUDA, else OpenVINO, else cpu)
    // The CPU, not the element's default (auto): like `hub run` without --use_gpu, the program
    // takes a GPU only when asked to.
    #[arg(long, value_enum, default_value_t = ExecutionProvider::Cpu)]
    pub provider: ExecutionProvider,

    /// CUDA device
    #[arg(long, value_name = "N", default_value_t = engine::DEVICE_ID.default,
          value_parser = within(engine::DEVICE_ID))]
    pub device_id: i32,

    /// Labels reported per video
    #[arg(long, value_name = "N", default_value_t = output::TOP_K.default,
          value_parser = within(output::TOP_K))]
    pub top_k: u32,

    /// Crops per clip: center, or three along the long side with scores averaged
    #[arg(long, value_enum, default_value_t = Crops::default())]
    pub crops: Crops,

    /// Clips per video, spread evenly over it (0 = consecutive clips over the whole video)
    /// [default: 10; 0 with --timeline or --output csv]
    #[arg(long, value_name = "N")]
    pub clips: Option<u32>,

    /// Sample clips by time at this frame rate (the element's clip-fps: 0 = the model's
    /// clip.fps, -1 = count decoded frames)
    #[arg(long, value_name = "FPS", allow_hyphen_values = true, value_parser = parse_fps)]
    pub clip_fps: Option<gst::Fraction>,

    /// Output format: the file-level answer as a table or JSON lines, or every clip as CSV
    #[arg(long, value_enum)]
    pub output: Option<Output>,

    /// Print each video's action segments instead (JSON lines, WebVTT or SubRip)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub timeline: Option<timeline::Format>,

    /// Write each video's timeline to DIR/<video name>.jsonl|vtt|srt instead of stdout
    #[arg(long, value_name = "DIR", requires = "timeline")]
    pub timeline_dir: Option<PathBuf>,

    /// Consecutive clips a new label must lead for before a segment changes (segment-hysteresis)
    #[arg(long, value_name = "N", default_value_t = output::SEGMENT_HYSTERESIS.default,
          value_parser = within(output::SEGMENT_HYSTERESIS))]
    pub hysteresis: u32,

    /// How much higher a new label's score must be to lead (segment-margin, 0 to 1)
    #[arg(long, value_name = "SCORE", default_value_t = output::SEGMENT_MARGIN.default,
          value_parser = parse_margin)]
    pub margin: f64,

    /// What clips show: the whole frame, or each object boxed by --boxes or --detector, cropped
    /// and classified on its own [default: objects with --boxes or --detector, else frame]
    #[arg(long, value_enum)]
    pub regions: Option<Regions>,

    /// The boxes of a video's objects, MOT-challenge text (frame,id,x,y,w,h[,conf,...]; see
    /// below); repeatable, one per video in the order of the videos
    #[arg(long, value_name = "FILE", conflicts_with = "detector")]
    pub boxes: Vec<PathBuf>,

    /// Find the objects with this ONNX detector: onnxinference ! ssdobjectdetector (GStreamer
    /// 1.26 or newer; see docs/analytics.md for the outputs it reads) ! ioutracker if present
    #[arg(long, value_name = "MODEL")]
    pub detector: Option<PathBuf>,

    /// The detector's class names, one a line (the SSD decoder's label-file)
    #[arg(long, value_name = "FILE", requires = "detector")]
    pub detector_labels: Option<PathBuf>,

    /// Only these object types are objects, separated by commas (e.g. person; the element's
    /// object-types) [default: every type]
    #[arg(long, value_name = "TYPES")]
    pub object_types: Option<String>,

    /// Milliseconds an object may go without a box before its track ends (track-timeout)
    #[arg(long, value_name = "MS", default_value_t = objects::TRACK_TIMEOUT.default,
          value_parser = within(objects::TRACK_TIMEOUT))]
    pub track_timeout: u32,

    /// Objects classified at once per video; further ones are dropped (max-objects)
    #[arg(long, value_name = "N", default_value_t = objects::MAX_OBJECTS.default,
          value_parser = within(objects::MAX_OBJECTS))]
    pub max_objects: u32,

    /// Videos classified at once (each in its own pipeline; the model is loaded once)
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,

    /// Write each clip's model input, exactly as the classifier packs it for the model, as
    /// DIR/<video name>/clip-NNNNNN.npy (the element's dump-inputs; for calibrating int8 models)
    #[arg(long, value_name = "DIR")]
    pub dump_inputs: Option<PathBuf>,

    /// Print each video's frame count and clip stride (stderr; JSON: "frames", "clip_stride")
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Classify on KServe v2 gRPC inference servers (Triton) instead of in this process:
    /// host:port, several separated by commas (the element's 'server')
    #[arg(long, value_name = "ADDRESSES")]
    pub server: Option<String>,

    /// The model's name on the servers [default: the stem of --model]
    #[arg(long, value_name = "NAME", requires = "server")]
    pub server_model: Option<String>,

    /// Milliseconds a batch may wait for the servers (the element's 'server-timeout')
    #[arg(long, value_name = "MS", default_value_t = server::SERVER_TIMEOUT.default,
          requires = "server", value_parser = within(server::SERVER_TIMEOUT))]
    pub server_timeout: u32,

    /// Batches in flight to the servers at once (the element's 'server-requests')
    #[arg(long, value_name = "N", default_value_t = server::SERVER_REQUESTS.default,
          requires = "server", value_parser = within(server::SERVER_REQUESTS))]
    pub server_requests: u32,

    /// PEM file of the CA of the servers' TLS certificates (turns TLS on)
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_ca: Option<PathBuf>,

    /// PEM files of a client certificate and its key (mutual TLS)
    #[arg(long, value_name = "FILE", requires_all = ["server", "server_key"])]
    pub server_cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires_all = ["server", "server_cert"])]
    pub server_key: Option<PathBuf>,

    /// File holding a bearer token for the servers (read once; never printed)
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
    Csv,
}

impl Args {
    /// The program's command line, and where its answers go. Exits with a usage error (status 2)
    /// when it names no video, or when --timeline and --output would both print on stdout.
    pub fn from_command_line() -> (Args, Shown) {
        let args = Args::parse_from(join_use_gpu(std::env::args_os()));
        if args.videos.is_empty() && args.input_path.is_empty() && args.input_file.is_empty() {
            Args::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "no videos given: pass paths, --input-path PATH or --input-file LIST",
                )
                .exit();
        }
        if let Err(text) = args.check_regions() {
            Args::command()
                .error(clap::error::ErrorKind::ArgumentConflict, text)
                .exit();
        }
        let shown = match (args.timeline, &args.timeline_dir, args.output) {
            (Some(_), None, Some(_)) => Args::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--timeline prints the timeline on stdout, so --output has nowhere to go: drop one, or write timelines into files with --timeline-dir DIR",
                )
                .exit(),
            (Some(format), None, None) => Shown::Timeline(format),
            (_, _, output) => Shown::Answer(output.unwrap_or(Output::Text)),
        };
        (args, shown)
    }

    /// The execution provider asked for: `--use-gpu[=BOOL]`, else `--provider`.
    pub fn provider(&self) -> ExecutionProvider {
        match self.use_gpu {
            Some(true) => ExecutionProvider::Cuda,
            Some(false) => ExecutionProvider::Cpu,
            None => self.provider,
        }
    }

    /// Clips per video: `--clips`, else the reference protocol's 10, or 0 (consecutive clips over
    /// the whole video, or over each object's track) when every clip is printed (a timeline or
    /// CSV) or in objects mode.
    pub fn clips(&self) -> u32 {
        let per_clip = self.timeline.is_some()
            || self.output == Some(Output::Csv)
            || self.regions() == Regions::Objects;
        self.clips.unwrap_or(if per_clip { 0 } else { 10 })
    }

    /// `--regions`, else objects when boxes or a detector are given.
    pub fn regions(&self) -> Regions {
        match self.regions {
            Some(regions) => regions,
            None if !self.boxes.is_empty() || self.detector.is_some() => Regions::Objects,
            None => Regions::Frame,
        }
    }

    /// Boxes or a detector go with objects mode, and objects mode needs one of them.
    fn check_regions(&self) -> Result<(), &'static str> {
        let boxed = !self.boxes.is_empty() || self.detector.is_some();
        match (self.regions, boxed) {
            (Some(Regions::Frame), true) => Err(
                "--boxes and --detector give objects to classify, but --regions frame classifies the whole frame: drop --regions frame (or pass --regions objects)",
            ),
            (Some(Regions::Objects), false) => Err(
                "--regions objects needs the objects' boxes: pass --boxes FILE (MOT text, one per video) or --detector MODEL.onnx",
            ),
            _ => Ok(()),
        }
    }
}

/// The values an element property takes, for an integer option that sets it.
fn within<T>(range: Range<T>) -> RangedI64ValueParser<T>
where
    T: Into<i64> + TryFrom<i64> + Clone + Send + Sync + 'static,
{
    RangedI64ValueParser::new().range(range.min.into()..=range.max.into())
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
fn join_use_gpu(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
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

/// A score margin in the element's range for segment-margin.
fn parse_margin(text: &str) -> Result<f64, String> {
    let range = output::SEGMENT_MARGIN;
    text.parse::<f64>()
        .ok()
        .filter(|m| (range.min..=range.max).contains(m))
        .ok_or_else(|| {
            format!(
                "'{text}' is not a score margin from {} to {}",
                range.min, range.max
            )
        })
}
