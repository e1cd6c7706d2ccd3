//! What happens when: a video's segments as JSON lines, WebVTT or SubRip subtitles, and its clips
//! as CSV rows (docs/timeline.md). In objects mode each segment and clip names its object: an
//! `object_id` in JSON, `person ID: ` before each cue's text, the object's id and box in CSV.

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

/// A segment, and the object it is about (objects mode).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub object: Option<u64>,
    pub segment: Segment,
}

/// The cue text of a segment: its object, its label and mean score.
fn cue_text(span: &Span) -> String {
    let s = &span.segment;
    let person = span
        .object
        .map_or(String::new(), |id| format!("person {id}: "));
    format!("{person}{} ({:.0}%)", s.label, 100.0 * s.score)
}

/// Segments in the order of their start (stream time, else PTS), then of their object: the
/// element posts each object's segments as they close, interleaved.
fn in_time_order(spans: &[Span]) -> Vec<&Span> {
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| {
        let start = &s.segment.start;
        (shown(start.stream, start.pts), s.object, s.segment.index)
    });
    sorted
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_id: Option<u64>,
    segment: u64,
    label: &'a str,
    start: Option<f64>,
    end: Option<f64>,
    score: f64,
    clips: u64,
    first_clip: u64,
    last_clip: u64,
}

/// The timeline of one video in `format`, in time order, ending with a newline (empty JSON for
/// no segment).
pub fn render(path: &str, spans: &[Span], format: Format) -> String {
    let mut out = String::new();
    let spans = in_time_order(spans);
    match format {
        Format::Json => {
            for span in spans {
                let s = &span.segment;
                let line = JsonSegment {
                    path,
                    object_id: span.object,
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
            for span in spans {
                let s = &span.segment;
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
                    cue_text(span)
                );
            }
        }
    }
    out
}

/// The header of the per-clip CSV.
pub const CSV_HEADER: [&str; 7] = ["path", "clip", "start", "end", "rank", "label", "score"];
/// The columns objects mode adds: the object's id and its box on the clip's last sampled frame.
pub const CSV_OBJECT_HEADER: [&str; 5] = ["object_id", "x", "y", "w", "h"];

/// The object columns of a clip (objects mode).
pub fn csv_object(clip: &ClipResult) -> [String; 5] {
    clip.object.map_or_else(Default::default, |o| {
        [
            o.id.to_string(),
            o.x.to_string(),
            o.y.to_string(),
            o.w.to_string(),
            o.h.to_string(),
        ]
    })
}

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

    fn frame_span(segment: Segment) -> Span {
        Span {
            object: None,
            segment,
        }
    }

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
        ]
        .map(frame_span);
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
        let mut s = frame_span(segment(0, "x", 0, S));
        s.segment.start = Times::default();
        assert_eq!(render("v", &[s.clone()], Format::Srt), "");
        assert_eq!(render("v", &[s.clone()], Format::Vtt), "WEBVTT\n\n");
        assert!(render("v", &[s], Format::Json).contains("\"start\":null"));
    }

    #[test]
    fn each_cue_names_its_person_in_time_order() {
        // As the element posts them: person 2's first segment closes after person 1's second.
        let span = |object, index, label: &str, start, end| Span {
            object: Some(object),
            segment: segment(index, label, start, end),
        };
        let spans = [
            span(1, 0, "arm wrestling", 0, 2 * S),
            span(1, 1, "clapping", 2 * S, 4 * S),
            span(2, 0, "cleaning pool", S, 4 * S),
        ];
        assert_eq!(
            render("v.mp4", &spans, Format::Srt),
            "1\n00:00:00,000 --> 00:00:02,000\nperson 1: arm wrestling (88%)\n\n\
             2\n00:00:01,000 --> 00:00:04,000\nperson 2: cleaning pool (88%)\n\n\
             3\n00:00:02,000 --> 00:00:04,000\nperson 1: clapping (88%)\n\n"
        );
        let json = render("v.mp4", &spans, Format::Json);
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<_> = lines.iter().map(|l| l["object_id"].clone()).collect();
        assert_eq!(ids, [1, 2, 1]);
        assert_eq!(lines[1]["label"], "cleaning pool");
        // Frame mode's lines have no object_id.
        let frame = render("v.mp4", &[frame_span(segment(0, "x", 0, S))], Format::Json);
        assert!(!frame.contains("object_id"), "{frame}");
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
        assert_eq!(csv_object(&clip), <[String; 5]>::default());
        let clip = ClipResult {
            object: Some(gstnonlocal::results::ObjectRef {
                id: 7,
                x: -2,
                y: 3,
                w: 40,
                h: 50,
            }),
            ..clip
        };
        assert_eq!(csv_object(&clip), ["7", "-2", "3", "40", "50"]);
    }
}
