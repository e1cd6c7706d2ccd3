//! Which frames form clips (by frame count or by time) and how each is cropped and resampled
//! (docs/design.md, "Sampling").

use gst::prelude::*;

use super::{Property, Range};
use crate::config::Overrides;
use crate::nonlocalclassify::{Crops, Resample};
use crate::preprocess::CropPosition;

/// Frames; 0: from the model.
pub const CLIP_LENGTH: Range<u32> = Range::new(0, 1024, 0);
/// Frames; 0: from the model.
pub const FRAME_STRIDE: Range<u32> = Range::new(0, 64, 0);
/// Frames; 0: clip-length × frame-stride.
pub const CLIP_STRIDE: Range<u32> = Range::new(0, 100_000_000, 0);
/// Frames per second as num/den: 0/1 the model's `clip.fps`, -1/1 by frame count.
pub const CLIP_FPS: Range<(i32, i32)> = Range::new((-1, 1), (1000, 1), (0, 1));

#[derive(Debug, Clone)]
pub struct ClipSettings {
    pub clip_length: u32,
    pub frame_stride: u32,
    pub clip_stride: u32,
    /// `clip-fps` as num/den: 0 = the model's `clip.fps`, negative = by frame count.
    pub clip_fps: (i32, i32),
    pub crops: Crops,
    pub resample: Resample,
}

impl Default for ClipSettings {
    fn default() -> Self {
        Self {
            clip_length: CLIP_LENGTH.default,
            frame_stride: FRAME_STRIDE.default,
            clip_stride: CLIP_STRIDE.default,
            clip_fps: CLIP_FPS.default,
            crops: Crops::default(),
            resample: Resample::default(),
        }
    }
}

fn fraction((num, den): (i32, i32)) -> gst::Fraction {
    gst::Fraction::new(num, den)
}

impl ClipSettings {
    pub fn properties() -> Vec<Property<Self>> {
        vec![
            Property::uint(
                "clip-length",
                "Clip length",
                &format!("Frames per clip, 1 to {} (0 = from the model)", CLIP_LENGTH.max),
                CLIP_LENGTH,
                |s| &mut s.clip_length,
            ),
            Property::uint(
                "frame-stride",
                "Frame stride",
                &format!(
                    "Take every Nth decoded frame inside a clip, 1 to {} (0 = from the model)",
                    FRAME_STRIDE.max
                ),
                FRAME_STRIDE,
                |s| &mut s.frame_stride,
            ),
            Property::uint(
                "clip-stride",
                "Clip stride",
                &format!(
                    "Decoded frames between the starts of consecutive clips, 1 to {} (0 = clip-length × frame-stride: back to back)",
                    CLIP_STRIDE.max
                ),
                CLIP_STRIDE,
                |s| &mut s.clip_stride,
            ),
            Property::custom(
                gst::ParamSpecFraction::builder("clip-fps")
                    .nick("Clip FPS")
                    .blurb("Sample clips by time at this frame rate: each model frame is the decoded frame nearest its instant by PTS (0/1 = the model's clip.fps, else by frame count; -1/1 = by frame count)")
                    .minimum(fraction(CLIP_FPS.min))
                    .maximum(fraction(CLIP_FPS.max))
                    .default_value(fraction(CLIP_FPS.default))
                    .mutable_ready()
                    .build(),
                |s: &mut Self, v| {
                    let f = v
                        .get::<gst::Fraction>()
                        .unwrap_or_else(|_| fraction(CLIP_FPS.default));
                    s.clip_fps = (f.numer(), f.denom());
                },
                |s| fraction(s.clip_fps).to_value(),
            ),
            Property::enumeration(
                "crops",
                "Crops",
                "Crops per clip: center, or three along the long side with scores averaged",
                false,
                |s| &mut s.crops,
            ),
            Property::enumeration(
                "resample",
                "Resample",
                "Where sampled frames are resampled to the crop: element (on the streaming thread) or engine (a batch at a time on the model's CUDA card, slower on the CPU provider; needs crops=center and a uint8 model run in this process)",
                false,
                |s| &mut s.resample,
            ),
        ]
    }

    /// The sampling values that override the model's.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            clip_length: self.clip_length,
            frame_stride: self.frame_stride,
            clip_stride: self.clip_stride,
        }
    }

    /// The crop positions each clip is classified at.
    pub fn crop_positions(&self) -> Vec<CropPosition> {
        match self.crops {
            Crops::Center => vec![CropPosition::Center],
            Crops::Three => vec![CropPosition::Start, CropPosition::Center, CropPosition::End],
        }
    }
}
