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
//!
//! Objects mode (`--regions objects`, GStreamer 1.24+): each object boxed by `--boxes FILE` (MOT
//! text, attached to the decoded frames as GstAnalytics object detections) or found by
//! `--detector MODEL.onnx` (GStreamer's detector chain before the classifier) gets its own
//! answer, named by its id and box, and its own timeline cues.
//!
//! The program by concern: `args` (the options and `--help`), `inputs` (the videos named),
//! `boxes` (MOT boxes files), `objects` (where each video's objects come from),
//! `settings` (the element's properties, the model opened once) with `remote` (the `--server*`
//! options), `clips` (the clip-stride for N clips), `pipeline` (one video's pipelines and the
//! `--jobs` threads), `output` (table, JSON lines, CSV, timeline files; the exit status) with
//! `timeline` (segments as JSON lines, WebVTT, SubRip), `progress` (the bar and warnings), and
//! `common` (model lookup and error text, shared with examples/live.rs).

mod args;
mod boxes;
mod clips;
mod common;
mod inputs;
mod objects;
mod output;
mod pipeline;
mod progress;
mod remote;
mod settings;
mod timeline;

use std::process::ExitCode;

use args::Args;
use output::{Printer, Shown};
use progress::{BarReport, Report};
use settings::Opened;

fn main() -> ExitCode {
    let (args, shown) = Args::from_command_line();
    match run(&args, shown) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Classify every video, printing each answer in input order as it comes; an error when the
/// videos, the model or the timeline files cannot be had at all.
fn run(args: &Args, shown: Shown) -> anyhow::Result<ExitCode> {
    let inputs = inputs::gather(args)?;
    let Opened {
        settings,
        keeper,
        warnings,
    } = settings::open(args)?;
    let mut printer = Printer::new(args, shown, &inputs)?;
    let report = BarReport::new(inputs.len());
    // The model's warnings (random weights, no CUDA) come again from every pipeline: once is enough.
    for w in warnings {
        report.warn(w);
    }
    pipeline::classify_all(
        &inputs,
        &settings,
        &report,
        args.jobs,
        args.verbose,
        |i, outcome| {
            report.bar.suspend(|| printer.show(i, &inputs[i], outcome));
            report.bar.inc(1);
        },
    );
    report.bar.finish_and_clear();
    // The model stays open until the last video is done.
    drop(keeper);
    Ok(printer.finish())
}
