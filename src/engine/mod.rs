//! The inference engine: a batching front shared by every user of a model, over a backend that
//! runs the model.
//!
//! - [`batching`]: [`SharedEngine`], the front elements submit clips to; it forms batches and
//!   answers each clip with its scores, whatever the backend.
//! - [`registry`]: one shared engine per model and backend settings in the process, opened by
//!   [`SharedEngine::local`] and [`SharedEngine::remote`].
//! - [`backend`]: the [`Backend`] trait between the front and what runs the model, and the
//!   model's description ([`ModelInfo`]).
//! - [`batch`]: clip data ([`Batch`], lent to backends as [`Items`]); [`fill`]: copying clips
//!   into a model input with helper threads; `sheet`: batches in formation, which submitters
//!   pack their clips into straight ([`Slot`]).
//! - [`local`]: the ONNX Runtime backend, in this process, on CUDA or CPU.
//! - [`priority`]: the scheduling priority of the engine's threads (`NONLOCAL_ENGINE_NICE`).
//! - [`remote`]: the KServe v2 gRPC backend: Triton (or another KServe v2 server) runs the model.
//! - [`error`] holds [`EngineError`], what can go wrong.

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
pub use local::{runtime, LocalBackend, Provider, ProviderChoice, ORT_VERSION};
pub use remote::{RemoteBackend, RemoteSettings};
