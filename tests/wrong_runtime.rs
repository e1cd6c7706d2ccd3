//! A library on ORT_DYLIB_PATH that is an ONNX Runtime too old for the element, or not ONNX
//! Runtime at all, gives one element error naming the file, the version found and what to
//! install; the process does not abort.
//!
//! ONNX Runtime is loaded once per process, so each case runs this test binary again in a child
//! process (the ignored `child` test) with ORT_DYLIB_PATH pointing at a small library built here
//! with the C compiler: one exporting `OrtGetApiBase` that reports version 1.10.0, one exporting
//! nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const FAKE_ORT: &str = r#"
#include <stddef.h>
typedef struct {
    const void *(*GetApi)(unsigned version);
    const char *(*GetVersionString)(void);
} OrtApiBase;
static const void *get_api(unsigned version) { (void)version; return NULL; }
static const char *version_string(void) { return "1.10.0"; }
static const OrtApiBase base = { get_api, version_string };
const OrtApiBase *OrtGetApiBase(void) { return &base; }
"#;

const NOT_ORT: &str = "int not_onnx_runtime(void) { return 42; }\n";

/// Build `source` into a shared library named `name` in a fresh directory.
fn shared_library(name: &str, source: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nl-wrong-ort-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("lib.c");
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&c)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler '{cc}' (set CC): {e}"));
    assert!(status.success(), "{cc} failed to build {}", lib.display());
    lib
}

/// Run the `child` test with ORT_DYLIB_PATH=`lib`; returns the error text it printed.
fn error_with_runtime(lib: &Path) -> String {
    let stdout = ignored_in_child("child", true, Some(lib));
    stdout
        .split_once("ERROR<<")
        .and_then(|(_, rest)| rest.split_once(">>"))
        .map(|(e, _)| e.to_string())
        .unwrap_or_else(|| panic!("no error reported: {stdout}"))
}

#[test]
#[ignore = "run by the other tests of this file in a child process"]
fn child() {
    init();
    let e = start_error(&[("model", v(model("probe.onnx")))]);
    println!("ERROR<<{e}>>");
}

#[test]
fn too_old_onnx_runtime_names_the_version_found_and_wanted() {
    let lib = shared_library("libonnxruntime.so.1.10.0", FAKE_ORT);
    let e = error_with_runtime(&lib);
    assert!(e.contains("ONNX Runtime could not be loaded"), "{e}");
    assert!(e.contains(&lib.display().to_string()), "{e}");
    assert!(e.contains("'1.10.0'") && e.contains("1.23"), "{e}");
    assert!(e.contains("pip install onnxruntime==1.31.1"), "{e}");
    assert_eq!(e.matches("could not be loaded").count(), 1, "{e}");
    std::fs::remove_dir_all(lib.parent().unwrap()).ok();
}

#[test]
fn a_library_that_is_not_onnx_runtime_is_named() {
    let lib = shared_library("libonnxruntime.so", NOT_ORT);
    let e = error_with_runtime(&lib);
    assert!(e.contains("ONNX Runtime could not be loaded"), "{e}");
    assert!(e.contains("does not export `OrtGetApiBase`"), "{e}");
    assert!(e.contains(&lib.display().to_string()), "{e}");
    std::fs::remove_dir_all(lib.parent().unwrap()).ok();
}
