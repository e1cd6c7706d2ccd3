//! NULL→READY: the model opened on its engine (in this process or on inference servers), the
//! clip configuration resolved from its metadata and the settings, and its labels.

use std::path::PathBuf;
use std::sync::Arc;

use gst::subclass::prelude::*;

use super::imp::NonLocalClassify;
use super::settings::Settings;
use super::CAT;
use crate::config::ClipConfig;
use crate::engine::{LocalBackend, SharedEngine};
use crate::labels;

/// The opened model, from NULL→READY to READY→NULL.
pub(super) struct Loaded {
    pub(super) engine: Arc<SharedEngine>,
    pub(super) config: ClipConfig,
    pub(super) labels: Arc<Vec<String>>,
}

impl NonLocalClassify {
    /// NULL→READY: open the model and resolve the clip configuration.
    pub(super) fn load(&self, settings: &Settings) -> Result<Loaded, gst::ErrorMessage> {
        let remote = settings.server.remote(settings.engine.model.as_deref());
        if let Some(Err(reason)) = &remote {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ("{}", reason)
            ));
        }
        let Some(model) = settings.engine.model.clone().or_else(|| {
            remote
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|r| r.model.clone())
        }) else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No model set: set the 'model' property to the path of an .onnx file, or 'server' and 'server-model' to a model on a KServe v2 inference server")
            ));
        };
        let opened = match remote {
            None => SharedEngine::local(&PathBuf::from(&model), &settings.engine.local()),
            Some(Err(reason)) => Err(crate::engine::EngineError::Inference(reason)),
            // Blocks up to server-timeout (the state change, never the streaming thread).
            Some(Ok(remote)) => SharedEngine::remote(remote),
        };
        let engine = opened.map_err(|e| {
            use crate::engine::EngineError as E;
            let kind = match e {
                E::ModelUnreadable { .. } => gst::ResourceError::OpenRead,
                E::GpuOutOfMemory { .. } => gst::ResourceError::NoSpaceLeft,
                E::RuntimeMissing { .. }
                | E::CudaUnavailable { .. }
                | E::OpenVinoUnavailable { .. }
                | E::OpenVinoFailed { .. } => gst::ResourceError::Failed,
                E::Remote(_) => gst::ResourceError::OpenReadWrite,
                _ => gst::ResourceError::Settings,
            };
            gst::error_msg!(kind, ("{}", e))
        })?;
        let model = engine.name.clone();
        let config =
            ClipConfig::resolve(&engine.metadata, &engine.io, settings.sampling.overrides())
                .and_then(|c| {
                    c.with_clip_fps(settings.sampling.clip_fps.0, settings.sampling.clip_fps.1)
                })
                .map_err(|e| {
                    gst::error_msg!(gst::ResourceError::Settings, ("model '{}': {}", model, e))
                })?;
        engine.register(settings.engine.batching());
        let (labels, source) = labels::resolve(
            settings.output.labels.as_deref().map(std::path::Path::new),
            engine.metadata.labels.as_deref(),
            config.num_classes,
        )
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{}", e)))?;

        let local = engine.backend::<LocalBackend>();
        if let Some((local, reason)) =
            local.and_then(|l| l.fallback_reason.as_ref().map(|r| (l, r)))
        {
            // Nothing is wrong: auto means "the fastest provider there is". Asking for cuda or
            // openvino without it is an error.
            gst::info!(
                CAT,
                imp = self,
                "execution-provider=auto runs on {} ({})",
                local.provider.name(),
                reason
            );
        }
        match engine.thread_priority() {
            Ok(Some(nice)) => {
                gst::info!(CAT, imp = self, "Inference threads at niceness {}", nice)
            }
            Ok(None) => {}
            Err(reason) => gst::warning!(
                CAT,
                imp = self,
                "Inference threads keep the process's priority: {}",
                reason
            ),
        }
        if engine.metadata.random_weights() {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                (
                    "Model '{}' has random weights (model.weights=random): its labels are meaningless",
                    model
                )
            );
        }
        gst::info!(
            CAT,
            imp = self,
            "Model {} on {}: clips of {} frames every {} (next clip after {}, {}), {}² crops from short side {}, {:?} {:?}, {} classes, labels from {:?}",
            model,
            engine.describe(),
            config.clip_length,
            config.frame_stride,
            config.clip_stride,
            config
                .clip_fps
                .map_or("by frame count".to_string(), |r| format!("by time at {r} fps")),
            config.crop_size,
            config.scale_size,
            config.layout,
            config.input_type,
            config.num_classes,
            source
        );
        // Under CUDA, run every batch size once now rather than make the first clips wait.
        engine.warm_up(config.input_shape(1)).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Failed,
                ("model '{}' failed its first run: {}", model, e)
            )
        })?;
        if let Some(reason) = local.and_then(LocalBackend::unfused_reason) {
            gst::info!(
                CAT,
                imp = self,
                "cuDNN has no fused convolution for a layer of {}: running without fusion ({})",
                model,
                reason
            );
        }
        Ok(Loaded {
            engine,
            config,
            labels: Arc::new(labels),
        })
    }
}

/// The `model-info` structure: the clip settings resolved from the model and the properties.
pub(super) fn model_info(config: &ClipConfig) -> gst::Structure {
    let fps = config.clip_fps.map_or(gst::Fraction::new(0, 1), |r| {
        gst::Fraction::new(r.num as i32, r.den as i32)
    });
    gst::Structure::builder("nonlocalclassify-model-info")
        .field("clip-length", config.clip_length)
        .field("frame-stride", config.frame_stride)
        .field("clip-stride", config.clip_stride)
        .field("clip-fps", fps)
        .field("crop-size", config.crop_size)
        .field("scale-size", config.scale_size)
        .field("classes", config.num_classes as u64)
        .build()
}
