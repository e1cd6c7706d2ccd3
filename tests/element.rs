//! End-to-end tests of `appsrc ! nonlocalclassify ! appsink` with probe models whose scores
//! reveal exactly which frames, crops, channel order, layout and normalisation the element used.

mod common;

use common::*;
use gst::prelude::*;
use gstnonlocal::NonLocalClassifyMeta;
use std::time::Duration;

fn g_mean(x0: u64) -> f64 {
    (x0..x0 + 8).map(|x| (x * x) as f64).sum::<f64>() / 8.0
}

/// Check one probe result: frames `frames` sampled, G column mean `g`, normalisation of the
/// probe model (mean 10,20,30; std 2,4,5).
fn assert_probe(
    scores: &std::collections::HashMap<String, f64>,
    frames: [u64; 4],
    g: f64,
    tol: f64,
) {
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

fn all12() -> (&'static str, glib::Value) {
    ("top-k", v(12u32))
}

#[test]
fn samples_crops_and_normalises_ncthw() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        24,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // clip-length 4, frame-stride 2 (metadata), clip-stride 8: clips at 0, 8, 16.
    assert_eq!(out.results.len(), 3);
    for (k, r) in out.results.iter().enumerate() {
        let k = k as u64;
        assert_eq!(r.get::<u64>("clip-index").unwrap(), k);
        let base = 8 * k;
        assert_probe(
            &scores_of(r),
            [base, base + 2, base + 4, base + 6],
            g_mean(4),
            1e-4,
        );
        // Timestamp = PTS of the first sampled frame; duration to the end of the last one.
        assert_eq!(r.get::<u64>("timestamp").unwrap(), base * FRAME_NS);
        assert_eq!(r.get::<u64>("stream-time").unwrap(), base * FRAME_NS);
        assert_eq!(r.get::<u64>("running-time").unwrap(), base * FRAME_NS);
        assert_eq!(r.get::<u64>("duration").unwrap(), 7 * FRAME_NS);
        assert_eq!(r.get::<u64>("dropped").unwrap(), 0);
        assert!(r.get::<u64>("latency").unwrap() > 0);
        // labels/scores come best first (ties in model order); label/score are the first.
        let labels = r.get::<gst::Array>("labels").unwrap();
        let scores: Vec<f64> = r
            .get::<gst::Array>("scores")
            .unwrap()
            .iter()
            .map(|v| v.get::<f64>().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        assert_eq!(r.get::<f64>("score").unwrap(), scores[0]);
        assert_eq!(
            r.get::<String>("label").unwrap(),
            labels.first().unwrap().get::<String>().unwrap()
        );
        if k == 0 {
            // B (34) beats R (−5…7) and G (10.375) in clip 0; cb_t0 is first in model order.
            assert_eq!(r.get::<&str>("label").unwrap(), "cb_t0");
        }
    }
    // Video passes through: every buffer, untouched.
    assert_eq!(out.buffers.len(), 24);
    let map = out.buffers[5].map_readable().unwrap();
    assert_eq!(map.as_slice(), probe_rgb(5).as_slice());
}

#[test]
fn nthwc_float16_layout() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe_nthwc_f16.onnx"))), all12()],
        8,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1);
    assert_probe(&out.scores(0), [0, 2, 4, 6], g_mean(4), 0.02);
}

#[test]
fn uint8_input_gets_raw_pixels() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe_u8.onnx"))), all12()],
        8,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let s = out.scores(0);
    for (t, n) in [0u64, 2, 4, 6].iter().enumerate() {
        assert!((s[&format!("cr_t{t}")] - (4 * n) as f64).abs() < 1e-4);
        assert!((s[&format!("cg_t{t}")] - g_mean(4)).abs() < 1e-4);
        assert!((s[&format!("cb_t{t}")] - 200.0).abs() < 1e-4);
    }
}

/// Lay the probe frame out in another packed RGB format.
fn repack(rgb: &[u8], format: &str) -> Vec<u8> {
    let order: &[Option<usize>] = match format {
        "RGB" => &[Some(0), Some(1), Some(2)],
        "BGR" => &[Some(2), Some(1), Some(0)],
        "RGBx" | "RGBA" => &[Some(0), Some(1), Some(2), None],
        "BGRx" | "BGRA" => &[Some(2), Some(1), Some(0), None],
        "xRGB" | "ARGB" => &[None, Some(0), Some(1), Some(2)],
        "xBGR" | "ABGR" => &[None, Some(2), Some(1), Some(0)],
        _ => unreachable!(),
    };
    rgb.chunks(3)
        .flat_map(|p| order.iter().map(move |o| o.map_or(255, |i| p[i])))
        .collect()
}

#[test]
fn every_packed_rgb_format_gives_the_same_scores() {
    for format in [
        "RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA", "ARGB", "ABGR",
    ] {
        let out = run_frames(
            &caps(format, 16, 8),
            &[("model", v(model("probe.onnx"))), all12()],
            8,
            |n| repack(&probe_rgb(n), format),
        );
        assert!(out.errors.is_empty(), "{format}: {:?}", out.errors);
        assert_eq!(out.results.len(), 1, "{format}");
        assert_probe(&out.scores(0), [0, 2, 4, 6], g_mean(4), 1e-4);
    }
}

#[test]
fn yuv_formats_convert_grey_levels() {
    // Y = 126, U = V = 128, limited range: R = G = B = (126 − 16) · 255 / 219 ≈ 128.08 → 128.
    for format in ["I420", "NV12"] {
        let (w, h) = (16usize, 8usize);
        let frame = |_n: u64| {
            let mut v = vec![126u8; w * h];
            v.extend(std::iter::repeat_n(128u8, w * h / 2));
            v
        };
        let out = run_frames(
            &caps(format, 16, 8),
            &[("model", v(model("probe_u8.onnx"))), all12()],
            8,
            frame,
        );
        assert!(out.errors.is_empty(), "{format}: {:?}", out.errors);
        for (label, value) in out.scores(0) {
            assert!((value - 128.0).abs() <= 1.0, "{format} {label}: {value}");
        }
    }
}

#[test]
fn overlapping_clips_with_clip_stride() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            all12(),
            ("clip-stride", v(2u32)),
            ("frame-stride", v(1u32)),
        ],
        9,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // clips start at 0, 2, 4 (frames k*2 .. k*2+3); at EOS clip 3 (6,7,8 + pad) is completed.
    assert_eq!(out.results.len(), 4);
    for k in 0..3u64 {
        let b = 2 * k;
        assert_probe(
            &out.scores(k as usize),
            [b, b + 1, b + 2, b + 3],
            g_mean(4),
            1e-4,
        );
    }
    assert_probe(&out.scores(3), [6, 7, 8, 8], g_mean(4), 1e-4);
}

/// Three crops averaged, with a dynamic batch and with a graph fixed to batch 2 (run in chunks).
#[test]
fn three_crops_are_averaged() {
    for name in ["probe.onnx", "probe_batch2.onnx"] {
        let out = run_frames(
            &caps("RGB", 16, 8),
            &[("model", v(model(name))), all12(), ("crops", v("three"))],
            8,
            probe_rgb,
        );
        assert!(out.errors.is_empty(), "{name}: {:?}", out.errors);
        let g = (g_mean(0) + g_mean(4) + g_mean(8)) / 3.0;
        assert_probe(&out.scores(0), [0, 2, 4, 6], g, 1e-4);
    }
}

#[test]
fn smoothing_averages_recent_clips_and_summary_averages_all() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            all12(),
            ("smoothing", v(2u32)),
        ],
        24,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 3);
    // cr_t0 raw: clip k → (32k − 10)/2 = 16k − 5. Smoothed over 2: clip 1 → (−5 + 11)/2 = 3,
    // clip 2 → (11 + 27)/2 = 19.
    assert!((out.scores(0)["cr_t0"] - (-5.0)).abs() < 1e-4);
    assert!((out.scores(1)["cr_t0"] - 3.0).abs() < 1e-4);
    assert!((out.scores(2)["cr_t0"] - 19.0).abs() < 1e-4);
    // Summary: raw mean over the 3 clips = (−5 + 11 + 27)/3 = 11.
    let summary = out.summary.expect("summary at EOS");
    assert_eq!(summary.get::<u64>("clips").unwrap(), 3);
    assert!((scores_of(&summary)["cr_t0"] - 11.0).abs() < 1e-4);
    assert_eq!(summary.get::<u64>("timestamp").unwrap(), 0);
    assert_eq!(summary.get::<u64>("duration").unwrap(), 23 * FRAME_NS);
}

#[test]
fn eos_completes_a_clip_with_half_its_frames_and_drops_shorter_ones() {
    // 13 frames: clip 1 samples 8, 10, 12 (3 of 4) → padded with frame 12.
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        13,
        probe_rgb,
    );
    assert_eq!(out.results.len(), 2, "{:?}", out.errors);
    assert_probe(&out.scores(1), [8, 10, 12, 12], g_mean(4), 1e-4);
    assert_eq!(out.field_u64(1, "duration"), 5 * FRAME_NS);
    // 11 frames: clip 1 has 8, 10 (2 of 4, exactly half) → kept; 10 frames: only 8 → dropped.
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx")))],
        11,
        probe_rgb,
    );
    assert_eq!(out.results.len(), 2);
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx")))],
        10,
        probe_rgb,
    );
    assert_eq!(out.results.len(), 1);
    assert_eq!(out.summary.unwrap().get::<u64>("clips").unwrap(), 1);
}

#[test]
fn result_meta_rides_on_the_next_buffer() {
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        false,
    );
    h.start().unwrap();
    for n in 0..7 {
        h.push(buffer(probe_rgb(n), n));
    }
    let msg = h
        .next_result(Duration::from_secs(30))
        .expect("result for clip 0");
    assert_eq!(msg.name(), "nonlocalclassify");
    h.push(buffer(probe_rgb(7), 7));
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let with_meta: Vec<(usize, Vec<gstnonlocal::ClipResult>)> = out
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| (i, NonLocalClassifyMeta::results(b)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    assert_eq!(with_meta.len(), 1, "{with_meta:?}");
    let (index, results) = &with_meta[0];
    assert_eq!(*index, 7, "first buffer pushed after the result");
    let from_msg = gstnonlocal::ClipResult::from_structure(&msg).unwrap();
    assert_eq!(results[0], from_msg);
}

#[test]
fn every_result_reaches_downstream_on_a_buffer_or_before_eos() {
    // 13 frames: clip 0 completes at frame 6, clip 1 only at EOS (padded), when no buffer is left
    // to carry it: it travels as a serialized custom event, the same structure as its message.
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        13,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 2);
    let on_buffers: Vec<u64> = out
        .buffers
        .iter()
        .flat_map(|b| NonLocalClassifyMeta::results(b))
        .map(|r| r.clip_index)
        .collect();
    let as_events: Vec<u64> = out
        .events
        .iter()
        .filter(|s| s.name() == "nonlocalclassify")
        .map(|s| s.get::<u64>("clip-index").unwrap())
        .collect();
    let mut every: Vec<u64> = on_buffers.iter().chain(&as_events).copied().collect();
    every.sort();
    assert_eq!(
        every,
        vec![0, 1],
        "buffers {on_buffers:?}, events {as_events:?}"
    );
    assert!(as_events.contains(&1), "{as_events:?}");
    let event = out
        .events
        .iter()
        .find(|s| s.get::<u64>("clip-index").ok() == Some(1));
    assert_eq!(event.map(|s| s.to_owned()), Some(out.results[1].clone()));
}

#[test]
fn a_stream_too_short_for_one_clip_says_so() {
    // probe.onnx: 4 frames every 2, so a clip needs frames 0 and 2 (3 decoded frames).
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx")))],
        2,
        probe_rgb,
    );
    assert!(out.errors.is_empty() && out.results.is_empty(), "{out:?}");
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    let w = &out.warnings[0];
    assert!(
        w.contains("ended after 2 frames")
            && w.contains("needs at least 3")
            && w.contains("clip-length"),
        "{w}"
    );
    assert_eq!(out.summary.unwrap().get::<u64>("clips").unwrap(), 0);
    // Three frames are enough: no warning.
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx")))],
        3,
        probe_rgb,
    );
    assert!(out.warnings.is_empty() && out.results.len() == 1, "{out:?}");
}

#[test]
fn logits_get_softmax_and_clip_length_property_sets_dynamic_time() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("logits_dynamic.onnx"))),
            ("clip-length", v(3u32)),
        ],
        3,
        |n| {
            let _ = n;
            let mut f = Vec::new();
            for _ in 0..16 * 8 {
                f.extend_from_slice(&[200u8, 100, 0]);
            }
            f
        },
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1);
    // logits [2.0, 1.0] (std 100) → softmax [e/(e+1), 1/(e+1)]; generic labels class-0/1.
    let e = std::f64::consts::E;
    let s = out.scores(0);
    assert!((s["class-0"] - e / (e + 1.0)).abs() < 1e-5, "{s:?}");
    assert!((s["class-1"] - 1.0 / (e + 1.0)).abs() < 1e-5, "{s:?}");
    assert_eq!(out.results[0].get::<&str>("label").unwrap(), "class-0");
}

#[test]
fn four_hundred_outputs_use_builtin_kinetics_labels() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("kinetics_sized.onnx"))),
            ("top-k", v(1u32)),
        ],
        8,
        |_| {
            let mut f = Vec::new();
            for _ in 0..16 * 8 {
                f.extend_from_slice(&[250u8, 0, 0]);
            }
            f
        },
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.results[0].get::<&str>("label").unwrap(),
        "arm wrestling"
    );
    let labels = out.results[0].get::<gst::Array>("labels").unwrap();
    assert_eq!(labels.len(), 1);
}

#[test]
fn flush_restarts_clip_counting_and_discards_old_clips() {
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        false,
    );
    h.start().unwrap();
    // Half a clip, then a flush: frames 0..3 must not leak into the clip after it.
    for n in 0..4 {
        h.push(buffer(probe_rgb(n), n));
    }
    h.wait_buffers(4);
    let sinkpad = h.element.static_pad("sink").unwrap();
    assert!(sinkpad.send_event(gst::event::FlushStart::new()));
    assert!(sinkpad.send_event(gst::event::FlushStop::new(true)));
    // After a resetting flush the element needs its sticky events again.
    assert!(sinkpad.send_event(gst::event::StreamStart::new("after-flush")));
    assert!(sinkpad.send_event(gst::event::Caps::new(&caps("RGB", 16, 8))));
    let seg = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(sinkpad.send_event(gst::event::Segment::new(&seg)));
    for n in 50..58 {
        h.push(buffer(probe_rgb(n), n));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1, "{:?}", out.results);
    assert_eq!(out.field_u64(0, "clip-index"), 0);
    assert_probe(&out.scores(0), [50, 52, 54, 56], g_mean(4), 1e-4);
    assert_eq!(out.summary.unwrap().get::<u64>("clips").unwrap(), 1);
}

#[test]
fn caps_change_restarts_the_clip() {
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx"))), all12()],
        false,
    );
    h.start().unwrap();
    for n in 0..5 {
        h.push(buffer(probe_rgb(n), n));
    }
    // Same picture as BGR: new caps mid-clip.
    h.src.set_caps(Some(&caps("BGR", 16, 8)));
    for n in 5..13 {
        h.push(buffer(repack(&probe_rgb(n), "BGR"), n));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1, "{:?}", out.results);
    // Counting restarted at frame 5: the clip is frames 5, 7, 9, 11.
    assert_probe(&out.scores(0), [5, 7, 9, 11], g_mean(4), 1e-4);
    assert_eq!(out.field_u64(0, "timestamp"), 5 * FRAME_NS);
}

#[test]
fn live_source_faster_than_inference_drops_and_counts() {
    // slow.onnx takes tens of ms per clip; a clip per frame pushed as fast as possible.
    let h = slow_clip_per_frame(&[("max-pending", v(1u32))]);
    h.start().unwrap();
    let frames = 120u64;
    let start = std::time::Instant::now();
    for n in 0..frames {
        h.push(buffer(probe_rgb(n), n));
    }
    let pushed_in = start.elapsed();
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // Video kept flowing: every frame came out.
    assert_eq!(out.buffers.len(), frames as usize);
    let clips = frames - 3; // clips 0..=116 complete during the stream
    let summary = out.summary.expect("summary");
    let dropped = summary.get::<u64>("dropped").unwrap();
    assert!(dropped > 0, "nothing dropped in {pushed_in:?}");
    // Every clip is either classified or counted as dropped (EOS padding adds the last ones).
    let classified = summary.get::<u64>("clips").unwrap();
    assert!(
        classified + dropped >= clips,
        "{classified} + {dropped} < {clips}"
    );
    assert_eq!(out.results.len() as u64, classified);
    // `dropped` never decreases across messages.
    let seq: Vec<u64> = out
        .results
        .iter()
        .map(|r| r.get::<u64>("dropped").unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[0] <= w[1]), "{seq:?}");
}

#[test]
fn non_live_source_never_drops() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("slow.onnx"))),
            ("clip-stride", v(1u32)),
            ("frame-stride", v(1u32)),
            ("max-pending", v(1u32)),
        ],
        30,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // 27 complete clips + clips 27 (3 of 4) and 28 (2 of 4) padded at EOS.
    assert_eq!(out.results.len(), 29);
    assert_eq!(out.summary.unwrap().get::<u64>("dropped").unwrap(), 0);
}

#[test]
fn post_messages_false_posts_nothing_but_still_attaches_meta() {
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            ("post-messages", v(false)),
        ],
        false,
    );
    h.start().unwrap();
    for n in 0..7 {
        h.push(buffer(probe_rgb(n), n));
    }
    std::thread::sleep(Duration::from_millis(500));
    for n in 7..12 {
        h.push(buffer(probe_rgb(n), n));
    }
    let out = h.finish();
    assert!(out.results.is_empty() && out.summary.is_none());
    let metas: usize = out
        .buffers
        .iter()
        .map(|b| NonLocalClassifyMeta::results(b).len())
        .sum();
    assert_eq!(metas, 1);
}

#[test]
fn post_messages_changed_in_playing_applies_to_the_next_result() {
    // Clips of 8 frames: clip k ends on frame 8k + 6.
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe.onnx")))],
        false,
    );
    h.start().unwrap();
    for n in 0..7 {
        h.push(buffer(probe_rgb(n), n));
    }
    let first = h
        .next_result(Duration::from_secs(30))
        .expect("clip 0 posted");
    assert_eq!(first.get::<u64>("clip-index").unwrap(), 0);
    h.element.set_property("post-messages", false);
    for n in 7..15 {
        h.push(buffer(probe_rgb(n), n));
    }
    // Clip 1 is finished once its meta rides on a buffer; push frames until one carries it.
    // (frames 15 to 21 do not finish clip 2).
    let mut carried = false;
    let mut n = 15;
    while !carried && n < 22 {
        std::thread::sleep(Duration::from_millis(50));
        h.push(buffer(probe_rgb(n), n));
        n += 1;
        while let Some(sample) = h.sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            let b = sample.buffer().unwrap();
            carried |= NonLocalClassifyMeta::results(b)
                .iter()
                .any(|r| r.clip_index == 1);
        }
    }
    assert!(carried, "clip 1's meta never came out");
    h.element.set_property("post-messages", true);
    for n in n..31 {
        h.push(buffer(probe_rgb(n), n));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let posted: Vec<u64> = out
        .results
        .iter()
        .map(|r| r.get::<u64>("clip-index").unwrap())
        .collect();
    // Clip 1 finished while post-messages was false; clips 2 and 3 after it was set again.
    assert_eq!(posted, [2, 3]);
    assert!(out.summary.is_some());
}

#[test]
fn random_weights_warn_that_labels_mean_nothing() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[("model", v(model("probe_random.onnx")))],
        8,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("random weights") && w.contains("meaningless")),
        "{:?}",
        out.warnings
    );
}

/// A frame whose every channel changes along both axes, so that a crop off by a pixel or
/// resampled at another scale gives other spatial means.
fn gradient_rgb(w: usize, h: usize, n: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let r = (x * 255 / w) as u8;
            let g = (y * 255 / h) as u8;
            let b = ((x * x + 3 * y + n as usize) % 256) as u8;
            v.extend_from_slice(&[r, g, b]);
        }
    }
    v
}

#[test]
fn resampling_in_the_engine_gives_the_elements_crops() {
    // probe_u8: 4 frames of 8 × 8 from a short side of 8 (channels first); frames already at the
    // scale size, enlarged (12 × 6 → 16 × 8) and reduced (40 × 20 → 16 × 8, antialiased).
    // Reductions differ a little more (the antialiasing filter is sized by the span's
    // reduction, see src/engine/local/resample.rs), most on frames this small.
    for (w, h, within) in [
        (16usize, 8usize, 0.01),
        (12, 6, 0.6),
        (40, 20, 1.5),
        (4, 10, 0.6),
    ] {
        let run = |resample: &str| {
            let out = run_frames(
                &caps("RGB", w as i32, h as i32),
                &[
                    ("model", v(model("probe_u8.onnx"))),
                    all12(),
                    ("resample", v(resample)),
                ],
                16,
                |n| gradient_rgb(w, h, n),
            );
            assert!(
                out.errors.is_empty(),
                "{w}x{h} {resample}: {:?}",
                out.errors
            );
            assert_eq!(out.results.len(), 2, "{w}x{h} {resample}");
            (0..2).map(|k| out.scores(k)).collect::<Vec<_>>()
        };
        let (element, engine) = (run("element"), run("engine"));
        for (k, (a, b)) in element.iter().zip(&engine).enumerate() {
            for (label, want) in a {
                let got = b[label];
                assert!(
                    (got - want).abs() <= within,
                    "{w}x{h}, clip {k}, {label}: engine {got}, element {want}"
                );
            }
        }
    }
}

#[test]
fn resampling_in_the_engine_says_what_it_needs() {
    for (model_file, extra, needs) in [
        ("probe_u8.onnx", Some(("crops", "three")), "crops=center"),
        ("probe.onnx", None, "uint8 input"),
    ] {
        let mut props = vec![("model", v(model(model_file))), ("resample", v("engine"))];
        if let Some((name, nick)) = extra {
            props.push((name, v(nick)));
        }
        let out = run_frames(&caps("RGB", 16, 8), &props, 8, probe_rgb);
        assert!(
            out.errors
                .iter()
                .any(|e| e.contains("resample=engine") && e.contains(needs)),
            "{model_file}: {:?}",
            out.errors
        );
    }
}

#[test]
fn dump_inputs_writes_each_clips_input_as_the_engine_is_fed_it() {
    let dir = std::env::temp_dir().join(format!("nl-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            all12(),
            ("dump-inputs", v(dir.join("new").to_string_lossy().as_ref())),
        ],
        24,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 3);
    let mut names: Vec<String> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["clip-000000.npy", "clip-000001.npy", "clip-000002.npy"]
    );
    for (k, result) in out.results.iter().enumerate() {
        let (header, bytes) = read_npy(&dir.join(format!("new/clip-{k:06}.npy")));
        assert_eq!(
            header,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 4, 8, 8), }"
        );
        let values = f32s(&bytes);
        assert_eq!(values.len(), 3 * 4 * 8 * 8);
        // NCTHW: plane (c, t) is 64 values; the centre 8 columns of 16 start at x = 4.
        let frames = [0, 2, 4, 6].map(|i| 8 * k as u64 + i);
        for (t, n) in frames.iter().enumerate() {
            let plane = |c: usize| &values[(c * 4 + t) * 64..(c * 4 + t + 1) * 64];
            let r = ((4 * n) % 256) as f32;
            assert!(
                plane(0).iter().all(|&x| x == (r - 10.0) / 2.0),
                "clip {k} t{t}"
            );
            for (i, &g) in plane(1).iter().enumerate() {
                let x = (4 + i % 8) as f32;
                assert_eq!(g, (x * x - 20.0) / 4.0, "clip {k} t{t} value {i}");
            }
            assert!(plane(2).iter().all(|&x| x == (200.0 - 30.0) / 5.0));
        }
        // The probe's scores are the planes' means: the file holds what the model ran on.
        let scores = scores_of(result);
        for (c, name) in "rgb".chars().enumerate() {
            for t in 0..4 {
                let plane = &values[(c * 4 + t) * 64..(c * 4 + t + 1) * 64];
                let mean = plane.iter().map(|&x| f64::from(x)).sum::<f64>() / 64.0;
                let score = scores[&format!("c{name}_t{t}")];
                assert!(
                    (mean - score).abs() < 1e-4,
                    "c{name}_t{t}: {mean} against {score}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_inputs_keeps_the_models_element_type_and_layout() {
    let dir = std::env::temp_dir().join(format!("nl-dump-types-{}", std::process::id()));
    for (name, header) in [
        (
            "probe_nthwc_f16.onnx",
            "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 4, 8, 8, 3), }",
        ),
        (
            "probe_u8.onnx",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3, 4, 8, 8), }",
        ),
    ] {
        let sub = dir.join(name);
        let out = run_frames(
            &caps("RGB", 16, 8),
            &[
                ("model", v(model(name))),
                ("dump-inputs", v(sub.to_string_lossy().as_ref())),
            ],
            8,
            probe_rgb,
        );
        assert!(out.errors.is_empty(), "{name}: {:?}", out.errors);
        let (got, bytes) = read_npy(&sub.join("clip-000000.npy"));
        assert_eq!(got, header, "{name}");
        if name == "probe_u8.onnx" {
            // Raw pixels, planes of 4 × 8 × 8: frame 0's R is 0; G at column 4 is 16; B 200.
            assert_eq!([bytes[0], bytes[256], bytes[512]], [0, 16, 200]);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_inputs_errors_name_the_directory_and_the_setting() {
    let file = std::env::temp_dir().join(format!("nl-dump-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let inside = file.join("dumps");
    let err = start_error(&[
        ("model", v(model("probe.onnx"))),
        ("dump-inputs", v(inside.to_string_lossy().as_ref())),
    ]);
    assert!(
        err.contains(&format!(
            "Cannot create the dump-inputs directory {}: ",
            inside.display()
        )) && err.contains("set dump-inputs to a directory that can be written"),
        "{err}"
    );
    std::fs::remove_file(&file).unwrap();
    let err = start_error(&[
        ("model", v(model("probe_u8.onnx"))),
        ("resample", v("engine")),
        ("dump-inputs", v("unused")),
    ]);
    assert!(
        err.contains("dump-inputs writes the model input the element packs")
            && err.contains("set resample=element"),
        "{err}"
    );
    assert!(!std::path::Path::new("unused").exists());
}
