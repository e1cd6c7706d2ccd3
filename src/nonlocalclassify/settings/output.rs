//! What results say and where they go: labels, top-k, smoothing, segments, element messages and
//! GstAnalytics metadata.

use super::{Property, Range};
#[cfg(feature = "analytics")]
use crate::analytics::AnalyticsMeta;
use crate::segments::Hysteresis;

pub const TOP_K: Range<u32> = Range::new(1, 1000, 5);
/// Clips; 1: no smoothing.
pub const SMOOTHING: Range<u32> = Range::new(1, 1000, 1);
/// Clips.
pub const SEGMENT_HYSTERESIS: Range<u32> = Range::new(1, 1000, 2);
/// Score.
pub const SEGMENT_MARGIN: Range<f64> = Range::new(0.0, 1.0, 0.0);
pub const POST_MESSAGES: bool = true;

#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub labels: Option<String>,
    pub top_k: u32,
    pub smoothing: u32,
    pub segment_hysteresis: u32,
    pub segment_margin: f64,
    pub post_messages: bool,
    #[cfg(feature = "analytics")]
    pub analytics_meta: AnalyticsMeta,
}

impl Default for OutputSettings {
    fn default() -> Self {
        Self {
            labels: None,
            top_k: TOP_K.default,
            smoothing: SMOOTHING.default,
            segment_hysteresis: SEGMENT_HYSTERESIS.default,
            segment_margin: SEGMENT_MARGIN.default,
            post_messages: POST_MESSAGES,
            #[cfg(feature = "analytics")]
            analytics_meta: AnalyticsMeta::default(),
        }
    }
}

impl OutputSettings {
    pub fn properties() -> Vec<Property<Self>> {
        vec![
            Property::string(
                "labels",
                "Labels",
                "Path of a label file, one label per line (default: the model's metadata, else Kinetics-400 for 400 outputs, else class-N)",
                |s| &mut s.labels,
            ),
            Property::uint(
                "top-k",
                "Top K",
                "Labels reported per result, best first (at most the model's classes)",
                TOP_K,
                |s| &mut s.top_k,
            ),
            Property::uint(
                "smoothing",
                "Smoothing",
                "Average the scores of the last N clips before reporting (clips; 1 = no smoothing)",
                SMOOTHING,
                |s| &mut s.smoothing,
            ),
            Property::uint(
                "segment-hysteresis",
                "Segment hysteresis",
                "Consecutive clips a new label must lead for before the current segment ends",
                SEGMENT_HYSTERESIS,
                |s| &mut s.segment_hysteresis,
            ),
            Property::double(
                "segment-margin",
                "Segment margin",
                "How much higher than the current segment label's score a new label's score must be to count as leading",
                SEGMENT_MARGIN,
                |s| &mut s.segment_margin,
            ),
            Property::boolean_playing(
                "post-messages",
                "Post messages",
                "Post an element message with each result and a summary at end of stream",
                POST_MESSAGES,
                |s| &mut s.post_messages,
            ),
            #[cfg(feature = "analytics")]
            Property::enumeration(
                "analytics-meta",
                "Analytics meta",
                "Which buffers carry each result as GstAnalytics metadata (a classification related to a box around the frame): first-buffer (the first buffer pushed after the result) or every-buffer (every buffer until the next result, so an overlay shows the current action)",
                true,
                |s| &mut s.analytics_meta,
            ),
        ]
    }

    /// Labels reported per result.
    pub fn top_k(&self) -> usize {
        self.top_k.max(1) as usize
    }

    /// When a segment ends.
    pub fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            clips: self.segment_hysteresis,
            margin: self.segment_margin,
        }
    }
}
