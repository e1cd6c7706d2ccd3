//! Model metadata (docs/design.md "Model metadata") and how it combines with the graph's input shape
//! and the element's properties into the settings of one stream's clips.
//!
//! Precedence: fixed dimensions of the graph win over metadata; a property that conflicts with a
//! fixed dimension is an error naming both values; otherwise a property (non-zero) wins over
//! metadata, which wins over the defaults.
//!
//! The metadata's keys and their parsing are in `metadata`.

mod metadata;

use crate::preprocess::{Layout, Normalization};
use crate::sampling::Rate;

pub use metadata::{ModelMetadata, METADATA_KEYS};

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

/// `value`, unless it is over `limit`: then an error naming what is too large, the value, the
/// limit and what to do about it.
fn at_most(
    what: &'static str,
    value: u128,
    limit: u128,
    hint: &'static str,
) -> Result<u128, ConfigError> {
    if value > limit {
        Err(ConfigError::TooLarge {
            what,
            value,
            limit,
            hint,
        })
    } else {
        Ok(value)
    }
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
            let hint = "export the model for a smaller input or fix its preprocess metadata";
            at_most(what, value.into(), MAX_SIDE.into(), hint).map(|_| value)
        };
        let crop_size = side("the crop size", crop_size)?;
        let scale_size = side(
            "preprocess.scale_size",
            meta.scale_size
                .unwrap_or_else(|| (crop_size * 8).div_ceil(7)),
        )?;
        let clip_values = at_most(
            "one clip tensor (3 × clip length × crop size²)",
            3 * u128::from(clip_length) * u128::from(crop_size).pow(2),
            MAX_CLIP_VALUES,
            "use a smaller clip-length or a model with a smaller crop",
        )?;
        let fixed_batch = fixed(shape[0]);
        if let Some(b) = fixed_batch {
            at_most(
                "one model run (the graph's fixed batch × clip tensor)",
                clip_values * b as u128,
                MAX_RUN_VALUES,
                "export the model with a dynamic or smaller batch dimension",
            )?;
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
mod tests;
