//! What every pipeline's classifier is set to, and the model opened once before any video: its
//! errors come first, and the clip settings the element resolved from it give each video's
//! clip-stride.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use gst::prelude::*;
use gstnonlocal::nonlocalclassify::{Crops, ExecutionProvider, Regions};

use crate::args::Args;
use crate::clips::ClipGeometry;
use crate::common::find_model;
use crate::pipeline::{describe_error, describe_warning, Stopper};
use crate::remote::Remote;

/// The element properties the command line sets.
struct Properties {
    model: PathBuf,
    labels: Option<PathBuf>,
    provider: ExecutionProvider,
    device_id: i32,
    top_k: u32,
    crops: Crops,
    clip_fps: Option<gst::Fraction>,
    hysteresis: u32,
    margin: f64,
    regions: Regions,
    object_types: Option<String>,
    track_timeout: u32,
    max_objects: u32,
    remote: Option<Remote>,
}

impl Properties {
    fn apply(&self, element: &gst::Element) {
        if let Some(remote) = &self.remote {
            remote.apply(element);
        } else {
            element.set_property("model", self.model.to_string_lossy().as_ref());
        }
        if let Some(labels) = &self.labels {
            element.set_property("labels", labels.to_string_lossy().as_ref());
        }
        // Enums as typed values: `open` registers the element in this process, which replaces
        // the `nonlocalclassify` of a plugin on GST_PLUGIN_PATH before its library is loaded, so
        // the element's enum types are this program's.
        element.set_property("execution-provider", self.provider);
        element.set_property("device-id", self.device_id);
        element.set_property("top-k", self.top_k);
        element.set_property("crops", self.crops);
        if let Some(fps) = self.clip_fps {
            element.set_property("clip-fps", fps);
        }
        element.set_property("segment-hysteresis", self.hysteresis);
        element.set_property("segment-margin", self.margin);
        element.set_property("regions", self.regions);
        if let Some(types) = &self.object_types {
            element.set_property("object-types", types);
        }
        element.set_property("track-timeout", self.track_timeout);
        element.set_property("max-objects", self.max_objects);
    }
}

/// What every pipeline's classifier is set to, and the clips it cuts.
pub struct Settings {
    properties: Properties,
    /// `--clips`: clips per video, 0 for the element's consecutive clips.
    pub clips: u32,
    /// The clips as the element resolves them from the model.
    pub geometry: ClipGeometry,
    /// The rate the element samples at (its model-info), `None` by frame count.
    pub sampling_rate: Option<gst::Fraction>,
    /// Objects mode: a result per object.
    pub objects: bool,
}

impl Settings {
    /// Set `element`'s properties; its clip-stride is set per video.
    pub fn apply(&self, element: &gst::Element) {
        self.properties.apply(element);
    }
}

/// The settings, with the model open.
pub struct Opened {
    pub settings: Settings,
    /// Holds the classifier that keeps the model open.
    pub keeper: Stopper,
    /// What the element warned about when it opened the model.
    pub warnings: Vec<String>,
}

/// Find the model, register the element and open the model in one kept in READY: its errors
/// (missing file, no CUDA, bad labels) are reported before any video, and every pipeline shares
/// its ONNX Runtime session.
pub fn open(args: &Args) -> anyhow::Result<Opened> {
    let remote = Remote::from_args(args)?;
    let model = match &remote {
        Some(r) => args
            .model
            .clone()
            .unwrap_or_else(|| PathBuf::from(&r.model)),
        None => find_model(args.model.clone())?,
    };
    gst::init().context("GStreamer cannot be initialised")?;
    gstnonlocal::plugin_register_static().context("the nonlocal plugin cannot be registered")?;
    let properties = Properties {
        model,
        labels: args.labels.clone(),
        provider: args.provider(),
        device_id: args.device_id,
        top_k: args.top_k,
        crops: args.crops,
        clip_fps: args.clip_fps,
        hysteresis: args.hysteresis,
        margin: args.margin,
        regions: args.regions(),
        object_types: args.object_types.clone(),
        track_timeout: args.track_timeout,
        max_objects: args.max_objects,
        remote,
    };

    let keeper = Stopper(gst::Pipeline::new());
    let element = gst::ElementFactory::make("nonlocalclassify").build()?;
    properties.apply(&element);
    keeper.0.add(&element)?;
    let bus = keeper
        .0
        .bus()
        .ok_or_else(|| anyhow!("pipeline without bus"))?;
    let started = keeper.0.set_state(gst::State::Ready);
    let mut warnings = Vec::new();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => bail!("{}", describe_error(e)),
            gst::MessageView::Warning(w) => warnings.push(describe_warning(w)),
            _ => {}
        }
    }
    if started.is_err() {
        bail!(
            "the classifier cannot start with {}",
            properties.model.display()
        );
    }
    // The clip settings the element resolved from the model and the properties.
    let info = element
        .property::<Option<gst::Structure>>("model-info")
        .ok_or_else(|| anyhow!("the classifier did not report its clip settings"))?;
    let field = |name: &str| {
        info.get::<u32>(name)
            .with_context(|| format!("the classifier's model-info has no '{name}'"))
    };
    let geometry = ClipGeometry::new(
        field("clip-length")?,
        field("frame-stride")?,
        field("clip-stride")?,
    );
    let sampling_rate = info
        .get::<gst::Fraction>("clip-fps")
        .ok()
        .filter(|f| f.numer() > 0);
    let settings = Settings {
        properties,
        clips: args.clips(),
        objects: args.regions() == Regions::Objects,
        geometry,
        sampling_rate,
    };
    Ok(Opened {
        settings,
        keeper,
        warnings,
    })
}
