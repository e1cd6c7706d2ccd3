//! What happens when: a video's segments as JSON lines, WebVTT or SubRip subtitles, and its clips
//! as CSV rows (docs/timeline.md).

use std::fmt::Write as _;

use clap::ValueEnum;
use gstnonlocal::segments::Segment;
use gstnonlocal::ClipResult;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per segment and line
    Json,
    /// WebVTT subtitles
    Vtt,
    /// SubRip subtitles
    Srt,
}

impl Format {
    /// File name extension of a timeline written to a directory.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "jsonl",
            Format::Vtt => "vtt",
            Format::Srt => "srt",
        }
    }
}

/// A time to show: stream time (what players show), else the PTS.
fn shown(stream: Option<u64>, pts: Option<u64>) -> Option<u64> {
    stream.or(pts)
}

fn seconds(ns: Option<u64>) -> Option<f64> {
    ns.map(|ns| ns as f64 / 1e9)
}

/// `HH:MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SubRip), milliseconds rounded to nearest.
fn clock(ns: u64, separator: char) -> String {
    let ms = (ns + 500_000) / 1_000_000;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// The cue text of a segment: its label and mean score.
fn cue_text(segment: &Segment) -> String {
    format!("{} ({:.0}%)", segment.label, 100.0 * segment.score)
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    path: &'a str,
    segment: u64,
    label: &'a str,
    start: Option<f64>,
    end: Option<f64>,
    score: f64,
    clips: u64,
    first_clip: u64,
    last_clip: u64,
}

/// The timeline of one video in `format`, ending with a newline (empty JSON for no segment).
pub fn render(path: &str, segments: &[Segment], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Json => {
            for s in segments {
                let line = JsonSegment {
                    path,
                    segment: s.index,
                    label: &s.label,
                    start: seconds(shown(s.start.stream, s.start.pts)),
                    end: seconds(shown(s.end.stream, s.end.pts)),
                    score: s.score,
                    clips: s.clips,
                    first_clip: s.first_clip,
                    last_clip: s.last_clip,
                };
                let text = serde_json::to_string(&line)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
                let _ = writeln!(out, "{text}");
            }
        }
        Format::Vtt | Format::Srt => {
            let sep = if format == Format::Vtt { '.' } else { ',' };
            if format == Format::Vtt {
                out.push_str("WEBVTT\n\n");
            }
            let mut cue = 0;
            for s in segments {
                let (Some(start), Some(end)) = (
                    shown(s.start.stream, s.start.pts),
                    shown(s.end.stream, s.end.pts),
                ) else {
                    continue;
                };
                cue += 1;
                let _ = write!(
                    out,
                    "{cue}\n{} --> {}\n{}\n\n",
                    clock(start, sep),
                    clock(end.max(start), sep),
                    cue_text(s)
                );
            }
        }
    }
    out
}

/// The header of the per-clip CSV.
pub const CSV_HEADER: [&str; 7] = ["path", "clip", "start", "end", "rank", "label", "score"];

/// CSV rows of one clip: one per reported label, best first (rank 1).
pub fn csv_rows(path: &str, clip: &ClipResult) -> Vec<[String; 7]> {
    let start = shown(clip.stream_time, clip.timestamp);
    let end = start.zip(clip.duration).map(|(s, d)| s.saturating_add(d));
    let secs = |ns: Option<u64>| seconds(ns).map_or(String::new(), |s| format!("{s:.3}"));
    clip.labels
        .iter()
        .zip(&clip.scores)
        .enumerate()
        .map(|(rank, (label, score))| {
            [
                path.to_string(),
                clip.clip_index.to_string(),
                secs(start),
                secs(end),
                (rank + 1).to_string(),
                label.clone(),
                score.to_string(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstnonlocal::segments::Times;

    const S: u64 = 1_000_000_000;

    fn segment(index: u64, label: &str, start: u64, end: u64) -> Segment {
        let t = |ns: u64| Times {
            pts: Some(ns + 10 * S),
            stream: Some(ns),
            running: Some(ns),
        };
        Segment {
            index,
            class: 0,
            label: label.into(),
            score: 0.875,
            clips: 3,
            first_clip: index * 3,
            last_clip: index * 3 + 2,
            start: t(start),
            end: t(end),
        }
    }

    #[test]
    fn clocks() {
        assert_eq!(clock(0, '.'), "00:00:00.000");
        assert_eq!(clock(3_723_456_500_000, ','), "01:02:03,457");
        assert_eq!(clock(999_600_000, '.'), "00:00:01.000");
    }

    #[test]
    fn subtitles_in_stream_time() {
        let segs = [
            segment(0, "arm wrestling", 0, 5_120_000_000),
            segment(1, "abseiling", 5_120_000_000, 61 * S),
        ];
        assert_eq!(
            render("v.mp4", &segs, Format::Vtt),
            "WEBVTT\n\n1\n00:00:00.000 --> 00:00:05.120\narm wrestling (88%)\n\n\
             2\n00:00:05.120 --> 00:01:01.000\nabseiling (88%)\n\n"
        );
        assert_eq!(
            render("v.mp4", &segs[..1], Format::Srt),
            "1\n00:00:00,000 --> 00:00:05,120\narm wrestling (88%)\n\n"
        );
        let json = render("v.mp4", &segs, Format::Json);
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["label"], "abseiling");
        assert_eq!(lines[1]["start"], 5.12);
        assert_eq!(lines[1]["end"], 61.0);
        assert_eq!(lines[1]["first_clip"], 3);
    }

    #[test]
    fn segments_without_times_are_left_out_of_subtitles() {
        let mut s = segment(0, "x", 0, S);
        s.start = Times::default();
        assert_eq!(render("v", &[s.clone()], Format::Srt), "");
        assert_eq!(render("v", &[s.clone()], Format::Vtt), "WEBVTT\n\n");
        assert!(render("v", &[s], Format::Json).contains("\"start\":null"));
    }

    #[test]
    fn csv_rows_per_label() {
        let clip = ClipResult {
            timestamp: Some(2 * S),
            stream_time: Some(S),
            running_time: None,
            duration: Some(S / 2),
            clip_index: 4,
            labels: vec!["a".into(), "b, c".into()],
            scores: vec![0.75, 0.25],
            dropped: 0,
            latency: 0,
            object: None,
        };
        let rows = csv_rows("dir/v.mp4", &clip);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            ["dir/v.mp4", "4", "1.000", "1.500", "1", "a", "0.75"]
        );
        assert_eq!(
            rows[1][4..],
            ["2".to_string(), "b, c".into(), "0.25".into()]
        );
    }
}
