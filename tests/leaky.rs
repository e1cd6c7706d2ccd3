//! Live sources faster than inference: which clips a live stream drops (`leaky`), how fresh its
//! results stay, and that video never waits for inference. `appsrc` (live) `! nonlocalclassify !
//! appsink` with slow.onnx (tens of ms per clip on a CPU), a clip per frame, frames pushed in
//! bursts far faster than clips are classified.
//!
//! The tests of this file run one at a time: each reads the inference times of the engine they
//! share.

mod common;
#[path = "common/live.rs"]
mod live;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstnonlocal::engine::{LocalSettings, ProviderChoice, SharedEngine};
use live::{one_clip_inference, percentile, stamp_buffers, stamp_results, Posted, Run, RunTimes};

static SERIAL: Mutex<()> = Mutex::new(());

/// Clips of slow.onnx: 4 frames, one clip per frame (clip k is frames k..k+3).
const CLIP_FRAMES: u64 = 4;
const BURSTS: u64 = 8;
const CLIPS_PER_BURST: u64 = 12;

/// What a run of bursts gave.
struct Bursts {
    /// Every result, in order.
    results: Vec<Posted>,
    /// When each frame left the element (after the clip it completes was handed over).
    frames_out: Vec<Instant>,
    /// The clips of each burst.
    bursts: Vec<std::ops::Range<u64>>,
    /// The summary's `clips` and `dropped`.
    classified: u64,
    dropped: u64,
    frames: u64,
    /// The longest a burst's frames took to come out of the element.
    slowest_burst_out: Duration,
    runs: Vec<Run>,
}

impl Bursts {
    fn published(&self) -> BTreeSet<u64> {
        self.results.iter().map(|r| r.clip).collect()
    }

    /// One clip's inference time: the mean run of one clip.
    fn inference(&self) -> Duration {
        one_clip_inference(&self.runs)
    }

    /// For each clip completed by a frame: how many other results were posted between its
    /// handing over (before its last frame left the element) and its own result.
    fn posted_ahead(&self) -> Vec<(u64, usize)> {
        self.results
            .iter()
            .filter_map(|r| {
                let handed = *self.frames_out.get((r.clip + CLIP_FRAMES - 1) as usize)?;
                let ahead = self
                    .results
                    .iter()
                    .filter(|o| o.clip != r.clip && o.at > handed && o.at < r.at)
                    .count();
                Some((r.clip, ahead))
            })
            .collect()
    }

    fn latencies(&self) -> Vec<Duration> {
        self.results.iter().map(|r| r.latency).collect()
    }
}

/// Push `BURSTS` bursts of `CLIPS_PER_BURST` clips' frames into a live `nonlocalclassify` with
/// `leaky`, waiting after each until its newest clip's result came or no result came for a
/// while, then EOS.
fn bursts(leaky: &str) -> Bursts {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = slow_clip_per_frame(&[("max-pending", v(2u32)), ("leaky", v(leaky))]);
    // The engine the element uses (the same model, provider, card and memory limit).
    let engine = SharedEngine::local(
        std::path::Path::new(&model("slow.onnx")),
        &LocalSettings::on(ProviderChoice::Auto),
    )
    .expect("slow.onnx opens");
    let frames_out = stamp_buffers(&h.element.static_pad("src").unwrap());
    let rx = stamp_results(&h.pipeline.bus().unwrap());
    let runs = RunTimes::watch(engine);
    h.start().unwrap();
    let mut results = Vec::new();
    let mut bursts = Vec::new();
    let mut slowest_burst_out = Duration::ZERO;
    let mut frame = 0u64;
    for b in 0..BURSTS {
        let clips = b * CLIPS_PER_BURST..(b + 1) * CLIPS_PER_BURST;
        // Clip k ends on frame k + 3.
        let last_frame = clips.end - 1 + CLIP_FRAMES - 1;
        let pushed = Instant::now();
        while frame <= last_frame {
            h.push(buffer(probe_rgb(frame), frame));
            frame += 1;
        }
        let newest = clips.end - 1;
        while let Ok(posted) = rx.recv_timeout(Duration::from_millis(1000)) {
            results.push(posted);
            if posted.clip == newest {
                break;
            }
        }
        let out = frames_out.lock().unwrap();
        assert_eq!(out.len() as u64, frame, "burst {b}: frames out");
        slowest_burst_out = slowest_burst_out.max(out[frame as usize - 1] - pushed);
        bursts.push(clips);
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    results.extend(rx.try_iter());
    let summary = out.summary.expect("summary");
    let frames_out = frames_out.lock().unwrap().clone();
    Bursts {
        results,
        frames_out,
        bursts,
        classified: summary.get::<u64>("clips").unwrap(),
        dropped: summary.get::<u64>("dropped").unwrap(),
        frames: frame,
        slowest_burst_out,
        runs: runs.finish(),
    }
}

/// What every live run shows, whichever clips it drops: video flowed, and every clip was either
/// classified or counted as dropped, results in clip order.
fn check_flow_and_counts(run: &Bursts) {
    assert_eq!(
        run.frames_out.len() as u64,
        run.frames,
        "every frame came out"
    );
    assert!(run.dropped > 0, "nothing dropped");
    // Clips 0..=frames-4 complete in the stream; EOS pads the next two (3 and 2 frames of 4).
    let clips = run.frames - CLIP_FRAMES + 1 + 2;
    assert_eq!(run.classified + run.dropped, clips);
    assert_eq!(run.results.len() as u64, run.classified);
    let order: Vec<u64> = run.results.iter().map(|r| r.clip).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

/// Bursts through `leaky`, reported and checked for flow and counts.
fn checked_bursts(leaky: &str) -> Bursts {
    let run = bursts(leaky);
    let latencies = run.latencies();
    eprintln!(
        "leaky={leaky}: {} clips classified, {} dropped; latency median {:?}, max {:?}; one \
         clip's inference {:?}; slowest burst out {:?}; published {:?}; results \
         posted ahead {:?}",
        run.classified,
        run.dropped,
        percentile(&latencies, 50),
        percentile(&latencies, 100),
        run.inference(),
        run.slowest_burst_out,
        run.published(),
        run.posted_ahead()
    );
    check_flow_and_counts(&run);
    run
}

/// The clips of each burst at `at` (offsets from its first clip) that were dropped.
fn dropped_of_bursts(run: &Bursts, at: &[u64]) -> Vec<u64> {
    let published = run.published();
    run.bursts
        .iter()
        .flat_map(|b| at.iter().map(move |i| b.start + i))
        .filter(|c| !published.contains(c))
        .collect()
}

#[test]
fn dropping_the_oldest_publishes_each_bursts_newest_clip_soon() {
    let run = checked_bursts("oldest");
    // Nothing newer came after a burst's newest clip: it waited, and was classified.
    let dropped = dropped_of_bursts(&run, &[CLIPS_PER_BURST - 1]);
    assert!(dropped.is_empty(), "newest clips dropped: {dropped:?}");
    // Latency stays within two inferences: a clip waits behind at most one other (max-pending 2
    // counts the clip being classified).
    let ahead = run.posted_ahead();
    assert!(ahead.iter().all(|(_, n)| *n <= 1), "{ahead:?}");
}

#[test]
fn dropping_the_newest_keeps_the_clips_already_waiting() {
    let run = checked_bursts("newest");
    // The worker was idle when each burst began: its first two clips (max-pending) are never
    // dropped, whatever came after them.
    let dropped = dropped_of_bursts(&run, &[0, 1]);
    assert!(dropped.is_empty(), "first clips dropped: {dropped:?}");
    // A burst comes far faster than a clip is classified: newer clips found the queue full, and
    // the clips kept waited behind the ones taken before them.
    assert!(!dropped_of_bursts(&run, &[CLIPS_PER_BURST - 1]).is_empty());
    let ahead = run.posted_ahead();
    assert!(ahead.iter().any(|(_, n)| *n >= 2), "{ahead:?}");
}
