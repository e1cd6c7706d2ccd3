//! Without ONNX Runtime the element still registers (gst-inspect works) and fails its state
//! change with a message saying what to install and which variable to set.

mod common;

use common::*;

#[test]
fn missing_runtime_says_what_to_install() {
    std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1");
    init();
    // Registered and inspectable without the runtime.
    let factory = gst::ElementFactory::find("nonlocalclassify").expect("factory");
    assert_eq!(factory.metadata("klass"), Some("Filter/Analyzer/Video"));
    let e = start_error(&[("model", v(model("probe.onnx")))]);
    assert!(e.contains("ONNX Runtime could not be loaded"), "{e}");
    assert!(e.contains("/nonexistent/libonnxruntime.so.1.31.1"), "{e}");
    assert!(
        e.contains("pip install onnxruntime==1.31.1") && e.contains("ORT_DYLIB_PATH"),
        "{e}"
    );
}
