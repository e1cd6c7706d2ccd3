//! Objects mode (`regions=objects`; cargo feature `analytics`, GStreamer >= 1.24; run by
//! tools/analytics-lane): each object boxed upstream (GstAnalytics object detections, with or
//! without tracking ids) gets its own clips, cropped around it, and its own results, related to
//! its box on the buffers that carry them.
//!
//! The frames are black with each object's box painted in its own colour; the probe model's
//! scores are the crop's normalised plane means, so a result's red and green scores say whose
//! crop the element classified.
#![cfg(feature = "analytics")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use gst::prelude::*;
use gst_analytics::prelude::*;
use gst_analytics::{AnalyticsClassificationMtd, AnalyticsODMtd, AnalyticsRelationMeta, RelTypes};
use gstnonlocal::ClipResult;

/// The tests of this file one at a time: the soak measures the process's resident memory.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const W: i32 = 64;
const H: i32 = 48;

#[derive(Clone, Copy, Debug)]
struct Obj {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    rgb: [u8; 3],
    track: Option<u64>,
    kind: &'static str,
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];

fn person(x: i32, y: i32, rgb: [u8; 3], track: Option<u64>) -> Obj {
    Obj {
        x,
        y,
        w: 16,
        h: 16,
        rgb,
        track,
        kind: "person",
    }
}

/// Frame `n`: black, each object's box painted in its colour, and its detection (and tracking
/// id, when it has one) in the buffer's relation meta. `extra` adds boxes that are not painted.
fn frame(n: u64, objects: &[Obj], extra: &[Obj]) -> gst::Buffer {
    let mut data = vec![0u8; (W * H * 3) as usize];
    for o in objects {
        for y in o.y.max(0)..(o.y + o.h).min(H) {
            for x in o.x.max(0)..(o.x + o.w).min(W) {
                let i = ((y * W + x) * 3) as usize;
                data[i..i + 3].copy_from_slice(&o.rgb);
            }
        }
    }
    let mut b = buffer(data, n);
    {
        let b = b.get_mut().unwrap();
        let mut meta = AnalyticsRelationMeta::add(b);
        for o in objects.iter().chain(extra) {
            let od = meta
                .add_od_mtd(glib::Quark::from_str(o.kind), o.x, o.y, o.w, o.h, 0.9)
                .unwrap()
                .id();
            if let Some(t) = o.track {
                let tr = meta.add_tracking_mtd(t, gst::ClockTime::ZERO).unwrap().id();
                meta.set_relation(RelTypes::RELATE_TO, od, tr).unwrap();
            }
        }
    }
    b
}

fn objects_props(extra: &[(&'static str, glib::Value)]) -> Vec<(&'static str, glib::Value)> {
    let mut p = vec![
        ("model", v(model("probe.onnx"))),
        ("regions", v("objects")),
        ("top-k", v(12u32)),
    ];
    p.extend(extra.iter().cloned());
    p
}

fn rgb_caps() -> gst::Caps {
    caps("RGB", W, H)
}

/// Run `count` frames made by `objects(n)` and wait for EOS.
fn run(
    props: &[(&'static str, glib::Value)],
    count: u64,
    objects: impl Fn(u64) -> Vec<Obj>,
) -> Outcome {
    let h = Harness::new(&rgb_caps(), props, false);
    h.start().expect("starts");
    for n in 0..count {
        h.push(frame(n, &objects(n), &[]));
    }
    h.finish()
}

/// The results of each object, by id.
fn by_object(out: &Outcome) -> BTreeMap<u64, Vec<ClipResult>> {
    let mut m: BTreeMap<u64, Vec<ClipResult>> = BTreeMap::new();
    for s in &out.results {
        let r = ClipResult::from_structure(s).expect("result fields");
        let id = r.object.expect("an object result names its object").id;
        m.entry(id).or_default().push(r);
    }
    m
}

/// The mean of a result's plane means of channel `c` (r, g or b) over the clip's 4 frames.
fn channel(r: &ClipResult, c: char) -> f64 {
    let v: Vec<f64> = (0..4)
        .map(|t| {
            let label = format!("c{c}_t{t}");
            let i = r
                .labels
                .iter()
                .position(|l| *l == label)
                .expect("12 labels");
            r.scores[i]
        })
        .collect();
    v.iter().sum::<f64>() / 4.0
}

#[test]
fn each_object_is_cropped_and_classified_on_its_own() {
    let _serial = serial();
    // Red (id 3) and green (id 8), still, for 16 frames: 2 clips each (4 frames, stride 2).
    let objects = |_| vec![person(4, 8, RED, Some(3)), person(40, 20, GREEN, Some(8))];
    let out = run(&objects_props(&[]), 16, objects);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let results = by_object(&out);
    assert_eq!(results.keys().copied().collect::<Vec<_>>(), [3, 8]);
    for (id, rs) in &results {
        assert_eq!(rs.len(), 2, "object {id}: {rs:?}");
        for r in rs {
            let (red, green) = (channel(r, 'r'), channel(r, 'g'));
            // Probe normalisation: (v − 10) / 2 for R, (v − 20) / 4 for G; the square crop is
            // the 16² box and a 2-pixel black margin (side 20): 64 % of it painted.
            let (painted, other) = if *id == 3 { (red, green) } else { (green, red) };
            let full = if *id == 3 {
                (255.0 - 10.0) / 2.0
            } else {
                (255.0 - 20.0) / 4.0
            };
            // Probe normalisation: (v − 10) / 2 for R, (v − 20) / 4 for G. The square crop is
            // the 16² box and a 2-pixel black margin (side 20): about 64 % of it painted.
            assert!(
                painted > 0.45 * full && painted < 0.75 * full,
                "object {id}: {painted} of {full}"
            );
            assert!(other < 0.0, "object {id} sees no other colour: {other}");
            let o = r.object.unwrap();
            let b = if *id == 3 {
                (4, 8, 16, 16)
            } else {
                (40, 20, 16, 16)
            };
            assert_eq!((o.x, o.y, o.w, o.h), b);
        }
    }
    // One summary per object, named, with its segments named too.
    let mut summaries: Vec<u64> = out
        .summaries
        .iter()
        .map(|s| s.get::<u64>("object-id").expect("object-id"))
        .collect();
    summaries.sort();
    assert_eq!(summaries, [3, 8]);
    for s in &out.summaries {
        assert_eq!(s.get::<u64>("objects-dropped").unwrap(), 0);
        let id = s.get::<u64>("object-id").unwrap();
        let segments = s.get::<gst::Array>("segments").unwrap();
        assert!(!segments.is_empty());
        for seg in segments.iter() {
            let seg = seg.get::<gst::Structure>().unwrap();
            assert_eq!(seg.get::<u64>("object-id").unwrap(), id);
        }
    }
    assert!(out.segments.iter().all(|s| s.has_field("object-id")));
}

#[test]
fn frame_mode_on_the_same_video_mixes_the_objects() {
    let _serial = serial();
    let objects = |_| vec![person(4, 8, RED, Some(3)), person(40, 20, GREEN, Some(8))];
    let out = run(
        &[("model", v(model("probe.onnx"))), ("top-k", v(12u32))],
        16,
        objects,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let r = ClipResult::from_structure(&out.results[0]).unwrap();
    assert!(r.object.is_none());
    // The whole frame's centre crop holds some of both colours, far from either object's own.
    assert!(channel(&r, 'r') < (0.64 * 255.0 - 10.0) / 2.0 * 0.5);
    assert!(channel(&r, 'g') < (0.64 * 255.0 - 20.0) / 4.0 * 0.5);
}

#[test]
fn a_clips_crop_stays_where_it_started_while_the_object_moves() {
    let _serial = serial();
    // The object moves right 2 pixels a frame: every crop of clip 0 is the square of frame 0.
    let objects = |n: u64| vec![person(4 + 2 * n as i32, 8, RED, Some(1))];
    let out = run(&objects_props(&[]), 8, objects);
    let results = by_object(&out);
    let r = &results[&1][0];
    // Frame 0's square spans x 2..22; at frame 6 the box is at 16..32: less red inside.
    let reds: Vec<f64> = (0..4)
        .map(|t| {
            let i = r
                .labels
                .iter()
                .position(|l| *l == format!("cr_t{t}"))
                .unwrap();
            r.scores[i]
        })
        .collect();
    assert!(
        reds[0] > reds[1] && reds[1] > reds[2] && reds[2] > reds[3],
        "{reds:?}"
    );
    // The result names the box of the clip's last sampled frame.
    assert_eq!(r.object.unwrap().x, 4 + 2 * 6);
}

#[test]
fn boxes_without_tracking_ids_are_numbered_by_the_element() {
    let _serial = serial();
    // No tracker: the element associates the boxes (moving 1 pixel a frame) by overlap.
    let objects = |n: u64| {
        vec![
            person(40 - n as i32, 20, GREEN, None),
            person(4 + n as i32, 8, RED, None),
        ]
    };
    let out = run(&objects_props(&[]), 8, objects);
    let results = by_object(&out);
    assert_eq!(results.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert!(
        channel(&results[&1][0], 'g') > 0.0,
        "object 1 is the green one, boxed first"
    );
    assert!(channel(&results[&2][0], 'r') > 0.0);
}

#[test]
fn object_types_choose_which_detections_are_objects() {
    let _serial = serial();
    let objects = |_| {
        let mut car = person(40, 20, GREEN, Some(8));
        car.kind = "car";
        vec![person(4, 8, RED, Some(3)), car]
    };
    let out = run(
        &objects_props(&[("object-types", v("person, cyclist"))]),
        8,
        objects,
    );
    assert_eq!(by_object(&out).keys().copied().collect::<Vec<_>>(), [3]);
}

#[test]
fn objects_past_max_objects_are_dropped_counted_and_warned_once() {
    let _serial = serial();
    let objects = |_| {
        vec![
            person(0, 0, RED, Some(1)),
            person(20, 0, GREEN, Some(2)),
            person(40, 20, [0, 0, 255], Some(3)),
        ]
    };
    let out = run(&objects_props(&[("max-objects", v(2u32))]), 8, objects);
    assert_eq!(by_object(&out).keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].contains("max-objects=2"),
        "{}",
        out.warnings[0]
    );
    for s in &out.summaries {
        assert_eq!(s.get::<u64>("objects-dropped").unwrap(), 1);
    }
}

#[test]
fn hostile_boxes_are_ignored_with_one_warning_per_kind() {
    let _serial = serial();
    let h = Harness::new(&rgb_caps(), &objects_props(&[]), false);
    h.start().expect("starts");
    let hostile = |n: u64| -> Vec<Obj> {
        let b = |x, y, w, h, track| Obj {
            x,
            y,
            w,
            h,
            rgb: [0, 0, 0],
            track,
            kind: "person",
        };
        let mut v = vec![
            b(200, 200, 10, 10, None), // outside
            b(-40, -40, 10, 10, None), // outside, negative
            b(10, 10, 0, 10, None),    // zero wide
            b(10, 10, 5, -5, None),    // negative height
            b(30, 30, 1, 1, None),     // one pixel
            b(i32::MAX, i32::MAX, i32::MAX, i32::MAX, None),
            b(4, 8, 16, 16, Some(1)), // the same id as the real object: a duplicate
        ];
        if n == 3 {
            // 10,000 boxes on one frame (tiny, outside the painted object).
            v.extend((0..10_000).map(|i| b(40 + (i % 20), 30 + (i / 20 % 15), 3, 3, None)));
        }
        v
    };
    for n in 0..16 {
        h.push(frame(n, &[person(4, 8, RED, Some(1))], &hostile(n)));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    // One warning each: outside, empty, duplicate id, more boxes than are read, and objects past
    // max-objects (the 10,000).
    let kinds = [
        "outside the frame",
        "zero or negative",
        "same tracking id",
        "only the first 4096 are read",
        "max-objects",
    ];
    for kind in kinds {
        let n = out.warnings.iter().filter(|w| w.contains(kind)).count();
        assert_eq!(n, 1, "{kind}: {:?}", out.warnings);
    }
    assert_eq!(out.warnings.len(), kinds.len(), "{:?}", out.warnings);
    let results = by_object(&out);
    assert_eq!(results[&1].len(), 2);
    assert!(channel(&results[&1][0], 'r') > 50.0);
}

/// Frames 0..count through `h`, started: object 6 (green) boxed on every frame, object 5 (red)
/// on frames 0..leaves only; then EOS.
fn one_leaves(h: &Harness, count: u64, leaves: u64) -> Outcome {
    for n in 0..count {
        let mut objects = vec![person(40, 20, GREEN, Some(6))];
        if n < leaves {
            objects.push(person(4, 8, RED, Some(5)));
        }
        h.push(frame(n, &objects, &[]));
    }
    h.finish()
}

#[test]
fn a_track_unseen_for_the_timeout_ends_and_its_summary_comes_then() {
    let _serial = serial();
    // Object 5 is boxed on frames 0..8 only, object 6 throughout; tracks end after 200 ms
    // (5 frames at 25 fps).
    let h = Harness::new(
        &rgb_caps(),
        &objects_props(&[("track-timeout", v(200u32))]),
        false,
    );
    h.start().expect("starts");
    let out = one_leaves(&h, 40, 8);
    let first_summary = out.summaries.first().expect("summaries");
    assert_eq!(
        first_summary.get::<u64>("object-id").unwrap(),
        5,
        "object 5 ends first"
    );
    let results = by_object(&out);
    // Clip 0 (frames 0..6) with boxes; clip 1 has frames 8, 10 and 12 in the last box before
    // the track ends at frame 13: completed with its last frame.
    assert_eq!(results[&5].len(), 2);
    assert!(channel(&results[&5][0], 'r') > 50.0);
    assert!(
        channel(&results[&5][1], 'r') < 0.0,
        "unpainted after frame 7"
    );
    assert_eq!(results[&6].len(), 5);
}

#[test]
fn a_live_stream_dropping_its_oldest_clips_keeps_each_tracks_last_clip_and_end() {
    let _serial = serial();
    // Live, a clip per frame for each object, each run of slow_probe.onnx tens of ms, the frames
    // pushed at once: most clips are dropped. Object 5 is boxed on frames 0..20 only (its track
    // ends 200 ms later), object 6 throughout.
    let h = Harness::new(
        &rgb_caps(),
        &[
            ("model", v(model("slow_probe.onnx"))),
            ("regions", v("objects")),
            ("top-k", v(12u32)),
            ("clip-stride", v(1u32)),
            ("frame-stride", v(1u32)),
            ("track-timeout", v(200u32)),
        ],
        true,
    );
    h.start().expect("starts");
    let out = one_leaves(&h, 60, 20);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.buffers.len(), 60, "every frame came out");
    // Each track's end reached the worker, whatever was dropped around it: object 5's summary
    // when its track ended, object 6's at EOS.
    assert_eq!(u64s(&out.summaries, "object-id"), [5, 6]);
    let dropped = out.summaries[1].get::<u64>("dropped").unwrap();
    assert!(dropped > 0, "nothing dropped");
    let results = by_object(&out);
    for (id, rs) in &results {
        let clips: Vec<u64> = rs.iter().map(|r| r.clip_index).collect();
        assert!(
            clips.windows(2).all(|w| w[0] < w[1]),
            "object {id}: {clips:?}"
        );
    }
    // Clips of 4 frames: object 5's track takes frames 0..=24 (boxed up to 19, then in its last
    // box until the track ends at frame 25), so clips 0..=21 complete in the stream and the
    // track's end completes clips 22 and 23 (3 and 2 of their 4 frames). The last one is kept:
    // object 6's newer clips replace their own older ones, not another track's last.
    let last = results[&5].last().expect("object 5's results");
    assert_eq!(last.clip_index, 23, "{:?}", results[&5]);
    let classified: u64 = out
        .summaries
        .iter()
        .map(|s| s.get::<u64>("clips").unwrap())
        .sum();
    assert_eq!(classified, out.results.len() as u64);
}

#[test]
fn boxes_on_some_frames_only_keep_the_object_in_its_last_box() {
    let _serial = serial();
    // A detector that runs every third frame: the object's clips go on between its boxes.
    let out = run(&objects_props(&[]), 16, |n| {
        if n % 3 == 0 {
            vec![person(4, 8, RED, Some(2))]
        } else {
            Vec::new()
        }
    });
    let results = by_object(&out);
    assert_eq!(results[&2].len(), 2);
    // Frames without a box are unpainted (black) but cropped from the same square.
    assert!(channel(&results[&2][0], 'r') > 0.0);
}

#[test]
fn each_objects_result_is_related_to_its_box_on_the_buffers_that_carry_it() {
    let _serial = serial();
    let h = Harness::new(
        &rgb_caps(),
        &objects_props(&[("analytics-meta", v("every-buffer"))]),
        false,
    );
    h.start().expect("starts");
    let objects = [person(4, 8, RED, Some(3)), person(40, 20, GREEN, Some(8))];
    for n in 0..7 {
        h.push(frame(n, &objects, &[]));
    }
    // Both objects' first clips end on frame 6: wait for both results.
    for _ in 0..2 {
        h.next_result(Duration::from_secs(30)).expect("a result");
    }
    for n in 7..10 {
        h.push(frame(n, &objects, &[]));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let last = out.buffers.last().expect("buffers");
    let meta = last.meta::<AnalyticsRelationMeta>().expect("relation meta");
    let mut seen = BTreeMap::new();
    for od in meta.iter::<AnalyticsODMtd>() {
        let loc = od.location().unwrap();
        let cls: Vec<_> = meta
            .iter_direct_related::<AnalyticsClassificationMtd>(od.id(), RelTypes::RELATE_TO)
            .collect();
        assert_eq!(cls.len(), 1, "each object's box carries its result");
        assert_eq!(
            meta.relation(cls[0].id(), od.id()),
            RelTypes::RELATE_TO | RelTypes::IS_PART_OF
        );
        let (top, _) = cls[0].iterate().next().unwrap();
        seen.insert((loc.x, loc.y), top.as_str().to_string());
    }
    // The red object's best plane is a red one, the green one's a green one.
    assert!(seen[&(4, 8)].starts_with("cr_"), "{seen:?}");
    assert!(seen[&(40, 20)].starts_with("cg_"), "{seen:?}");
}

#[test]
fn flushes_and_caps_changes_mid_track_leave_no_stale_object() {
    let _serial = serial();
    let h = Harness::new(&rgb_caps(), &objects_props(&[]), false);
    h.start().expect("starts");
    for n in 0..5 {
        h.push(frame(n, &[person(4, 8, RED, Some(1))], &[]));
    }
    h.wait_buffers(5);
    // A flushing seek mid-clip: nothing of object 1's clip in progress survives it.
    let sinkpad = h.element.static_pad("sink").unwrap();
    assert!(sinkpad.send_event(gst::event::FlushStart::new()));
    assert!(sinkpad.send_event(gst::event::FlushStop::new(true)));
    assert!(sinkpad.send_event(gst::event::StreamStart::new("after-flush")));
    assert!(sinkpad.send_event(gst::event::Caps::new(&rgb_caps())));
    let seg = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(sinkpad.send_event(gst::event::Segment::new(&seg)));
    for n in 0..5 {
        h.push(frame(n, &[person(40, 20, GREEN, Some(2))], &[]));
    }
    // A caps change mid-clip (another frame rate): object 2's clip in progress has 3 of its 4
    // frames, so it is finished as at a track's end, and object 2 starts again.
    let other = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", W)
        .field("height", H)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    h.src.set_caps(Some(&other));
    for n in 5..12 {
        h.push(frame(n, &[person(40, 20, GREEN, Some(2))], &[]));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let results = by_object(&out);
    assert_eq!(
        results.keys().copied().collect::<Vec<_>>(),
        [2],
        "{results:?}"
    );
    // Clip 0 finished at the caps change (padded), then one full clip after it.
    assert_eq!(results[&2].len(), 2, "{results:?}");
    let ids: Vec<u64> = out
        .summaries
        .iter()
        .map(|s| s.get::<u64>("object-id").unwrap())
        .collect();
    assert_eq!(
        ids,
        [2, 2],
        "a summary at the caps change and one at the end"
    );
}

#[test]
fn objects_mode_refuses_three_crops_and_engine_resampling() {
    let _serial = serial();
    let e = start_error(&objects_props(&[("crops", v("three"))]));
    assert!(
        e.contains("regions=objects") && e.contains("crops=center"),
        "{e}"
    );
    let e = start_error(&objects_props(&[("resample", v("engine"))]));
    assert!(
        e.contains("regions=objects") && e.contains("resample=element"),
        "{e}"
    );
}

#[test]
fn churning_tracks_keep_memory_flat() {
    let _serial = serial();
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    // 6,000 frames, four people on each, every person seen for 30 frames and gone for good:
    // 800 tracks start, are classified and end. What a track leaves behind (its results, its
    // summary) must go with it.
    const FRAMES: u64 = 6_000;
    const CHECKPOINT: u64 = 2_000;
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&rgb_caps())
        .format(gst::Format::Time)
        .max_bytes(0)
        .block(true)
        .build();
    let element = gst::ElementFactory::make("nonlocalclassify")
        .property("model", model("probe.onnx"))
        .property("track-timeout", 80u32)
        .build()
        .unwrap();
    element.set_property_from_str("regions", "objects");
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline
        .add_many([src.upcast_ref(), &element, &sink])
        .unwrap();
    gst::Element::link_many([src.upcast_ref(), &element, &sink]).unwrap();
    let out = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&out);
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    // The bus drained as the application would, counting results and summaries.
    let bus = pipeline.bus().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut results, mut summaries, mut errors) = (0u64, 0u64, Vec::new());
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
            match msg.view() {
                gst::MessageView::Element(e) => match e.structure().map(|s| s.name().as_str()) {
                    Some("nonlocalclassify") => results += 1,
                    Some("nonlocalclassify-summary") => summaries += 1,
                    _ => {}
                },
                gst::MessageView::Error(e) => errors.push(e.error().to_string()),
                gst::MessageView::Eos(_) => break,
                _ => {}
            }
        }
        (results, summaries, errors)
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let wait_out = |n: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while out.load(Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "stalled at {out:?} buffers"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let mut rss_at_checkpoint = 0;
    for n in 0..FRAMES {
        let people: Vec<Obj> = (0..4u64)
            .map(|j| person(16 * j as i32, 16, RED, Some(n / 30 * 4 + j)))
            .collect();
        src.push_buffer(frame(n, &people, &[])).unwrap();
        if (n + 1) % 250 == 0 {
            wait_out(n + 1);
        }
        if n + 1 == CHECKPOINT {
            rss_at_checkpoint = rss_kib();
        }
    }
    wait_out(FRAMES);
    let rss_at_end = rss_kib();
    src.end_of_stream().unwrap();
    let (results, summaries, errors) = reader.join().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    eprintln!(
        "{results} results, {summaries} summaries; VmRSS {rss_at_checkpoint} KiB at {CHECKPOINT} \
         frames, {rss_at_end} KiB at {FRAMES}"
    );
    assert_eq!(summaries, FRAMES / 30 * 4, "one summary per track");
    // Each track: clips of its frames 0..6, 8..14, 16..22 and 24..30 (the last box kept until
    // the timeout; at end of stream padded from frame 28): 4.
    assert_eq!(results, summaries * 4);
    assert!(
        rss_at_end < rss_at_checkpoint + 4 * 1024,
        "VmRSS grew from {rss_at_checkpoint} to {rss_at_end} KiB"
    );
}

#[test]
fn a_stream_without_any_box_is_warned_about_once() {
    let _serial = serial();
    let out = run(&objects_props(&[]), 300, |_| Vec::new());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.results.is_empty());
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].contains("no object detection on the stream's first 250 buffers"),
        "{}",
        out.warnings[0]
    );
}

#[test]
fn first_buffer_results_wait_for_a_buffer_with_the_objects_box() {
    let _serial = serial();
    // The detector boxes object 4 on even frames only; its first clip ends on frame 6 (a
    // boxed frame), so the result is ready by a later odd frame: it must ride on the next even
    // one, related to that frame's box.
    let h = Harness::new(&rgb_caps(), &objects_props(&[]), false);
    h.start().expect("starts");
    let boxed = |n: u64| {
        if n.is_multiple_of(2) {
            vec![person(4, 8, RED, Some(4))]
        } else {
            Vec::new()
        }
    };
    for n in 0..8 {
        h.push(frame(n, &boxed(n), &[]));
    }
    h.next_result(Duration::from_secs(30)).expect("a result");
    for n in 8..12 {
        h.push(frame(n, &boxed(n), &[]));
    }
    let out = h.finish();
    let carrying: Vec<u64> = out
        .buffers
        .iter()
        .filter(|b| {
            b.meta::<AnalyticsRelationMeta>()
                .is_some_and(|m| m.iter::<AnalyticsClassificationMtd>().count() > 0)
        })
        .map(|b| b.pts().unwrap().nseconds() / FRAME_NS)
        .collect();
    assert_eq!(carrying.len(), 1, "{carrying:?}");
    assert_eq!(carrying[0] % 2, 0, "a boxed frame: {carrying:?}");
}
