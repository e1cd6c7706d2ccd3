use gst::glib;
use gst::prelude::*;

use super::*;

fn init() {
    gst::init().expect("GStreamer");
}

#[test]
fn every_property_is_declared_once_with_the_default_its_settings_start_with() {
    init();
    let mut settings = Settings::default();
    let mut names = Vec::new();
    for p in Settings::properties() {
        let name = p.spec.name();
        assert!(!names.contains(&name), "{name} declared twice");
        names.push(name);
        if !p.spec.flags().contains(glib::ParamFlags::READABLE) {
            continue;
        }
        let value = p.get(&mut settings);
        let default = p.spec.default_value();
        assert_eq!(value.type_(), p.spec.value_type(), "{name}");
        assert!(
            format!("{value:?}") == format!("{default:?}"),
            "{name}: the settings start at {value:?}, the declaration says {default:?}"
        );
    }
    for name in [
        "model",
        "clip-length",
        "top-k",
        "max-pending",
        "leaky",
        "server",
        "server-token",
    ] {
        assert!(names.contains(&name), "{name}");
    }
}

#[test]
fn values_set_are_read_back_from_the_group_that_holds_them() {
    init();
    let mut s = Settings::default();
    let set = |s: &mut Settings, name: &str, value: glib::Value| {
        Settings::property(name).expect(name).set(s, &value)
    };
    set(&mut s, "clip-length", 16u32.to_value());
    set(&mut s, "top-k", 3u32.to_value());
    set(&mut s, "max-batch", 32u32.to_value());
    set(&mut s, "device-id", 2i32.to_value());
    set(&mut s, "segment-margin", 0.25f64.to_value());
    set(
        &mut s,
        "clip-fps",
        gst::Fraction::new(30000, 1001).to_value(),
    );
    set(&mut s, "server-timeout", 5u32.to_value());
    set(&mut s, "server-token", Some("secret").to_value());
    set(
        &mut s,
        "crops",
        crate::nonlocalclassify::Crops::Three.to_value(),
    );
    set(&mut s, "model", Some("m.onnx").to_value());
    set(
        &mut s,
        "leaky",
        crate::nonlocalclassify::Leaky::Newest.to_value(),
    );
    assert_eq!(s.sampling.clip_length, 16);
    assert_eq!(s.output.top_k, 3);
    assert_eq!(s.engine.max_batch, 32);
    assert_eq!(s.engine.device_id, 2);
    assert_eq!(s.output.segment_margin, 0.25);
    assert_eq!(s.sampling.clip_fps, (30000, 1001));
    assert_eq!(s.server.timeout_ms, 5);
    assert_eq!(s.engine.model.as_deref(), Some("m.onnx"));
    assert_eq!(s.sampling.crops, crate::nonlocalclassify::Crops::Three);
    assert_eq!(s.engine.leaky, crate::nonlocalclassify::Leaky::Newest);
    assert_eq!(
        s.server.token.as_ref().map(|t| t.expose().to_string()),
        Some("secret".to_string())
    );
    let get = |s: &mut Settings, name: &str| Settings::property(name).expect(name).get(s);
    assert_eq!(get(&mut s, "clip-length").get::<u32>().unwrap(), 16);
    assert_eq!(
        get(&mut s, "clip-fps").get::<gst::Fraction>().unwrap(),
        gst::Fraction::new(30000, 1001)
    );
    // An empty token is no token.
    set(&mut s, "server-token", Some("").to_value());
    assert!(s.server.token.is_none());
}

#[test]
fn ranges_declared_are_the_groups_constants() {
    init();
    let uint = |name: &str| {
        let p = Settings::property(name).expect(name);
        let spec = p.spec.downcast_ref::<glib::ParamSpecUInt>().expect(name);
        Range::new(spec.minimum(), spec.maximum(), spec.default_value())
    };
    assert_eq!(uint("clip-length"), sampling::CLIP_LENGTH);
    assert_eq!(uint("top-k"), output::TOP_K);
    assert_eq!(uint("max-pending"), engine::MAX_PENDING);
    assert_eq!(uint("server-requests"), server::SERVER_REQUESTS);
    let blurb = Settings::property("clip-length").unwrap().spec.blurb();
    assert_eq!(
        blurb,
        Some("Frames per clip, 1 to 1024 (0 = from the model)")
    );
}

#[test]
fn the_remote_model_is_named_by_server_model_else_the_model_files_stem() {
    let mut s = ServerSettings::default();
    assert!(
        s.remote(Some("/m/i3d.onnx")).is_none(),
        "no server: in-process"
    );
    s.server = Some("127.0.0.1:8001".into());
    let named = s.remote(Some("/m/i3d.onnx")).unwrap().unwrap();
    assert_eq!(named.model, "i3d");
    s.server_model = Some("other".into());
    assert_eq!(
        s.remote(Some("/m/i3d.onnx")).unwrap().unwrap().model,
        "other"
    );
}
