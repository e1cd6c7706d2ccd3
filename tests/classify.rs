//! The `classify` example end to end: the built binary run on videos encoded here, on the real
//! Kinetics clip with the default model, with lists, both output formats and errors, and compared
//! with the summary of a plain pipeline around the element.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use gst::prelude::*;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The example binary: next to this test's directory (`target/<profile>/examples/`), built by
/// `cargo test`; built here when missing (e.g. `cargo test --test classify` alone).
fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps");
        let bin = profile_dir.join("examples").join("classify");
        let newest_source = ["examples/classify.rs", "src"]
            .iter()
            .filter_map(|p| newest(&manifest_dir().join(p)))
            .max();
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_none() || built < newest_source {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(manifest_dir())
                .args(["build", "--example", "classify"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("cargo runs");
            assert!(status.success(), "cargo build --example classify failed");
        }
        bin
    })
    .clone()
}

/// Latest modification time of a file or of any file under a directory.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|e| newest(&e.path()))
            .max()
    } else {
        meta.modified().ok()
    }
}

fn model(name: &str) -> String {
    common::model(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("classify runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Labels of a JSON line in the order they were written.
#[derive(Debug)]
struct Ordered(Vec<(String, f64)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of label: probability")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = map.next_entry::<String, f64>()? {
                    v.push(entry);
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    path: String,
    labels: Ordered,
    clips: u64,
    #[serde(default)]
    frames: Option<u64>,
    #[serde(default)]
    clip_stride: Option<u32>,
}

fn lines(out: &Output) -> Vec<Line> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Shape of a JSON answer: `k` labels, best first, finite scores.
fn assert_shape(line: &Line, k: usize) {
    let labels = &line.labels.0;
    assert_eq!(labels.len(), k, "{line:?}");
    assert!(
        labels.windows(2).all(|w| w[0].1 >= w[1].1),
        "not best first: {line:?}"
    );
    assert!(labels.iter().all(|(_, p)| p.is_finite()), "{line:?}");
}

/// Videos encoded once for every test: 50 frames at 25 fps (2 s), 64×48, in several containers.
struct Videos {
    _dir: PathBuf,
    ogv: String,
    avi: String,
    webm: String,
    /// One frame: too short for a clip of the probe model (it needs 3 frames).
    short: String,
}

fn videos() -> &'static Videos {
    static VIDEOS: OnceLock<Videos> = OnceLock::new();
    VIDEOS.get_or_init(|| {
        common::init();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("classify-videos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let raw = "video/x-raw,width=64,height=48,framerate=25/1";
        let encode = |name: &str, tail: &str| {
            let path = dir.join(name);
            let desc = format!(
                "videotestsrc num-buffers=50 pattern=smpte ! {raw} ! {tail} ! filesink location=\"{}\"",
                path.display()
            );
            run_to_eos(&desc);
            path.to_string_lossy().into_owned()
        };
        Videos {
            ogv: encode("clip.ogv", "theoraenc ! oggmux"),
            avi: encode("clip.avi", "jpegenc ! avimux"),
            // With a sound track (left undecoded by classify).
            webm: {
                let path = dir.join("clip.webm");
                run_to_eos(&format!(
                    "videotestsrc num-buffers=50 pattern=ball ! {raw} ! vp8enc ! webmmux name=m ! filesink location=\"{}\" \
                     audiotestsrc num-buffers=80 ! vorbisenc ! m.",
                    path.display()
                ));
                path.to_string_lossy().into_owned()
            },
            short: {
                let path = dir.join("short.ogv");
                run_to_eos(&format!(
                    "videotestsrc num-buffers=1 ! {raw} ! theoraenc ! oggmux ! filesink location=\"{}\"",
                    path.display()
                ));
                path.to_string_lossy().into_owned()
            },
            _dir: dir,
        }
    })
}

fn run_to_eos(desc: &str) {
    let pipeline = gst::parse::launch(desc).unwrap_or_else(|e| panic!("{desc}: {e}"));
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{desc}: {} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The real model runs one clip at a time: keep its tests from competing for the two cores.
static HEAVY: Mutex<()> = Mutex::new(());

#[test]
fn any_container_json_lines_in_input_order() {
    let v = videos();
    let probe = model("probe.onnx");
    let out = run(&[
        "--model",
        &probe,
        "--output",
        "json",
        "--jobs",
        "3",
        "-v",
        &v.webm,
        &v.ogv,
        "--input-path",
        &v.avi,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = lines(&out);
    // Positional videos first, then --input-path, each in order despite --jobs.
    let paths: Vec<&str> = got.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, [v.webm.as_str(), v.ogv.as_str(), v.avi.as_str()]);
    for line in &got {
        assert_shape(line, 5);
        assert!(line.labels.0.iter().all(|(l, _)| l.starts_with('c')));
    }
    // 50 frames each: --clips 10 gives 10 clips over the probe model's 7-frame clips.
    for line in &got[1..] {
        assert_eq!(line.frames, Some(50), "{line:?}");
        assert_eq!(line.clips, 10, "{line:?}");
        assert_eq!(line.clip_stride, Some(5), "{line:?}");
    }
    // The webm's duration is the longer sound track's: the frame count is over-estimated, so
    // fewer clips than asked, all of them from the 50 video frames.
    assert!(
        (1..=10).contains(&got[0].clips),
        "{:?} {}",
        got[0],
        stderr(&out)
    );
}

#[test]
fn clips_and_crops_as_documented() {
    let ogv = &videos().ogv;
    let probe = model("probe.onnx");
    let clips_for = |clips: &str, crops: &str| -> Line {
        let out = run(&[
            "--model", &probe, "--output", "json", "-v", "--clips", clips, "--crops", crops, ogv,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        lines(&out).remove(0)
    };
    // Probe model: clips of 4 frames every 2 (span 7); a clip needs 2 frames (half of 4), so the
    // element starts clips up to frame X = 50 − 1 − 2 = 47.
    for (n, stride, clips) in [
        ("1", 48, 1),   // X / 1 + 1: one clip
        ("3", 21, 3),   // (50 − 7) / 2
        ("10", 5, 10),  // (50 − 7) / 9 = 4 would make 12 clips: X / 10 + 1 = 5
        ("30", 2, 24),  // fewer than asked: 47 / 2 + 1
        ("100", 1, 48), // one clip per frame start
    ] {
        let line = clips_for(n, "center");
        assert_eq!(
            (line.clip_stride, line.clips),
            (Some(stride), clips),
            "--clips {n}"
        );
    }
    // --clips 0: the element's default clip-stride (4 × 2): clips at 0, 8, …, 40.
    let line = clips_for("0", "center");
    assert_eq!((line.clip_stride, line.clips), (Some(0), 6));

    // Three crops are averaged: same clips, other scores (the SMPTE bars differ left to right).
    let center = clips_for("3", "center");
    let three = clips_for("3", "three");
    assert_eq!(three.clips, 3);
    assert_ne!(center.labels.0, three.labels.0);
}

/// The summary a plain `uridecodebin ! videoconvert ! nonlocalclassify ! fakesink` posts.
fn element_summary(uri: &str, props: &str) -> gst::Structure {
    common::init();
    let desc = format!(
        "uridecodebin uri=\"{uri}\" ! videoconvert ! nonlocalclassify {props} ! fakesink sync=false"
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut summary = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure() {
                    if s.name() == "nonlocalclassify-summary" {
                        summary = Some(s.to_owned());
                    }
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    summary.expect("summary at EOS")
}

#[test]
fn json_is_the_element_summary() {
    let v = videos();
    let probe = model("probe.onnx");
    let out = run(&[
        "--model", &probe, "--output", "json", "-v", "--clips", "4", "--crops", "three", "--top-k",
        "12", &v.avi,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = lines(&out).remove(0);
    let stride = line.clip_stride.expect("clip_stride with -v");
    let uri = gst::glib::filename_to_uri(&v.avi, None).unwrap();
    let summary = element_summary(
        &uri,
        &format!("model=\"{probe}\" clip-stride={stride} crops=three top-k=12"),
    );
    assert_eq!(line.clips, summary.get::<u64>("clips").unwrap());
    let labels = summary.get::<gst::Array>("labels").unwrap();
    let scores = summary.get::<gst::Array>("scores").unwrap();
    assert_eq!(line.labels.0.len(), labels.len());
    for ((label, p), (l, s)) in line.labels.0.iter().zip(labels.iter().zip(scores.iter())) {
        let s = s.get::<f64>().unwrap();
        assert_eq!(label, &l.get::<String>().unwrap());
        assert!(
            (p - s).abs() <= 1e-12 * s.abs().max(1.0),
            "{label}: {p} vs {s}"
        );
    }
}

#[test]
fn probabilities_of_a_softmax_model_sum_to_at_most_one() {
    let ogv = &videos().ogv;
    // slow.onnx: 2 logits, the element applies softmax.
    let out = run(&[
        "--model",
        &model("slow.onnx"),
        "--output",
        "json",
        "--clips",
        "2",
        ogv,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = lines(&out).remove(0);
    assert_shape(&line, 2);
    let sum: f64 = line.labels.0.iter().map(|(_, p)| p).sum();
    assert!(sum <= 1.0 + 1e-6 && sum > 0.99, "{sum}");
}

#[test]
fn list_file_with_missing_and_broken_entries() {
    let v = videos();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("classify-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.mp4").to_string_lossy().into_owned();
    let broken = dir.join("broken.mp4");
    std::fs::write(&broken, "this is not a video\n").unwrap();
    let broken = broken.to_string_lossy().into_owned();
    let uri = gst::glib::filename_to_uri(&v.avi, None)
        .unwrap()
        .to_string();
    let list = dir.join("list.txt");
    std::fs::write(
        &list,
        format!(
            "# videos to classify\n{}\n\n{missing}\n  {uri}  \n{broken}\n{}\n# end\n",
            v.ogv, v.short
        ),
    )
    .unwrap();
    let out = run(&[
        "--model",
        &model("probe.onnx"),
        "--output",
        "json",
        "--input-file",
        list.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = lines(&out);
    let paths: Vec<&str> = got.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths, [v.ogv.as_str(), uri.as_str()]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error: {missing}: no such file")),
        "{err}"
    );
    assert!(err.contains(&format!("error: {broken}: ")), "{err}");
    assert!(err.contains(&format!("error: {}: ", v.short)), "{err}");
    assert!(
        err.contains("3 of 5 videos could not be classified"),
        "{err}"
    );
}

#[test]
fn text_output_is_a_table() {
    let v = videos();
    let out = run(&[
        "--model",
        &model("probe.onnx"),
        "--top-k",
        "3",
        "--clips",
        "2",
        &v.ogv,
        &v.avi,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let blocks: Vec<&str> = text.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{text}");
    for (block, path) in blocks.iter().zip([&v.ogv, &v.avi]) {
        let rows: Vec<&str> = block.lines().collect();
        assert_eq!(rows[0], format!("{path}  (2 clips)"), "{text}");
        assert_eq!(rows[1].trim(), "probability  label");
        assert_eq!(rows.len(), 2 + 3, "{text}");
        let scores: Vec<f64> = rows[2..]
            .iter()
            .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{text}");
    }
}

#[test]
fn user_errors_are_messages() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no videos given"), "{}", stderr(&out));

    let out = run(&["--model", "/nonexistent/model.onnx", &videos().ogv]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("/nonexistent/model.onnx"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = run(&["--clips", "many", "x.mp4"]);
    assert_eq!(out.status.code(), Some(2));

    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for option in [
        "--input-path",
        "--input-file",
        "--model",
        "--use-gpu",
        "--top-k",
        "--crops",
        "--clips",
        "--output",
        "--jobs",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}

#[test]
fn arm_wrestling_with_the_default_model() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let video = manifest_dir().join("tests/data/arm_wrestling.mp4");
    // NONLOCAL_MODEL (tools/run-tests sets it) or tools/default-model, as the example finds it.
    let out = run(&["--output", "json", "--clips", "3", video.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = lines(&out).remove(0);
    assert_shape(&line, 5);
    assert_eq!(line.clips, 3);
    assert_eq!(line.labels.0[0].0, "arm wrestling", "{line:?}");
    let sum: f64 = line.labels.0.iter().map(|(_, p)| p).sum();
    assert!(sum <= 1.0 + 1e-6, "{sum}");
}
