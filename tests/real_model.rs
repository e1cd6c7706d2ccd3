//! The default model (DeepMind I3D, Kinetics-400, exported by tools/export_model.py) run by the
//! element on a real Kinetics clip must say "arm wrestling". tools/run-tests builds the model and
//! sets NONLOCAL_MODEL; without it the test looks in .cache/models and fails if it is not there.

mod common;

use common::*;
use gst::prelude::*;
use std::path::PathBuf;

#[cfg(feature = "analytics")]
use gst::glib;

#[test]
fn arm_wrestling_clip_is_arm_wrestling() {
    init();
    let model = default_model();
    let video = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/arm_wrestling.mp4");
    let desc = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! nonlocalclassify model=\"{}\" execution-provider=cpu ! fakesink",
        video.display(),
        model.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut clips = Vec::new();
    let mut summary = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Element(e) => match e.structure() {
                Some(s) if s.name() == "nonlocalclassify" => clips.push(s.to_owned()),
                Some(s) if s.name() == "nonlocalclassify-summary" => summary = Some(s.to_owned()),
                _ => {}
            },
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let summary = summary.expect("summary at EOS");
    let tops: Vec<String> = clips
        .iter()
        .map(|c| c.get::<String>("label").unwrap())
        .collect();
    assert!(!clips.is_empty());
    assert_eq!(
        summary.get::<&str>("label").unwrap(),
        "arm wrestling",
        "clips: {tops:?}"
    );
    assert!(summary.get::<f64>("score").unwrap() > 0.3, "{summary:?}");
    let hits = tops.iter().filter(|t| *t == "arm wrestling").count();
    assert!(
        2 * hits > tops.len(),
        "most clips must say arm wrestling: {tops:?}"
    );
}

/// Two people doing different things at once: the two real clips side by side (`compositor`),
/// a box around each from the application (as a detector would write them), classified in
/// objects mode and in frame mode.
#[cfg(feature = "analytics")]
fn side_by_side(regions: &str) -> (Vec<gst::Structure>, Vec<gst::Structure>) {
    use gst_analytics::prelude::*;
    init();
    let model = default_model();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let branch = |file: &str, pad: u32| {
        format!(
            "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! videorate ! video/x-raw,format=I420,width=340,height=256,framerate=30/1 ! mix.sink_{pad}",
            data.join(file).display()
        )
    };
    // 240 frames: the shorter clip's 8.3 s, so that neither side turns black.
    let desc = format!(
        "compositor name=mix sink_1::xpos=340 ! video/x-raw,width=680,height=256,framerate=30/1 ! identity eos-after=240 ! videoconvert ! nonlocalclassify name=c model=\"{}\" execution-provider=cpu regions={regions} ! fakesink {} {}",
        model.display(),
        branch("arm_wrestling.mp4", 0),
        branch("cleaning_pool.mp4", 1),
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let element = pipeline.by_name("c").unwrap();
    // The application's boxes: each person's half of the frame, tracking ids 1 and 2.
    element
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
                let buffer = buffer.make_mut();
                let mut meta = gst_analytics::AnalyticsRelationMeta::add(buffer);
                for (id, x) in [(1u64, 0), (2, 340)] {
                    let person = glib::Quark::from_str("person");
                    let od = meta.add_od_mtd(person, x, 0, 340, 256, 0.9).unwrap().id();
                    let track = meta
                        .add_tracking_mtd(id, gst::ClockTime::ZERO)
                        .unwrap()
                        .id();
                    meta.set_relation(gst_analytics::RelTypes::RELATE_TO, od, track)
                        .unwrap();
                }
            }
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut clips, mut summaries) = (Vec::new(), Vec::new());
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(900)) {
        match msg.view() {
            gst::MessageView::Element(e) => match e.structure() {
                Some(s) if s.name() == "nonlocalclassify" => clips.push(s.to_owned()),
                Some(s) if s.name() == "nonlocalclassify-summary" => summaries.push(s.to_owned()),
                _ => {}
            },
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (clips, summaries)
}

#[test]
#[cfg(feature = "analytics")]
fn two_people_get_their_own_actions_where_the_frame_gets_one() {
    let (clips, summaries) = side_by_side("objects");
    let label_of = |id: u64| {
        summaries
            .iter()
            .find(|s| s.get::<u64>("object-id").ok() == Some(id))
            .map(|s| s.get::<String>("label").unwrap())
            .unwrap_or_else(|| panic!("no summary for person {id}: {summaries:?}"))
    };
    assert_eq!(label_of(1), "arm wrestling");
    assert_eq!(label_of(2), "cleaning pool");
    for clip in &clips {
        let id = clip.get::<u64>("object-id").unwrap();
        let label = clip.get::<String>("label").unwrap();
        eprintln!("person {id}: {label}");
    }
    // Every clip of each person says that person's action.
    for (id, action) in [(1u64, "arm wrestling"), (2, "cleaning pool")] {
        let labels: Vec<String> = clips
            .iter()
            .filter(|c| c.get::<u64>("object-id").ok() == Some(id))
            .map(|c| c.get::<String>("label").unwrap())
            .collect();
        assert!(labels.len() >= 3, "person {id}: {labels:?}");
        assert!(
            labels.iter().all(|l| l == action),
            "person {id}: {labels:?}"
        );
    }
    // The whole frame gets one action per clip: it cannot say both.
    let (frame_clips, frame_summaries) = side_by_side("frame");
    assert_eq!(frame_summaries.len(), 1);
    assert!(frame_clips.iter().all(|c| !c.has_field("object-id")));
    let frame_label = frame_summaries[0].get::<String>("label").unwrap();
    let frame_score = frame_summaries[0].get::<f64>("score").unwrap();
    eprintln!("frame: {frame_label} ({frame_score:.2})");
    // One label for both: at best one person's action, and far less sure than either person's
    // own answer (the centre of the frame holds half of each).
    for s in &summaries {
        let score = s.get::<f64>("score").unwrap();
        assert!(score > 0.8, "{s:?}");
        assert!(
            frame_score < score / 2.0,
            "frame {frame_score} vs person {score}"
        );
    }
}

/// The program on the two people: tools/two-people's composition (encoded here the same way:
/// tests/data's clips side by side, 240 frames, Theora) with tests/data/two_people.mot, as the
/// README shows it. Each person's answer is their own action, named by their id and box.
#[test]
#[cfg(all(feature = "analytics", feature = "cli"))]
fn the_program_gives_each_boxed_person_their_action() {
    init();
    let model = default_model();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let video = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("two_people-{}.ogv", std::process::id()));
    let branch = |file: &str, pad: u32| {
        format!(
            "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! videorate ! video/x-raw,format=I420,width=340,height=256,framerate=30/1 ! mix.sink_{pad}",
            data.join(file).display()
        )
    };
    let desc = format!(
        "compositor name=mix sink_1::xpos=340 ! video/x-raw,width=680,height=256,framerate=30/1 ! identity eos-after=240 ! videoconvert ! theoraenc quality=48 ! oggmux ! filesink location=\"{}\" {} {}",
        video.display(),
        branch("arm_wrestling.mp4", 0),
        branch("cleaning_pool.mp4", 1),
    );
    common::play_to_eos(&desc, 300, "the composition");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nonlocal-classify"))
        .arg("--model")
        .arg(&model)
        .arg("--boxes")
        .arg(data.join("two_people.mot"))
        .args(["--output", "json", "--top-k", "3"])
        .arg(&video)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&video);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    eprintln!("{lines:#?}");
    let people: Vec<(u64, serde_json::Value, String, f64)> = lines
        .iter()
        .map(|l| {
            // serde_json's maps are sorted by key: the best label is the highest score.
            let (label, score) = l["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            (
                l["object_id"].as_u64().unwrap(),
                l["box"].clone(),
                label,
                score,
            )
        })
        .collect();
    assert_eq!(people.len(), 2, "{lines:?}");
    assert_eq!(
        (people[0].0, &people[0].1, people[0].2.as_str()),
        (1, &serde_json::json!([0, 0, 340, 256]), "arm wrestling")
    );
    assert_eq!(
        (people[1].0, &people[1].1, people[1].2.as_str()),
        (2, &serde_json::json!([340, 0, 340, 256]), "cleaning pool")
    );
    assert!(people.iter().all(|p| p.3 > 0.8), "{people:?}");
}
