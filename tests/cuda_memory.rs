//! Video in CUDA memory (`memory:CUDAMemory`), without a card: the caps the element offers on this
//! host, that system-memory negotiation is unchanged, that unsampled frames are never mapped, and
//! frames negotiated as CUDA memory read through their GstVideoMeta (system-memory buffers under
//! CUDA caps: mapping is the same call for both). Real CUDA memory: tests/gpu.rs.

mod common;

use common::*;
use gst::prelude::*;
use gstnonlocal::nonlocalclassify::cuda_memory::{
    cuda_library_loadable, CUDA_LIBRARY, CUDA_MEMORY_FEATURE,
};

/// Whether the dynamic linker's cache lists GStreamer's CUDA library (`ldconfig -p`), `None`
/// when ldconfig cannot be run.
fn ldconfig_lists_cuda_library() -> Option<bool> {
    ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .iter()
        .find_map(|cmd| std::process::Command::new(cmd).arg("-p").output().ok())
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{CUDA_LIBRARY} ")))
        })
}

fn has_cuda_feature(caps: &gst::CapsRef) -> bool {
    caps.iter_with_features()
        .any(|(_, f)| f.contains(CUDA_MEMORY_FEATURE))
}

#[test]
fn templates_offer_cuda_memory_exactly_when_gstreamers_cuda_library_loads() {
    init();
    let Some(listed) = ldconfig_lists_cuda_library() else {
        println!("skipped: ldconfig -p cannot be run here");
        return;
    };
    if std::env::var_os("LD_LIBRARY_PATH").is_none() {
        assert_eq!(
            cuda_library_loadable(),
            listed,
            "ldconfig -p and dlopen disagree"
        );
    }
    let factory = gst::ElementFactory::find("nonlocalclassify").expect("factory");
    let element = factory.create().build().expect("element");
    for name in ["sink", "src"] {
        let caps = element.pad_template(name).expect("template").caps().clone();
        assert_eq!(
            has_cuda_feature(&caps),
            cuda_library_loadable(),
            "{name}: {caps}"
        );
        // System memory stays first, whatever follows it.
        assert!(!caps.features(0).unwrap().contains(CUDA_MEMORY_FEATURE));
        // gst-inspect-1.0 shows the factory's templates: the same caps.
        let shown = factory
            .static_pad_templates()
            .into_iter()
            .find(|t| t.name_template() == name)
            .expect("static template")
            .caps();
        assert_eq!(shown.to_string(), caps.to_string(), "{name}");
    }
    println!(
        "{CUDA_LIBRARY}: {} (ldconfig -p: {listed}); CUDA memory offered: {}",
        if cuda_library_loadable() {
            "loads"
        } else {
            "missing"
        },
        cuda_library_loadable()
    );
}

/// The caps the element's sink pad answers with `downstream` after it: what an upstream element
/// choosing between CUDA and system memory (nvh264dec, cudaupload) sees.
fn sink_caps_before(downstream: &str) -> gst::Caps {
    init();
    let pipeline = gst::parse::launch(&format!("nonlocalclassify name=c ! {downstream}"))
        .expect("pipeline")
        .downcast::<gst::Bin>()
        .unwrap();
    let element = pipeline.by_name("c").unwrap();
    element.static_pad("sink").unwrap().query_caps(None)
}

#[test]
fn a_producer_offered_both_memories_picks_system_memory_first() {
    // Downstream that takes anything: system memory first, CUDA memory after it where offered.
    let caps = sink_caps_before("fakesink");
    assert!(!caps.is_empty());
    assert!(
        !caps.features(0).unwrap().contains(CUDA_MEMORY_FEATURE),
        "{caps}"
    );
    assert_eq!(has_cuda_feature(&caps), cuda_library_loadable(), "{caps}");
    // Fixating (what a producer does with the first structure) gives system memory.
    let mut fixed = caps.clone();
    fixed.fixate();
    assert!(
        !has_cuda_feature(&fixed),
        "fixated caps went to CUDA memory: {fixed}"
    );
    // Downstream that takes system memory only (an encoder such as x264enc; here a capsfilter):
    // video passes through, so no CUDA memory at all, and nvh264dec keeps downloading as today.
    let caps = sink_caps_before("capsfilter caps=video/x-raw ! fakesink");
    assert!(!caps.is_empty());
    assert!(!has_cuda_feature(&caps), "{caps}");
}

#[test]
fn system_memory_pipelines_negotiate_as_before() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=20 pattern=ball ! video/x-raw,format=NV12,width=64,height=48,framerate=25/1 ! nonlocalclassify name=c model=MODEL ! fakesink"
            .replace("MODEL", &model("probe.onnx"))
            .as_str(),
    )
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or error");
    let element = pipeline.by_name("c").unwrap();
    let caps = element.static_pad("sink").unwrap().current_caps().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    assert!(
        caps.features(0)
            .unwrap()
            .contains(gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY),
        "{caps}"
    );
    assert_eq!(caps.structure(0).unwrap().get::<&str>("format"), Ok("NV12"));
}

/// The probe model samples frames 0, 2, 4, 6 of each clip (clip-length 4, frame-stride 2,
/// clip-stride 8): odd frames are never sampled.
#[test]
fn unsampled_frames_are_never_mapped() {
    let props = [("model", v(model("probe.onnx"))), ("top-k", v(12u32))];
    let whole = run_frames(&caps("RGB", 16, 8), &props, 24, probe_rgb);
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);
    // Odd frames as buffers without memory: mapping one fails (and errors the stream).
    let h = Harness::new(&caps("RGB", 16, 8), &props, false);
    h.start().unwrap();
    for n in 0..24 {
        let b = if n % 2 == 0 {
            buffer(probe_rgb(n), n)
        } else {
            let mut b = gst::Buffer::new();
            let m = b.get_mut().unwrap();
            m.set_pts(gst::ClockTime::from_nseconds(n * FRAME_NS));
            m.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
            b
        };
        h.push(b);
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 3);
    assert_eq!(out.buffers.len(), 24);
    for i in 0..3 {
        assert_eq!(out.scores(i), whole.scores(i), "clip {i}");
    }
}

/// CUDA caps over 16×8 RGB frames whose rows are `stride` bytes apart, as GstCudaMemory pitches
/// them, with a GstVideoMeta saying so when `meta`.
fn pitched_probe(n: u64, stride: usize, meta: bool) -> gst::Buffer {
    let rgb = probe_rgb(n);
    let mut data = vec![0xAAu8; stride * 8];
    for (y, row) in rgb.chunks(16 * 3).enumerate() {
        data[y * stride..y * stride + row.len()].copy_from_slice(row);
    }
    let mut b = buffer(data, n);
    if meta {
        gst_video::VideoMeta::add_full(
            b.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::Rgb,
            16,
            8,
            &[0],
            &[stride as i32],
        )
        .unwrap();
    }
    b
}

fn cuda_caps() -> gst::Caps {
    let mut c = caps("RGB", 16, 8);
    c.get_mut()
        .unwrap()
        .set_features(0, Some(gst::CapsFeatures::new([CUDA_MEMORY_FEATURE])));
    c
}

#[test]
fn frames_negotiated_as_cuda_memory_are_read_through_their_video_meta() {
    init();
    if !cuda_library_loadable() {
        println!("skipped: {CUDA_LIBRARY} is missing, so the element takes no CUDA memory");
        return;
    }
    let props = [("model", v(model("probe.onnx"))), ("top-k", v(12u32))];
    let whole = run_frames(&caps("RGB", 16, 8), &props, 24, probe_rgb);
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);
    let h = Harness::new(&cuda_caps(), &props, false);
    h.start().unwrap();
    for n in 0..24 {
        // A 64-byte pitch (48 bytes of pixels), as the CUDA allocator pads rows.
        h.push(pitched_probe(n, 64, true));
    }
    let out = h.finish();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let negotiated = h
        .element
        .static_pad("src")
        .unwrap()
        .current_caps()
        .expect("negotiated caps");
    assert_eq!(out.results.len(), 3);
    for i in 0..3 {
        assert_eq!(out.scores(i), whole.scores(i), "clip {i}");
    }
    // Video passes through: downstream gets the CUDA caps and every buffer.
    assert_eq!(out.buffers.len(), 24);
    assert!(has_cuda_feature(&negotiated), "{negotiated}");
}

#[test]
fn cuda_memory_without_a_video_meta_is_one_clear_error() {
    init();
    if !cuda_library_loadable() {
        println!("skipped: {CUDA_LIBRARY} is missing, so the element takes no CUDA memory");
        return;
    }
    let props = [("model", v(model("probe.onnx")))];
    let h = Harness::new(&cuda_caps(), &props, false);
    h.start().unwrap();
    for n in 0..4 {
        let _ = h.src.push_buffer(pitched_probe(n, 64, false));
    }
    let out = h.finish();
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert!(
        e.starts_with("Cannot read frame 0: a frame in CUDA memory has no GstVideoMeta"),
        "{e}"
    );
    assert!(
        e.contains("put cudadownload before nonlocalclassify"),
        "{e}"
    );
}
