//! Objects mode (docs/design.md, "Objects"): which regions clips show, which detected objects
//! count, how long a track lives without a box, and how many objects a stream classifies.

use super::{Property, Range};
use crate::nonlocalclassify::Regions;
use crate::objects::{TrackerConfig, TypeFilter};

/// Milliseconds.
pub const TRACK_TIMEOUT: Range<u32> = Range::new(1, 3_600_000, 1000);
pub const MAX_OBJECTS: Range<u32> = Range::new(1, 256, 16);

#[derive(Debug, Clone)]
pub struct ObjectSettings {
    pub regions: Regions,
    pub object_types: Option<String>,
    pub track_timeout_ms: u32,
    pub max_objects: u32,
}

impl Default for ObjectSettings {
    fn default() -> Self {
        Self {
            regions: Regions::default(),
            object_types: None,
            track_timeout_ms: TRACK_TIMEOUT.default,
            max_objects: MAX_OBJECTS.default,
        }
    }
}

impl ObjectSettings {
    pub fn properties() -> Vec<Property<Self>> {
        vec![
            Property::enumeration(
                "regions",
                "Regions",
                "What clips show: frame (the whole frame) or objects (each object an upstream detector boxed as GstAnalytics object detections, tracked, cropped and classified on its own; needs GStreamer 1.24 or newer)",
                false,
                |s| &mut s.regions,
            ),
            Property::string(
                "object-types",
                "Object types",
                "With regions=objects: the detection types that are objects, separated by commas (e.g. person); unset: every type",
                |s| &mut s.object_types,
            ),
            Property::uint(
                "track-timeout",
                "Track timeout",
                "With regions=objects: milliseconds an object may go without a box before its track ends (its clip in progress is completed when it has half of its frames, else dropped)",
                TRACK_TIMEOUT,
                |s| &mut s.track_timeout_ms,
            ),
            Property::uint(
                "max-objects",
                "Max objects",
                "With regions=objects: objects classified at once per stream; further objects are dropped and counted",
                MAX_OBJECTS,
                |s| &mut s.max_objects,
            ),
        ]
    }

    pub fn tracker(&self) -> TrackerConfig {
        TrackerConfig {
            timeout: u64::from(self.track_timeout_ms) * 1_000_000,
            max_objects: self.max_objects.max(1) as usize,
        }
    }

    pub fn filter(&self) -> TypeFilter {
        TypeFilter::parse(self.object_types.as_deref().unwrap_or(""))
    }
}
