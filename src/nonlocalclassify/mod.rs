// SPDX-License-Identifier: MPL-2.0
//! The `nonlocalclassify` element (see docs/design.md for its contract).

/**
 * SECTION:element-nonlocalclassify
 * @see_also: decodebin, videoconvert, objectdetectionoverlay
 *
 * Classifies clips of video into Kinetics-400 actions with a Non-local neural network or I3D,
 * run by ONNX Runtime on CUDA or the CPU (ONNX Runtime's CPU provider or OpenVINO's). Video passes through unchanged. Each clip's result is
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
 * ]| A live stream on the GPU: clips beyond max-pending are dropped and counted, the oldest waiting first (leaky=oldest), so results stay fresh and the source never stalls.
 *
 * Since: plugins-nonlocal-0.1.0
 */
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

pub mod cuda_memory;
mod dump;
mod frames;
mod imp;
mod load;
mod objects;
mod queue;
pub mod settings;
mod worker;

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "nonlocalclassify",
        gst::DebugColorFlags::empty(),
        Some("Non-local network action classifier"),
    )
});

glib::wrapper! {
    pub struct NonLocalClassify(ObjectSubclass<imp::NonLocalClassify>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// A GLib enum of the element's properties: its GType name, and each value's nick and
/// description (shown by gst-inspect, and by `nonlocal-classify --help` for the program's
/// options of the same name); the first value is the default.
macro_rules! property_enum {
    ($(
        $(#[$doc:meta])*
        $name:ident = $gtype:literal {
            $first:ident = $first_nick:literal: $first_text:literal,
            $($variant:ident = $nick:literal: $text:literal,)*
        }
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Eq, PartialEq, Clone, Copy, Default, glib::Enum)]
        #[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
        #[repr(u32)]
        #[enum_type(name = $gtype)]
        pub enum $name {
            #[doc = $first_text]
            #[default]
            #[enum_value(name = $first_text, nick = $first_nick)]
            #[cfg_attr(feature = "cli", value(name = $first_nick))]
            $first,
            $(
                #[doc = $text]
                #[enum_value(name = $text, nick = $nick)]
                #[cfg_attr(feature = "cli", value(name = $nick))]
                $variant,
            )*
        }
    )*};
}

property_enum! {
    /// Crops taken from each clip.
    Crops = "GstNonLocalClassifyCrops" {
        Center = "center": "Center: one centre crop",
        Three = "three": "Three: left, centre and right crops along the long side, scores averaged",
    }

    /// Where the sampled frames are resampled to the model's crop.
    Resample = "GstNonLocalClassifyResample" {
        Element = "element": "Element: each sampled frame is scaled on the streaming thread",
        Engine = "engine": "Engine: the pixels the centre crop reads go to the engine, which resamples a whole batch on the model's device (crops=center, a uint8 model run in this process)",
    }

    /// What each clip shows: the whole frame, or each object an upstream detector boxed.
    Regions = "GstNonLocalClassifyRegions" {
        Frame = "frame": "Frame: the whole frame, one action per clip",
        Objects = "objects": "Objects: each object boxed upstream (GstAnalytics object detections), cropped and classified on its own",
    }

    /// Which clip a live stream drops when `max-pending` clips are pending.
    Leaky = "GstNonLocalClassifyLeaky" {
        Oldest = "oldest": "Oldest: the oldest clip waiting, so that results stay fresh (a clip being classified counts as pending)",
        Newest = "newest": "Newest: the clip just finished, so that the clips already waiting are classified",
    }

    /// Where inference runs.
    ExecutionProvider = "GstNonLocalClassifyExecutionProvider" {
        Auto = "auto": "Auto: CUDA when it can be created, else OpenVINO when the ONNX Runtime loaded has it, else the CPU provider",
        Cuda = "cuda": "CUDA",
        Cpu = "cpu": "CPU: ONNX Runtime's own CPU provider",
        OpenVino = "openvino": "OpenVINO: OpenVINO's provider on the CPU (needs ONNX Runtime's OpenVINO build)",
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(feature = "doc")]
    {
        Crops::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Resample::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Regions::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        Leaky::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
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
