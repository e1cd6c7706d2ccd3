//! The model metadata the element reads (docs/design.md "Model metadata"): its keys and their
//! parsing into [`ModelMetadata`], every value checked.

use super::{ConfigError, OutputKind};
use crate::preprocess::Layout;
use crate::sampling::Rate;

/// The model metadata keys of the contract (docs/design.md, "Model metadata").
pub const METADATA_KEYS: [&str; 12] = [
    "clip.length",
    "clip.frame_stride",
    "clip.fps",
    "preprocess.scale_size",
    "preprocess.crop_size",
    "preprocess.mean",
    "preprocess.std",
    "preprocess.layout",
    "output.kind",
    "labels",
    "model.name",
    "model.weights",
];

/// The metadata_props the element understands; every field optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelMetadata {
    pub clip_length: Option<u32>,
    pub frame_stride: Option<u32>,
    /// The frame rate the model was trained at: clips are then sampled by time.
    pub clip_fps: Option<Rate>,
    pub scale_size: Option<u32>,
    pub crop_size: Option<u32>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub layout: Option<Layout>,
    pub output_kind: Option<OutputKind>,
    pub labels: Option<String>,
    pub name: Option<String>,
    pub weights: Option<String>,
}

fn parse_uint(key: &'static str, value: &str) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(ConfigError::BadMetadata {
            key,
            value: value.to_string(),
            expected: "a whole number of at least 1",
        }),
    }
}

fn parse_triple(key: &'static str, value: &str, positive: bool) -> Result<[f32; 3], ConfigError> {
    let bad = || ConfigError::BadMetadata {
        key,
        value: value.to_string(),
        expected: if positive {
            "three positive decimals \"r,g,b\""
        } else {
            "three decimals \"r,g,b\""
        },
    };
    let parts: Vec<f32> = value
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [r, g, b]: [f32; 3] = parts.try_into().map_err(|_| bad())?;
    let ok = |v: f32| v.is_finite() && (!positive || v > 0.0);
    if ok(r) && ok(g) && ok(b) {
        Ok([r, g, b])
    } else {
        Err(bad())
    }
}

impl ModelMetadata {
    /// Parse the metadata from a key lookup (the model's custom metadata map).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let uint = |key: &'static str| get(key).map(|v| parse_uint(key, &v)).transpose();
        let layout = get("preprocess.layout")
            .map(|v| match v.trim() {
                "NCTHW" => Ok(Layout::Ncthw),
                "NTHWC" => Ok(Layout::Nthwc),
                _ => Err(ConfigError::BadMetadata {
                    key: "preprocess.layout",
                    value: v,
                    expected: "NCTHW or NTHWC",
                }),
            })
            .transpose()?;
        let output_kind = get("output.kind")
            .map(|v| match v.trim() {
                "probabilities" => Ok(OutputKind::Probabilities),
                "logits" => Ok(OutputKind::Logits),
                _ => Err(ConfigError::BadMetadata {
                    key: "output.kind",
                    value: v,
                    expected: "probabilities or logits",
                }),
            })
            .transpose()?;
        Ok(Self {
            clip_length: uint("clip.length")?,
            frame_stride: uint("clip.frame_stride")?,
            clip_fps: get("clip.fps")
                .map(|v| {
                    Rate::parse(&v).ok_or(ConfigError::BadMetadata {
                        key: "clip.fps",
                        value: v,
                        expected: "a frame rate above 0 and at most 1000, as a decimal (25, 29.97) or a fraction (30000/1001)",
                    })
                })
                .transpose()?,
            scale_size: uint("preprocess.scale_size")?,
            crop_size: uint("preprocess.crop_size")?,
            mean: get("preprocess.mean")
                .map(|v| parse_triple("preprocess.mean", &v, false))
                .transpose()?,
            std: get("preprocess.std")
                .map(|v| parse_triple("preprocess.std", &v, true))
                .transpose()?,
            layout,
            output_kind,
            labels: get("labels"),
            name: get("model.name"),
            weights: get("model.weights"),
        })
    }

    /// True when the model says its weights are untrained (labels then mean nothing).
    pub fn random_weights(&self) -> bool {
        self.weights.as_deref().map(str::trim) == Some("random")
    }
}
