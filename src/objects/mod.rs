//! Objects mode (`regions=objects`, docs/design.md "Objects"): an action for each object an
//! upstream detector boxed, with no GStreamer types, so that every rule is unit-tested.
//!
//! - [`geometry`]: boxes checked against the frame ([`Detection`] to [`BoxF`]), and the square
//!   each clip of an object is cropped from ([`crop_square`]);
//! - [`tracker`]: which boxes are the same object over time: a tracker's ids when the boxes carry
//!   them, else the element's own greedy IoU association; tracks end after a timeout; a cap on
//!   objects per stream ([`Tracker`]);
//! - [`sampler`]: each object's clips, sampled as frame mode samples the stream, every frame of
//!   a clip cropped from that clip's square ([`ObjectSampler`]);
//! - [`stream`]: one stream's tracker and samplers together ([`StreamObjects`]).

pub mod geometry;
pub mod sampler;
pub mod stream;
pub mod tracker;

pub use geometry::{crop_square, BoxF, Refusal, ENLARGE};
pub use sampler::{ObjectClip, ObjectSampler};
pub use stream::{FrameOutput, ObjectsConfig, StreamObjects};
pub use tracker::{FrameObjects, Seen, Tracker, TrackerConfig};

/// One box of an upstream detector on one frame, in that frame's pixels (a GstAnalytics
/// object-detection mtd), with the id a tracker related to it, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The mtd's id on its buffer (what results are related to).
    pub mtd: u32,
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    /// The detector's confidence (not used to choose boxes: the detector's decoder thresholds).
    pub confidence: f32,
    /// The object's type as the detector names it (e.g. `person`).
    pub kind: String,
    /// The tracking id related to the box (a tracking mtd), if any.
    pub track: Option<u64>,
}

/// Which object types become objects: every type (empty list) or the ones listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeFilter(Vec<String>);

impl TypeFilter {
    /// From a comma-separated list (`person,dog`); blanks ignored; empty: every type.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    pub fn accepts(&self, kind: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|t| t == kind)
    }
}

#[cfg(test)]
mod tests;
