// SPDX-License-Identifier: MPL-2.0
//! The `nonlocalclassify` element (see docs/design.md for its contract).

/**
 * SECTION:element-nonlocalclassify
 * @see_also: decodebin, videoconvert, objectdetectionoverlay
 *
 * Classifies clips of video into Kinetics-400 actions with a Non-local neural network or I3D,
 * run by ONNX Runtime on CUDA or the CPU. Video passes through unchanged. Each clip's result is
 * posted as a `nonlocalclassify` element message and attached to the next buffer pushed as a
 * `NonLocalClassifyMeta` custom meta (results ready only after the last buffer travel as
 * serialized custom events before EOS); at end of stream a `nonlocalclassify-summary` message
 * averages every clip. Elements using the same model share one engine that batches their clips.
 * The contract (properties, sampling, fields, model metadata) is docs/design.md.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 -m filesrc location=video.mp4 ! decodebin ! videoconvert ! nonlocalclassify model=i3d.onnx ! fakesink
 * ]| Classifies a file on the CPU (or CUDA when available) and prints the messages.
 * |[
 * gst-launch-1.0 -m v4l2src ! videoconvert ! nonlocalclassify model=i3d.onnx clip-stride=16 smoothing=4 ! videoconvert ! autovideosink
 * ]| A camera, a new clip every 16 frames, scores smoothed over 4 clips.
 * |[
 * gst-launch-1.0 -m rtspsrc location=rtsp://camera/stream ! decodebin ! videoconvert ! nonlocalclassify model=i3d.onnx execution-provider=cuda max-pending=2 ! fakesink
 * ]| A live stream on the GPU: clips beyond max-pending are dropped and counted, never stalling the source.
 *
 * Since: plugins-nonlocal-0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod imp;
mod worker;

glib::wrapper! {
    pub struct NonLocalClassify(ObjectSubclass<imp::NonLocalClassify>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Crops taken from each clip.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNonLocalClassifyCrops")]
pub enum Crops {
    #[default]
    #[enum_value(name = "Center: one centre crop", nick = "center")]
    Center = 0,
    #[enum_value(
        name = "Three: left, centre and right crops along the long side, scores averaged",
        nick = "three"
    )]
    Three = 1,
}

/// Where the sampled frames are resampled to the model's crop.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNonLocalClassifyResample")]
pub enum Resample {
    #[default]
    #[enum_value(
        name = "Element: each sampled frame is scaled on the streaming thread",
        nick = "element"
    )]
    Element = 0,
    #[enum_value(
        name = "Engine: the pixels the centre crop reads go to the engine, which resamples a whole batch on the model's device (crops=center, a uint8 model run in this process)",
        nick = "engine"
    )]
    Engine = 1,
}

/// Where inference runs.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNonLocalClassifyExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "Auto: CUDA when it can be created, else CPU", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "CUDA", nick = "cuda")]
    Cuda = 1,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 2,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        Crops::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Resample::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        #[cfg(feature = "analytics")]
        crate::analytics::AnalyticsMeta::static_type()
            .mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "nonlocalclassify",
        gst::Rank::NONE,
        NonLocalClassify::static_type(),
    )
}
