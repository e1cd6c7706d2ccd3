//! What happens when, through the element: sampling by time picks the frames docs/design.md says
//! (frame PTS asserted through the probe model), and action segments of a generated video whose
//! colour changes at known times fall within one clip stride of the truth at 24, 25, 30, 50 and
//! 60 fps and at a variable frame rate, the same live and from a file.

mod common;

use common::*;
use gst::prelude::*;
use gstnonlocal::segments::Segment;

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;

/// Caps of the generated frames: RGB 16×8 at `fps` (0/1: variable).
fn rgb_caps(fps: i32) -> gst::Caps {
    init();
    gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", 16i32)
        .field("height", 8i32)
        .field("framerate", gst::Fraction::new(fps, 1))
        .build()
}

fn timed(data: Vec<u8>, pts: u64, duration: u64) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(data);
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_nseconds(pts));
        b.set_duration(gst::ClockTime::from_nseconds(duration));
    }
    b
}

/// Run frames with the given PTS (and durations up to the next PTS, `last_duration` for the last)
/// through the element.
fn run_timed(
    caps: &gst::Caps,
    props: &[(&str, glib::Value)],
    pts: &[u64],
    last_duration: u64,
    live: bool,
    frame: impl Fn(usize, u64) -> Vec<u8>,
) -> Outcome {
    let h = Harness::new(caps, props, live);
    h.start().expect("element starts");
    for (j, &p) in pts.iter().enumerate() {
        let d = pts.get(j + 1).map_or(last_duration, |next| next - p);
        h.push(timed(frame(j, p), p, d));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    out
}

/// PTS of `count` frames at a constant rate.
fn constant(fps: u64, count: u64) -> Vec<u64> {
    (0..count).map(|n| n * SECOND / fps).collect()
}

/// A variable frame rate: gaps of 20 to 60 ms in a fixed pseudo-random order, for `seconds`.
fn variable(seconds: u64) -> Vec<u64> {
    let mut pts = vec![0u64];
    let mut x = 12345u64;
    while *pts.last().unwrap() < seconds * SECOND {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let gap = (20 + (x >> 33) % 41) * MS;
        pts.push(pts.last().unwrap() + gap);
    }
    pts.pop();
    pts
}

/// The frame nearest to `t` (ties: the earlier one), as docs/design.md "Clip sampling" says.
fn nearest(pts: &[u64], t: u64) -> usize {
    (0..pts.len())
        .min_by_key(|&j| (pts[j].abs_diff(t), j))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Sampling by time

/// Frame index n from probe.onnx's scores: R = 4·n (mod 256) normalised as (R − 10) / 2.
fn frames_of(result: &gst::Structure) -> Vec<usize> {
    let scores = scores_of(result);
    (0..4)
        .map(|t| {
            let r = scores[&format!("cr_t{t}")] * 2.0 + 10.0;
            (r / 4.0).round() as usize
        })
        .collect()
}

/// probe.onnx samples 4 model frames every 2 (clips every 8): with clip-fps they are the instants
/// t0 + m / fps, each the decoded frame nearest by PTS.
fn check_time_sampling(pts: &[u64], fps: (i32, i32)) {
    assert!(pts.len() <= 64, "frame indices must fit in R = 4·n");
    let caps = rgb_caps(0);
    let out = run_timed(
        &caps,
        &[
            ("model", v(model("probe.onnx"))),
            ("clip-fps", v(gst::Fraction::new(fps.0, fps.1))),
            ("top-k", v(12u32)),
        ],
        pts,
        pts[1] - pts[0],
        false,
        |j, _| probe_rgb(j as u64),
    );
    let instant = |m: u64| pts[0] + m * SECOND * fps.1 as u64 / fps.0 as u64;
    let last_reach = pts.last().unwrap() + (pts[1] - pts[0]) / 2;
    let complete = (0..)
        .take_while(|k| instant(k * 8 + 6) <= last_reach)
        .count();
    assert!(complete >= 3, "{complete}");
    assert!(
        out.results.len() >= complete,
        "{} results",
        out.results.len()
    );
    for (k, result) in out.results.iter().take(complete).enumerate() {
        assert_eq!(result.get::<u64>("clip-index").unwrap(), k as u64);
        let want: Vec<usize> = (0..4)
            .map(|i| nearest(pts, instant(k as u64 * 8 + 2 * i)))
            .collect();
        assert_eq!(frames_of(result), want, "clip {k} at {fps:?} fps");
        // The clip's timestamp is the PTS of its first frame.
        assert_eq!(result.get::<u64>("timestamp").unwrap(), pts[want[0]]);
    }
}

#[test]
fn time_sampling_picks_the_nearest_frames() {
    // Faster sources: 30 and 50 fps; a slower one (12 fps) repeats frames.
    check_time_sampling(&constant(30, 60), (25, 1));
    check_time_sampling(&constant(50, 64), (25, 1));
    check_time_sampling(&constant(12, 40), (25, 1));
    // A variable rate, and a fractional sampling rate, PTS not starting at 0.
    let vfr: Vec<u64> = variable(3)
        .into_iter()
        .take(64)
        .map(|p| p + SECOND)
        .collect();
    check_time_sampling(&vfr, (25, 1));
    check_time_sampling(&constant(60, 64), (30000, 1001));
}

#[test]
fn without_a_rate_frames_are_counted_as_before() {
    // The same 30 fps frames without clip-fps: clip k takes decoded frames 8k, 8k + 2, …
    let pts = constant(30, 40);
    let out = run_timed(
        &rgb_caps(30),
        &[("model", v(model("probe.onnx"))), ("top-k", v(12u32))],
        &pts,
        SECOND / 30,
        false,
        |j, _| probe_rgb(j as u64),
    );
    for (k, result) in out.results.iter().enumerate().take(4) {
        let want: Vec<usize> = (0..4).map(|i| 8 * k + 2 * i).collect();
        assert_eq!(frames_of(result), want);
    }
}

#[test]
fn model_info_reports_the_sampling() {
    init();
    let info = |name: &str, fps: Option<gst::Fraction>| {
        let e = gst::ElementFactory::make("nonlocalclassify")
            .property("model", model(name))
            .build()
            .unwrap();
        if let Some(f) = fps {
            e.set_property("clip-fps", f);
        }
        e.set_state(gst::State::Ready).unwrap();
        let s = e.property::<Option<gst::Structure>>("model-info").unwrap();
        e.set_state(gst::State::Null).unwrap();
        (
            s.get::<gst::Fraction>("clip-fps").unwrap(),
            s.get::<u32>("clip-length").unwrap(),
            s.get::<u32>("clip-stride").unwrap(),
        )
    };
    let f = gst::Fraction::new;
    assert_eq!(info("colour_25fps.onnx", None), (f(25, 1), 8, 8));
    assert_eq!(info("colour.onnx", None), (f(0, 1), 8, 8));
    assert_eq!(info("colour_25fps.onnx", Some(f(-1, 1))), (f(0, 1), 8, 8));
    assert_eq!(info("probe.onnx", Some(f(30000, 1001))).0, f(30000, 1001));
    // Before READY there is nothing to report.
    let e = gst::ElementFactory::make("nonlocalclassify")
        .build()
        .unwrap();
    assert!(e.property::<Option<gst::Structure>>("model-info").is_none());
}

// ---------------------------------------------------------------------------------------------
// Segments

/// The generated video: red, then green from 1.0 s, blue from 2.2 s, red again from 3.1 s, 4 s.
const CHANGES: [(u64, &str); 4] = [(0, "red"), (1000, "green"), (2200, "blue"), (3100, "red")];
const LENGTH_MS: u64 = 4000;

fn colour_at(pts: u64) -> [u8; 3] {
    let label = CHANGES
        .iter()
        .rev()
        .find(|(at, _)| pts >= at * MS)
        .map_or("red", |c| c.1);
    match label {
        "red" => [230, 20, 20],
        "green" => [20, 230, 20],
        _ => [20, 20, 230],
    }
}

fn solid(rgb: [u8; 3]) -> Vec<u8> {
    rgb.repeat(16 * 8)
}

fn segments(out: &Outcome) -> Vec<Segment> {
    out.segments
        .iter()
        .map(|s| Segment::from_structure(s).expect("segment fields"))
        .collect()
}

/// Segments of the generated video with `pts`; each boundary within `stride` of the truth.
fn check_segments(pts: &[u64], model_name: &str, stride: u64, what: &str) -> Outcome {
    let out = run_timed(
        &rgb_caps(0),
        &[("model", v(model(model_name)))],
        pts,
        pts[pts.len() - 1] - pts[pts.len() - 2],
        false,
        |_, p| solid(colour_at(p)),
    );
    let segs = segments(&out);
    let labels: Vec<&str> = segs.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["red", "green", "blue", "red"], "{what}: {segs:#?}");
    for (s, (at, _)) in segs.iter().zip(CHANGES).skip(1) {
        let start = s.start.stream.unwrap();
        assert!(
            start.abs_diff(at * MS) <= stride,
            "{what}: {} starts at {} ms, the truth is {at} ms (stride {} ms)",
            s.label,
            start / MS,
            stride / MS
        );
    }
    // Back to back from the first clip to the end of the last.
    assert_eq!(segs[0].start.stream, Some(0));
    for w in segs.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    let last = segs.last().unwrap();
    assert!(
        last.end.stream.unwrap() <= LENGTH_MS * MS + 60 * MS,
        "{what}"
    );
    assert_eq!(
        segs.iter().map(|s| s.clips).sum::<u64>(),
        out.results.len() as u64
    );
    // Mean scores of solid colours: most of each segment's clips are one colour.
    assert!(segs.iter().all(|s| s.score > 0.5), "{what}: {segs:#?}");
    // The summary lists the same segments.
    let summary = out.summary.as_ref().expect("summary");
    let listed: Vec<Segment> = summary
        .get::<gst::Array>("segments")
        .unwrap()
        .iter()
        .map(|v| Segment::from_structure(&v.get::<gst::Structure>().unwrap()).unwrap())
        .collect();
    assert_eq!(listed, segs);
    out
}

#[test]
fn segment_boundaries_within_one_clip_stride_by_frame_count() {
    // colour.onnx: clips of 8 decoded frames, one every 8 frames.
    for fps in [24, 25, 30, 50, 60] {
        let pts = constant(fps, LENGTH_MS * fps / 1000);
        check_segments(&pts, "colour.onnx", 8 * SECOND / fps, &format!("{fps} fps"));
    }
    let pts = variable(4);
    check_segments(&pts, "colour.onnx", 8 * 60 * MS, "variable rate");
}

#[test]
fn segment_boundaries_within_one_clip_stride_by_time() {
    // colour_25fps.onnx: clips of 8 instants at 25 fps, one every 320 ms whatever the source.
    for fps in [24, 25, 30, 50, 60] {
        let pts = constant(fps, LENGTH_MS * fps / 1000);
        let out = check_segments(&pts, "colour_25fps.onnx", 320 * MS, &format!("{fps} fps"));
        // Each clip spans 8 instants: from its first frame to the end of its last, 7 × 40 ms
        // plus one source frame, give or take one source frame.
        let frame = SECOND / fps;
        for r in &out.results[..out.results.len() - 1] {
            let d = r.get::<u64>("duration").unwrap();
            assert!(d.abs_diff(280 * MS + frame) <= frame, "{fps} fps: {d}");
        }
        assert_eq!(out.results.len(), 13, "{fps} fps: 4 s / 320 ms");
    }
    check_segments(&variable(4), "colour_25fps.onnx", 320 * MS, "variable rate");
}

#[test]
fn hysteresis_keeps_a_short_flash_in_its_segment() {
    // Red for 2 s with 320 ms of green in the middle: one clip of green (frames 24..32 at 25
    // fps) is a flash with the default 2 clips of hysteresis, a segment of its own with 1.
    let pts = constant(25, 50);
    let colour = |_: usize, p: u64| {
        solid(if (960 * MS..1280 * MS).contains(&p) {
            [20, 230, 20]
        } else {
            [230, 20, 20]
        })
    };
    let run = |props: &[(&str, glib::Value)]| {
        let mut all = vec![("model", v(model("colour.onnx")))];
        all.extend(props.iter().cloned());
        let out = run_timed(&rgb_caps(25), &all, &pts, 40 * MS, false, colour);
        segments(&out)
            .into_iter()
            .map(|s| (s.label, s.clips))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&[]), [("red".to_string(), 6)]);
    assert_eq!(
        run(&[("segment-hysteresis", v(1u32))]),
        [
            ("red".to_string(), 3),
            ("green".to_string(), 1),
            ("red".to_string(), 2)
        ]
    );
    // A margin larger than the lead: no change either (green 0.90 against red 0.08).
    assert_eq!(
        run(&[
            ("segment-hysteresis", v(1u32)),
            ("segment-margin", v(0.9f64))
        ]),
        [("red".to_string(), 6)]
    );
}

#[test]
fn live_and_file_give_the_same_segments() {
    let pts = variable(4);
    let run = |live: bool| {
        let out = run_timed(
            &rgb_caps(0),
            &[
                ("model", v(model("colour_25fps.onnx"))),
                ("max-pending", v(1000u32)),
            ],
            &pts,
            40 * MS,
            live,
            |_, p| solid(colour_at(p)),
        );
        assert_eq!(
            out.summary.as_ref().unwrap().get::<u64>("dropped").unwrap(),
            0
        );
        segments(&out)
    };
    let file = run(false);
    let live = run(true);
    assert_eq!(file.len(), 4);
    assert_eq!(live, file);
}
