//! Model metadata (docs/design.md "Model metadata") and how it combines with the graph's input shape
//! and the element's properties into the settings of one stream's clips.
//!
//! Precedence: fixed dimensions of the graph win over metadata; a property that conflicts with a
//! fixed dimension is an error naming both values; otherwise a property (non-zero) wins over
//! metadata, which wins over the defaults.

use crate::preprocess::{Layout, Normalization};
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

/// Element type of the model's clip input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputType {
    F32,
    F16,
    U8,
}

impl InputType {
    /// Bytes of one value.
    pub fn size(self) -> usize {
        match self {
            InputType::F32 => 4,
            InputType::F16 => 2,
            InputType::U8 => 1,
        }
    }
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
    #[error("clip-fps={num}/{den} is not a sampling rate: give frames per second above 0 and at most 1000 (e.g. 25 or 30000/1001), 0 for the model's clip.fps, or -1 to count decoded frames")]
    BadClipFps { num: i32, den: i32 },
    #[error("{what} must be at least 1")]
    Zero { what: &'static str },
    #[error("{what} is {value}, more than nonlocalclassify handles ({limit}); {hint}")]
    TooLarge {
        what: &'static str,
        value: u128,
        limit: u128,
        hint: &'static str,
    },
}

/// Largest crop or short-side scale size (pixels) the element accepts.
pub const MAX_SIDE: u32 = 8192;
/// Most values of one clip tensor (one crop): 2^28, 1 GiB as float32. I3D 32×2 at a 256 crop
/// needs 6.3 million.
pub const MAX_CLIP_VALUES: u128 = 1 << 28;
/// Most values one model run of a graph with a fixed batch size takes (the engine pads every run
/// to that batch): 2^30, 4 GiB as float32.
pub const MAX_RUN_VALUES: u128 = 1 << 30;

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
    /// Sampling by time at this rate (the model's `clip.fps`); `None`: by frame count.
    pub clip_fps: Option<Rate>,
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
            [_, k] if *k >= 0 => *k,
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
            (Some(t), _) => u32::try_from(t).map_err(|_| ConfigError::TooLarge {
                what: "the model's clip length (time dimension)",
                value: t as u128,
                limit: u128::from(u32::MAX),
                hint: "export the model with a smaller fixed T",
            })?,
            (None, 0) => meta.clip_length.ok_or(ConfigError::UnknownClipLength)?,
            (None, p) => p,
        };
        let frame_stride = match props.frame_stride {
            0 => meta.frame_stride.unwrap_or(1),
            p => p,
        };
        let clip_stride = match props.clip_stride {
            0 => clip_length
                .checked_mul(frame_stride)
                .ok_or(ConfigError::TooLarge {
                    what: "clip-length × frame-stride (the default clip-stride)",
                    value: u128::from(clip_length) * u128::from(frame_stride),
                    limit: u128::from(u32::MAX),
                    hint: "set clip-stride, or a smaller clip-length or frame-stride",
                })?,
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
            (Some(h), _) | (None, Some(h)) => h.min(i64::from(u32::MAX)) as u32,
            (None, None) => meta.crop_size.unwrap_or(224),
        };
        let side = |what, value: u32| {
            if value > MAX_SIDE {
                Err(ConfigError::TooLarge {
                    what,
                    value: value.into(),
                    limit: MAX_SIDE.into(),
                    hint: "export the model for a smaller input or fix its preprocess metadata",
                })
            } else {
                Ok(value)
            }
        };
        let crop_size = side("the crop size", crop_size)?;
        let scale_size = side(
            "preprocess.scale_size",
            meta.scale_size
                .unwrap_or_else(|| (crop_size * 8).div_ceil(7)),
        )?;
        let clip_values = 3 * u128::from(clip_length) * u128::from(crop_size).pow(2);
        if clip_values > MAX_CLIP_VALUES {
            return Err(ConfigError::TooLarge {
                what: "one clip tensor (3 × clip length × crop size²)",
                value: clip_values,
                limit: MAX_CLIP_VALUES,
                hint: "use a smaller clip-length or a model with a smaller crop",
            });
        }
        let fixed_batch = fixed(shape[0]);
        if let Some(b) = fixed_batch {
            let run_values = clip_values * b as u128;
            if run_values > MAX_RUN_VALUES {
                return Err(ConfigError::TooLarge {
                    what: "one model run (the graph's fixed batch × clip tensor)",
                    value: run_values,
                    limit: MAX_RUN_VALUES,
                    hint: "export the model with a dynamic or smaller batch dimension",
                });
            }
        }
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
            clip_fps: meta.clip_fps,
            scale_size,
            crop_size,
            norm: Normalization {
                mean: meta.mean.unwrap_or([0.0; 3]),
                std: meta.std.unwrap_or([1.0; 3]),
            },
            layout,
            input_type,
            output_kind: meta.output_kind.unwrap_or(OutputKind::Probabilities),
            fixed_batch: fixed_batch.map(|b| b as usize),
            num_classes: num_classes as usize,
        })
    }

    /// Apply the element's `clip-fps` (a fraction; 0 = the model's `clip.fps`, negative = sample
    /// by frame count even when the model declares a rate).
    pub fn with_clip_fps(mut self, num: i32, den: i32) -> Result<Self, ConfigError> {
        if num < 0 {
            self.clip_fps = None;
        } else if num > 0 {
            let rate = u32::try_from(den)
                .ok()
                .and_then(|den| Rate::new(num as u32, den))
                .filter(Rate::within_limit)
                .ok_or(ConfigError::BadClipFps { num, den })?;
            self.clip_fps = Some(rate);
        }
        Ok(self)
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
    fn clip_fps_from_metadata_and_property() {
        let io = io(&[-1, 3, 8, 64, 64], &[-1, 5]);
        let m = meta(&[("clip.fps", "25")]).unwrap();
        let c = ClipConfig::resolve(&m, &io, Overrides::default()).unwrap();
        assert_eq!(c.clip_fps, Rate::new(25, 1));
        assert_eq!(
            c.clone().with_clip_fps(0, 1).unwrap().clip_fps,
            Rate::new(25, 1)
        );
        assert_eq!(c.clone().with_clip_fps(-1, 1).unwrap().clip_fps, None);
        assert_eq!(
            c.clone().with_clip_fps(30000, 1001).unwrap().clip_fps,
            Rate::new(30000, 1001)
        );
        let e = c.clone().with_clip_fps(2000, 1).unwrap_err();
        assert!(e.to_string().starts_with("clip-fps=2000/1 "), "{e}");
        let none = ClipConfig::resolve(&ModelMetadata::default(), &io, Overrides::default());
        assert_eq!(none.unwrap().clip_fps, None);
        let e = meta(&[("clip.fps", "fast")]).unwrap_err();
        assert!(e.to_string().contains("'clip.fps' = 'fast'"), "{e}");
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

    // -----------------------------------------------------------------------------------------
    // Properties: whatever a model file's metadata says, parsing never panics, a rejected value
    // is named with its key, and every value the exporter writes comes back exactly.

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const UINT_KEYS: [&str; 4] = [
            "clip.length",
            "clip.frame_stride",
            "preprocess.scale_size",
            "preprocess.crop_size",
        ];
        const ALL_KEYS: [&str; 12] = METADATA_KEYS;

        /// Any text, and text made of the characters numbers are written with (so near-misses
        /// like "-3", "1,2", "1e99,0,2", " 8 " and "0x10" come up often).
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[-+0-9., eEinfatyNCTHWlogits]{0,24}",
                Just(String::new()),
                Just("-3".to_string()),
                Just("1,2".to_string()),
                Just("1,0,2".to_string()),
                Just("4294967296".to_string()),
            ]
        }

        fn field_of(m: &ModelMetadata, key: &str) -> String {
            match key {
                "clip.length" => format!("{:?}", m.clip_length),
                "clip.frame_stride" => format!("{:?}", m.frame_stride),
                "clip.fps" => format!("{:?}", m.clip_fps),
                "preprocess.scale_size" => format!("{:?}", m.scale_size),
                "preprocess.crop_size" => format!("{:?}", m.crop_size),
                "preprocess.mean" => format!("{:?}", m.mean),
                "preprocess.std" => format!("{:?}", m.std),
                "preprocess.layout" => format!("{:?}", m.layout),
                "output.kind" => format!("{:?}", m.output_kind),
                "labels" => format!("{:?}", m.labels),
                "model.name" => format!("{:?}", m.name),
                _ => format!("{:?}", m.weights),
            }
        }

        /// The value `parse` must give for one key, decided independently of the parser.
        fn expected(key: &str, v: &str) -> Option<String> {
            let uint = |v: &str| v.trim().parse::<u32>().ok().filter(|&n| n > 0);
            let triple = |v: &str, positive: bool| -> Option<[f32; 3]> {
                let parts: Vec<f32> = v
                    .split(',')
                    .map(|p| p.trim().parse::<f32>().ok())
                    .collect::<Option<_>>()?;
                let t: [f32; 3] = parts.try_into().ok()?;
                t.iter()
                    .all(|x| x.is_finite() && (!positive || *x > 0.0))
                    .then_some(t)
            };
            Some(match key {
                k if UINT_KEYS.contains(&k) => format!("{:?}", Some(uint(v)?)),
                "preprocess.mean" => format!("{:?}", Some(triple(v, false)?)),
                "preprocess.std" => format!("{:?}", Some(triple(v, true)?)),
                "clip.fps" => format!("{:?}", Some(Rate::parse(v)?)),
                "preprocess.layout" => format!(
                    "{:?}",
                    Some(match v.trim() {
                        "NCTHW" => Layout::Ncthw,
                        "NTHWC" => Layout::Nthwc,
                        _ => return None,
                    })
                ),
                "output.kind" => format!(
                    "{:?}",
                    Some(match v.trim() {
                        "probabilities" => OutputKind::Probabilities,
                        "logits" => OutputKind::Logits,
                        _ => return None,
                    })
                ),
                _ => format!("{:?}", Some(v.to_string())),
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// One key at a time, any value: never a panic; accepted exactly when the contract
            /// says so; a rejection names the key and the value as they were written.
            #[test]
            fn any_value_of_any_key(key in proptest::sample::select(&ALL_KEYS[..]), v in value()) {
                let parsed = meta(&[(key, v.as_str())]);
                match (parsed, expected(key, &v)) {
                    (Ok(m), Some(want)) => {
                        prop_assert_eq!(field_of(&m, key), want);
                        // Nothing else was filled in.
                        prop_assert_eq!(
                            ALL_KEYS.iter().filter(|k| field_of(&m, k) != "None").count(),
                            1
                        );
                    }
                    (Err(ConfigError::BadMetadata { key: k, value, expected }), None) => {
                        prop_assert_eq!(k, key);
                        prop_assert_eq!(&value, &v);
                        let text = ConfigError::BadMetadata { key: k, value, expected }.to_string();
                        prop_assert!(text.contains(key) && text.contains(&v), "{}", text);
                    }
                    (got, want) => prop_assert!(false, "{key}={v:?}: got {got:?}, want {want:?}"),
                }
            }

            /// Every key at once, any values: never a panic, and an error is about one of them.
            #[test]
            fn any_values_of_every_key(values in proptest::collection::vec(value(), 12)) {
                let pairs: Vec<(&str, &str)> =
                    ALL_KEYS.iter().copied().zip(values.iter().map(String::as_str)).collect();
                match meta(&pairs) {
                    Ok(m) => {
                        for (k, v) in &pairs {
                            prop_assert_eq!(Some(field_of(&m, k)), expected(k, v));
                        }
                    }
                    Err(ConfigError::BadMetadata { key, value, .. }) => {
                        let (_, v) = pairs.iter().find(|(k, _)| *k == key).unwrap();
                        prop_assert_eq!(*v, value.as_str());
                        prop_assert_eq!(expected(key, v), None);
                    }
                    Err(e) => prop_assert!(false, "unexpected error {e:?}"),
                }
            }

            /// What the exporter writes (`str(int)`, Python `repr(float)` of the float32 value,
            /// Rust's own formatting, spaces around) parses back to exactly the same numbers.
            #[test]
            fn valid_values_round_trip(
                sizes in proptest::array::uniform4(1u32..),
                mean in proptest::array::uniform3(
                    any::<f32>().prop_filter("finite", |v| v.is_finite())
                ),
                std in proptest::array::uniform3(
                    any::<f32>().prop_filter("positive", |v| v.is_finite() && *v > 0.0)
                ),
                style in 0..4usize,
                pad in proptest::sample::select(&["", " ", "  ", "\t"][..]),
            ) {
                let num = |v: f32| match style {
                    0 => format!("{}", f64::from(v)),
                    1 => format!("{v}"),
                    2 => format!("{v:e}"),
                    // Python repr(float(numpy.float32)) of large and tiny values: "1.5e+20".
                    _ => format!("{:e}", f64::from(v)).replace("e", "e+").replace("e+-", "e-"),
                };
                let triple = |t: [f32; 3]| {
                    t.iter().map(|&v| format!("{pad}{}{pad}", num(v))).collect::<Vec<_>>().join(",")
                };
                let texts: Vec<String> =
                    sizes.iter().map(|n| format!("{pad}{n}{pad}")).collect();
                let (mean_text, std_text) = (triple(mean), triple(std));
                let m = meta(&[
                    ("clip.length", texts[0].as_str()),
                    ("clip.frame_stride", texts[1].as_str()),
                    ("preprocess.scale_size", texts[2].as_str()),
                    ("preprocess.crop_size", texts[3].as_str()),
                    ("preprocess.mean", mean_text.as_str()),
                    ("preprocess.std", std_text.as_str()),
                    ("preprocess.layout", "NTHWC"),
                    ("output.kind", "logits"),
                ])
                .unwrap();
                prop_assert_eq!(
                    [m.clip_length, m.frame_stride, m.scale_size, m.crop_size],
                    sizes.map(Some)
                );
                prop_assert_eq!(m.mean, Some(mean));
                prop_assert_eq!(m.std, Some(std));
            }

            /// Any graph shape, metadata and property values: `resolve` never panics or
            /// overflows, and what it accepts is consistent (fixed dimensions honoured, crop fits
            /// the scaled frame, tensors of a size the element can allocate).
            #[test]
            fn resolve_never_panics(
                input in proptest::collection::vec(
                    prop_oneof![Just(-1i64), 0i64..10, 1i64..300, any::<i64>()], 3..7),
                classes in prop_oneof![Just(-1i64), 0i64..5, any::<i64>()],
                m in (
                    proptest::option::of(prop_oneof![1u32..64, any::<u32>()]),
                    proptest::option::of(prop_oneof![1u32..16, any::<u32>()]),
                    proptest::option::of(prop_oneof![1u32..400, any::<u32>()]),
                    proptest::option::of(prop_oneof![1u32..300, any::<u32>()]),
                    any::<bool>(),
                ),
                props in (
                    prop_oneof![Just(0u32), 1u32..64, any::<u32>()],
                    prop_oneof![Just(0u32), 1u32..16, any::<u32>()],
                    prop_oneof![Just(0u32), 1u32..64, any::<u32>()],
                ),
            ) {
                let metadata = ModelMetadata {
                    clip_length: m.0,
                    frame_stride: m.1,
                    scale_size: m.2,
                    crop_size: m.3,
                    layout: Some(if m.4 { Layout::Nthwc } else { Layout::Ncthw }),
                    ..Default::default()
                };
                let overrides = Overrides {
                    clip_length: props.0,
                    frame_stride: props.1,
                    clip_stride: props.2,
                };
                let model = io(&input, &[-1, classes]);
                match ClipConfig::resolve(&metadata, &model, overrides) {
                    Ok(c) => {
                        let t = if m.4 { input[1] } else { input[2] };
                        if t > 0 {
                            prop_assert_eq!(i64::from(c.clip_length), t);
                        }
                        prop_assert!(c.clip_length >= 1 && c.frame_stride >= 1);
                        prop_assert!(c.clip_stride >= 1);
                        prop_assert!(c.crop_size >= 1 && c.crop_size <= c.scale_size);
                        prop_assert!(c.scale_size <= MAX_SIDE);
                        prop_assert!(c.num_classes >= 2);
                        let values = c.clip_elements() as u128;
                        prop_assert!(values <= MAX_CLIP_VALUES);
                        let batch = c.fixed_batch.unwrap_or(1) as u128;
                        prop_assert!(values * batch <= MAX_RUN_VALUES.max(values));
                        let shape = c.input_shape(1);
                        prop_assert_eq!(shape.iter().product::<i64>() as u128, values);
                    }
                    Err(e) => {
                        // Every error reads as a sentence with something to act on.
                        prop_assert!(e.to_string().len() > 20, "{}", e);
                    }
                }
            }
        }
    }
}
