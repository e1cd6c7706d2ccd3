//! The remote engine: clips classified by KServe v2 gRPC inference servers (NVIDIA Triton,
//! Seldon MLServer, KServe) instead of ONNX Runtime in-process (docs/design.md, "Remote
//! inference").
//!
//! [`backend`] (the remote model behind the engine's `Backend` trait), [`settings`] (what the element's `server*` properties say), [`tensor`] (datatypes and raw
//! contents on the wire), [`client`] (one server's channel and calls), [`pool`] (spreading
//! batches over the usable servers, backing off from failed ones) and [`model`] (opening a served
//! model and running batches on it). The protocol is the vendored subset of Triton's
//! `grpc_service.proto` and `model_config.proto` in `proto/`.

pub mod backend;
pub mod client;
pub mod model;
pub mod pool;
pub mod settings;
pub mod tensor;

/// The KServe v2 / Triton protocol messages and client (generated from `proto/` by build.rs).
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("inference");
}

pub use backend::RemoteBackend;
pub use model::{RemoteError, RemoteModel};
pub use settings::{RemoteSettings, Secret};
