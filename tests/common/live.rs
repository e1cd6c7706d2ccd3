//! Measuring live pipelines: each result as the worker posts it, and each model run of the
//! engine an element uses, as it finishes.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstnonlocal::engine::SharedEngine;

/// A result as the worker posted it: when, its clip, its `latency` and `dropped` fields.
#[derive(Clone, Copy, Debug)]
pub struct Posted {
    pub at: Instant,
    pub clip: u64,
    pub latency: Duration,
    pub dropped: u64,
}

/// Every `nonlocalclassify` result posted on `bus` from now on, stamped in the posting thread
/// (messages still reach the bus's queue).
pub fn stamp_results(bus: &gst::Bus) -> Receiver<Posted> {
    let (tx, rx) = std::sync::mpsc::channel::<Posted>();
    let tx = Mutex::new(tx);
    bus.set_sync_handler(move |_, msg| {
        if let Some(s) = msg.structure().filter(|s| s.name() == "nonlocalclassify") {
            let field = |name: &str| s.get::<u64>(name).unwrap_or(u64::MAX);
            let posted = Posted {
                at: Instant::now(),
                clip: field("clip-index"),
                latency: Duration::from_nanos(field("latency")),
                dropped: field("dropped"),
            };
            let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(posted);
        }
        gst::BusSyncReply::Pass
    });
    rx
}

/// When each buffer crossed `pad`.
pub fn stamp_buffers(pad: &gst::Pad) -> Arc<Mutex<Vec<Instant>>> {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&times);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
        gst::PadProbeReturn::Ok
    });
    times
}

/// A model run of the engine: how many clips it classified, how long it took and when it ended.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub clips: u64,
    pub took: Duration,
    pub ended: Instant,
}

/// The model runs of an engine as they finish, read from its profile every millisecond (each run
/// seen alone between two readings).
pub struct RunTimes {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Run>>>,
}

impl RunTimes {
    pub fn watch(engine: Arc<SharedEngine>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut runs = Vec::new();
            let mut last = engine.profile();
            while !stopped.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
                let now = engine.profile();
                if now.runs == last.runs + 1 {
                    runs.push(Run {
                        clips: now.items - last.items,
                        took: now.run - last.run,
                        ended: Instant::now(),
                    });
                }
                last = now;
            }
            runs
        });
        RunTimes {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<Run> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// One clip's inference time: the mean duration of the runs of one clip among `runs`.
pub fn one_clip_inference(runs: &[Run]) -> Duration {
    let one: Vec<Duration> = runs
        .iter()
        .filter(|r| r.clips == 1)
        .map(|r| r.took)
        .collect();
    assert!(!one.is_empty(), "no run of one clip seen: {runs:?}");
    one.iter().sum::<Duration>() / one.len() as u32
}

/// Each clip the runs classified, in order: when its run ended and its share of the run's time.
pub fn per_clip(runs: &[Run]) -> Vec<(Instant, Duration)> {
    runs.iter()
        .flat_map(|r| {
            let share = r.took / r.clips.max(1) as u32;
            (0..r.clips).map(move |_| (r.ended, share))
        })
        .collect()
}

/// The `p`th percentile of `values` (nearest rank).
pub fn percentile<T: PartialOrd + Copy>(values: &[T], p: usize) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}
