//! One stream's objects: its tracker and each live object's sampler.

use std::collections::HashMap;

use crate::preprocess::{ScaledFrame, Square};
use crate::sampling::{FrameTiming, Rate, Sampling};

use super::sampler::{ObjectClip, ObjectSampler};
use super::tracker::{FrameObjects, Tracker, TrackerConfig};
use super::Detection;

/// What a stream's objects are sampled and tracked with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectsConfig {
    pub tracker: TrackerConfig,
    pub sampling: Sampling,
    pub rate: Option<Rate>,
}

/// What one frame gave.
#[derive(Debug, Default)]
pub struct FrameOutput {
    pub objects: FrameObjects,
    /// The last clips of the tracks that ended (or whose id moved elsewhere) on this frame.
    pub finished: Vec<ObjectClip>,
    /// Clips this frame completed, oldest first per object.
    pub clips: Vec<ObjectClip>,
}

#[derive(Debug)]
pub struct StreamObjects {
    config: ObjectsConfig,
    tracker: Tracker,
    samplers: HashMap<u64, ObjectSampler>,
}

impl StreamObjects {
    pub fn new(config: ObjectsConfig) -> Self {
        Self {
            config,
            tracker: Tracker::new(config.tracker),
            samplers: HashMap::new(),
        }
    }

    /// Objects tracked at once at most.
    pub fn max_objects(&self) -> usize {
        self.config.tracker.max_objects.max(1)
    }

    /// Live objects.
    pub fn len(&self) -> usize {
        self.samplers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samplers.is_empty()
    }

    /// Frames held for clips in progress, over every object.
    pub fn kept_frames(&self) -> usize {
        self.samplers.values().map(ObjectSampler::kept_frames).sum()
    }

    /// Forget every object and clip in progress (flush, caps change, new stream).
    pub fn reset(&mut self) {
        self.tracker.reset();
        self.samplers.clear();
    }

    /// The next frame at `now` (ns) with `timing` and the detector's boxes on it; `crop` makes
    /// a square's crop of this frame.
    pub fn frame<E>(
        &mut self,
        now: u64,
        timing: FrameTiming,
        detections: &[Detection],
        width: u32,
        height: u32,
        mut crop: impl FnMut(Square) -> Result<ScaledFrame, E>,
    ) -> Result<FrameOutput, E> {
        let objects = self.tracker.update(now, detections, width, height);
        let mut finished = Vec::new();
        // A track that ended, or whose id moved elsewhere, finishes its clips in progress; the
        // moved one starts afresh at its new place.
        for id in objects.ended.iter().chain(&objects.jumped) {
            if let Some(mut sampler) = self.samplers.remove(id) {
                finished.extend(sampler.finish());
            }
        }
        let mut clips = Vec::new();
        let (sampling, rate) = (self.config.sampling, self.config.rate);
        for seen in &objects.objects {
            let sampler = self
                .samplers
                .entry(seen.id)
                .or_insert_with(|| ObjectSampler::new(seen.id, sampling, rate));
            clips.extend(sampler.push(timing, seen.boxf, width, height, &mut crop)?);
        }
        Ok(FrameOutput {
            objects,
            finished,
            clips,
        })
    }

    /// End of stream: every object's clips in progress (see [`ObjectSampler::finish`]), and the
    /// ids of the objects that ended.
    pub fn finish(&mut self) -> (Vec<ObjectClip>, Vec<u64>) {
        let ended = self.tracker.end_all();
        let mut clips = Vec::new();
        for id in &ended {
            if let Some(mut sampler) = self.samplers.remove(id) {
                clips.extend(sampler.finish());
            }
        }
        self.samplers.clear();
        (clips, ended)
    }
}
