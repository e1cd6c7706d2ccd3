//! nonlocalclassify: a GStreamer element classifying video into Kinetics-400 actions with
//! Non-local neural networks, run by ONNX Runtime on CUDA or CPU.
//!
//! The GStreamer glue lives in [`nonlocalclassify`]; everything else is plain Rust with unit tests:
//! [`sampling`] (which frames form clips), [`preprocess`] (conversion, scaling, cropping,
//! normalisation, tensor layout), [`config`] (model metadata and properties), [`engine`] (batching,
//! ONNX Runtime in-process or KServe v2 inference servers), [`labels`], [`results`] (scores, smoothing, summary, message fields),
//! [`segments`] (clip results merged into action segments) and [`meta`] (the
//! `NonLocalClassifyMeta` buffer meta); with the `analytics` feature, [`analytics`]
//! (GstAnalytics relation metadata).
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

#[cfg(feature = "analytics")]
pub mod analytics;
pub mod config;
pub mod engine;
pub mod labels;
pub mod meta;
pub mod nonlocalclassify;
pub mod objects;
pub mod preprocess;
pub mod results;
pub mod sampling;
pub mod segments;

pub use meta::NonLocalClassifyMeta;
pub use results::ClipResult;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::NonLocalClassifyMeta::register();
    nonlocalclassify::register(plugin)
}

gst::plugin_define!(
    nonlocal,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // No public repository yet: GStreamer's own default origin string.
    "Unknown package origin",
    env!("BUILD_REL_DATE")
);
