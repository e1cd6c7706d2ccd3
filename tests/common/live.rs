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

/// The model runs of an engine as they finish, read from its profile every millisecond: each
/// run seen alone between two readings, as (clips, duration).
pub struct RunTimes {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(u64, Duration)>>>,
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
                    runs.push((now.items - last.items, now.run - last.run));
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

    pub fn finish(mut self) -> Vec<(u64, Duration)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// The median duration of the runs of one clip among `runs`.
pub fn one_clip_inference(runs: &[(u64, Duration)]) -> Duration {
    let one: Vec<Duration> = runs
        .iter()
        .filter(|(clips, _)| *clips == 1)
        .map(|(_, d)| *d)
        .collect();
    assert!(!one.is_empty(), "no run of one clip seen: {runs:?}");
    percentile(&one, 50)
}

/// The `p`th percentile of `values` (nearest rank).
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}
