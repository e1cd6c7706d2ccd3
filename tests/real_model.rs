//! The default model (DeepMind I3D, Kinetics-400, exported by tools/export_model.py) run by the
//! element on a real Kinetics clip must say "arm wrestling". tools/run-tests builds the model and
//! sets NONLOCAL_MODEL; without it the test looks in .cache/models and fails if it is not there.

mod common;

use common::*;
use gst::prelude::*;
use std::path::PathBuf;

fn default_model() -> PathBuf {
    std::env::var_os("NONLOCAL_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/models/i3d-kinetics400.onnx")
        })
}

#[test]
fn arm_wrestling_clip_is_arm_wrestling() {
    init();
    let model = default_model();
    assert!(
        model.exists(),
        "default model {} missing: run tools/run-tests or tools/default-model",
        model.display()
    );
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
