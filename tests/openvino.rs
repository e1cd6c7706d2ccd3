//! OpenVINO's execution provider (`execution-provider=openvino`, and what `auto` picks) on ONNX
//! Runtime's OpenVINO build, and its failures as element errors: the provider missing from the
//! build loaded, a model OpenVINO refuses, an int8 model with broken scales.
//!
//! ONNX Runtime is loaded once per process, so the cases run in child processes of this test
//! binary with ORT_DYLIB_PATH on the build they need (ignored when run directly): the `openvino_*`
//! cases on the OpenVINO build tools/install-prereqs installs in the user's data folder, the
//! `cpu_build_*` case on the CPU build of the project's .venv, and one with neither
//! ORT_DYLIB_PATH nor a virtual environment, where the element finds the OpenVINO build itself.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gstnonlocal::engine::{
    installed_runtime, LocalBackend, LocalSettings, OpenVinoOptions, Provider, ProviderChoice,
    SharedEngine, ORT_VERSION,
};

/// The OpenVINO build of ONNX Runtime tools/install-prereqs installed.
fn openvino_build() -> PathBuf {
    installed_runtime().expect(
        "ONNX Runtime's OpenVINO build is not installed in ~/.local/share/nonlocalclassify: run tools/install-prereqs",
    )
}

/// The CPU build of the project's .venv (NONLOCAL_VENV, else .venv in the repository).
fn cpu_build() -> PathBuf {
    let venv = std::env::var_os("NONLOCAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| {
            python.path().join(format!(
                "site-packages/onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}"
            ))
        })
        .find(|lib| lib.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no onnxruntime {ORT_VERSION} in {}: run tools/install-prereqs",
                venv.display()
            )
        })
}

fn colour_frame(n: u64) -> Vec<u8> {
    // 16×8 RGB frames, mostly green, a little red that grows with the frame index.
    let mut v = Vec::with_capacity(16 * 8 * 3);
    for _ in 0..16 * 8 {
        v.extend_from_slice(&[(3 * n % 256) as u8, 200, 40]);
    }
    v
}

/// `file` run on `provider` (by nickname) over `frames` frames (the probe's frames for the probe models,
/// greenish ones otherwise).
fn scores_on(file: &str, provider: &str, frames: u64) -> Outcome {
    let frame: fn(u64) -> Vec<u8> = if file.starts_with("probe") {
        probe_rgb
    } else {
        colour_frame
    };
    run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model(file))),
            ("execution-provider", v(provider)),
        ],
        frames,
        frame,
    )
}

// ---------------------------------------------------------------------------------------------
// On the OpenVINO build.

#[test]
fn on_the_openvino_build() {
    let out = ignored_in_child("openvino_", false, Some(&openvino_build()));
    assert!(out.contains("5 passed"), "{out}");
}

#[test]
fn without_variables_the_element_finds_the_openvino_build() {
    openvino_build();
    ignored_in_child("search_without_variables", true, None);
}

#[test]
#[ignore = "run by without_variables_the_element_finds_the_openvino_build in a child process"]
fn search_without_variables() {
    // No ORT_DYLIB_PATH, no virtual environment, no libonnxruntime.so on the library path (a
    // machine the project's set-up prepared): the OpenVINO build tools/install-prereqs installed.
    let found = gstnonlocal::engine::runtime_info().expect("a runtime is found");
    assert_eq!(Some(found.path), installed_runtime());
    let path = PathBuf::from(model("colour.onnx"));
    let backend = LocalBackend::open(&path, &LocalSettings::default()).expect("opens");
    assert_eq!(backend.provider, Provider::OpenVino);
}

#[test]
#[ignore = "run by on_the_openvino_build in a child process"]
fn openvino_gives_the_cpu_providers_scores() {
    init();
    for file in ["probe.onnx", "colour.onnx", "qdq_colour.onnx"] {
        let cpu = scores_on(file, "cpu", 16);
        let openvino = scores_on(file, "openvino", 16);
        for out in [&cpu, &openvino] {
            assert!(out.errors.is_empty(), "{file}: {:?}", out.errors);
            assert!(out.results.len() >= 2, "{file}: {:?}", out.results);
        }
        assert_eq!(cpu.results.len(), openvino.results.len(), "{file}");
        for i in 0..cpu.results.len() {
            let (a, b) = (cpu.scores(i), openvino.scores(i));
            assert_eq!(a.len(), b.len(), "{file} clip {i}");
            for (label, x) in &a {
                let y = b[label];
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                    "{file} clip {i} {label}: cpu {x}, openvino {y}"
                );
            }
        }
    }
}

#[test]
#[ignore = "run by on_the_openvino_build in a child process"]
fn openvino_is_what_auto_takes() {
    init();
    let path = PathBuf::from(model("probe.onnx"));
    let backend = LocalBackend::open(&path, &LocalSettings::default()).expect("opens");
    assert_eq!(backend.provider, Provider::OpenVino);
    let reason = backend.fallback_reason.clone().unwrap_or_default();
    assert!(reason.contains("CUDA"), "{reason}");
    // A model OpenVINO refuses runs on the CPU provider, saying why.
    let path = PathBuf::from(model("hostile_openvino_refused.onnx"));
    let backend = LocalBackend::open(&path, &LocalSettings::default()).expect("opens");
    assert_eq!(backend.provider, Provider::Cpu);
    let reason = backend.fallback_reason.clone().unwrap_or_default();
    assert!(reason.contains("OpenVINO could not compile"), "{reason}");
    let out = scores_on("hostile_openvino_refused.onnx", "auto", 16);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 2);
}

#[test]
#[ignore = "run by on_the_openvino_build in a child process"]
fn openvino_options_reach_the_engine() {
    init();
    let cache = std::env::temp_dir().join(format!("nl-ov-cache-{}", std::process::id()));
    std::fs::create_dir_all(&cache).unwrap();
    let settings = LocalSettings {
        openvino: OpenVinoOptions {
            threads: 1,
            streams: 2,
            cache_dir: Some(cache.clone()),
        },
        ..LocalSettings::on(ProviderChoice::OpenVino)
    };
    let path = PathBuf::from(model("colour.onnx"));
    let engine = SharedEngine::local(&path, &settings).expect("opens");
    // Two streams, two lanes, each its own session.
    assert_eq!(engine.lanes(), 2);
    assert_eq!(engine.describe(), "openvino");
    // Other OpenVINO options: another engine.
    let other = SharedEngine::local(&path, &LocalSettings::on(ProviderChoice::OpenVino)).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&engine, &other));
    // The element's properties, through the same engine.
    let frame: fn(u64) -> Vec<u8> = colour_frame;
    let out = run_frames(
        &caps("RGB", 16, 8),
        &[
            ("model", v(model("colour.onnx"))),
            ("execution-provider", v("openvino")),
            ("openvino-threads", v(1u32)),
            ("openvino-streams", v(2u32)),
            ("openvino-cache-dir", v(cache.to_str().unwrap())),
        ],
        16,
        frame,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.results.len(), 2);
    let cached = std::fs::read_dir(&cache).map_or(0, |d| d.count());
    assert!(cached > 0, "OpenVINO wrote nothing in {}", cache.display());
    std::fs::remove_dir_all(&cache).ok();
}

#[test]
#[ignore = "run by on_the_openvino_build in a child process"]
fn openvino_refusing_a_model_is_one_element_error() {
    init();
    let out = scores_on("hostile_openvino_refused.onnx", "openvino", 16);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let e = &out.errors[0];
    assert!(
        e.starts_with("OpenVINO cannot compile model '") && e.contains("hostile_openvino_refused"),
        "{e}"
    );
    assert!(e.contains("execution-provider=cpu"), "{e}");
    assert!(out.results.is_empty());
}

#[test]
#[ignore = "run by on_the_openvino_build in a child process"]
fn openvino_with_an_int8_model_of_broken_scales_gives_one_element_error() {
    init();
    // OpenVINO refuses it when the session opens; auto falls back to the CPU provider, whose
    // run fails: one error either way, naming the model.
    for provider in ["openvino", "auto", "cpu"] {
        let out = scores_on("hostile_qdq_scales.onnx", provider, 24);
        assert_eq!(out.errors.len(), 1, "{provider}: {:?}", out.errors);
        assert!(
            out.errors[0].contains("hostile_qdq_scales.onnx"),
            "{provider}: {}",
            out.errors[0]
        );
        assert!(out.results.is_empty(), "{provider}");
    }
}

// ---------------------------------------------------------------------------------------------
// On the CPU build.

#[test]
fn on_the_cpu_build() {
    ignored_in_child("cpu_build_", false, Some(&cpu_build()));
}

#[test]
#[ignore = "run by on_the_cpu_build in a child process"]
fn cpu_build_error_says_what_to_install() {
    init();
    let e = start_error(&[
        ("model", v(model("colour.onnx"))),
        ("execution-provider", v("openvino")),
    ]);
    assert!(
        e.starts_with("execution-provider=openvino needs ONNX Runtime's OpenVINO build"),
        "{e}"
    );
    assert!(e.contains(&format!("(version {ORT_VERSION})")), "{e}");
    assert!(e.contains("tools/install-prereqs"), "{e}");
    assert!(e.contains("onnxruntime-openvino==1.24.1"), "{e}");
    assert_eq!(e.matches("OpenVINO build").count(), 1, "{e}");
    // auto runs on the CPU provider there, and says why not OpenVINO.
    let backend = LocalBackend::open(Path::new(&model("colour.onnx")), &LocalSettings::default())
        .expect("opens");
    assert_eq!(backend.provider, Provider::Cpu);
    let reason = backend.fallback_reason.clone().unwrap_or_default();
    assert!(reason.contains("OpenVINO"), "{reason}");
}
