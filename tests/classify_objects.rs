//! `nonlocal-classify` in objects mode (`--boxes`, `--detector`; cargo feature `analytics`,
//! GStreamer >= 1.24; run by tools/analytics-lane): the built program on a video whose left half
//! is red and right half green, with MOT boxes files written here. The colour model's scores are
//! the mean colour of what it was fed, so each object's label says which half its crop came from:
//! ids, boxes and labels must come out as the boxes file dictates.
#![cfg(feature = "analytics")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nonlocal-classify"))
}

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("the program runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("classify-objects-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// 40 frames at 25 fps of 128×64: the left half red, the right half green (Theora in Ogg:
/// GStreamer's base plugins, in every lane).
fn halves() -> &'static str {
    static VIDEO: OnceLock<String> = OnceLock::new();
    VIDEO.get_or_init(|| {
        common::init();
        let path = dir().join("halves.ogv");
        let half = |colour: &str, pad: u32| {
            format!("videotestsrc num-buffers=40 pattern=solid-color foreground-color={colour} ! video/x-raw,width=64,height=64,framerate=25/1 ! mix.sink_{pad}")
        };
        let desc = format!(
            "compositor name=mix sink_1::xpos=64 ! video/x-raw,width=128,height=64 ! videoconvert ! theoraenc quality=63 ! oggmux ! filesink location=\"{}\" {} {}",
            path.display(),
            half("0xffff0000", 0),
            half("0xff00ff00", 1)
        );
        common::play_to_eos(&desc, 60, "encoding");
        path.to_string_lossy().into_owned()
    })
}

/// A MOT file of `lines`, each `(id, x, y, w, h)` boxed on frames 1 to 40.
fn mot(name: &str, boxes: &[(i64, i32, i32, i32, i32)]) -> String {
    let mut text = String::from("# frame,id,x,y,w,h,conf,x,y,z\n");
    for frame in 1..=40 {
        for (id, x, y, w, h) in boxes {
            text.push_str(&format!("{frame},{id},{x},{y},{w},{h},1,-1,-1,-1\n"));
        }
    }
    let path = dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn colour() -> String {
    common::model("colour.onnx")
}

/// The JSON lines of a run that must succeed.
fn json(args: &[&str]) -> Vec<Value> {
    let out = run(args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (object_id, box, top label, its score) of each JSON line.
fn answers(lines: &[Value]) -> Vec<(u64, Vec<i64>, String, f64)> {
    lines
        .iter()
        .map(|l| {
            // serde_json's maps are sorted by key: the best label is the highest score.
            let (label, score) = l["labels"]
                .as_object()
                .and_then(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                })
                .expect("labels");
            let b = l["box"]
                .as_array()
                .expect("box")
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            (l["object_id"].as_u64().expect("object_id"), b, label, score)
        })
        .collect()
}

const RED_BOX: (i32, i32, i32, i32) = (8, 16, 32, 32);
const GREEN_BOX: (i32, i32, i32, i32) = (72, 20, 28, 24);

fn with_id(id: i64, b: (i32, i32, i32, i32)) -> (i64, i32, i32, i32, i32) {
    (id, b.0, b.1, b.2, b.3)
}

#[test]
fn each_boxed_person_gets_the_action_of_their_box() {
    // Ids as the file gives them: 7 on the green half, 3 on the red one.
    let boxes = mot("ids.mot", &[with_id(7, GREEN_BOX), with_id(3, RED_BOX)]);
    let lines = json(&[
        "--model",
        &colour(),
        "--boxes",
        &boxes,
        "--output",
        "json",
        halves(),
    ]);
    let got = answers(&lines);
    assert_eq!(got.len(), 2, "{lines:?}");
    assert_eq!(
        (got[0].0, &got[0].1[..], got[0].2.as_str()),
        (3, &[8, 16, 32, 32][..], "red")
    );
    assert_eq!(
        (got[1].0, &got[1].1[..], got[1].2.as_str()),
        (7, &[72, 20, 28, 24][..], "green")
    );
    for (id, _, label, score) in &got {
        assert!(*score > 0.85, "object {id}: {label} {score}");
    }
    for l in &lines {
        assert_eq!(l["path"], halves());
        // 40 frames, clips of 8 consecutive frames: 5 per object.
        assert_eq!(l["clips"], 5, "{l}");
    }
}

#[test]
fn boxes_without_identity_are_numbered_by_the_element() {
    // -1: no identity; the element numbers objects 1, 2 in the order they appear (file order).
    let boxes = mot("anon.mot", &[with_id(-1, GREEN_BOX), with_id(-1, RED_BOX)]);
    let got = answers(&json(&[
        "--model",
        &colour(),
        "--boxes",
        &boxes,
        "--output",
        "json",
        halves(),
    ]));
    let ids_labels: Vec<(u64, &str)> = got.iter().map(|g| (g.0, g.2.as_str())).collect();
    assert_eq!(ids_labels, [(1, "green"), (2, "red")]);
}

#[test]
fn table_csv_and_timelines_name_each_person() {
    let boxes = mot("table.mot", &[with_id(1, RED_BOX), with_id(2, GREEN_BOX)]);
    let base = ["--model", &colour(), "--boxes", &boxes];
    let out = run(&[&base[..], &["--top-k", "1", halves()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v = halves();
    let text = stdout(&out);
    let red = text
        .split("\n\n")
        .find(|b| b.contains("person 1,"))
        .expect("person 1");
    assert!(
        red.starts_with(&format!("{v}  person 1, box 8,16,32,32  (5 clips)\n")),
        "{text}"
    );
    assert!(red.trim_end().ends_with("red"), "{text}");
    assert!(text.contains(&format!("{v}  person 2, box 72,20,28,24  (5 clips)\n")));

    let out = run(&[&base[..], &["--output", "csv", "--top-k", "1", halves()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("path,clip,start,end,rank,label,score,object_id,x,y,w,h")
    );
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert_eq!(rows.len(), 10, "{csv}");
    for r in &rows {
        match r[7] {
            "1" => assert_eq!((r[5], &r[8..]), ("red", &["8", "16", "32", "32"][..])),
            "2" => assert_eq!((r[5], &r[8..]), ("green", &["72", "20", "28", "24"][..])),
            other => panic!("object {other}: {r:?}"),
        }
    }

    let out = run(&[&base[..], &["--timeline", "vtt", halves()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let vtt = stdout(&out);
    let cues: Vec<&str> = vtt.lines().filter(|l| l.starts_with("person ")).collect();
    assert_eq!(cues.len(), 2, "{vtt}");
    assert!(cues[0].starts_with("person 1: red (") && cues[1].starts_with("person 2: green ("));
    let lines = json(&[&base[..], &["--timeline", "json", halves()]].concat());
    let segs: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["object_id"].as_u64().unwrap(),
                l["label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(segs, [(1, "red"), (2, "green")]);
}

#[test]
fn element_settings_reach_the_objects() {
    let boxes = mot("two.mot", &[with_id(1, RED_BOX), with_id(2, GREEN_BOX)]);
    // max-objects 1: the second person is dropped.
    let got = answers(&json(&[
        "--model",
        &colour(),
        "--boxes",
        &boxes,
        "--max-objects",
        "1",
        "--output",
        "json",
        halves(),
    ]));
    assert_eq!(
        got.iter().map(|g| (g.0, g.2.as_str())).collect::<Vec<_>>(),
        [(1, "red")]
    );
    // The boxes are persons: object-types car leaves none.
    let out = run(&[
        "--model",
        &colour(),
        "--boxes",
        &boxes,
        "--object-types",
        "car",
        halves(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no object was classified"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn boxes_on_some_frames_only_give_clips_on_those_frames() {
    // Person 5 is boxed on frames 1 to 16 only and the track ends a frame later (40 ms):
    // 16 frames give 2 clips of 8.
    let mut text = String::new();
    for frame in 1..=16 {
        text.push_str(&format!("{frame},5,8,16,32,32\n"));
    }
    let path = dir().join("short.mot");
    std::fs::write(&path, text).unwrap();
    let got = json(&[
        "--model",
        &colour(),
        "--boxes",
        path.to_str().unwrap(),
        "--track-timeout",
        "40",
        "--output",
        "json",
        halves(),
    ]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0]["object_id"].as_u64(), got[0]["clips"].as_u64()),
        (Some(5), Some(2))
    );
}

#[test]
fn user_errors_are_one_clear_message() {
    let d = dir();
    let bad = d.join("bad.mot");
    std::fs::write(&bad, "1,1,0,0,10,10\n\n2,1,0,0,NaN,10\n").unwrap();
    let bad = bad.to_str().unwrap();
    let out = run(&["--model", &colour(), "--boxes", bad, halves()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!("error: {bad}:3: width 'NaN' is not a pixel coordinate: give a number from -10000000 to 10000000")
    );
    let good = mot("one.mot", &[with_id(1, RED_BOX)]);
    let out = run(&[
        "--model",
        &colour(),
        "--regions",
        "frame",
        "--boxes",
        &good,
        halves(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--regions frame classifies the whole frame"));
    let out = run(&["--model", &colour(), "--regions", "objects", halves()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--regions objects needs the objects' boxes"));
    // One boxes file per video.
    let out = run(&["--model", &colour(), "--boxes", &good, halves(), halves()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("1 boxes file for 2 videos"),
        "{}",
        stderr(&out)
    );
}
