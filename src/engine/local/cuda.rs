//! CUDA tuning of the local backend: lanes, provider options, CUDA graphs, and reading ONNX
//! Runtime's CUDA failures (exhausted memory, refused convolution fusion).

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::ThreadId;

/// Whether an ONNX Runtime message reports exhausted device memory.
pub(super) fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "out of memory",
        "failed to allocate",
        "bfcarena",
        "memoryallocation",
        "available memory of",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// Lanes of a CUDA engine (see `LocalBackend::runners`): NONLOCAL_CUDA_LANES (1 to 4), else 2.
pub(super) fn cuda_lanes() -> usize {
    lanes_from(std::env::var("NONLOCAL_CUDA_LANES").ok().as_deref())
}

fn lanes_from(value: Option<&str>) -> usize {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(2, |n| n.clamp(1, 4))
}

/// CUDA provider options set by default: channels-last convolutions with the bias (and folded
/// batch norm) fused into cuDNN's convolution kernel. Without them cuDNN adds each convolution's
/// bias in a separate generic kernel and converts layouts around every convolution (the kernel
/// profiles of benches/gpu/run.sh kprof show both).
const TUNED_CUDA_OPTIONS: [(&str, &str); 2] = [("prefer_nhwc", "1"), ("fuse_conv_bias", "1")];

/// The CUDA provider options for a session: the tuned defaults, then NONLOCAL_CUDA_OPTIONS
/// ("key=value,..." as ONNX Runtime names them) over them. `fused: false` leaves out
/// `fuse_conv_bias` (after cuDNN refused a fused convolution), as does `prefer_nhwc=0` unless
/// the variable asks for fusion itself (cuDNN fuses channels-last convolutions only).
pub(super) fn cuda_options(fused: bool) -> Vec<(String, String)> {
    merge_options(
        &parse_options(&std::env::var("NONLOCAL_CUDA_OPTIONS").unwrap_or_default()),
        fused,
    )
}

fn merge_options(user: &[(String, String)], fused: bool) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = TUNED_CUDA_OPTIONS
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in user {
        options.retain(|(k, _)| k != key);
        options.push((key.clone(), value.clone()));
    }
    let set = |key: &str| user.iter().any(|(k, _)| k == key);
    let nhwc_off = options.iter().any(|(k, v)| k == "prefer_nhwc" && v == "0");
    if !fused || (nhwc_off && !set("fuse_conv_bias")) {
        options.retain(|(k, _)| k != "fuse_conv_bias");
    }
    options
}

fn parse_options(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Whether a run failed because cuDNN has no fused convolution for one of the model's layers.
pub(super) fn is_fusion_failure(reason: &str) -> bool {
    reason.contains("CUDNN Frontend") || reason.contains("CUDNN_FE")
}

/// NONLOCAL_CUDA_GRAPH=1: capture each CUDA session's run as a CUDA graph and replay it (every
/// session sees one input shape); a tuning switch measured by benches/gpu/run.sh.
pub(super) fn cuda_graphs() -> bool {
    std::env::var("NONLOCAL_CUDA_GRAPH").is_ok_and(|v| v == "1")
}

/// Runs of a session on one thread up to and including the one ONNX Runtime captures its CUDA
/// graph in (two regular runs, then the capture). ONNX Runtime keeps the captured graph per
/// calling thread, so every thread that runs a session captures it once.
pub(super) const RUNS_TO_CAPTURE: u32 = 3;

/// Held alone by a run that may capture a CUDA graph, shared by every other run under CUDA
/// graphs: a capture is made in CUDA's global capture mode, where another thread synchronising
/// its own stream meanwhile (another lane's run) fails the capture and that thread's run.
static GRAPH_CAPTURE: RwLock<()> = RwLock::new(());

/// The hold on [`GRAPH_CAPTURE`] a run takes: alone while capturing, shared otherwise.
pub(super) enum CaptureHold {
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
}

/// Runs so far of each batch size's session on each thread, under CUDA graphs.
pub(super) type GraphRuns = HashMap<(i64, ThreadId), u32>;

/// Count a run of the `batch` session on this thread; whether it may capture (one of the first
/// `RUNS_TO_CAPTURE` there). The map forgets everything past 1,024 entries (threads come and go).
pub(super) fn count_graph_run(runs: &mut GraphRuns, batch: i64) -> bool {
    if runs.len() > 1024 {
        runs.clear();
    }
    let n = runs
        .entry((batch, std::thread::current().id()))
        .or_insert(0);
    *n = n.saturating_add(1);
    *n <= RUNS_TO_CAPTURE
}

/// Take the hold for a run that may capture (`capturing`) or only replays.
pub(super) fn capture_hold(capturing: bool) -> CaptureHold {
    if capturing {
        CaptureHold::Alone(GRAPH_CAPTURE.write().unwrap_or_else(|e| e.into_inner()))
    } else {
        CaptureHold::Shared(GRAPH_CAPTURE.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A hold that keeps CUDA calls made outside runs (allocating or freeing page-locked clip
/// buffers) from happening while a graph is captured: in CUDA's global capture mode any thread's
/// allocation fails the capture.
pub(super) fn outside_capture() -> RwLockReadGuard<'static, ()> {
    GRAPH_CAPTURE.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_captures_each_size_on_its_first_runs() {
        let mut runs = GraphRuns::new();
        let here: Vec<bool> = (0..5).map(|_| count_graph_run(&mut runs, 8)).collect();
        assert_eq!(here, [true, true, true, false, false]);
        assert!(
            count_graph_run(&mut runs, 1),
            "another batch size captures on its own"
        );
        let there = std::thread::scope(|s| {
            s.spawn(|| {
                (0..4)
                    .map(|_| count_graph_run(&mut runs, 8))
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap()
        });
        assert_eq!(
            there,
            [true, true, true, false],
            "another thread captures again"
        );
    }

    #[test]
    fn a_capturing_run_waits_for_the_others() {
        let shared = capture_hold(false);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(move || {
                let _alone = capture_hold(true);
                tx.send(()).unwrap();
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(
                rx.try_recv().is_err(),
                "the capture started while a run held the lock"
            );
            drop(shared);
            rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        });
    }

    #[test]
    fn provider_options_are_key_value_pairs() {
        let got = parse_options(
            " prefer_nhwc=1, fuse_conv_bias = 1,,junk,=2,cudnn_conv_algo_search=HEURISTIC",
        );
        let want = [
            ("prefer_nhwc", "1"),
            ("fuse_conv_bias", "1"),
            ("cudnn_conv_algo_search", "HEURISTIC"),
        ];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
        assert!(parse_options("").is_empty());
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cuda_lanes_default_to_two_within_one_to_four() {
        assert_eq!(lanes_from(None), 2);
        assert_eq!(lanes_from(Some("1")), 1);
        assert_eq!(lanes_from(Some(" 3 ")), 3);
        assert_eq!(lanes_from(Some("0")), 1);
        assert_eq!(lanes_from(Some("99")), 4);
        assert_eq!(lanes_from(Some("two")), 2);
    }

    #[test]
    fn tuned_options_are_defaults_the_environment_overrides() {
        let tuned = pairs(&[("prefer_nhwc", "1"), ("fuse_conv_bias", "1")]);
        assert_eq!(merge_options(&[], true), tuned);
        // After cuDNN refused a fused convolution: channels-last only.
        assert_eq!(merge_options(&[], false), pairs(&[("prefer_nhwc", "1")]));
        // Channels-last off takes fusion with it (cuDNN fuses channels-last only)...
        assert_eq!(
            merge_options(&pairs(&[("prefer_nhwc", "0")]), true),
            pairs(&[("prefer_nhwc", "0")])
        );
        // ...unless fusion is asked for too; other keys are passed on.
        assert_eq!(
            merge_options(
                &pairs(&[
                    ("fuse_conv_bias", "1"),
                    ("prefer_nhwc", "0"),
                    ("use_tf32", "0")
                ]),
                true
            ),
            pairs(&[
                ("fuse_conv_bias", "1"),
                ("prefer_nhwc", "0"),
                ("use_tf32", "0")
            ])
        );
        assert!(is_fusion_failure(
            "Non-zero status code returned while running Conv node. Failed to initialize CUDNN Frontend"
        ));
        assert!(!is_fusion_failure("CUDA out of memory"));
    }
}
