//! Model metadata (DESIGN.md "Model metadata") and how it combines with the graph's input shape
//! and the element's properties into the settings of one stream's clips.
//!
//! Precedence: fixed dimensions of the graph win over metadata; a property that conflicts with a
//! fixed dimension is an error naming both values; otherwise a property (non-zero) wins over
//! metadata, which wins over the defaults.

use crate::preprocess::{Layout, Normalization};

/// Element type of the model's clip input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputType {
    F32,
    F16,
    U8,
}

/// What the model's output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Probabilities,
    Logits,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("model metadata '{key}' = '{value}' is not valid: {expected}")]
    BadMetadata {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "model input '{name}' has rank {rank} (shape {shape}); nonlocalclassify needs a 5-D clip input, N×C×T×H×W (NCTHW) or N×T×H×W×C (NTHWC)"
    )]
    InputRank {
        name: String,
        rank: usize,
        shape: String,
    },
    #[error("model input '{name}' has {channels} channels (shape {shape}, layout {layout}); nonlocalclassify feeds RGB, 3 channels")]
    Channels {
        name: String,
        channels: i64,
        shape: String,
        layout: &'static str,
    },
    #[error("model input '{name}' has element type {found}; nonlocalclassify feeds float32, float16 or uint8")]
    InputType { name: String, found: String },
    #[error("model output '{name}' has shape {shape}; nonlocalclassify needs scores shaped [N, classes] with a fixed number of classes")]
    OutputShape { name: String, shape: String },
    #[error("model output '{name}' has {classes} class(es); a classifier needs at least 2")]
    TooFewClasses { name: String, classes: i64 },
    #[error(
        "model input '{name}' is {height}×{width} pixels; nonlocalclassify feeds square crops"
    )]
    NotSquare {
        name: String,
        height: i64,
        width: i64,
    },
    #[error("{property}={value} conflicts with the model, whose input '{name}' fixes it to {fixed}; unset the property or use a model exported for {value}")]
    Conflict {
        property: &'static str,
        value: u32,
        name: String,
        fixed: i64,
    },
    #[error("the clip length is not known: the model's time dimension is dynamic and it has no 'clip.length' metadata; set the clip-length property")]
    UnknownClipLength,
    #[error("preprocess.scale_size ({scale}) is smaller than the crop size ({crop}); the crop would not fit")]
    ScaleSmallerThanCrop { scale: u32, crop: u32 },
    #[error("{what} must be at least 1")]
    Zero { what: &'static str },
}

/// The metadata_props the element understands; every field optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelMetadata {
    pub clip_length: Option<u32>,
    pub frame_stride: Option<u32>,
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

/// The model's clip input and score output as the graph declares them (-1 = dynamic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelIo {
    pub input_name: String,
    pub input_shape: Vec<i64>,
    /// Element type name as ONNX Runtime reports it, when it is not one we feed.
    pub input_type: Result<InputType, String>,
    pub output_name: String,
    pub output_shape: Vec<i64>,
}

/// Property values that can override the model (0 = take it from the model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub clip_length: u32,
    pub frame_stride: u32,
    pub clip_stride: u32,
}

/// Everything the element needs to sample, preprocess and run clips for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub clip_length: u32,
    pub frame_stride: u32,
    pub clip_stride: u32,
    pub scale_size: u32,
    pub crop_size: u32,
    pub norm: Normalization,
    pub layout: Layout,
    pub input_type: InputType,
    pub output_kind: OutputKind,
    /// Batch size fixed by the graph, if any.
    pub fixed_batch: Option<usize>,
    pub num_classes: usize,
}

fn shape_str(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(","))
}

fn fixed(d: i64) -> Option<i64> {
    (d > 0).then_some(d)
}

impl ClipConfig {
    pub fn resolve(
        meta: &ModelMetadata,
        io: &ModelIo,
        props: Overrides,
    ) -> Result<Self, ConfigError> {
        let name = &io.input_name;
        let shape = &io.input_shape;
        if shape.len() != 5 {
            return Err(ConfigError::InputRank {
                name: name.clone(),
                rank: shape.len(),
                shape: shape_str(shape),
            });
        }
        let layout = meta.layout.unwrap_or(Layout::Ncthw);
        let (c, t, h, w) = match layout {
            Layout::Ncthw => (shape[1], shape[2], shape[3], shape[4]),
            Layout::Nthwc => (shape[4], shape[1], shape[2], shape[3]),
        };
        if fixed(c).is_some_and(|c| c != 3) {
            return Err(ConfigError::Channels {
                name: name.clone(),
                channels: c,
                shape: shape_str(shape),
                layout: match layout {
                    Layout::Ncthw => "NCTHW",
                    Layout::Nthwc => "NTHWC",
                },
            });
        }
        let input_type = io
            .input_type
            .clone()
            .map_err(|found| ConfigError::InputType {
                name: name.clone(),
                found,
            })?;
        let num_classes = match io.output_shape.as_slice() {
            [_, k] if *k > 0 => *k,
            _ => {
                return Err(ConfigError::OutputShape {
                    name: io.output_name.clone(),
                    shape: shape_str(&io.output_shape),
                })
            }
        };
        if num_classes < 2 {
            return Err(ConfigError::TooFewClasses {
                name: io.output_name.clone(),
                classes: num_classes,
            });
        }

        let clip_length = match (fixed(t), props.clip_length) {
            (Some(t), p) if p != 0 && i64::from(p) != t => {
                return Err(ConfigError::Conflict {
                    property: "clip-length",
                    value: p,
                    name: name.clone(),
                    fixed: t,
                })
            }
            (Some(t), _) => t as u32,
            (None, 0) => meta.clip_length.ok_or(ConfigError::UnknownClipLength)?,
            (None, p) => p,
        };
        let frame_stride = match props.frame_stride {
            0 => meta.frame_stride.unwrap_or(1),
            p => p,
        };
        let clip_stride = match props.clip_stride {
            0 => clip_length * frame_stride,
            p => p,
        };

        let crop_size = match (fixed(h), fixed(w)) {
            (Some(h), Some(w)) if h != w => {
                return Err(ConfigError::NotSquare {
                    name: name.clone(),
                    height: h,
                    width: w,
                })
            }
            (Some(h), _) | (None, Some(h)) => h as u32,
            (None, None) => meta.crop_size.unwrap_or(224),
        };
        let scale_size = meta
            .scale_size
            .unwrap_or_else(|| (crop_size * 8).div_ceil(7));
        if scale_size < crop_size {
            return Err(ConfigError::ScaleSmallerThanCrop {
                scale: scale_size,
                crop: crop_size,
            });
        }
        Ok(Self {
            clip_length,
            frame_stride,
            clip_stride,
            scale_size,
            crop_size,
            norm: Normalization {
                mean: meta.mean.unwrap_or([0.0; 3]),
                std: meta.std.unwrap_or([1.0; 3]),
            },
            layout,
            input_type,
            output_kind: meta.output_kind.unwrap_or(OutputKind::Probabilities),
            fixed_batch: fixed(shape[0]).map(|b| b as usize),
            num_classes: num_classes as usize,
        })
    }

    /// Elements of one clip tensor (one batch item, one crop).
    pub fn clip_elements(&self) -> usize {
        3 * self.clip_length as usize * (self.crop_size as usize).pow(2)
    }

    /// The input shape of a batch of `n` clips.
    pub fn input_shape(&self, n: usize) -> [i64; 5] {
        let (t, s) = (i64::from(self.clip_length), i64::from(self.crop_size));
        match self.layout {
            Layout::Ncthw => [n as i64, 3, t, s, s],
            Layout::Nthwc => [n as i64, t, s, s, 3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn meta(pairs: &[(&str, &str)]) -> Result<ModelMetadata, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ModelMetadata::parse(|k| map.get(k).cloned())
    }

    fn io(input: &[i64], output: &[i64]) -> ModelIo {
        ModelIo {
            input_name: "video".into(),
            input_shape: input.to_vec(),
            input_type: Ok(InputType::F32),
            output_name: "scores".into(),
            output_shape: output.to_vec(),
        }
    }

    #[test]
    fn parses_the_full_contract() {
        let m = meta(&[
            ("clip.length", "8"),
            ("clip.frame_stride", "8"),
            ("preprocess.scale_size", "256"),
            ("preprocess.crop_size", "224"),
            ("preprocess.mean", "114.75, 114.75,114.75"),
            ("preprocess.std", "57.375,57.375,57.375"),
            ("preprocess.layout", "NTHWC"),
            ("output.kind", "logits"),
            ("labels", "a\nb"),
            ("model.name", "c2d-r50-nl"),
            ("model.weights", "random"),
        ])
        .unwrap();
        assert_eq!(m.clip_length, Some(8));
        assert_eq!(m.frame_stride, Some(8));
        assert_eq!(m.scale_size, Some(256));
        assert_eq!(m.mean, Some([114.75; 3]));
        assert_eq!(m.std, Some([57.375; 3]));
        assert_eq!(m.layout, Some(Layout::Nthwc));
        assert_eq!(m.output_kind, Some(OutputKind::Logits));
        assert_eq!(m.labels.as_deref(), Some("a\nb"));
        assert!(m.random_weights());
    }

    #[test]
    fn malformed_numbers_name_key_and_value() {
        let err = meta(&[("clip.length", "eight")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model metadata 'clip.length' = 'eight' is not valid: a whole number of at least 1"
        );
        assert!(meta(&[("preprocess.mean", "1,2")]).is_err());
        assert!(meta(&[("preprocess.std", "1,0,2")]).is_err());
        assert!(meta(&[("preprocess.mean", "1,nan,2")]).is_err());
        assert!(meta(&[("preprocess.layout", "NHWC")]).is_err());
        assert!(meta(&[("output.kind", "scores")]).is_err());
        assert!(meta(&[("clip.frame_stride", "0")]).is_err());
    }

    #[test]
    fn graph_dims_win_and_properties_override_metadata() {
        let m = meta(&[
            ("clip.length", "16"),
            ("clip.frame_stride", "2"),
            ("preprocess.crop_size", "112"),
        ])
        .unwrap();
        // Fixed T = 8 and 64×64 in the graph win over clip.length 16 and crop 112.
        let c = ClipConfig::resolve(&m, &io(&[-1, 3, 8, 64, 64], &[-1, 5]), Overrides::default())
            .unwrap();
        assert_eq!(
            (c.clip_length, c.frame_stride, c.clip_stride, c.crop_size),
            (8, 2, 16, 64)
        );
        assert_eq!(c.scale_size, 74); // ceil(64 * 8 / 7)
        assert_eq!(c.fixed_batch, None);
        assert_eq!(c.num_classes, 5);
        // Dynamic T: property beats metadata; clip-stride defaults to length × stride.
        let c = ClipConfig::resolve(
            &m,
            &io(&[1, 3, -1, 64, 64], &[1, 5]),
            Overrides {
                clip_length: 4,
                frame_stride: 3,
                clip_stride: 0,
            },
        )
        .unwrap();
        assert_eq!((c.clip_length, c.frame_stride, c.clip_stride), (4, 3, 12));
        assert_eq!(c.fixed_batch, Some(1));
        assert_eq!(c.input_shape(2), [2, 3, 4, 64, 64]);
        assert_eq!(c.clip_elements(), 3 * 4 * 64 * 64);
    }

    #[test]
    fn conflicting_property_names_both_values() {
        let err = ClipConfig::resolve(
            &ModelMetadata::default(),
            &io(&[-1, 3, 8, 64, 64], &[-1, 5]),
            Overrides {
                clip_length: 16,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "clip-length=16 conflicts with the model, whose input 'video' fixes it to 8; unset the property or use a model exported for 16"
        );
    }

    #[test]
    fn shape_errors() {
        let none = ModelMetadata::default();
        let d = Overrides::default();
        let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8], &[-1, 5]), d).unwrap_err();
        assert!(e.to_string().contains("rank 4"), "{e}");
        let e = ClipConfig::resolve(&none, &io(&[-1, 4, 8, 8, 8], &[-1, 5]), d).unwrap_err();
        assert!(e.to_string().contains("4 channels"), "{e}");
        let nthwc = meta(&[("preprocess.layout", "NTHWC")]).unwrap();
        let e = ClipConfig::resolve(&nthwc, &io(&[-1, 8, 8, 8, 1], &[-1, 5]), d).unwrap_err();
        assert!(e.to_string().contains("1 channels"), "{e}");
        let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8, 8], &[-1, 1]), d).unwrap_err();
        assert!(e.to_string().contains("1 class"), "{e}");
        let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8, 8], &[-1, -1]), d).unwrap_err();
        assert!(matches!(e, ConfigError::OutputShape { .. }));
        let e = ClipConfig::resolve(&none, &io(&[-1, 3, -1, 8, 8], &[-1, 5]), d).unwrap_err();
        assert_eq!(e, ConfigError::UnknownClipLength);
        let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8, 6], &[-1, 5]), d).unwrap_err();
        assert!(matches!(e, ConfigError::NotSquare { .. }));
        let small = meta(&[("preprocess.scale_size", "32")]).unwrap();
        let e = ClipConfig::resolve(&small, &io(&[-1, 3, 8, 64, 64], &[-1, 5]), d).unwrap_err();
        assert!(matches!(e, ConfigError::ScaleSmallerThanCrop { .. }));
        let mut bad_type = io(&[-1, 3, 8, 8, 8], &[-1, 5]);
        bad_type.input_type = Err("Int64".into());
        let e = ClipConfig::resolve(&none, &bad_type, d).unwrap_err();
        assert!(e.to_string().contains("Int64"), "{e}");
    }
}
