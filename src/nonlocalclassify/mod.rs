//! The `nonlocalclassify` element (see docs/design.md for its contract).

use gst::glib;
use gst::prelude::*;

mod imp;

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
    }
    gst::Element::register(
        Some(plugin),
        "nonlocalclassify",
        gst::Rank::NONE,
        NonLocalClassify::static_type(),
    )
}
