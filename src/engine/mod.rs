//! The inference engine: a batching front shared by every user of a model, over a backend that
//! runs the model.
//!
//! - [`batching`]: [`SharedEngine`], the front elements submit clips to; it forms batches and
//!   answers each clip with its scores, whatever the backend (`batching::lane`: what each lane's
//!   batching thread does).
//! - [`registry`]: one shared engine per model and backend settings in the process, opened by
//!   [`SharedEngine::local`] and [`SharedEngine::remote`].
//! - [`backend`]: the [`Backend`] trait between the front and what runs the model, and the
//!   model's description ([`ModelInfo`]).
//! - [`batch`]: clip data ([`Batch`], lent to backends as [`Items`]); [`fill`]: copying clips
//!   into a model input with helper threads; `sheet`: batches in formation, which submitters
//!   pack their clips into straight ([`Slot`]).
//! - [`local`]: the ONNX Runtime backend, in this process, on CUDA, OpenVINO (on the CPU) or ONNX
//!   Runtime's CPU provider.
//! - [`priority`]: the scheduling priority of the engine's threads (`NONLOCAL_ENGINE_NICE`).
//! - [`remote`]: the KServe v2 gRPC backend: Triton (or another KServe v2 server) runs the model.
//! - [`error`] holds [`EngineError`], what can go wrong.
//!
//! # Words
//!
//! - **Backend**: what runs the model behind the trait [`Backend`], ONNX Runtime in this process
//!   ([`LocalBackend`]) or KServe v2 servers ([`RemoteBackend`]); the front above it knows clips,
//!   shapes and batch sizes, never how a model runs.
//! - **Item**: one row of a model run's input, the clip of one crop (`shape[1..]` values of the
//!   model's input type); a request submits one or more items at once.
//! - **Batch**: the items of one model run, shaped `[n, ...]`. The front runs a sheet's items in
//!   chunks of the backend's run size ([`Backend::run_size`]), which a backend may pad (the local
//!   one repeats the last item). [`Batch`] is also the type of any buffer of packed items.
//! - **Sheet**: a batch in formation: one buffer that submitters pack their items into straight,
//!   and that a batching thread runs as it stands once it is full or `batch-timeout` has passed
//!   since the thread claimed it, and no slot in it is still being packed (`sheet`).
//! - **Slot**: a submitter's reserved room in a sheet ([`Slot`]): it packs its items into
//!   [`Slot::values`] and submits them; a slot dropped unsubmitted gives its room up.
//! - **Span**: the source pixels a frame's centre crop reads ([`crate::preprocess::CentreSpan`]),
//!   sent as uint8 RGB in place of the crop to a backend that resamples on its own device
//!   ([`SpanClips`], [`Backend::run_spans`]).
//! - **Lane**: one batch in flight. The front runs one batching thread per lane
//!   ([`Backend::lanes`]); each lane has its own resources in the backend (locally its sessions,
//!   staging inputs and CUDA stream; remotely one request at a time).
//! - **Lent buffer**: host memory a backend hands out for items to be packed into
//!   ([`Backend::clip_buffer`]): page-locked memory under CUDA, so that a batch lying in one lent
//!   buffer goes to the card in one DMA transfer. Sheets are lent buffers when the backend lends.
//! - **Warm-up**: running every batch size the front can form on every lane before the first
//!   clips ([`SharedEngine::warm_up`]), as often as the backend asks
//!   ([`Backend::warm_up_runs`]), so that the first clips do not wait for CUDA's kernel selection
//!   or graph capture; it also lays in the first sheets' buffers when the backend lends them.

/// `Add` (field by field) and `Sum` for a struct of counts and durations that add up, such as
/// [`RunTimes`] and [`EngineProfile`]: `summable!(RunTimes { fill, bind, compute })`. A field
/// left out of the list fails to compile, so a new field cannot be forgotten.
macro_rules! summable {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl std::ops::Add for $ty {
            type Output = $ty;
            fn add(self, other: $ty) -> $ty {
                $ty { $($field: self.$field + other.$field),+ }
            }
        }

        impl std::iter::Sum for $ty {
            fn sum<I: Iterator<Item = $ty>>(iter: I) -> $ty {
                iter.fold(<$ty>::default(), |a, b| a + b)
            }
        }
    };
}

pub mod backend;
pub mod batch;
pub mod batching;
pub mod error;
pub mod fill;
pub mod local;
mod priority;
mod registry;
pub mod remote;
mod sheet;

pub use backend::{Backend, ModelInfo, RunTimes, SpanClips};
pub use batch::{Batch, Clips, Items, ValuesMut};
pub use batching::{Batching, EngineProfile, Scores, SharedEngine, Slot};
pub use error::EngineError;
pub use local::{
    installed_dir, installed_runtime, runtime, runtime_info, LocalBackend, LocalSettings,
    OpenVinoOptions, Provider, ProviderChoice, RuntimeInfo, OPENVINO_ORT_VERSION, ORT_VERSION,
};
pub use remote::{RemoteBackend, RemoteSettings};
