//! Shared harness of the pipeline tests: `appsrc ! nonlocalclassify ! appsink` with generated
//! frames and the tiny probe models of `tests/models/` (made by `tools/make_test_models.py`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use gst::prelude::*;

pub const FRAME_NS: u64 = 40_000_000;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstnonlocal::plugin_register_static().expect("plugin registers");
        assert!(
            std::env::var_os("ORT_DYLIB_PATH").is_some(),
            "set ORT_DYLIB_PATH to ONNX Runtime's libonnxruntime.so (tools/run-tests does it)"
        );
    });
}

/// Run a `gst-launch`-style pipeline to its end; panics, naming `what`, on an error or when it
/// has not ended within `seconds`.
pub fn play_to_eos(description: &str, seconds: u64, what: &str) {
    let pipeline = gst::parse::launch(description).expect("the pipeline parses");
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(seconds),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap_or_else(|| panic!("{what} did not end within {seconds} s"));
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(..)),
        "{what}: {msg:?}"
    );
}

/// The default model (DeepMind I3D, Kinetics-400): NONLOCAL_MODEL (tools/run-tests builds it
/// and sets it), else the one in .cache/models; the test fails when it is missing.
pub fn default_model() -> PathBuf {
    let model = std::env::var_os("NONLOCAL_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/models/i3d-kinetics400.onnx")
        });
    assert!(
        model.exists(),
        "default model {} missing: run tools/run-tests or tools/default-model",
        model.display()
    );
    model
}

pub fn model(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/models")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// An RGB frame 16×8 whose pixels reveal where they came from: R = 4·n (frame index),
/// G = x² (column), B = 200.
pub fn probe_rgb(n: u64) -> Vec<u8> {
    let (w, h) = (16usize, 8usize);
    let mut v = Vec::with_capacity(w * h * 3);
    for _y in 0..h {
        for x in 0..w {
            v.extend_from_slice(&[((4 * n) % 256) as u8, (x * x) as u8, 200]);
        }
    }
    v
}

pub fn caps(format: &str, width: i32, height: i32) -> gst::Caps {
    init();
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", width)
        .field("height", height)
        .field("framerate", gst::Fraction::new(25, 1))
        .build()
}

pub fn buffer(data: Vec<u8>, n: u64) -> gst::Buffer {
    init();
    let mut b = gst::Buffer::from_mut_slice(data);
    {
        let b = b.get_mut().expect("new buffer is writable");
        b.set_pts(gst::ClockTime::from_nseconds(n * FRAME_NS));
        b.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
    }
    b
}

/// What a pipeline run produced.
#[derive(Default, Debug)]
pub struct Outcome {
    pub results: Vec<gst::Structure>,
    /// `nonlocalclassify-segment` messages, in order.
    pub segments: Vec<gst::Structure>,
    pub summary: Option<gst::Structure>,
    /// Every `nonlocalclassify-summary` (one per object in objects mode), in order.
    pub summaries: Vec<gst::Structure>,
    pub buffers: Vec<gst::Buffer>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Custom downstream events that reached the sink (results ready after the last buffer).
    pub events: Vec<gst::Structure>,
}

impl Outcome {
    /// Scores of result `i` by label.
    pub fn scores(&self, i: usize) -> std::collections::HashMap<String, f64> {
        scores_of(&self.results[i])
    }

    pub fn field_u64(&self, i: usize, f: &str) -> u64 {
        self.results[i].get::<u64>(f).expect("u64 field")
    }
}

pub fn scores_of(s: &gst::StructureRef) -> std::collections::HashMap<String, f64> {
    let labels = s.get::<gst::Array>("labels").expect("labels");
    let scores = s.get::<gst::Array>("scores").expect("scores");
    labels
        .iter()
        .zip(scores.iter())
        .map(|(l, v)| (l.get::<String>().unwrap(), v.get::<f64>().unwrap()))
        .collect()
}

pub struct Harness {
    pub pipeline: gst::Pipeline,
    pub src: gst_app::AppSrc,
    pub sink: gst_app::AppSink,
    pub element: gst::Element,
    events: std::sync::Arc<std::sync::Mutex<Vec<gst::Structure>>>,
}

impl Harness {
    pub fn new(caps: &gst::Caps, props: &[(&str, glib::Value)], live: bool) -> Self {
        init();
        let pipeline = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .is_live(live)
            .max_bytes(0)
            .block(!live)
            .build();
        let element = gst::ElementFactory::make("nonlocalclassify")
            .build()
            .expect("element");
        for (name, value) in props {
            // Enums are given by nick, as on a gst-launch line.
            match value.get::<&str>() {
                Ok(text) if element.property_type(name) != Some(String::static_type()) => {
                    element.set_property_from_str(name, text)
                }
                _ => element.set_property_from_value(name, value),
            }
        }
        let sink = gst_app::AppSink::builder().sync(false).build();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&events);
        sink.static_pad("sink").unwrap().add_probe(
            gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(gst::PadProbeData::Event(e)) = &info.data {
                    if e.type_() == gst::EventType::CustomDownstream {
                        if let Some(s) = e.structure() {
                            seen.lock().unwrap().push(s.to_owned());
                        }
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        pipeline
            .add_many([src.upcast_ref(), &element, sink.upcast_ref()])
            .unwrap();
        gst::Element::link_many([src.upcast_ref(), &element, sink.upcast_ref()]).unwrap();
        Harness {
            pipeline,
            src,
            sink,
            element,
            events,
        }
    }

    pub fn start(&self) -> Result<(), String> {
        match self.pipeline.set_state(gst::State::Playing) {
            Ok(_) => Ok(()),
            Err(_) => Err(self.collect(Duration::from_millis(100)).errors.join("\n")),
        }
    }

    pub fn push(&self, buffer: gst::Buffer) {
        self.src.push_buffer(buffer).expect("push");
    }

    /// Wait for EOS (or an error), gathering messages and output buffers.
    pub fn finish(&self) -> Outcome {
        let _ = self.src.end_of_stream();
        self.collect(Duration::from_secs(60))
    }

    fn collect(&self, timeout: Duration) -> Outcome {
        let mut out = Outcome::default();
        let bus = self.pipeline.bus().unwrap();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            while let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::ZERO) {
                out.buffers.extend(sample.buffer_owned());
            }
            let Some(remaining) = deadline.checked_duration_since(std::time::Instant::now()) else {
                break;
            };
            let wait = remaining.min(Duration::from_millis(20));
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(wait.as_nanos() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => {
                    while let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::ZERO) {
                        out.buffers.extend(sample.buffer_owned());
                    }
                    out.events = std::mem::take(&mut *self.events.lock().unwrap());
                    break;
                }
                gst::MessageView::Error(e) => {
                    out.errors
                        .push(format!("{} | {}", e.error(), e.debug().unwrap_or_default()));
                    break;
                }
                gst::MessageView::Warning(w) => {
                    out.warnings
                        .push(format!("{} | {}", w.error(), w.debug().unwrap_or_default()))
                }
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure() {
                        match s.name().as_str() {
                            "nonlocalclassify" => out.results.push(s.to_owned()),
                            "nonlocalclassify-segment" => out.segments.push(s.to_owned()),
                            "nonlocalclassify-summary" => {
                                out.summaries.push(s.to_owned());
                                out.summary = Some(s.to_owned());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Wait until `count` buffers came out of the element (they are not kept).
    pub fn wait_buffers(&self, count: usize) {
        for _ in 0..count {
            self.sink
                .try_pull_sample(gst::ClockTime::from_seconds(30))
                .expect("buffer within 30 s");
        }
    }

    /// Wait for the next per-clip result message.
    pub fn next_result(&self, timeout: Duration) -> Option<gst::Structure> {
        let bus = self.pipeline.bus().unwrap();
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Element, gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Element(e) => e.structure().map(|s| s.to_owned()),
            _ => None,
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A live `appsrc ! nonlocalclassify ! appsink` on slow.onnx (tens of ms per clip on a CPU)
/// making a clip of every frame (4 frames, stride 1), with `props` besides.
pub fn slow_clip_per_frame(props: &[(&str, glib::Value)]) -> Harness {
    let mut all = vec![
        ("model", v(model("slow.onnx"))),
        ("clip-stride", v(1u32)),
        ("frame-stride", v(1u32)),
    ];
    all.extend(props.iter().cloned());
    Harness::new(&caps("RGB", 16, 8), &all, true)
}

/// The `field` of each structure.
pub fn u64s(structures: &[gst::Structure], field: &str) -> Vec<u64> {
    structures
        .iter()
        .map(|s| s.get::<u64>(field).expect("a guint64 field"))
        .collect()
}

/// Run frames 0..count through the element and wait for EOS.
pub fn run_frames(
    caps: &gst::Caps,
    props: &[(&str, glib::Value)],
    count: u64,
    frame: impl Fn(u64) -> Vec<u8>,
) -> Outcome {
    let h = Harness::new(caps, props, false);
    if let Err(e) = h.start() {
        return Outcome {
            errors: vec![e],
            ..Default::default()
        };
    }
    for n in 0..count {
        h.push(buffer(frame(n), n));
    }
    h.finish()
}

/// Start the element with `props` and return the error text of the failed state change.
pub fn start_error(props: &[(&str, glib::Value)]) -> String {
    let h = Harness::new(&caps("RGB", 16, 8), props, false);
    match h.start() {
        Ok(()) => {
            let out = h.finish();
            out.errors.join("\n")
        }
        Err(e) => e,
    }
}

pub fn v<T: ToValue>(x: T) -> glib::Value {
    x.to_value()
}

/// A `.npy` file the element wrote (`dump-inputs`): its header dictionary and its values.
pub fn read_npy(path: &std::path::Path) -> (String, Vec<u8>) {
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&file[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([file[8], file[9]]) as usize;
    let header = String::from_utf8(file[10..10 + len].to_vec()).expect("ASCII header");
    (header.trim_end().to_string(), file[10 + len..].to_vec())
}

/// Little-endian float32 values.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub use gst::glib;

/// Run this test binary's ignored tests whose names match `filter` (exactly when `exact`) in a
/// child process with ORT_DYLIB_PATH=`runtime` (None: without ORT_DYLIB_PATH and VIRTUAL_ENV, so
/// the element searches), ONNX Runtime being loaded once per process; its standard output, once
/// every one of them has passed.
pub fn ignored_in_child(filter: &str, exact: bool, runtime: Option<&Path>) -> String {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args(["--ignored", filter, "--nocapture", "--test-threads=1"]);
    if exact {
        child.arg("--exact");
    }
    match runtime {
        Some(lib) => child.env("ORT_DYLIB_PATH", lib),
        None => child.env_remove("ORT_DYLIB_PATH").env_remove("VIRTUAL_ENV"),
    };
    let out = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.contains(" 0 passed"),
        "the child process on {runtime:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
