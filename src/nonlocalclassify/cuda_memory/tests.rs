use gst::glib::{self, prelude::*};

use super::*;

fn init() {
    gst::init().expect("GStreamer");
}

/// The formats of caps structure `i`, as strings.
fn formats_of(caps: &gst::CapsRef, i: usize) -> Vec<String> {
    caps.structure(i)
        .expect("structure")
        .get::<gst::List>("format")
        .expect("a format list")
        .iter()
        .map(|v| v.get::<String>().expect("a format name"))
        .collect()
}

const ELEMENT_FORMATS: [&str; 12] = [
    "RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA", "ARGB", "ABGR", "I420", "NV12",
];

#[test]
fn without_the_cuda_library_the_caps_are_system_memory_alone() {
    init();
    let caps = template_caps(false);
    assert_eq!(caps.size(), 1, "{caps}");
    assert!(caps
        .features(0)
        .unwrap()
        .contains(gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY));
    assert!(!caps.to_string().contains("CUDAMemory"), "{caps}");
    assert_eq!(formats_of(&caps, 0), ELEMENT_FORMATS);
    assert_eq!(caps.structure(0).unwrap().name(), "video/x-raw");
}

#[test]
fn with_the_cuda_library_cuda_memory_follows_system_memory() {
    init();
    let caps = template_caps(true);
    assert_eq!(caps.size(), 2, "{caps}");
    // System memory first, exactly the caps without CUDA.
    let system = template_caps(false);
    assert_eq!(
        caps.structure(0),
        system.structure(0),
        "system memory stays first and unchanged"
    );
    assert!(caps
        .features(0)
        .unwrap()
        .is_equal(system.features(0).unwrap()));
    assert!(!caps.features(0).unwrap().contains(CUDA_MEMORY_FEATURE));
    // Then CUDA memory, in the formats the CUDA allocator holds (no xRGB, xBGR).
    let cuda = caps.features(1).unwrap();
    assert!(cuda.contains(CUDA_MEMORY_FEATURE), "{caps}");
    assert_eq!(cuda.size(), 1);
    assert_eq!(
        formats_of(&caps, 1),
        ["RGB", "BGR", "RGBx", "BGRx", "RGBA", "BGRA", "ARGB", "ABGR", "I420", "NV12"]
    );
    assert_eq!(caps.structure(1).unwrap().name(), "video/x-raw");
    assert_eq!(
        caps.to_string()
            .split("; ")
            .nth(1)
            .unwrap()
            .split(',')
            .next(),
        Some("video/x-raw(memory:CUDAMemory)")
    );
}

#[test]
fn cuda_formats_are_the_elements_in_its_order() {
    init();
    let names: Vec<&str> = cuda_formats().iter().map(|f| f.to_str().as_str()).collect();
    let mut want: Vec<&str> = ELEMENT_FORMATS.to_vec();
    want.retain(|f| *f != "xRGB" && *f != "xBGR");
    assert_eq!(names, want);
}

#[test]
fn what_nvcodec_sends_intersects_in_cuda_memory_only_where_offered() {
    init();
    // nvh264dec's CUDA output of 1.22 (NV12 among others) and cudaupload's.
    let nvdec = gst::Caps::from_str_or_panic(
        "video/x-raw(memory:CUDAMemory), format=(string){ NV12, P010_10LE, Y444 }",
    );
    let got = template_caps(true).intersect(&nvdec);
    assert_eq!(got.size(), 1, "{got}");
    assert!(is_cuda_memory(&got));
    assert_eq!(
        got.structure(0).unwrap().get::<&str>("format").unwrap(),
        "NV12"
    );
    assert!(template_caps(false).intersect(&nvdec).is_empty());
    // xRGB in CUDA memory is not something the element takes.
    let xrgb = gst::Caps::from_str_or_panic("video/x-raw(memory:CUDAMemory), format=xRGB");
    assert!(template_caps(true).intersect(&xrgb).is_empty());
}

trait FromStrOrPanic {
    fn from_str_or_panic(s: &str) -> gst::Caps;
}

impl FromStrOrPanic for gst::Caps {
    fn from_str_or_panic(s: &str) -> gst::Caps {
        s.parse().unwrap_or_else(|_| panic!("caps {s}"))
    }
}

#[test]
fn is_cuda_memory_reads_the_first_structures_features() {
    init();
    let cuda = gst::Caps::from_str_or_panic("video/x-raw(memory:CUDAMemory), format=NV12");
    let system = gst::Caps::from_str_or_panic("video/x-raw, format=NV12");
    let gl = gst::Caps::from_str_or_panic("video/x-raw(memory:GLMemory), format=NV12");
    assert!(is_cuda_memory(&cuda));
    assert!(!is_cuda_memory(&system));
    assert!(!is_cuda_memory(&gl));
    assert!(!is_cuda_memory(&gst::Caps::new_empty()));
}

#[test]
fn the_context_card_decides_same_other_or_none() {
    assert_eq!(context_card(0, None), ContextCard::NoContext);
    assert_eq!(context_card(3, None), ContextCard::NoContext);
    assert_eq!(context_card(0, Some(0)), ContextCard::Same);
    assert_eq!(context_card(2, Some(2)), ContextCard::Same);
    assert_eq!(
        context_card(0, Some(1)),
        ContextCard::Other {
            context: 1,
            device_id: 0
        }
    );
    assert_eq!(
        context_card(1, Some(0)),
        ContextCard::Other {
            context: 0,
            device_id: 1
        }
    );
    // A card number past i32 is another card, never wrapped onto device-id.
    assert_eq!(
        context_card(-1, Some(u32::MAX)),
        ContextCard::Other {
            context: u32::MAX,
            device_id: -1
        }
    );
}

#[test]
fn another_card_is_one_error_naming_both_cards_and_the_fix() {
    assert_eq!(ContextCard::NoContext.require_same(), Ok(()));
    assert_eq!(ContextCard::Same.require_same(), Ok(()));
    let e = context_card(0, Some(1)).require_same().unwrap_err();
    assert_eq!(
        e,
        "the video arrives in CUDA memory of card 1 but device-id=0: set device-id=1, or decode on card 0 (the nvcodec element whose cuda-device-id is 0)"
    );
    // Today's path reads frames through the host from any card: the description says so.
    assert!(context_card(0, Some(1))
        .describe()
        .contains("card 1, device-id=0"));
}

#[test]
fn the_cards_of_gstreamer_cuda_contexts_are_read_from_cuda_device_id() {
    init();
    let make = |kind: &str, id: Option<glib::SendValue>| {
        let mut context = gst::Context::new(kind, true);
        if let Some(id) = id {
            context
                .get_mut()
                .unwrap()
                .structure_mut()
                .set_value(CUDA_DEVICE_ID_FIELD, id);
        }
        context
    };
    assert_eq!(
        context_device(&make(CUDA_CONTEXT_TYPE, Some(1u32.to_send_value()))),
        Some(1)
    );
    assert_eq!(
        context_device(&make(CUDA_CONTEXT_TYPE, Some(0u32.to_send_value()))),
        Some(0)
    );
    // Another context type, no field, or a field of another type: no card.
    assert_eq!(
        context_device(&make("gst.gl.GLDisplay", Some(1u32.to_send_value()))),
        None
    );
    assert_eq!(context_device(&make(CUDA_CONTEXT_TYPE, None)), None);
    assert_eq!(
        context_device(&make(CUDA_CONTEXT_TYPE, Some("1".to_send_value()))),
        None
    );
}
