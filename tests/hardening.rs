//! Hardening: the element never takes a pipeline down.
//!
//! 1. Hostile model and label files: each gives exactly one element error that names the file and
//!    says what is wrong, never a panic or an abort.
//! 2. Stream faults through `appsrc ! nonlocalclassify ! appsink`: EOS at every point of a clip,
//!    no frames at all, gaps, backwards and missing timestamps, timestamps at the end of time, odd
//!    frame sizes and padded strides, flushes and seeks mid-clip, twice in a row: results are the
//!    ones docs/design.md defines and nothing from before a flush comes out after it.
//! 3. A live source faster than inference for 10,000 frames: video keeps flowing, clips are
//!    dropped and counted, memory stays flat.
//! 4. Lifecycle: 1,000 NULL↔PLAYING cycles of one pipeline, 100 elements created and destroyed
//!    around one shared engine, pipelines in several threads at once: results stay right and
//!    memory stays flat.
//!
//! The tests of this file run one at a time (they measure the process's memory) and fail when
//! any thread panicked while they ran, the element's streaming and inference threads included.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstnonlocal::NonLocalClassifyMeta;

// ---------------------------------------------------------------------------------------------
// Harness

static SERIAL: Mutex<()> = Mutex::new(());
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Held by each test: runs the tests one at a time and checks that no thread panicked.
struct Guard {
    _serial: MutexGuard<'static, ()>,
    panics: usize,
}

fn guard() -> Guard {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
    init();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Guard {
        _serial: serial,
        panics: PANICS.load(Ordering::SeqCst),
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                PANICS.load(Ordering::SeqCst),
                self.panics,
                "a thread panicked during the test (see its message above)"
            );
        }
    }
}

/// Under valgrind (tools/leak-check) resident memory measures valgrind's own bookkeeping, so the
/// RSS limits are not checked; valgrind's leak report is the check there.
fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("vgpreload"))
}

/// The RSS limit of a memory test: `end` may exceed `start` by at most `limit_kib`.
fn rss_within(start: u64, end: u64, limit_kib: u64) -> bool {
    under_valgrind() || end < start + limit_kib
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nl-hard-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every message on the bus until EOS or the timeout.
fn messages(pipeline: &gst::Pipeline, timeout: Duration) -> Vec<gst::Message> {
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            break;
        };
        let eos = matches!(msg.view(), gst::MessageView::Eos(_));
        out.push(msg);
        if eos {
            break;
        }
    }
    out
}

/// The texts of the error messages posted by the nonlocalclassify element.
fn element_errors(msgs: &[gst::Message], element: &gst::Element) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) if m.src() == Some(element.upcast_ref::<gst::Object>()) => {
                Some(format!("{} | {}", e.error(), e.debug().unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

fn results_of(msgs: &[gst::Message]) -> Vec<gst::Structure> {
    msgs.iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "nonlocalclassify")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .collect()
}

/// Start the element with `props`: the error texts it posted (exactly one is expected) and
/// whether the pipeline started.
fn start_with(props: &[(&str, glib::Value)]) -> (bool, Vec<String>) {
    let h = Harness::new(&caps("RGB", 16, 8), props, false);
    let started = h.pipeline.set_state(gst::State::Playing).is_ok();
    // A refused start posts its error during the state change; wait a little for any other.
    let msgs = messages(&h.pipeline, Duration::from_millis(100));
    (started, element_errors(&msgs, &h.element))
}

/// Start must fail with exactly one element error containing every one of `needles`.
fn assert_refused(props: &[(&str, glib::Value)], needles: &[&str]) -> String {
    let (started, errors) = start_with(props);
    assert!(!started, "started with {props:?}");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    for n in needles {
        assert!(errors[0].contains(n), "{n:?} not in {}", errors[0]);
    }
    errors[0].clone()
}

/// Check a probe.onnx result: sampled frames `frames` (R = 4·n), G = `g` for every pixel, B = 200,
/// normalised with the probe's mean 10,20,30 and std 2,4,5.
fn assert_probe(scores: &HashMap<String, f64>, frames: &[u64], g: f64, tol: f64) {
    assert_eq!(scores.len(), 12, "{scores:?}");
    for (t, n) in frames.iter().enumerate() {
        let r = ((4 * n) % 256) as f64;
        let want = [(r - 10.0) / 2.0, (g - 20.0) / 4.0, (200.0 - 30.0) / 5.0];
        for (c, w) in "rgb".chars().zip(want) {
            let got = scores[&format!("c{c}_t{t}")];
            assert!(
                (got - w).abs() <= tol,
                "c{c}_t{t}: got {got}, want {w} (frames {frames:?})"
            );
        }
    }
}

/// The frame indices a probe result saw (R = 4·n, n < 64).
fn probe_frames(scores: &HashMap<String, f64>) -> Vec<u64> {
    (0..4)
        .map(|t| ((scores[&format!("cr_t{t}")] * 2.0 + 10.0) / 4.0).round() as u64)
        .collect()
}

fn all12() -> (&'static str, glib::Value) {
    ("top-k", v(12u32))
}

/// A frame laid out as GStreamer lays it out for `info` (rows padded to the stride, planes at
/// their offsets): every pixel R = 4·n, G = 100, B = 200 for RGB formats (Y = 126, U = V = 128 for
/// YUV), every padding byte 0xEE so a reader that ignores strides sees garbage.
fn frame(info: &gst_video::VideoInfo, n: u64) -> Vec<u8> {
    use gst_video::VideoFormat as F;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut data = vec![0xEEu8; info.size()];
    let mut fill = |plane: usize, rows: usize, row: &[u8]| {
        let (offset, stride) = (info.offset()[plane], info.stride()[plane] as usize);
        for y in 0..rows {
            data[offset + y * stride..][..row.len()].copy_from_slice(row);
        }
    };
    let r = ((4 * n) % 256) as u8;
    match info.format() {
        F::Rgb => fill(0, h, &[r, 100, 200].repeat(w)),
        F::Bgr => fill(0, h, &[200, 100, r].repeat(w)),
        F::Rgbx => fill(0, h, &[r, 100, 200, 0].repeat(w)),
        F::I420 => {
            fill(0, h, &vec![126; w]);
            fill(1, ch, &vec![128; cw]);
            fill(2, ch, &vec![128; cw]);
        }
        F::Nv12 => {
            fill(0, h, &vec![126; w]);
            fill(1, ch, &vec![128; 2 * cw]);
        }
        other => unreachable!("{other:?}"),
    }
    data
}

fn video_info(format: &str, width: u32, height: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::from_caps(&caps(format, width as i32, height as i32)).unwrap()
}

/// Run `frames` (buffer contents with their PTS and duration) and collect everything.
fn run_timed(
    caps: &gst::Caps,
    props: &[(&str, glib::Value)],
    frames: impl IntoIterator<Item = (Vec<u8>, Option<u64>, Option<u64>)>,
) -> Outcome {
    let h = Harness::new(caps, props, false);
    h.start().expect("starts");
    for (data, pts, duration) in frames {
        let mut b = gst::Buffer::from_mut_slice(data);
        {
            let b = b.get_mut().unwrap();
            b.set_pts(pts.map(gst::ClockTime::from_nseconds));
            b.set_duration(duration.map(gst::ClockTime::from_nseconds));
        }
        h.push(b);
    }
    h.finish()
}

// ---------------------------------------------------------------------------------------------
// 1. Hostile model and label files

#[test]
fn truncated_random_empty_and_directory_models() {
    let _g = guard();
    let dir = temp_dir("models");
    let full = std::fs::read(model("probe.onnx")).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [
        1,
        2,
        7,
        16,
        64,
        full.len() / 3,
        full.len() / 2,
        full.len() - 9,
    ] {
        cases.push((format!("cut{cut}.onnx"), full[..cut].to_vec()));
    }
    // Reproducible random bytes (xorshift), with and without a protobuf-looking first byte.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for len in [1usize, 3, 100, 4096, 70_000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        cases.push((format!("random{len}.onnx"), bytes.clone()));
        let mut tagged = bytes;
        tagged[0] = 0x08; // field 1 (ir_version), varint
        cases.push((format!("tagged{len}.onnx"), tagged));
    }
    cases.push(("empty.onnx".into(), Vec::new()));
    for (name, bytes) in &cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let path = path.to_str().unwrap();
        let (started, errors) = start_with(&[("model", v(path))]);
        assert!(!started, "{name} started");
        assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
        assert!(
            errors[0].contains(path) && errors[0].contains("not a valid ONNX model"),
            "{name}: {}",
            errors[0]
        );
    }
    // A directory where the model should be.
    let sub = dir.join("model-dir.onnx");
    std::fs::create_dir_all(&sub).unwrap();
    let sub = sub.to_str().unwrap();
    assert_refused(&[("model", v(sub))], &[sub, "cannot be read"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn malformed_metadata_numbers_are_named() {
    let _g = guard();
    for (file, key, value) in [
        ("hostile_clip_length.onnx", "clip.length", "-3"),
        ("hostile_mean.onnx", "preprocess.mean", "1,2"),
        ("hostile_std.onnx", "preprocess.std", "57.375,0,57.375"),
    ] {
        let path = model(file);
        let e = assert_refused(&[("model", v(&path))], &[&path, key, value, "not valid"]);
        eprintln!("{file}: {e}");
    }
}

#[test]
fn absurd_sizes_are_refused_before_any_allocation() {
    let _g = guard();
    // A crop of 1,000,000² pixels (dynamic H/W, metadata asks for it).
    let path = model("hostile_huge_crop.onnx");
    let e = assert_refused(&[("model", v(&path))], &[&path, "1000000", "8192"]);
    eprintln!("{e}");
    // A fixed batch of 2^24 clips: every run would be padded to 16,777,216 clips (51 GB).
    let path = model("hostile_huge_batch.onnx");
    let e = assert_refused(&[("model", v(&path))], &[&path, "fixed batch"]);
    eprintln!("{e}");
}

#[test]
fn out_of_range_properties_are_refused_by_the_property() {
    let _g = guard();
    // gst-launch-1.0 turns "-1" into 4294967295 and 99999999999 into 1215752191: every such value
    // is outside the property's range, so GLib refuses it and the element keeps its value.
    let cases: [(&str, u32, u32); 9] = [
        ("clip-length", 70_000, 1024),
        ("clip-length", 1_215_752_191, 1024),
        ("frame-stride", 70_000, 64),
        ("clip-stride", u32::MAX, 100_000_000),
        ("top-k", 0, 1000),
        ("smoothing", 0, 1000),
        ("max-pending", u32::MAX, 1024),
        ("max-batch", 100_000, 256),
        ("batch-timeout", u32::MAX, 10_000),
    ];
    for (name, bad, max) in cases {
        let e = gst::ElementFactory::make("nonlocalclassify")
            .build()
            .unwrap();
        let pspec = e.find_property(name).unwrap();
        let range = pspec.downcast_ref::<glib::ParamSpecUInt>().unwrap();
        assert_eq!(range.maximum(), max, "{name}");
        assert!(
            bad < range.minimum() || bad > range.maximum(),
            "{name}={bad} is in range"
        );
        e.set_property(name, max);
        assert_eq!(
            e.property::<u32>(name),
            max,
            "{name}: the documented maximum"
        );
        // As gst-launch-1.0 sets it: GLib refuses the value and the element keeps its own.
        let line = format!("nonlocalclassify name=c {name}={bad}");
        let bin = gst::parse::launch(&line).unwrap();
        let c = bin
            .downcast::<gst::Bin>()
            .map_or_else(|e| e, |b| b.by_name("c").unwrap());
        let fresh = gst::ElementFactory::make("nonlocalclassify")
            .build()
            .unwrap();
        assert_eq!(
            c.property::<u32>(name),
            fresh.property::<u32>(name),
            "{line}"
        );
    }
    // The largest clip a dynamic-time model may be asked for still opens (3 × 1024 × 8² values).
    let path = model("logits_dynamic.onnx");
    let (started, errors) = start_with(&[("model", v(&path)), ("clip-length", v(1024u32))]);
    assert!(started && errors.is_empty(), "{errors:?}");
}

#[test]
fn zero_class_output_is_not_a_classifier() {
    let _g = guard();
    let path = model("hostile_zero_classes.onnx");
    assert_refused(&[("model", v(&path))], &[&path, "0 class", "at least 2"]);
}

#[test]
fn label_files_with_the_wrong_lines() {
    let _g = guard();
    let dir = temp_dir("labels");
    let twelve: Vec<String> = (0..12).map(|i| format!("class {i}")).collect();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "eleven.txt",
            twelve[..11].join("\n").into_bytes(),
            vec!["11 labels", "12 outputs"],
        ),
        (
            "thirteen.txt",
            [&twelve[..], &["extra".to_string()]]
                .concat()
                .join("\n")
                .into_bytes(),
            vec!["13 labels", "12 outputs"],
        ),
        (
            "hole.txt",
            format!("{}\n\n{}\n", twelve[..5].join("\n"), twelve[5..].join("\n")).into_bytes(),
            vec!["line 6 is empty"],
        ),
        (
            "latin1.txt",
            [
                twelve[..3].join("\n").as_bytes(),
                b"\ncaf\xe9\n",
                twelve[4..].join("\n").as_bytes(),
            ]
            .concat(),
            vec!["not UTF-8", "line 4"],
        ),
        ("empty.txt", Vec::new(), vec!["0 labels", "12 outputs"]),
    ];
    for (name, bytes, needles) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let p = path.to_str().unwrap();
        let mut all = vec![p];
        all.extend(needles);
        assert_refused(&[("model", v(model("probe.onnx"))), ("labels", v(p))], &all);
    }
    // CRLF endings and trailing blank lines are fine.
    let ok = dir.join("crlf.txt");
    std::fs::write(&ok, twelve.join("\r\n") + "\r\n\r\n").unwrap();
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            ("labels", v(ok.to_str().unwrap())),
        ],
        8,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results[0].get::<&str>("label").unwrap(), "class 8");
    // A directory where the label file should be.
    let sub = dir.join("labels-dir");
    std::fs::create_dir_all(&sub).unwrap();
    let sub = sub.to_str().unwrap();
    assert_refused(
        &[("model", v(model("probe.onnx"))), ("labels", v(sub))],
        &[sub, "cannot read label file"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Run `count` probe frames through a model that loads but fails or misbehaves at run time:
/// the element's errors, its results, and how long the pipeline took to go to NULL afterwards.
fn run_failing(file: &str, count: u64) -> (Vec<String>, Vec<gst::Structure>, Duration) {
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model(file))), ("max-pending", v(4u32))],
        false,
    );
    h.start().expect("starts");
    // The element refuses buffers once inference failed: pushes may fail, which is fine.
    for n in 0..count {
        let _ = h.src.push_buffer(buffer(probe_rgb(n), n));
    }
    let _ = h.src.end_of_stream();
    // Until the first error of the element, then half a second more for any other.
    let mut msgs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && element_errors(&msgs, &h.element).is_empty() {
        msgs.extend(messages(&h.pipeline, Duration::from_millis(50)));
    }
    msgs.extend(messages(&h.pipeline, Duration::from_millis(500)));
    let errors = element_errors(&msgs, &h.element);
    let results = results_of(&msgs);
    let stopping = Instant::now();
    h.pipeline.set_state(gst::State::Null).unwrap();
    (errors, results, stopping.elapsed())
}

#[test]
fn inference_failures_give_one_error_and_stop_cleanly() {
    let _g = guard();
    for (file, needle) in [
        ("hostile_runtime_failure.onnx", "Reshape"),
        ("hostile_lying_output.onnx", "wrong size"),
    ] {
        // Several clips queued when the first fails: still one error.
        let (errors, results, took) = run_failing(file, 40);
        assert_eq!(errors.len(), 1, "{file}: {errors:#?}");
        assert!(
            errors[0].contains("Inference failed") && errors[0].contains(needle),
            "{file}: {}",
            errors[0]
        );
        assert!(errors[0].contains(file), "{}", errors[0]);
        assert!(results.is_empty(), "{results:?}");
        assert!(took < Duration::from_secs(2), "{file}: NULL took {took:?}");
    }
}

/// An int8 QDQ model whose quantization scale is 0 (tools/export_model.py --int8 never writes
/// one): ONNX Runtime's CPU provider runs it and every score comes out 0; whatever a provider
/// makes of it, the element gives results or one error naming the model, and never panics.
#[test]
fn a_qdq_model_with_a_zero_scale_runs_or_fails_once_on_the_cpu() {
    let _g = guard();
    let props = [
        ("model", v(model("hostile_qdq_scale.onnx"))),
        ("execution-provider", v("cpu")),
        ("top-k", v(12u32)),
    ];
    let out = run_frames(&caps("RGB", 16, 8), &props, 16, probe_rgb);
    match out.errors.as_slice() {
        [] => {
            assert_eq!(out.results.len(), 2);
            assert!(
                out.scores(0).values().all(|&s| s == 0.0),
                "{:?}",
                out.scores(0)
            );
        }
        [one] => assert!(one.contains("hostile_qdq_scale"), "{one}"),
        many => panic!("more than one error: {many:?}"),
    }
}

#[test]
fn nan_scores_are_reported_not_fatal() {
    let _g = guard();
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("hostile_nan.onnx")))],
        16,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 2);
    let label = out.results[0].get::<String>("label").unwrap();
    assert!(label.starts_with("class-"), "{label}");
    assert!(out.summary.is_some());
}

// ---------------------------------------------------------------------------------------------
// 2. Stream faults

/// The clips docs/design.md defines for `count` frames, EOS completion included, as frame lists.
fn design_clips(length: u64, stride: u64, step: u64, count: u64) -> Vec<Vec<u64>> {
    let mut clips = Vec::new();
    let mut k = 0;
    while k * step < count {
        let mut frames: Vec<u64> = (0..length)
            .map(|i| k * step + i * stride)
            .filter(|&n| n < count)
            .collect();
        if 2 * frames.len() as u64 >= length {
            let last = *frames.last().unwrap();
            frames.resize(length as usize, last);
            clips.push(frames);
        }
        k += 1;
    }
    clips
}

#[test]
fn eos_at_every_point_of_a_clip() {
    let _g = guard();
    // probe.onnx: 4 frames every 2nd (span 6), next clip at 8; then overlapping clips of 4
    // consecutive frames every frame.
    for (props, (length, stride, step)) in [
        (vec![], (4, 2, 8)),
        (
            vec![("clip-stride", v(1u32)), ("frame-stride", v(1u32))],
            (4, 1, 1),
        ),
    ] {
        for count in 0..=10u64 {
            let mut p = vec![("model", v(model("probe.onnx"))), all12()];
            p.extend(props.iter().cloned());
            let out = run_frames(&caps("RGB", 16, 8), &p, count, probe_rgb);
            assert!(out.errors.is_empty(), "{count}: {:?}", out.errors);
            assert_eq!(out.buffers.len() as u64, count);
            let want = design_clips(length, stride, step, count);
            let got: Vec<Vec<u64>> = (0..out.results.len())
                .map(|i| probe_frames(&out.scores(i)))
                .collect();
            assert_eq!(
                got, want,
                "{count} frames, sampling {length}/{stride}/{step}"
            );
            for (i, frames) in want.iter().enumerate() {
                assert_probe(&out.scores(i), frames, g_mean(4), 1e-4);
                let real_last = frames.iter().max().unwrap();
                assert_eq!(out.field_u64(i, "timestamp"), frames[0] * FRAME_NS);
                assert_eq!(
                    out.field_u64(i, "duration"),
                    (real_last + 1 - frames[0]) * FRAME_NS
                );
            }
            // The summary comes at every EOS, with no clip at all too.
            let summary = out.summary.expect("summary");
            assert_eq!(summary.get::<u64>("clips").unwrap(), want.len() as u64);
            if want.is_empty() {
                assert_eq!(summary.get::<u64>("timestamp").unwrap(), u64::MAX);
                assert_eq!(summary.get::<gst::Array>("labels").unwrap().len(), 0);
            }
        }
    }
}

fn g_mean(x0: u64) -> f64 {
    (x0..x0 + 8).map(|x| (x * x) as f64).sum::<f64>() / 8.0
}

#[test]
fn one_frame_clips() {
    let _g = guard();
    // clip-length 1 on a dynamic-T model: one frame, one clip.
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("logits_dynamic.onnx"))),
            ("clip-length", v(1u32)),
        ],
        1,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1);
    assert_eq!(out.field_u64(0, "duration"), FRAME_NS);
    assert_eq!(out.summary.unwrap().get::<u64>("clips").unwrap(), 1);
}

#[test]
fn gaps_and_backward_timestamps() {
    let _g = guard();
    let ms = 1_000_000u64;
    // Frame PTS in ms: a jump forward after frame 1, backwards at frame 4, clip 1 (frames 8, 10,
    // 12, 14) running backwards in time.
    let pts = [
        0, 40, 5000, 5040, 1000, 1040, 1080, 9000, 20000, 20040, 3000, 3040, 2000, 2040, 1000, 1040,
    ];
    let out = run_timed(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        pts.iter()
            .enumerate()
            .map(|(n, &p)| (probe_rgb(n as u64), Some(p * ms), Some(40 * ms))),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 2);
    assert_probe(&out.scores(0), &[0, 2, 4, 6], g_mean(4), 1e-4);
    assert_probe(&out.scores(1), &[8, 10, 12, 14], g_mean(4), 1e-4);
    // Timestamp: PTS of the first sampled frame; duration: to the end of the last one.
    assert_eq!(out.field_u64(0, "timestamp"), 0);
    assert_eq!(out.field_u64(0, "duration"), 1120 * ms);
    assert_eq!(out.field_u64(0, "running-time"), 0);
    assert_eq!(out.field_u64(1, "timestamp"), 20000 * ms);
    // The last frame ends before the first starts: no negative duration.
    assert_eq!(out.field_u64(1, "duration"), 0);
    assert_eq!(out.field_u64(1, "stream-time"), 20000 * ms);
    // Every buffer passed, in the order pushed.
    let got: Vec<u64> = out
        .buffers
        .iter()
        .map(|b| b.pts().unwrap().nseconds() / ms)
        .collect();
    assert_eq!(got, pts);
}

#[test]
fn buffers_without_timestamps_are_classified() {
    let _g = guard();
    // No PTS and no duration at all.
    let out = run_timed(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        (0..16).map(|n| (probe_rgb(n), None, None)),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 2);
    for (i, base) in [0u64, 8].into_iter().enumerate() {
        assert_probe(
            &out.scores(i),
            &[base, base + 2, base + 4, base + 6],
            g_mean(4),
            1e-4,
        );
        for field in ["timestamp", "duration", "stream-time", "running-time"] {
            assert_eq!(out.field_u64(i, field), u64::MAX, "{field}");
        }
    }
    let summary = out.summary.unwrap();
    assert_eq!(summary.get::<u64>("clips").unwrap(), 2);
    assert_eq!(summary.get::<u64>("timestamp").unwrap(), u64::MAX);
    // Only the first sampled frame lacks a PTS: the clip has no timestamp; the next clip has
    // one, and its duration comes from the framerate where buffers have none.
    let out = run_timed(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        (0..16).map(|n| (probe_rgb(n), (n != 0).then_some(n * FRAME_NS), None)),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.field_u64(0, "timestamp"), u64::MAX);
    assert_eq!(out.field_u64(1, "timestamp"), 8 * FRAME_NS);
    assert_eq!(out.field_u64(1, "duration"), 7 * FRAME_NS);
}

#[test]
fn timestamps_at_the_end_of_time() {
    let _g = guard();
    // The last sampled frame ends past u64::MAX nanoseconds: durations saturate, nothing wraps.
    let last = u64::MAX - 1;
    let pts = |n: u64| last - FRAME_NS / 2 - (6u64.saturating_sub(n)) * FRAME_NS;
    let out = run_timed(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        (0..8).map(|n| (probe_rgb(n), Some(pts(n).min(last)), Some(FRAME_NS))),
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1);
    assert_probe(&out.scores(0), &[0, 2, 4, 6], g_mean(4), 1e-4);
    assert_eq!(out.field_u64(0, "timestamp"), pts(0));
    let summary = out.summary.expect("summary");
    assert_eq!(summary.get::<u64>("clips").unwrap(), 1);
    assert_eq!(summary.get::<u64>("timestamp").unwrap(), pts(0));
}

#[test]
fn odd_sizes_and_padded_strides() {
    let _g = guard();
    for (format, w, h) in [
        ("RGB", 1, 1),
        ("RGB", 7, 5),
        ("BGR", 7, 5),
        ("RGB", 5, 7),
        ("RGBx", 3, 1),
        ("RGB", 4096, 2160),
    ] {
        let info = video_info(format, w, h);
        if format == "RGB" && w == 7 {
            // GStreamer pads RGB rows to 4 bytes: 21 → 24; the padding must not leak in.
            assert_eq!(info.stride()[0], 24);
        }
        let out = run_frames(
            &caps(format, w as i32, h as i32),
            &[("model", v(model("probe.onnx"))), all12()],
            7,
            |n| frame(&info, n),
        );
        assert!(out.errors.is_empty(), "{format} {w}×{h}: {:?}", out.errors);
        assert_eq!(out.results.len(), 1, "{format} {w}×{h}");
        assert_probe(&out.scores(0), &[0, 2, 4, 6], 100.0, 1e-3);
        assert_eq!(out.buffers.len(), 7);
        let map = out.buffers[3].map_readable().unwrap();
        assert_eq!(
            map.as_slice(),
            frame(&info, 3).as_slice(),
            "passed unchanged"
        );
    }
    // YUV with odd sizes: chroma planes of ceil(w/2) × ceil(h/2), rows padded to 4 bytes.
    for (format, w, h) in [
        ("I420", 7, 5),
        ("I420", 1, 1),
        ("I420", 9, 3),
        ("NV12", 7, 5),
        ("NV12", 1, 1),
    ] {
        let info = video_info(format, w, h);
        let out = run_frames(
            &caps(format, w as i32, h as i32),
            &[("model", v(model("probe_u8.onnx"))), all12()],
            8,
            |n| frame(&info, n),
        );
        assert!(out.errors.is_empty(), "{format} {w}×{h}: {:?}", out.errors);
        assert_eq!(out.results.len(), 1, "{format} {w}×{h}");
        for (label, value) in out.scores(0) {
            // Y 126, U = V = 128, limited range: 128.08 for R, G and B.
            assert!(
                (value - 128.0).abs() <= 1.0,
                "{format} {w}×{h} {label}: {value}"
            );
        }
    }
}

#[test]
fn extremely_elongated_frames_are_one_clear_error() {
    let _g = guard();
    // Scaled to a short side of 256, a 4096×1 frame would be a million pixels long, for every frame
    // a clip holds; such streams are refused with one error saying what to do.
    for (w, h) in [(4096, 1), (1, 4096), (700, 2)] {
        let info = video_info("RGB", w, h);
        let out = run_frames(
            &caps("RGB", w as i32, h as i32),
            &[("model", v(model("probe.onnx")))],
            7,
            |n| frame(&info, n),
        );
        assert_eq!(out.errors.len(), 1, "{w}×{h}: {:?}", out.errors);
        assert!(
            out.errors[0].contains(&format!("{w}x{h} frames are more than 16:1"))
                && out.errors[0].contains("videocrop"),
            "{:?}",
            out.errors
        );
        assert!(out.results.is_empty());
    }
}

/// `appsrc ! nonlocalclassify ! appsink` where appsrc answers flushing seeks.
fn seekable_harness(props: &[(&str, glib::Value)]) -> Harness {
    let h = Harness::new(&caps("RGB", 16, 8), props, false);
    h.src.set_stream_type(gst_app::AppStreamType::Seekable);
    h.src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .seek_data(|_, _| true)
            .build(),
    );
    h
}

/// Results as they are posted, with the instant of posting (a sync handler runs in the posting
/// thread), so a result can be placed before or after a flush.
fn record_results(h: &Harness) -> Arc<Mutex<Vec<(Instant, gst::Structure)>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    h.pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        if let gst::MessageView::Element(e) = msg.view() {
            if let Some(s) = e.structure().filter(|s| s.name() == "nonlocalclassify") {
                sink.lock().unwrap().push((Instant::now(), s.to_owned()));
            }
        }
        gst::BusSyncReply::Pass
    });
    log
}

#[test]
fn seeks_mid_clip_twice_in_a_row_leave_nothing_stale() {
    let _g = guard();
    // slow_probe.onnx reveals frames like probe.onnx but takes tens of ms per clip, so the clip
    // completed just before the seeks is still being inferred while they flush.
    for round in 0..3 {
        let h = seekable_harness(&[("model", v(model("slow_probe.onnx"))), all12()]);
        let log = record_results(&h);
        h.start().unwrap();
        // Clip 0 (frames 0, 2, 4, 6) completes, clip 1 is half-way (8, 10).
        for n in 0..11 {
            h.push(buffer(probe_rgb(n), n));
        }
        h.wait_buffers(11);
        if round > 0 {
            std::thread::sleep(Duration::from_millis(20 * round));
        }
        let target = 10 * gst::ClockTime::SECOND;
        for _ in 0..2 {
            h.pipeline
                .seek_simple(gst::SeekFlags::FLUSH, target)
                .expect("seek");
        }
        let flushed = Instant::now();
        // After the seek: frames 20..28 at 10 s on.
        for n in 20..28 {
            let mut b = buffer(probe_rgb(n), n);
            b.get_mut()
                .unwrap()
                .set_pts(target + gst::ClockTime::from_nseconds((n - 20) * FRAME_NS));
            h.push(b);
        }
        let out = h.finish();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let log = log.lock().unwrap();
        let after: Vec<&gst::Structure> = log
            .iter()
            .filter(|(t, _)| *t >= flushed)
            .map(|(_, s)| s)
            .collect();
        eprintln!(
            "seek round {round}: {} result(s) posted before the seeks returned, {} after",
            log.len() - after.len(),
            after.len()
        );
        assert_eq!(after.len(), 1, "round {round}: {after:#?}");
        let r = after[0];
        assert_probe(&scores_of(r), &[20, 22, 24, 26], g_mean(4), 1e-4);
        assert_eq!(r.get::<u64>("clip-index").unwrap(), 0);
        assert_eq!(r.get::<u64>("timestamp").unwrap(), target.nseconds());
        assert_eq!(r.get::<u64>("stream-time").unwrap(), target.nseconds());
        assert_eq!(r.get::<u64>("running-time").unwrap(), 0);
        // The summary covers the stream after the seek only.
        let summary = out.summary.expect("summary");
        assert_eq!(summary.get::<u64>("clips").unwrap(), 1);
        assert_eq!(summary.get::<u64>("timestamp").unwrap(), target.nseconds());
        // No buffer after the seek carries a result of a clip from before it.
        for b in &out.buffers {
            for m in NonLocalClassifyMeta::results(b) {
                assert_eq!(m.timestamp, Some(target.nseconds()), "stale meta {m:?}");
            }
        }
    }
}

#[test]
fn flushes_on_the_sink_pad_twice_in_a_row() {
    let _g = guard();
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model("slow_probe.onnx"))), all12()],
        false,
    );
    let log = record_results(&h);
    h.start().unwrap();
    for n in 0..7 {
        h.push(buffer(probe_rgb(n), n));
    }
    h.wait_buffers(7);
    let sinkpad = h.element.static_pad("sink").unwrap();
    for _ in 0..2 {
        assert!(sinkpad.send_event(gst::event::FlushStart::new()));
        assert!(sinkpad.send_event(gst::event::FlushStop::new(true)));
    }
    let flushed = Instant::now();
    assert!(sinkpad.send_event(gst::event::StreamStart::new("after-flush")));
    assert!(sinkpad.send_event(gst::event::Caps::new(&caps("RGB", 16, 8))));
    let seg = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(sinkpad.send_event(gst::event::Segment::new(&seg)));
    for n in 30..38 {
        h.push(buffer(probe_rgb(n), n));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let log = log.lock().unwrap();
    let after: Vec<_> = log.iter().filter(|(t, _)| *t >= flushed).collect();
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_probe(&scores_of(&after[0].1), &[30, 32, 34, 36], g_mean(4), 1e-4);
    assert_eq!(out.summary.unwrap().get::<u64>("clips").unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------
// 3. A live source faster than inference

#[test]
fn live_flood_keeps_flowing_with_flat_memory() {
    let _g = guard();
    const FRAMES: u64 = 10_000;
    const CHECKPOINT: u64 = 2_000;
    let h = slow_clip_per_frame(&[("max-pending", v(1u32))]);
    h.start().unwrap();
    // Pull buffers and pop messages as they come, so nothing accumulates outside the element.
    let sink = h.sink.clone();
    let bus = h.pipeline.bus().unwrap();
    let counted = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(AtomicUsize::new(0));
    let summary: Arc<Mutex<Option<gst::Structure>>> = Arc::default();
    let drain = {
        let (counted, results, summary) = (counted.clone(), results.clone(), summary.clone());
        std::thread::Builder::new()
            .name("hard-drain".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while Instant::now() < deadline {
                    while sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    match bus.timed_pop(gst::ClockTime::from_mseconds(5)) {
                        Some(msg) => match msg.view() {
                            gst::MessageView::Eos(_) => {
                                while sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {
                                    counted.fetch_add(1, Ordering::SeqCst);
                                }
                                return Ok(());
                            }
                            gst::MessageView::Error(e) => return Err(e.error().to_string()),
                            gst::MessageView::Element(e) => match e.structure() {
                                Some(s) if s.name() == "nonlocalclassify" => {
                                    results.fetch_add(1, Ordering::SeqCst);
                                }
                                Some(s) if s.name() == "nonlocalclassify-summary" => {
                                    *summary.lock().unwrap() = Some(s.to_owned());
                                }
                                _ => {}
                            },
                            _ => {}
                        },
                        None => continue,
                    }
                }
                Err("no EOS within 120 s".into())
            })
            .unwrap()
    };
    let wait_out = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counted.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "stalled at {counted:?} buffers");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let started = Instant::now();
    let mut rss_at_checkpoint = 0;
    // Bursts of 500 frames, each pushed at once (far faster than a clip is inferred), then
    // waited for: appsrc's queue never holds more than one burst, so the heap's high-water
    // mark is reached before the first measurement and growth after it means a leak.
    for n in 0..FRAMES {
        h.push(buffer(probe_rgb(n), n));
        if (n + 1) % 500 == 0 {
            wait_out(n as usize + 1);
        }
        if n + 1 == CHECKPOINT {
            rss_at_checkpoint = rss_kib();
        }
    }
    wait_out(FRAMES as usize);
    let rss_at_end = rss_kib();
    let _ = h.src.end_of_stream();
    drain.join().unwrap().expect("stream ends with EOS");
    let took = started.elapsed();
    let summary = summary.lock().unwrap().clone().expect("summary");
    let dropped = summary.get::<u64>("dropped").unwrap();
    let classified = summary.get::<u64>("clips").unwrap();
    eprintln!(
        "live flood: {FRAMES} frames in {took:?}, {classified} clips classified, {dropped} dropped; \
         VmRSS {rss_at_checkpoint} KiB at {CHECKPOINT} frames, {rss_at_end} KiB at {FRAMES} \
         ({:+} KiB)",
        rss_at_end as i64 - rss_at_checkpoint as i64
    );
    assert_eq!(
        counted.load(Ordering::SeqCst) as u64,
        FRAMES,
        "every buffer out"
    );
    assert!(dropped > 0, "nothing dropped");
    // Every clip is classified or counted as dropped (EOS completes the last three).
    assert!(
        classified + dropped >= FRAMES - 3,
        "{classified} + {dropped}"
    );
    assert_eq!(results.load(Ordering::SeqCst) as u64, classified);
    assert!(
        rss_within(rss_at_checkpoint, rss_at_end, 4 * 1024),
        "VmRSS grew from {rss_at_checkpoint} to {rss_at_end} KiB between {CHECKPOINT} and {FRAMES} frames"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Lifecycle

#[test]
fn a_thousand_state_cycles_of_one_pipeline() {
    let _g = guard();
    const CYCLES: usize = 1_000;
    const WARM_UP: usize = 100;
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        false,
    );
    let started = Instant::now();
    let mut rss_warm = 0;
    let mut classified = 0;
    for cycle in 0..CYCLES {
        if cycle == WARM_UP {
            rss_warm = rss_kib();
        }
        h.pipeline.set_state(gst::State::Playing).expect("PLAYING");
        match cycle % 3 {
            // A whole clip and EOS: the right result, every time.
            0 => {
                let base = (cycle % 7) as u64;
                for n in 0..8 {
                    h.push(buffer(probe_rgb(base + n), n));
                }
                let out = h.finish();
                assert!(out.errors.is_empty(), "cycle {cycle}: {:?}", out.errors);
                assert_eq!(out.results.len(), 1, "cycle {cycle}");
                assert_eq!(out.buffers.len(), 8, "cycle {cycle}");
                assert_probe(
                    &out.scores(0),
                    &[base, base + 2, base + 4, base + 6],
                    g_mean(4),
                    1e-4,
                );
                classified += 1;
            }
            // Straight back down.
            1 => {}
            // Down while the clip just completed is being inferred, and one half done.
            _ => {
                for n in 0..11 {
                    h.push(buffer(probe_rgb(n), n));
                }
            }
        }
        h.pipeline.set_state(gst::State::Null).expect("NULL");
    }
    let rss_end = rss_kib();
    eprintln!(
        "{CYCLES} NULL→PLAYING→NULL cycles in {:?} ({classified} with a checked result): VmRSS \
         {rss_warm} KiB after {WARM_UP} cycles, {rss_end} KiB after {CYCLES} ({:+} KiB)",
        started.elapsed(),
        rss_end as i64 - rss_warm as i64
    );
    assert!(
        rss_within(rss_warm, rss_end, 8 * 1024),
        "VmRSS grew from {rss_warm} to {rss_end} KiB over {} cycles",
        CYCLES - WARM_UP
    );
}

#[test]
fn a_hundred_elements_around_one_shared_engine() {
    let _g = guard();
    const ELEMENTS: usize = 100;
    const WARM_UP: usize = 10;
    let path = model("probe.onnx");
    // The test holds the engine, so every element gets this one and its session stays open.
    let engine = gstnonlocal::engine::SharedEngine::local(
        std::path::Path::new(&path),
        &gstnonlocal::engine::LocalSettings::default(),
    )
    .expect("engine");
    let (_, items_before) = engine.stats();
    let mut rss_warm = 0;
    let started = Instant::now();
    for i in 0..ELEMENTS {
        if i == WARM_UP {
            rss_warm = rss_kib();
        }
        let base = (i % 11) as u64;
        let out = run_frames(
            &caps("RGB", 16, 8),
            &[("model", v(&path)), all12()],
            8,
            |n| probe_rgb(base + n),
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.results.len(), 1);
        assert_probe(
            &out.scores(0),
            &[base, base + 2, base + 4, base + 6],
            g_mean(4),
            1e-4,
        );
    }
    let rss_end = rss_kib();
    let (_, items_after) = engine.stats();
    eprintln!(
        "{ELEMENTS} elements in {:?}: VmRSS {rss_warm} KiB after {WARM_UP}, {rss_end} KiB after \
         {ELEMENTS} ({:+} KiB)",
        started.elapsed(),
        rss_end as i64 - rss_warm as i64
    );
    // Every element ran its clip on the engine the test holds.
    assert_eq!(items_after - items_before, ELEMENTS as u64);
    assert!(
        rss_within(rss_warm, rss_end, 4 * 1024),
        "VmRSS grew from {rss_warm} to {rss_end} KiB"
    );
}

#[test]
fn pipelines_in_threads_at_once() {
    let _g = guard();
    const THREADS: u64 = 6;
    const RUNS: u64 = 4;
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("hard-pipeline-{t}"))
                .spawn(move || {
                    for run in 0..RUNS {
                        // Distinct frames per thread and run; half the threads use three crops,
                        // so batches mix requests of one and three items.
                        let base = 5 * t + run;
                        let three = t % 2 == 1;
                        let mut props = vec![
                            ("model", v(model("probe.onnx"))),
                            all12(),
                            ("batch-timeout", v(2u32)),
                        ];
                        if three {
                            props.push(("crops", v("three")));
                        }
                        let out =
                            run_frames(&caps("RGB", 16, 8), &props, 24, |n| probe_rgb(base + n));
                        assert!(out.errors.is_empty(), "{:?}", out.errors);
                        assert_eq!(out.results.len(), 3, "thread {t} run {run}");
                        let g = if three {
                            (g_mean(0) + g_mean(4) + g_mean(8)) / 3.0
                        } else {
                            g_mean(4)
                        };
                        for k in 0..3u64 {
                            let b = base + 8 * k;
                            assert_probe(
                                &out.scores(k as usize),
                                &[b, b + 2, b + 4, b + 6],
                                g,
                                1e-4,
                            );
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().expect("pipeline thread");
    }
    eprintln!(
        "{THREADS} threads × {RUNS} pipelines in {:?}",
        started.elapsed()
    );
}

#[test]
fn stopping_while_upstream_waits_for_a_full_queue() {
    let _g = guard();
    // Non-live, a clip per frame, one pending clip, inference of tens of ms: the streaming thread
    // spends its time waiting for room in the queue. Going to NULL must not wait for the frames
    // still queued upstream, nor hang.
    for round in 0..5u64 {
        let h = Harness::new(
            &caps("RGB", 16, 8),
            &[
                ("model", v(model("slow.onnx"))),
                ("clip-stride", v(1u32)),
                ("frame-stride", v(1u32)),
                ("max-pending", v(1u32)),
            ],
            false,
        );
        h.start().unwrap();
        for n in 0..300 {
            h.push(buffer(probe_rgb(n), n));
        }
        std::thread::sleep(Duration::from_millis(50 + 30 * round));
        let stopping = Instant::now();
        h.pipeline.set_state(gst::State::Null).unwrap();
        let took = stopping.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "round {round}: NULL took {took:?}"
        );
        let msgs = messages(&h.pipeline, Duration::from_millis(10));
        assert!(element_errors(&msgs, &h.element).is_empty(), "{msgs:?}");
    }
}

#[test]
fn a_refused_start_leaves_the_element_usable() {
    let _g = guard();
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v("/nonexistent/model.onnx")), all12()],
        false,
    );
    for bad in [
        "/nonexistent/model.onnx",
        &model("hostile_mean.onnx"),
        &model("bad_rank4.onnx"),
    ] {
        h.element.set_property("model", bad);
        assert!(h.pipeline.set_state(gst::State::Playing).is_err(), "{bad}");
        let msgs = messages(&h.pipeline, Duration::from_millis(100));
        assert_eq!(element_errors(&msgs, &h.element).len(), 1, "{bad}");
        h.pipeline.set_state(gst::State::Null).unwrap();
    }
    h.element.set_property("model", model("probe.onnx"));
    h.start().expect("starts once the model is right");
    for n in 0..8 {
        h.push(buffer(probe_rgb(n), n));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1);
    assert_probe(&out.scores(0), &[0, 2, 4, 6], g_mean(4), 1e-4);
}
