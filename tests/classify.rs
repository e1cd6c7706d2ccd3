//! The `nonlocal-classify` program end to end: the built binary run on videos encoded here, on the
//! real Kinetics clip with the default model, with lists, every output format, timelines (parsed,
//! and read by GStreamer's subparse) and errors, compared with the summary of a plain pipeline
//! around the element, and installed into a prefix of its own.

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

/// The program, built by cargo for this test.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nonlocal-classify"))
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
fn dump_inputs_writes_every_clip_of_each_video_into_its_own_folder() {
    let v = videos();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("classify-dumps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let probe = model("probe.onnx");
    let dumps = dir.to_string_lossy().into_owned();
    let out = run(&[
        "--model",
        &probe,
        "--output",
        "csv",
        "--dump-inputs",
        &dumps,
        &v.ogv,
        &v.short,
    ]);
    // The one-frame video has no clip: its error is the program's, its folder stays empty.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("short.ogv: too short"),
        "{}",
        stderr(&out)
    );
    // --output csv takes consecutive clips (--clips 0): six of the probe's, one file each.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("clip"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want: Vec<String> = (0..6).map(|k| format!("clip-{k:06}.npy")).collect();
    assert_eq!(names, want);
    let clips = stdout(&out).lines().filter(|l| l.contains(",1,c")).count();
    assert_eq!(clips, 6, "{}", stdout(&out));
    let (header, bytes) = common::read_npy(&dir.join("clip/clip-000005.npy"));
    assert!(header.contains("'shape': (1, 3, 4, 8, 8)"), "{header}");
    assert_eq!(bytes.len(), 3 * 4 * 8 * 8 * 4);

    // Two videos of one name would share a folder: refused before any is classified.
    let out = run(&["--model", &probe, "--dump-inputs", &dumps, &v.ogv, &v.avi]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "error: two videos would write {}",
            dir.join("clip").display()
        )),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
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

// ---------------------------------------------------------------------------------------------
// PaddleHub spellings, timelines, per-clip CSV, the installed program.

#[test]
fn paddlehub_spellings_work() {
    let v = videos();
    let probe = model("probe.onnx");
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("classify-hub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list.txt");
    std::fs::write(&list, format!("{}\n", v.avi)).unwrap();
    let ours = run(&[
        "--model",
        &probe,
        "--output",
        "json",
        "--input-path",
        &v.ogv,
        "--input-file",
        list.to_str().unwrap(),
    ]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    for use_gpu in [
        &["--use_gpu", "False"][..],
        &["--use_gpu=false"],
        &["--use-gpu", "0"],
    ] {
        let mut args = vec![
            "--model",
            &probe,
            "--output",
            "json",
            "--input_path",
            &v.ogv,
        ];
        args.extend(use_gpu);
        args.extend(["--input_file", list.to_str().unwrap()]);
        let hub = run(&args);
        assert!(hub.status.success(), "{args:?}: {}", stderr(&hub));
        assert_eq!(stdout(&hub), stdout(&ours), "{args:?}");
    }
    // --use_gpu True asks for CUDA: on a machine without it, a clear error naming CUDA.
    let gpu = run(&["--model", &probe, "--use_gpu", "True", &v.ogv]);
    if !gpu.status.success() {
        let err = stderr(&gpu);
        assert!(err.starts_with("error: ") && err.contains("CUDA"), "{err}");
    }
    // A bare --use-gpu still leaves the next argument to be a video.
    let out = run(&["--model", "/nonexistent.onnx", "--use-gpu", &v.ogv]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A 4 s video at 25 fps, red, then green from 1.0 s, blue from 2.2 s, red from 3.1 s (MJPEG in
/// AVI, 32×16).
fn colour_video() -> &'static str {
    static VIDEO: OnceLock<String> = OnceLock::new();
    VIDEO.get_or_init(|| {
        common::init();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("colour-{}.avi", std::process::id()));
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src format=time caps=video/x-raw,format=RGB,width=32,height=16,framerate=25/1 \
             ! videoconvert ! jpegenc quality=95 ! avimux ! filesink location=\"{}\"",
            path.display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        for n in 0..100u64 {
            let ms = n * 40;
            let rgb: [u8; 3] = match ms {
                0..1000 => [230, 20, 20],
                1000..2200 => [20, 230, 20],
                2200..3100 => [20, 20, 230],
                _ => [230, 20, 20],
            };
            let mut b = gst::Buffer::from_mut_slice(rgb.repeat(32 * 16));
            let bm = b.get_mut().unwrap();
            bm.set_pts(gst::ClockTime::from_mseconds(ms));
            bm.set_duration(gst::ClockTime::from_mseconds(40));
            src.push_buffer(b).unwrap();
        }
        src.end_of_stream().unwrap();
        let bus = pipeline.bus().unwrap();
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
                _ => {}
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        path.to_string_lossy().into_owned()
    })
}

/// The truth of `colour_video`: (label, start ms).
const COLOURS: [(&str, u64); 4] = [("red", 0), ("green", 1000), ("blue", 2200), ("red", 3100)];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSegment {
    path: String,
    segment: u64,
    label: String,
    start: f64,
    end: f64,
    score: f64,
    clips: u64,
    first_clip: u64,
    last_clip: u64,
}

/// Parse WebVTT or SubRip cues: (start ms, end ms, text), checking the layout on the way.
fn parse_cues(text: &str, vtt: bool) -> Vec<(u64, u64, String)> {
    let body = if vtt {
        text.strip_prefix("WEBVTT\n\n").expect("WEBVTT header")
    } else {
        text
    };
    let sep = if vtt { '.' } else { ',' };
    let time = |t: &str| -> u64 {
        let (hms, ms) = t.split_once(sep).unwrap_or_else(|| panic!("{t}"));
        let parts: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
        assert_eq!((parts.len(), ms.len()), (3, 3), "{t}");
        ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + ms.parse::<u64>().unwrap()
    };
    assert!(body.ends_with("\n\n"), "{text:?}");
    body.trim_end()
        .split("\n\n")
        .enumerate()
        .map(|(i, cue)| {
            let lines: Vec<&str> = cue.lines().collect();
            assert_eq!(lines.len(), 3, "{cue:?}");
            assert_eq!(lines[0], (i + 1).to_string());
            let (a, b) = lines[1].split_once(" --> ").expect("cue timing");
            (time(a), time(b), lines[2].to_string())
        })
        .collect()
}

/// What subparse makes of a subtitle file: (PTS ms, duration ms, text) per buffer.
fn subparse(path: &Path) -> Vec<(u64, u64, String)> {
    common::init();
    let desc = format!(
        "filesrc location=\"{}\" ! subparse ! appsink name=sink sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().unwrap();
        let map = buffer.map_readable().unwrap();
        out.push((
            buffer.pts().unwrap().mseconds(),
            buffer.duration().unwrap().mseconds(),
            String::from_utf8_lossy(&map).trim().to_string(),
        ));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn timelines_as_json_subtitles_and_csv() {
    let video = colour_video();
    let colour = model("colour_25fps.onnx");
    let json = run(&["--model", &colour, "--timeline", "json", video]);
    assert!(json.status.success(), "{}", stderr(&json));
    let segments: Vec<JsonSegment> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let labels: Vec<&str> = segments.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["red", "green", "blue", "red"], "{}", stdout(&json));
    // Clips of 8 frames at 25 fps, one every 320 ms: boundaries within one clip stride.
    for (s, (_, at)) in segments.iter().zip(COLOURS) {
        assert!((s.start * 1000.0 - at as f64).abs() <= 320.0, "{s:?}");
        assert_eq!(s.path, video);
        assert!(s.score > 0.5 && s.end > s.start, "{s:?}");
    }
    assert_eq!(
        segments.iter().map(|s| s.segment).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(segments[0].first_clip, 0);
    for w in segments.windows(2) {
        assert_eq!(w[1].first_clip, w[0].last_clip + 1);
        assert_eq!(w[1].start, w[0].end);
    }
    let clips: u64 = segments.iter().map(|s| s.clips).sum();
    assert_eq!(
        clips, 13,
        "4 s of consecutive 320 ms clips, the last one padded"
    );

    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("timelines-{}", std::process::id()));
    for (format, vtt) in [("vtt", true), ("srt", false)] {
        let out = run(&["--model", &colour, "--timeline", format, video]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let cues = parse_cues(&text, vtt);
        assert_eq!(cues.len(), 4, "{text}");
        for (cue, s) in cues.iter().zip(&segments) {
            assert_eq!(cue.0, (s.start * 1000.0).round() as u64);
            assert_eq!(cue.1, (s.end * 1000.0).round() as u64);
            assert_eq!(cue.2, format!("{} ({:.0}%)", s.label, 100.0 * s.score));
        }
        // The same file through --timeline-dir, next to the JSON answer on stdout; subparse
        // reads it back cue by cue.
        let out = run(&[
            "--model",
            &colour,
            "--timeline",
            format,
            "--timeline-dir",
            dir.to_str().unwrap(),
            "--output",
            "json",
            video,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(lines(&out).len(), 1);
        let file = dir.join(format!("colour-{}.{format}", std::process::id()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        let parsed = subparse(&file);
        let want: Vec<(u64, u64, String)> = cues
            .iter()
            .map(|(a, b, t)| (*a, b - a, t.clone()))
            .collect();
        assert_eq!(parsed, want, "subparse read {format}");
    }

    // Per-clip CSV: a header, then top-k rows per clip, best first.
    let out = run(&["--model", &colour, "--output", "csv", "--top-k", "2", video]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["path", "clip", "start", "end", "rank", "label", "score"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 13 * 2);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row[0], video);
        assert_eq!(row[1].parse::<usize>().unwrap(), i / 2);
        assert_eq!(row[4].parse::<usize>().unwrap(), i % 2 + 1);
        let start: f64 = row[2].parse().unwrap();
        // Clip k starts at 320·k ms (25 fps source, clips of 8 frames by time).
        assert!((start - 0.32 * (i / 2) as f64).abs() < 0.021, "{row:?}");
    }
    // Clip 3 (960–1280 ms) is mostly green.
    assert_eq!(&rows[6][5], "green");

    // Subtitles of several videos need one file each.
    let out = run(&["--model", &colour, "--timeline", "vtt", video, video]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--timeline-dir"), "{}", stderr(&out));
}

#[test]
fn installed_program_runs_from_its_prefix() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("install-{}", std::process::id()));
    // The tests' own build directory and profile: installing reuses what is built.
    let target = binary()
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/nonlocal-classify")
        .to_path_buf();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // With the features these tests were built with: the install writes the program where
    // `CARGO_BIN_EXE_nonlocal-classify` points, which later test targets (objects mode) run.
    let features: &[&str] = if cfg!(feature = "analytics") {
        &["--features", "analytics"]
    } else {
        &[]
    };
    let status = Command::new(cargo)
        .current_dir(manifest_dir())
        .env("CARGO_TARGET_DIR", &target)
        .args(["install", "--path", ".", "--locked", "--offline", "--debug"])
        .args(features)
        .arg("--root")
        .arg(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo install failed");
    let installed = root.join("bin/nonlocal-classify");
    // From another directory, with no plugin path: the program carries the element.
    let out = Command::new(&installed)
        .current_dir(&root)
        .env_remove("GST_PLUGIN_PATH")
        .args([
            "--model",
            &model("probe.onnx"),
            "--output",
            "json",
            &videos().ogv,
        ])
        .output()
        .expect("installed program runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let here = run(&[
        "--model",
        &model("probe.onnx"),
        "--output",
        "json",
        &videos().ogv,
    ]);
    assert_eq!(stdout(&out), stdout(&here));
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        stdout(&version).trim(),
        format!("nonlocal-classify {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Without GstAnalytics (GStreamer 1.22, no `analytics` feature) objects mode is one message;
/// usage errors about boxes come first, as everywhere.
#[test]
#[cfg(not(feature = "analytics"))]
fn objects_mode_says_it_needs_gstreamer_1_24() {
    let v = videos();
    let boxes = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/two_people.mot");
    let boxes = boxes.to_str().unwrap();
    let out = run(&["--model", &model("probe.onnx"), "--boxes", boxes, &v.ogv]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(
            "error: objects mode (--regions objects, --boxes, --detector) needs GStreamer 1.24 or newer"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    let out = run(&["--regions", "frame", "--boxes", boxes, &v.ogv]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--regions frame classifies the whole frame"));
    let out = run(&["--regions", "objects", &v.ogv]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--regions objects needs the objects' boxes"));
}
