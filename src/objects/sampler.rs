//! Each object's clips: sampled as frame mode samples the stream (`clip-length`,
//! `frame-stride`, `clip-stride`, `clip-fps`), counted from the object's first frame, every frame
//! of a clip cropped from the square chosen when that clip started ([`crop_square`] of the
//! object's box on the clip's first frame), so that the crop stays still over the clip. Frames
//! where the object has no box use its last one. Overlapping clips share a frame's crop when
//! their squares are the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::preprocess::{ScaledFrame, Square};
use crate::sampling::{Clip, ClipSampler, FrameTiming, Rate, Sampling};

use super::geometry::{crop_square, BoxF};

/// One sampled frame of an object: its crop for each clip that samples it.
#[derive(Debug)]
pub struct ObjectFrame {
    crops: Vec<(u64, Arc<ScaledFrame>)>,
}

impl ObjectFrame {
    fn crop(&self, clip: u64) -> Option<Arc<ScaledFrame>> {
        self.crops
            .iter()
            .find(|(k, _)| *k == clip)
            .map(|(_, f)| Arc::clone(f))
    }
}

/// A finished clip of one object.
#[derive(Debug)]
pub struct ObjectClip {
    pub object: u64,
    /// The square its frames were cropped from.
    pub square: Square,
    /// The object's box on the clip's last sampled frame.
    pub boxf: BoxF,
    pub clip: Clip<ScaledFrame>,
}

pub struct ObjectSampler {
    id: u64,
    sampler: ClipSampler<ObjectFrame>,
    /// The square of each clip started and not yet cut.
    squares: BTreeMap<u64, Square>,
    last_box: Option<BoxF>,
}

impl std::fmt::Debug for ObjectSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSampler")
            .field("id", &self.id)
            .field("squares", &self.squares)
            .field("kept_frames", &self.sampler.kept_frames())
            .finish()
    }
}

impl ObjectSampler {
    pub fn new(id: u64, sampling: Sampling, rate: Option<Rate>) -> Self {
        Self {
            id,
            sampler: ClipSampler::with_rate(sampling, rate),
            squares: BTreeMap::new(),
            last_box: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Frames held for clips in progress.
    pub fn kept_frames(&self) -> usize {
        self.sampler.kept_frames()
    }

    /// The next frame, with `timing`, where the object's box is `boxf`, on a `width` × `height`
    /// frame: `crop` makes a square's crop (only on frames a clip samples). The clips it
    /// completes, oldest first.
    pub fn push<E>(
        &mut self,
        timing: FrameTiming,
        boxf: BoxF,
        width: u32,
        height: u32,
        crop: &mut impl FnMut(Square) -> Result<ScaledFrame, E>,
    ) -> Result<Vec<ObjectClip>, E> {
        self.last_box = Some(boxf);
        let sampling = self.sampler.sampling();
        let mut clips: Vec<u64> = Vec::new();
        for m in self.sampler.peek(timing) {
            for k in sampling.clips_sampling(m) {
                if !clips.contains(&k) {
                    clips.push(k);
                }
            }
        }
        let frame = if clips.is_empty() {
            None
        } else {
            let mut made: Vec<(Square, Arc<ScaledFrame>)> = Vec::new();
            let mut crops = Vec::with_capacity(clips.len());
            for k in clips {
                let square = *self
                    .squares
                    .entry(k)
                    .or_insert_with(|| crop_square(&boxf, width, height));
                let frame = match made.iter().find(|(s, _)| *s == square) {
                    Some((_, f)) => Arc::clone(f),
                    None => {
                        let f = Arc::new(crop(square)?);
                        made.push((square, Arc::clone(&f)));
                        f
                    }
                };
                crops.push((k, frame));
            }
            Some(ObjectFrame { crops })
        };
        let cut = self.sampler.push(frame, timing);
        Ok(self.finish_clips(cut))
    }

    /// The object's track ended (or the stream did): its clips in progress, completed by
    /// repeating their last frame when they have at least half of their frames, else dropped.
    pub fn finish(&mut self) -> Vec<ObjectClip> {
        let cut = self.sampler.finish();
        let clips = self.finish_clips(cut);
        self.squares.clear();
        clips
    }

    fn finish_clips(&mut self, cut: Vec<Clip<ObjectFrame>>) -> Vec<ObjectClip> {
        let mut out = Vec::with_capacity(cut.len());
        for clip in cut {
            let k = clip.index;
            let square = self.squares.remove(&k);
            let frames: Option<Vec<Arc<ScaledFrame>>> =
                clip.frames.iter().map(|f| f.crop(k)).collect();
            // Every frame of clip k holds a crop for k: it was pushed while k sampled it.
            let (Some(square), Some(frames), Some(boxf)) = (square, frames, self.last_box) else {
                continue;
            };
            out.push(ObjectClip {
                object: self.id,
                square,
                boxf,
                clip: Clip {
                    index: clip.index,
                    frames,
                    timestamp: clip.timestamp,
                    duration: clip.duration,
                    padded: clip.padded,
                },
            });
        }
        // Clips that ended without being cut (skipped over a gap in time) leave their squares.
        let sampling = self.sampler.sampling();
        let covered = self.sampler.covered();
        self.squares
            .retain(|&k, _| sampling.clip_end(k).saturating_add(1) >= covered);
        out
    }
}
