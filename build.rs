fn main() {
    gst_plugin_version_helper::info();
    kserve_protocol();
}

/// Rust code of the vendored KServe v2 / Triton protocol subset (proto/), compiled by protox
/// (a protobuf compiler in Rust: no system protoc to install) into `$OUT_DIR/inference.rs`.
fn kserve_protocol() {
    println!("cargo:rerun-if-changed=proto");
    let files = match protox::compile(["grpc_service.proto"], ["proto"]) {
        Ok(files) => files,
        Err(e) => panic!("proto/grpc_service.proto does not compile: {e}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_server(false)
        .bytes(".")
        .compile_fds(files)
    {
        panic!("generating the KServe v2 client failed: {e}");
    }
}
