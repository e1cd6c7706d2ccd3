//! The answers on stdout, in input order: a table, JSON lines or per-clip CSV (`--output`), or a
//! timeline (`--timeline`, written by timeline.rs) on stdout or one file per video
//! (`--timeline-dir`); failures on stderr, counted for the exit status. In objects mode every
//! object gets its own answer, named by its id and its last box.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::args::{Args, Output};
use crate::inputs::{per_video, Input};
use crate::pipeline::{Answer, ObjectAnswer};
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
    /// Objects mode: the CSV has the object columns.
    objects: bool,
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
            objects: args.regions() == gstnonlocal::nonlocalclassify::Regions::Objects,
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
                    let mut header = timeline::CSV_HEADER.to_vec();
                    if self.objects {
                        header.extend(timeline::CSV_OBJECT_HEADER);
                    }
                    let _ = writeln!(out, "{}", header.join(","));
                }
                let text = render(&answer, &input.shown, output, self.verbose, self.objects);
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
    #[serde(skip_serializing_if = "Option::is_none")]
    object_id: Option<u64>,
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    bbox: Option<[i32; 4]>,
    labels: Ranked<'a>,
    clips: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clip_stride: Option<u32>,
}

/// How the table names an object: `person ID, box x,y,w,h`.
fn object_title(o: &ObjectAnswer) -> String {
    match o.bbox {
        Some([x, y, w, h]) => format!("person {}, box {x},{y},{w},{h}", o.id),
        None => format!("person {}", o.id),
    }
}

/// The table of one answer (a video's, or one of its objects').
fn table(title: &str, clips: u64, labels: &[(String, f64)]) -> String {
    let mut text = format!(
        "{title}  ({clips} clip{})\n  probability  label\n",
        if clips == 1 { "" } else { "s" }
    );
    for (label, p) in labels {
        let _ = writeln!(text, "  {p:>11.4}  {label}");
    }
    text
}

/// One video's answer as `output` prints it (in objects mode, each object's).
fn render(answer: &Answer, shown: &str, output: Output, verbose: bool, objects: bool) -> String {
    let json = |object_id, bbox, labels, clips| {
        let line = JsonLine {
            path: shown,
            object_id,
            bbox,
            labels: Ranked(labels),
            clips,
            frames: verbose.then_some(answer.frames),
            clip_stride: verbose.then_some(answer.clip_stride),
        };
        serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    };
    match output {
        Output::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            for result in &answer.results {
                let object = timeline::csv_object(result);
                for row in timeline::csv_rows(shown, result) {
                    let _ = if objects {
                        writer.write_record(row.iter().chain(&object))
                    } else {
                        writer.write_record(&row)
                    };
                }
            }
            writer
                .into_inner()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        }
        Output::Json if objects => answer
            .objects
            .iter()
            .map(|o| json(Some(o.id), o.bbox, &o.labels, o.clips) + "\n")
            .collect(),
        Output::Json => json(None, None, &answer.labels, answer.clips),
        Output::Text if objects => answer
            .objects
            .iter()
            .map(|o| table(&format!("{shown}  {}", object_title(o)), o.clips, &o.labels))
            .collect::<Vec<_>>()
            .join("\n"),
        Output::Text => table(shown, answer.clips, &answer.labels),
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
