//! The answers on stdout, in input order: a table, JSON lines or per-clip CSV (`--output`), or a
//! timeline (`--timeline`, written by timeline.rs) on stdout or one file per video
//! (`--timeline-dir`); failures on stderr, counted for the exit status.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::args::{Args, Output};
use crate::inputs::{per_video, Input};
use crate::pipeline::Answer;
use crate::timeline;

/// Where each video's answer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// `--output` on stdout (and the timeline into `--timeline-dir`, if any).
    Answer(Output),
    /// The timeline on stdout.
    Timeline(timeline::Format),
}

/// Prints each video's answer as it comes, in input order, and counts those that failed.
pub struct Printer {
    shown: Shown,
    /// `--timeline`, and with `--timeline-dir` the file of each video's timeline.
    timeline: Option<timeline::Format>,
    files: Vec<PathBuf>,
    verbose: bool,
    videos: usize,
    failed: usize,
}

impl Printer {
    /// A printer for `inputs`; with `--timeline-dir` it creates the directory. An error when
    /// their timelines cannot all be written.
    pub fn new(args: &Args, shown: Shown, inputs: &[Input]) -> anyhow::Result<Self> {
        Ok(Self {
            shown,
            timeline: args.timeline,
            files: timeline_files(args, inputs, shown)?,
            verbose: args.verbose,
            videos: inputs.len(),
            failed: 0,
        })
    }

    /// Print the answer of the `index`th video, or why it has none.
    pub fn show(&mut self, index: usize, input: &Input, outcome: Result<Answer, String>) {
        let answer = match outcome {
            Ok(answer) => answer,
            Err(reason) => {
                self.failed += 1;
                eprintln!("error: {}: {reason}", input.shown);
                return;
            }
        };
        if let (Some(path), Some(format)) = (self.files.get(index), self.timeline) {
            let text = timeline::render(&input.shown, &answer.segments, format);
            if let Err(e) = std::fs::write(path, text) {
                self.failed += 1;
                eprintln!("error: {}: cannot write it: {e}", path.display());
            }
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match self.shown {
            // Subtitles as they are written to a file, blank line after the last cue included.
            Shown::Timeline(format) => {
                let text = timeline::render(&input.shown, &answer.segments, format);
                let _ = out.write_all(text.as_bytes());
            }
            Shown::Answer(output) => {
                if output == Output::Csv && index == 0 {
                    let _ = writeln!(out, "{}", timeline::CSV_HEADER.join(","));
                }
                let text = render(&answer, &input.shown, output, self.verbose);
                let text = text.trim_end_matches('\n');
                if !text.is_empty() {
                    let _ = writeln!(out, "{text}");
                }
            }
        }
        if self.shown == Shown::Answer(Output::Text) && index + 1 < self.videos {
            let _ = writeln!(out);
        }
        let _ = out.flush();
    }

    /// Say how many videos failed, if any; the exit status.
    pub fn finish(self) -> ExitCode {
        if self.failed == 0 {
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "{} of {} video{} could not be classified",
            self.failed,
            self.videos,
            if self.videos == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    }
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

/// One video's answer as `output` prints it.
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
    per_video(dir, inputs, Some(format.extension()))
}
