//! The shared engine batches clips from every user of a model, and batching never changes a
//! clip's scores.

mod common;

use std::time::Duration;

use common::*;
use gstnonlocal::engine::{
    Batch, Batching, LocalSettings, ProviderChoice, SharedEngine, ValuesMut,
};

/// One probe clip (3×4×8×8, NCTHW) whose values reveal which clip it is.
fn clip(k: usize) -> Vec<f32> {
    (0..3 * 4 * 64)
        .map(|i| (k * 1000 + i / 64) as f32)
        .collect()
}

/// The probe model returns each (channel, frame) plane's mean: plane p of clip k is k·1000 + p.
fn expected(k: usize) -> Vec<f32> {
    (0..12).map(|p| (k * 1000 + p) as f32).collect()
}

/// A private copy of a test model (so this engine is shared with no other test), opened on CPU
/// with the given batching. Returns the engine and the folder to remove.
fn private_engine(
    name: &str,
    tag: &str,
    max_batch: usize,
) -> (
    std::sync::Arc<gstnonlocal::engine::SharedEngine>,
    std::path::PathBuf,
) {
    init();
    let dir = std::env::temp_dir().join(format!("nl-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::copy(model(name), &path).unwrap();
    let engine = SharedEngine::local(&path, &LocalSettings::on(ProviderChoice::Cpu)).unwrap();
    engine.register(Batching {
        max_batch,
        timeout: Duration::from_millis(300),
    });
    (engine, dir)
}

#[test]
fn waiting_clips_share_one_run_and_keep_their_scores() {
    let (engine, dir) = private_engine("probe.onnx", "batch", 4);
    let shape = [1, 3, 4, 8, 8];
    // Three clips submitted back to back: the first waits up to 300 ms for company.
    let rx: Vec<_> = (0..3)
        .map(|k| engine.submit(shape, 1, Batch::from(clip(k))))
        .collect();
    for (k, rx) in rx.into_iter().enumerate() {
        let scores = rx.recv().unwrap().unwrap();
        assert_eq!(scores, vec![expected(k)]);
    }
    assert_eq!(engine.stats(), (1, 3), "one run of three clips");

    // More than max-batch: 4 + 2, each answer still its own.
    let rx: Vec<_> = (0..6)
        .map(|k| engine.submit(shape, 1, Batch::from(clip(k))))
        .collect();
    for (k, rx) in rx.into_iter().enumerate() {
        assert_eq!(rx.recv().unwrap().unwrap(), vec![expected(k)]);
    }
    assert_eq!(engine.stats(), (3, 9));

    // A request of several items (three crops) is answered with one score vector per item.
    let mut three = clip(7);
    three.extend(clip(8));
    three.extend(clip(9));
    let scores = engine
        .submit(shape, 3, Batch::from(three))
        .recv()
        .unwrap()
        .unwrap();
    assert_eq!(scores, vec![expected(7), expected(8), expected(9)]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn clips_packed_into_slots_run_as_one_batch_and_a_given_up_slot_is_not_waited_for() {
    let (engine, dir) = private_engine("probe.onnx", "slots", 4);
    let shape = [1, 3, 4, 8, 8];
    let pack = |slot: &mut gstnonlocal::engine::Slot, clips: &[usize]| match slot.values() {
        ValuesMut::F32(v) => {
            let values: Vec<f32> = clips.iter().flat_map(|&k| clip(k)).collect();
            v.copy_from_slice(&values);
        }
        _ => panic!("the probe model takes float32"),
    };
    let mut a = engine.slot(shape, 1).unwrap();
    let mut b = engine.slot(shape, 2).unwrap();
    let given_up = engine.slot(shape, 1).unwrap();
    pack(&mut b, &[2, 3]);
    let rb = b.submit();
    pack(&mut a, &[1]);
    let ra = a.submit();
    // The batch is full (4 items reserved) and runs once the last reservation is given up.
    drop(given_up);
    assert_eq!(rb.recv().unwrap().unwrap(), vec![expected(2), expected(3)]);
    assert_eq!(ra.recv().unwrap().unwrap(), vec![expected(1)]);
    assert_eq!(
        engine.stats(),
        (1, 4),
        "one run over the four reserved items"
    );
    // A request whose values do not match its items is answered with the reason.
    let wrong = engine
        .submit(shape, 1, Batch::from(vec![0f32; 5]))
        .recv()
        .unwrap();
    assert!(
        wrong
            .as_ref()
            .is_err_and(|e| e.contains("5 F32 input values")),
        "{wrong:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fixed_batch_graphs_run_in_padded_chunks() {
    let (engine, dir) = private_engine("probe_batch2.onnx", "batch2", 8);
    let shape = [1, 3, 4, 8, 8];
    let rx: Vec<_> = (0..3)
        .map(|k| engine.submit(shape, 1, Batch::from(clip(k))))
        .collect();
    for (k, rx) in rx.into_iter().enumerate() {
        assert_eq!(rx.recv().unwrap().unwrap(), vec![expected(k)]);
    }
    // Three clips on a graph fixed to batch 2: two runs, the second padded.
    assert_eq!(engine.stats(), (2, 3));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn elements_sharing_a_model_are_batched_together() {
    init();
    let dir = std::env::temp_dir().join(format!("nl-batch3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("probe.onnx");
    std::fs::copy(model("probe.onnx"), &path).unwrap();
    let path_str = path.to_str().unwrap().to_string();
    // Held here so its counters outlive the pipelines; the elements get this same engine.
    let engine = SharedEngine::local(&path, &LocalSettings::on(ProviderChoice::Cpu)).unwrap();
    // Four streams in threads, 3 clips each, a generous batch timeout.
    let outs: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = path_str.clone();
                s.spawn(move || {
                    run_frames(
                        &caps("RGB", 16, 8),
                        &[
                            ("model", v(p)),
                            ("top-k", v(12u32)),
                            ("max-batch", v(16u32)),
                            ("batch-timeout", v(200u32)),
                            ("execution-provider", v("cpu")),
                        ],
                        24,
                        probe_rgb,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.results.len(), 3);
        for (k, r) in out.results.iter().enumerate() {
            // R of frame n is 4n; normalised (4n − 10)/2 for the clip's first frame n = 8k.
            let s = scores_of(r);
            assert!(
                (s["cr_t0"] - (32.0 * k as f64 - 10.0) / 2.0).abs() < 1e-4,
                "{s:?}"
            );
        }
    }
    let (runs, items) = engine.stats();
    assert_eq!(items, 12, "every clip ran once");
    assert!(
        runs < items,
        "clips of different streams shared runs: {runs} runs"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_engine_per_model_file_and_settings() {
    init();
    let dir = std::env::temp_dir().join(format!("nl-batch4-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let path = dir.join("probe.onnx");
    std::fs::copy(model("probe.onnx"), &path).unwrap();
    let open = |p: &std::path::Path, limit: u32| {
        let settings = LocalSettings {
            gpu_mem_limit_mib: limit,
            ..LocalSettings::on(ProviderChoice::Cpu)
        };
        SharedEngine::local(p, &settings).unwrap()
    };
    let engine = open(&path, 0);
    // The same file by another spelling of its path: the same engine.
    let same = open(&dir.join("sub/../probe.onnx"), 0);
    assert!(std::sync::Arc::ptr_eq(&engine, &same));
    // Other settings: another engine, with its own batcher.
    let other = open(&path, 64);
    assert!(!std::sync::Arc::ptr_eq(&engine, &other));
    let shape = [1, 3, 4, 8, 8];
    let scores = other
        .submit(shape, 1, Batch::from(clip(5)))
        .recv()
        .unwrap()
        .unwrap();
    assert_eq!(scores, vec![expected(5)]);
    assert_eq!((engine.stats(), other.stats()), ((0, 0), (1, 1)));
    // Closed with its last user: opening again starts afresh.
    drop((engine, same, other));
    assert_eq!(open(&path, 64).stats(), (0, 0));
    std::fs::remove_dir_all(&dir).ok();
}

/// Niceness of this process's threads whose names start with `prefix` (from /proc, where names
/// are cut to 15 bytes).
fn nice_of_threads(prefix: &str) -> Vec<i64> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3, nice field 19.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        if comm.trim().starts_with(prefix) {
            if let Some(n) = fields.get(16).and_then(|f| f.parse().ok()) {
                nice.push(n);
            }
        }
    }
    nice
}

#[test]
fn engine_threads_run_at_the_niceness_asked_for() {
    // A higher niceness is always allowed; no other test of this file asks for one.
    std::env::set_var("NONLOCAL_ENGINE_NICE", "7");
    let (engine, dir) = private_engine("probe.onnx", "nice", 1);
    let shape = [1, 3, 4, 8, 8];
    let scores = engine
        .submit(shape, 1, Batch::from(clip(2)))
        .recv()
        .unwrap();
    std::env::remove_var("NONLOCAL_ENGINE_NICE");
    assert_eq!(scores.unwrap(), vec![expected(2)]);
    assert_eq!(engine.thread_priority(), Ok(Some(7)));
    assert!(
        nice_of_threads("nonlocal-batch").contains(&7),
        "a batching thread at niceness 7: {:?}",
        nice_of_threads("nonlocal-batch")
    );
    drop(engine);
    std::fs::remove_dir_all(&dir).ok();
}
