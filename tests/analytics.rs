//! GstAnalytics output (cargo feature `analytics`, GStreamer >= 1.24; run by tools/analytics-lane):
//! which buffers carry each result as a classification mtd related to a full-frame detection
//! (`analytics-meta`), that its labels and levels are the message's and the custom meta's, and that
//! relation metadata added upstream survives beside it.
#![cfg(feature = "analytics")]

mod common;

use std::time::Duration;

use common::*;
use gst::prelude::*;
use gst_analytics::prelude::*;
use gst_analytics::{AnalyticsClassificationMtd, AnalyticsODMtd, AnalyticsRelationMeta, RelTypes};
use gstnonlocal::{ClipResult, NonLocalClassifyMeta};

/// One classification mtd of a buffer with the detection it is part of.
#[derive(Debug, PartialEq)]
struct Classified {
    labels: Vec<String>,
    levels: Vec<f32>,
    od_type: String,
    od_box: (i32, i32, i32, i32),
    od_level: f32,
}

/// Number of classification mtds on `buffer`.
fn classifications(buffer: &gst::BufferRef) -> usize {
    buffer
        .meta::<AnalyticsRelationMeta>()
        .map_or(0, |m| m.iter::<AnalyticsClassificationMtd>().count())
}

/// Every classification mtd of `buffer` that is part of a box (as the element writes them),
/// checking the relations both ways.
fn classified(buffer: &gst::BufferRef) -> Vec<Classified> {
    let Some(meta) = buffer.meta::<AnalyticsRelationMeta>() else {
        return Vec::new();
    };
    meta.iter::<AnalyticsClassificationMtd>()
        .filter_map(|cls| {
            let ods: Vec<_> = meta
                .iter_direct_related::<AnalyticsODMtd>(cls.id(), RelTypes::IS_PART_OF)
                .collect();
            assert!(
                ods.len() <= 1,
                "classification {} is part of {} boxes",
                cls.id(),
                ods.len()
            );
            let od = ods.first()?;
            // What objectdetectionoverlay looks up, and the containment.
            assert_eq!(
                meta.relation(od.id(), cls.id()),
                RelTypes::RELATE_TO | RelTypes::CONTAIN
            );
            assert_eq!(
                meta.relation(cls.id(), od.id()),
                RelTypes::RELATE_TO | RelTypes::IS_PART_OF
            );
            let loc = od.location().expect("box location");
            Some(Classified {
                labels: cls.iterate().map(|(q, _)| q.as_str().to_string()).collect(),
                levels: cls.iterate().map(|(_, l)| l).collect(),
                od_type: od.obj_type().expect("box type").as_str().to_string(),
                od_box: (loc.x, loc.y, loc.w, loc.h),
                od_level: od.confidence_level(),
            })
        })
        .collect()
}

/// What a result should look like as analytics metadata on a 16×8 frame (the box leaves the top
/// quarter of the frame for the label).
fn expected(r: &ClipResult) -> Classified {
    Classified {
        labels: r.labels.clone(),
        levels: r.scores.iter().map(|&s| s as f32).collect(),
        od_type: r.labels[0].clone(),
        od_box: (0, 2, 16, 6),
        od_level: r.scores[0] as f32,
    }
}

/// Push 32 probe frames (clips 0..3 end on frames 6, 14, 22, 30), waiting after each clip's last
/// frame for its message, so that the result of clip k is ready before frame 8k + 7 is pushed.
/// `frame` may add metadata. Returns the messages and the buffers that came out.
fn run_paced(
    props: &[(&str, glib::Value)],
    frame: impl Fn(u64) -> gst::Buffer,
) -> (Vec<ClipResult>, Vec<gst::Buffer>) {
    let h = Harness::new(&caps("RGB", 16, 8), props, false);
    h.start().expect("starts");
    let mut messages = Vec::new();
    for n in 0..32 {
        h.push(frame(n));
        if n % 8 == 6 {
            let m = h
                .next_result(Duration::from_secs(30))
                .expect("a result within 30 s");
            messages.push(ClipResult::from_structure(&m).expect("result fields"));
        }
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    messages.extend(
        out.results
            .iter()
            .filter_map(|s| ClipResult::from_structure(s)),
    );
    (messages, out.buffers)
}

fn probe(n: u64) -> gst::Buffer {
    buffer(probe_rgb(n), n)
}

/// The probe model reporting its `top_k` best plane means (all 12: the R planes, 4n, differ from
/// clip to clip).
fn props(mode: Option<&str>, top_k: u32) -> Vec<(&'static str, glib::Value)> {
    let mut p = vec![("model", v(model("probe.onnx"))), ("top-k", v(top_k))];
    if let Some(mode) = mode {
        p.push(("analytics-meta", v(mode)));
    }
    p
}

#[test]
fn analytics_first_buffer_is_the_default_and_rides_with_the_custom_meta() {
    let (messages, buffers) = run_paced(&props(None, 3), probe);
    assert_eq!(buffers.len(), 32);
    assert_eq!(
        messages.iter().map(|m| m.clip_index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    for (n, b) in buffers.iter().enumerate() {
        let custom = NonLocalClassifyMeta::results(b);
        let ours = classified(b);
        if n % 8 == 7 {
            let k = n / 8;
            assert_eq!(custom.len(), 1, "buffer {n}");
            assert_eq!(custom[0], messages[k], "buffer {n}");
            assert_eq!(ours, vec![expected(&messages[k])], "buffer {n}");
            assert_eq!(ours[0].labels.len(), 3);
            assert_eq!(classifications(b), 1, "buffer {n}");
        } else {
            assert!(
                custom.is_empty() && classifications(b) == 0,
                "buffer {n}: {ours:?}"
            );
        }
    }
}

#[test]
fn analytics_every_buffer_carries_the_current_result_until_the_next() {
    let (messages, buffers) = run_paced(&props(Some("every-buffer"), 12), probe);
    assert_eq!(buffers.len(), 32);
    assert_eq!(messages.len(), 4);
    // The scores differ from clip to clip (R = 4n), so each buffer shows which result it carries.
    assert_ne!(messages[0].scores, messages[1].scores);
    for (n, b) in buffers.iter().enumerate() {
        let ours = classified(b);
        if n < 7 {
            assert_eq!(classifications(b), 0, "buffer {n} before any result");
            continue;
        }
        let k = (n - 7) / 8;
        assert_eq!(ours, vec![expected(&messages[k])], "buffer {n}");
        assert_eq!(classifications(b), 1, "buffer {n}");
        // The custom meta still rides on the first buffer only.
        assert_eq!(
            NonLocalClassifyMeta::results(b).len(),
            usize::from(n % 8 == 7)
        );
    }
}

#[test]
fn analytics_metadata_added_upstream_survives_beside_ours() {
    let person = glib::Quark::from_str("person");
    let detected = |n: u64| {
        let mut b = probe(n);
        {
            let b = b.get_mut().unwrap();
            let mut meta = AnalyticsRelationMeta::add(b);
            let od = meta.add_od_mtd(person, 2, 1, 5, 4, 0.8).unwrap().id();
            let cls = meta
                .add_one_cls_mtd(0.8, glib::Quark::from_str("adult"))
                .unwrap()
                .id();
            meta.set_relation(RelTypes::RELATE_TO, od, cls).unwrap();
        }
        b
    };
    let (messages, buffers) = run_paced(&props(Some("every-buffer"), 12), detected);
    assert_eq!(buffers.len(), 32);
    for (n, b) in buffers.iter().enumerate() {
        assert_eq!(
            b.iter_meta::<AnalyticsRelationMeta>().count(),
            1,
            "buffer {n}"
        );
        let meta = b.meta::<AnalyticsRelationMeta>().unwrap();
        let boxes: Vec<_> = meta.iter::<AnalyticsODMtd>().collect();
        let theirs: Vec<_> = boxes
            .iter()
            .filter(|od| od.obj_type() == Some(person))
            .collect();
        assert_eq!(theirs.len(), 1, "buffer {n}");
        let loc = theirs[0].location().unwrap();
        assert_eq!((loc.x, loc.y, loc.w, loc.h), (2, 1, 5, 4), "buffer {n}");
        // The upstream detection keeps its own classification and only it.
        let their_cls: Vec<_> = meta
            .iter_direct_related::<AnalyticsClassificationMtd>(theirs[0].id(), RelTypes::ANY)
            .map(|c| c.quark(0).as_str().to_string())
            .collect();
        assert_eq!(their_cls, ["adult"], "buffer {n}");
        // Ours beside it, from the first result on.
        let ours: Vec<_> = classified(b)
            .into_iter()
            .filter(|c| c.od_type != "person")
            .collect();
        if n < 7 {
            assert!(ours.is_empty() && boxes.len() == 1, "buffer {n}");
        } else {
            assert_eq!(ours, vec![expected(&messages[(n - 7) / 8])], "buffer {n}");
            assert_eq!(boxes.len(), 2, "buffer {n}");
        }
    }
}

#[test]
fn analytics_meta_can_change_in_playing() {
    let h = Harness::new(&caps("RGB", 16, 8), &props(None, 3), false);
    h.start().unwrap();
    for n in 0..7 {
        h.push(probe(n));
    }
    h.next_result(Duration::from_secs(30)).expect("clip 0");
    h.element
        .set_property_from_str("analytics-meta", "every-buffer");
    for n in 7..12 {
        h.push(probe(n));
    }
    let out = h.finish();
    assert_eq!(out.buffers.len(), 12);
    // Switched before buffer 7: it and every buffer after it carry clip 0.
    for (n, b) in out.buffers.iter().enumerate() {
        assert_eq!(classified(b).len(), usize::from(n >= 7), "buffer {n}");
    }
}
