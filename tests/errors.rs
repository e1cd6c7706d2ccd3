//! Every bad input gives one element error whose text says what is wrong and what to do.

mod common;

use common::*;

fn err_with(props: &[(&str, glib::Value)]) -> String {
    let e = start_error(props);
    assert!(!e.is_empty(), "expected an error for {props:?}");
    e
}

#[test]
fn no_model_property() {
    let e = err_with(&[]);
    assert!(
        e.contains("No model set") && e.contains("'model' property"),
        "{e}"
    );
}

#[test]
fn missing_model_file_is_named() {
    let e = err_with(&[("model", v("/nonexistent/dir/model.onnx"))]);
    assert!(
        e.contains("/nonexistent/dir/model.onnx") && e.contains("cannot be read"),
        "{e}"
    );
}

#[test]
fn corrupt_and_truncated_models() {
    let dir = std::env::temp_dir().join(format!("nl-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf \xff\xfe\x00\x01").unwrap();
    let e = err_with(&[("model", v(garbage.to_str().unwrap()))]);
    assert!(
        e.contains("garbage.onnx") && e.contains("not a valid ONNX model"),
        "{e}"
    );

    let full = std::fs::read(model("probe.onnx")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let e = err_with(&[("model", v(truncated.to_str().unwrap()))]);
    assert!(
        e.contains("truncated.onnx") && e.contains("not a valid ONNX model"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_rank() {
    let e = err_with(&[("model", v(model("bad_rank4.onnx")))]);
    assert!(e.contains("rank 4") && e.contains("5-D"), "{e}");
}

#[test]
fn wrong_channel_count() {
    let e = err_with(&[("model", v(model("bad_channels4.onnx")))]);
    assert!(e.contains("4 channels") && e.contains("RGB"), "{e}");
}

#[test]
fn wrong_input_type() {
    let e = err_with(&[("model", v(model("bad_int64.onnx")))]);
    assert!(
        e.contains("Int64") && e.contains("float32, float16 or uint8"),
        "{e}"
    );
}

#[test]
fn one_class_is_not_a_classifier() {
    let e = err_with(&[("model", v(model("bad_one_class.onnx")))]);
    assert!(e.contains("1 class") && e.contains("at least 2"), "{e}");
}

#[test]
fn label_count_must_match_outputs() {
    let dir = std::env::temp_dir().join(format!("nl-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = dir.join("three.txt");
    std::fs::write(&labels, "a\nb\nc\n").unwrap();
    let e = err_with(&[
        ("model", v(model("probe.onnx"))),
        ("labels", v(labels.to_str().unwrap())),
    ]);
    assert!(
        e.contains("three.txt") && e.contains("3 labels") && e.contains("12 outputs"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn conflicting_clip_length_names_both_values() {
    let e = err_with(&[("model", v(model("probe.onnx"))), ("clip-length", v(16u32))]);
    assert!(
        e.contains("clip-length=16") && e.contains("fixes it to 4"),
        "{e}"
    );
}

#[test]
fn dynamic_time_without_clip_length_asks_for_it() {
    let e = err_with(&[("model", v(model("logits_dynamic.onnx")))]);
    assert!(e.contains("set the clip-length property"), "{e}");
}

#[test]
fn cuda_requested_without_cuda_is_an_error_or_runs_on_cuda() {
    init();
    let h = Harness::new(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            ("execution-provider", v("cuda")),
        ],
        false,
    );
    match h.start() {
        Err(e) => assert!(
            e.contains("execution-provider=cuda") && e.contains("onnxruntime-gpu"),
            "{e}"
        ),
        Ok(()) => {
            // A machine with a working CUDA provider: results must flow.
            for n in 0..8 {
                h.push(buffer(probe_rgb(n), n));
            }
            let out = h.finish();
            assert!(out.errors.is_empty() && out.results.len() == 1, "{out:?}");
        }
    }
}

#[test]
fn auto_provider_falls_back_to_cpu_without_a_warning() {
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("probe.onnx"))),
            ("execution-provider", v("auto")),
        ],
        8,
        probe_rgb,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 1);
    // auto means "CUDA if there is one": running on the CPU is not a problem to warn about (it
    // is logged at INFO level); asking for cuda without it is an error (test above).
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
#[cfg(not(feature = "analytics"))]
fn objects_mode_without_gstanalytics_says_what_it_needs() {
    let e = err_with(&[("model", v(model("probe.onnx"))), ("regions", v("objects"))]);
    assert!(
        e.contains("regions=objects")
            && e.contains("GStreamer 1.24 or newer")
            && e.contains("regions=frame"),
        "{e}"
    );
}
