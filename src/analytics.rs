//! GstAnalytics output (cargo feature `analytics`, GStreamer >= 1.24; docs/design.md, "Analytics
//! metadata"): every result becomes a classification mtd (the top-k labels as quarks, their scores
//! as levels, best first) in the buffer's `GstAnalyticsRelationMeta`, related to an
//! object-detection mtd covering the frame whose type is the top label, so that elements drawing
//! or forwarding detections (`objectdetectionoverlay`, ONVIF converters) show the action.
//!
//! [`Carrier`] decides which buffers carry a result (the `analytics-meta` property);
//! [`add_result`] writes one result into a buffer.
//!
//! Objects mode (`regions=objects`) reads the boxes upstream wrote ([`detections`]: each
//! object-detection mtd, with the id of a tracking mtd it relates to) and relates each object's
//! result to that object's box on the buffers that carry it ([`ObjectCarrier`],
//! [`add_object_result`]): a classification mtd the box RELATE_TO and CONTAIN, which
//! `objectdetectionoverlay` draws as the box's label.

use std::collections::BTreeMap;

use gst::glib;
use gst_analytics::prelude::*;

use crate::objects::Detection;
use crate::results::ClipResult;

/// Which buffers carry the analytics metadata of a result (`analytics-meta`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNonLocalClassifyAnalyticsMeta")]
pub enum AnalyticsMeta {
    #[default]
    #[enum_value(
        name = "First buffer: only the first buffer pushed after a result carries it, like NonLocalClassifyMeta",
        nick = "first-buffer"
    )]
    FirstBuffer = 0,
    #[enum_value(
        name = "Every buffer: every buffer from a result until the next one carries it (the current action, smoothed as 'smoothing' says)",
        nick = "every-buffer"
    )]
    EveryBuffer = 1,
}

/// The results each buffer carries, from the results finished since the previous buffer.
#[derive(Debug, Default)]
pub struct Carrier {
    current: Option<ClipResult>,
}

impl Carrier {
    /// Forget the current result (stream start, flush): the next stream starts without one.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The result currently shown by `every-buffer`, if any.
    pub fn current(&self) -> Option<&ClipResult> {
        self.current.as_ref()
    }

    /// What the next buffer carries, given `fresh`, the results finished since the previous buffer
    /// (oldest first). `first-buffer`: those results. `every-buffer`: those results when there are
    /// any (none is skipped), else the latest result again.
    pub fn carry<'a>(
        &'a mut self,
        mode: AnalyticsMeta,
        fresh: &'a [ClipResult],
    ) -> &'a [ClipResult] {
        // The latest result is kept in both modes, so switching to every-buffer in PLAYING shows
        // the current action at once.
        if let Some(last) = fresh.last() {
            self.current = Some(last.clone());
        }
        match mode {
            AnalyticsMeta::EveryBuffer if fresh.is_empty() => self.current.as_slice(),
            _ => fresh,
        }
    }
}

/// The ids of the mtds written for one result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The full-frame object-detection mtd (type: the top label).
    pub od: u32,
    /// The classification mtd (all top-k labels).
    pub cls: u32,
}

/// Rows left above the action's box for its label: `objectdetectionoverlay` writes a box's label
/// (about 16 rows high) above the box, so a box starting on row 0 would hide it.
pub const LABEL_ROWS: u32 = 20;

/// The action's box (x, y, w, h) on a `width` × `height` frame: the whole frame below its top
/// [`LABEL_ROWS`] rows (a quarter of the frame when that is less).
pub fn action_box(width: u32, height: u32) -> (i32, i32, i32, i32) {
    let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let top = LABEL_ROWS.min(height / 4);
    (0, clamp(top), clamp(width), clamp(height - top))
}

/// Write `result` into the buffer's relation meta (added when the buffer has none; mtds added
/// upstream are kept): a classification mtd, an object-detection mtd covering the `width` ×
/// `height` frame ([`action_box`]) typed with the top label and its score, the detection RELATE_TO
/// and CONTAIN the classification, the classification RELATE_TO and IS_PART_OF the detection.
pub fn add_result(
    buffer: &mut gst::BufferRef,
    result: &ClipResult,
    width: u32,
    height: u32,
) -> Result<Written, glib::BoolError> {
    let (x, y, w, h) = action_box(width, height);
    let (top, level) = match (result.labels.first(), result.scores.first()) {
        (Some(label), Some(&score)) => (glib::Quark::from_str(label.as_str()), score as f32),
        _ => return Err(no_labels(result)),
    };
    let od = relation_meta(buffer)?
        .add_od_mtd(top, x, y, w, h, level)?
        .id();
    let cls = add_object_result(buffer, result, od)?;
    Ok(Written { od, cls })
}

/// Object detections read from one buffer, at most this many (the rest are counted, not read).
pub const MAX_DETECTIONS: usize = 4096;

/// The object-detection mtds of `buffer` whose type `accept` takes, each with the id of a
/// tracking mtd it RELATE_TO (as `ioutracker` relates them), at most [`MAX_DETECTIONS`]; and how
/// many more there were. Boxes a `nonlocalclassify` in frame mode wrote (the frame's
/// [`action_box`] containing a classification) are not objects.
pub fn detections(
    buffer: &gst::BufferRef,
    width: u32,
    height: u32,
    accept: impl Fn(&str) -> bool,
) -> (Vec<Detection>, usize) {
    let Some(relation) = buffer.meta::<gst_analytics::AnalyticsRelationMeta>() else {
        return (Vec::new(), 0);
    };
    let frame_box = action_box(width, height);
    let mut out = Vec::new();
    let mut more = 0;
    for od in relation.iter::<gst_analytics::AnalyticsODMtd>() {
        let Ok(loc) = od.location() else { continue };
        let kind = od
            .obj_type()
            .map(|q| q.as_str().to_string())
            .unwrap_or_default();
        if !accept(&kind) {
            continue;
        }
        let id = od.id();
        let frame_mode = (loc.x, loc.y, loc.w, loc.h) == frame_box
            && relation
                .iter_direct_related::<gst_analytics::AnalyticsClassificationMtd>(
                    id,
                    gst_analytics::RelTypes::CONTAIN,
                )
                .next()
                .is_some();
        if frame_mode {
            continue;
        }
        if out.len() == MAX_DETECTIONS {
            more += 1;
            continue;
        }
        let track = relation
            .iter_direct_related::<gst_analytics::AnalyticsTrackingMtd>(
                id,
                gst_analytics::RelTypes::RELATE_TO,
            )
            .next()
            .map(|t| t.info().0);
        out.push(Detection {
            mtd: id,
            x: loc.x,
            y: loc.y,
            w: loc.w,
            h: loc.h,
            confidence: loc.loc_conf_lvl,
            kind,
            track,
        });
    }
    (out, more)
}

/// Write `result` as a classification mtd related to the object-detection mtd `od` of
/// `buffer`: `od` RELATE_TO and CONTAIN it, it RELATE_TO and IS_PART_OF `od`. Its id.
pub fn add_object_result(
    buffer: &mut gst::BufferRef,
    result: &ClipResult,
    od: u32,
) -> Result<u32, glib::BoolError> {
    let quarks: Vec<glib::Quark> = result
        .labels
        .iter()
        .map(|l| glib::Quark::from_str(l.as_str()))
        .collect();
    let levels: Vec<f32> = result.scores.iter().map(|&s| s as f32).collect();
    if quarks.is_empty() {
        return Err(no_labels(result));
    }
    let mut relation = relation_meta(buffer)?;
    let cls = relation.add_cls_mtd(&levels, &quarks)?.id();
    use gst_analytics::RelTypes;
    relation.set_relation(RelTypes::RELATE_TO | RelTypes::CONTAIN, od, cls)?;
    relation.set_relation(RelTypes::RELATE_TO | RelTypes::IS_PART_OF, cls, od)?;
    Ok(cls)
}

/// The buffer's relation meta, added when it has none (mtds added upstream are kept).
fn relation_meta(
    buffer: &mut gst::BufferRef,
) -> Result<
    gst::MetaRefMut<'_, gst_analytics::AnalyticsRelationMeta, gst::meta::Standalone>,
    glib::BoolError,
> {
    if buffer
        .meta::<gst_analytics::AnalyticsRelationMeta>()
        .is_none()
    {
        gst_analytics::AnalyticsRelationMeta::add(buffer);
    }
    buffer
        .meta_mut::<gst_analytics::AnalyticsRelationMeta>()
        .ok_or_else(|| glib::bool_error!("the buffer takes no analytics relation meta"))
}

fn no_labels(result: &ClipResult) -> glib::BoolError {
    glib::bool_error!(
        "clip {} has no labels to write as analytics metadata",
        result.clip_index
    )
}

/// Which object results each buffer carries (objects mode), each related to its object's box
/// there: `first-buffer`, each result once, on the first buffer (from the next one on) where its
/// object has a box; `every-buffer`, the latest result of every object with a box on the buffer.
#[derive(Debug, Default)]
pub struct ObjectCarrier {
    current: BTreeMap<u64, ClipResult>,
    /// first-buffer: results not yet written, the latest of each object.
    pending: BTreeMap<u64, ClipResult>,
}

impl ObjectCarrier {
    pub fn reset(&mut self) {
        self.current.clear();
        self.pending.clear();
    }

    /// The object's track ended: its result is carried no more.
    pub fn forget(&mut self, object: u64) {
        self.current.remove(&object);
        self.pending.remove(&object);
    }

    /// What the next buffer carries, given `fresh` (the results finished since the previous
    /// buffer, oldest first) and the objects with a box on it (`boxes`: object id, box mtd id):
    /// each result with the box to relate it to.
    pub fn carry(
        &mut self,
        mode: AnalyticsMeta,
        fresh: &[ClipResult],
        boxes: &[(u64, u32)],
    ) -> Vec<(ClipResult, u32)> {
        for result in fresh {
            if let Some(object) = result.object {
                self.current.insert(object.id, result.clone());
                self.pending.insert(object.id, result.clone());
            }
        }
        let mut out = Vec::new();
        for &(id, od) in boxes {
            let result = match mode {
                AnalyticsMeta::EveryBuffer => {
                    self.pending.remove(&id);
                    self.current.get(&id).cloned()
                }
                AnalyticsMeta::FirstBuffer => self.pending.remove(&id),
            };
            out.extend(result.map(|r| (r, od)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst_analytics::{AnalyticsClassificationMtd, AnalyticsODMtd, RelTypes};

    fn result(index: u64, labels: &[&str], scores: &[f64]) -> ClipResult {
        ClipResult {
            timestamp: Some(index * 1000),
            stream_time: None,
            running_time: None,
            duration: Some(1000),
            clip_index: index,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            scores: scores.to_vec(),
            dropped: 0,
            latency: 0,
            object: None,
        }
    }

    #[test]
    fn first_buffer_carries_each_result_once() {
        let mut c = Carrier::default();
        let fresh = [result(0, &["a"], &[0.5])];
        assert_eq!(c.carry(AnalyticsMeta::FirstBuffer, &fresh), &fresh);
        assert!(c.carry(AnalyticsMeta::FirstBuffer, &[]).is_empty());
        // Two results between buffers both ride on the next one.
        let two = [result(1, &["b"], &[0.6]), result(2, &["c"], &[0.7])];
        assert_eq!(c.carry(AnalyticsMeta::FirstBuffer, &two), &two);
        assert!(c.carry(AnalyticsMeta::FirstBuffer, &[]).is_empty());
    }

    #[test]
    fn every_buffer_repeats_the_latest_until_the_next() {
        let mut c = Carrier::default();
        assert!(c.carry(AnalyticsMeta::EveryBuffer, &[]).is_empty());
        let first = [result(0, &["a"], &[0.5])];
        assert_eq!(c.carry(AnalyticsMeta::EveryBuffer, &first), &first);
        assert_eq!(c.carry(AnalyticsMeta::EveryBuffer, &[]), &first);
        assert_eq!(c.carry(AnalyticsMeta::EveryBuffer, &[]), &first);
        let two = [result(1, &["b"], &[0.6]), result(2, &["c"], &[0.7])];
        assert_eq!(c.carry(AnalyticsMeta::EveryBuffer, &two), &two);
        assert_eq!(c.carry(AnalyticsMeta::EveryBuffer, &[]), &two[1..]);
        c.reset();
        assert!(c.carry(AnalyticsMeta::EveryBuffer, &[]).is_empty());
    }

    #[test]
    fn switching_to_every_buffer_shows_the_current_result() {
        let mut c = Carrier::default();
        let first = [result(4, &["a"], &[0.5])];
        c.carry(AnalyticsMeta::FirstBuffer, &first);
        assert!(c.carry(AnalyticsMeta::FirstBuffer, &[]).is_empty());
        assert_eq!(c.carry(AnalyticsMeta::EveryBuffer, &[]), &first);
        assert_eq!(c.current().map(|r| r.clip_index), Some(4));
    }

    #[test]
    fn result_becomes_a_classification_related_to_the_action_box() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        let r = result(3, &["arm wrestling", "dancing"], &[0.75, 0.25]);
        let written = add_result(buffer.get_mut().unwrap(), &r, 320, 240).unwrap();
        let meta = buffer
            .meta::<gst_analytics::AnalyticsRelationMeta>()
            .unwrap();
        assert_eq!(meta.len(), 2);
        let cls = meta.mtd::<AnalyticsClassificationMtd>(written.cls).unwrap();
        assert_eq!(cls.len(), 2);
        assert_eq!(cls.quark(0).as_str(), "arm wrestling");
        assert_eq!(cls.quark(1).as_str(), "dancing");
        assert_eq!((cls.level(0), cls.level(1)), (0.75, 0.25));
        let od = meta.mtd::<AnalyticsODMtd>(written.od).unwrap();
        assert_eq!(od.obj_type().unwrap().as_str(), "arm wrestling");
        let loc = od.location().unwrap();
        assert_eq!((loc.x, loc.y, loc.w, loc.h), (0, 20, 320, 220));
        assert_eq!(od.confidence_level(), 0.75);
        assert_eq!(
            meta.relation(written.od, written.cls),
            RelTypes::RELATE_TO | RelTypes::CONTAIN
        );
        assert_eq!(
            meta.relation(written.cls, written.od),
            RelTypes::RELATE_TO | RelTypes::IS_PART_OF
        );
        // What objectdetectionoverlay looks up: the classification directly related to the box.
        let related: Vec<_> = meta
            .iter_direct_related::<AnalyticsClassificationMtd>(written.od, RelTypes::RELATE_TO)
            .map(|m| m.id())
            .collect();
        assert_eq!(related, vec![written.cls]);
    }

    #[test]
    fn mtds_added_upstream_are_kept() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        let person = glib::Quark::from_str("person");
        let upstream = {
            let b = buffer.get_mut().unwrap();
            let mut m = gst_analytics::AnalyticsRelationMeta::add(b);
            m.add_od_mtd(person, 10, 20, 30, 40, 0.9).unwrap().id()
        };
        let r = result(0, &["dancing"], &[0.5]);
        let written = add_result(buffer.get_mut().unwrap(), &r, 64, 48).unwrap();
        let meta = buffer
            .meta::<gst_analytics::AnalyticsRelationMeta>()
            .unwrap();
        assert_eq!(meta.len(), 3);
        assert_ne!(written.od, upstream);
        let theirs = meta.mtd::<AnalyticsODMtd>(upstream).unwrap();
        assert_eq!(theirs.obj_type(), Some(person));
        let loc = theirs.location().unwrap();
        assert_eq!((loc.x, loc.y, loc.w, loc.h), (10, 20, 30, 40));
        assert_eq!(meta.relation(upstream, written.cls), RelTypes::NONE);
        assert_eq!(
            buffer
                .iter_meta::<gst_analytics::AnalyticsRelationMeta>()
                .count(),
            1
        );
    }

    #[test]
    fn the_box_leaves_room_for_the_label_above_it() {
        assert_eq!(action_box(1920, 1080), (0, 20, 1920, 1060));
        assert_eq!(action_box(640, 480), (0, 20, 640, 460));
        assert_eq!(action_box(16, 8), (0, 2, 16, 6));
        assert_eq!(action_box(4, 1), (0, 0, 4, 1));
        assert_eq!(action_box(0, 0), (0, 0, 0, 0));
        assert_eq!(action_box(u32::MAX, 80).2, i32::MAX);
    }

    #[test]
    fn a_result_without_labels_is_refused() {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::new();
        let e = add_result(buffer.get_mut().unwrap(), &result(7, &[], &[]), 8, 8).unwrap_err();
        assert!(e.to_string().contains("clip 7"), "{e}");
        assert!(buffer
            .meta::<gst_analytics::AnalyticsRelationMeta>()
            .is_none());
    }

    #[test]
    fn an_objects_result_waits_for_a_buffer_with_its_box() {
        let mut c = ObjectCarrier::default();
        let mut r = result(0, &["a"], &[0.5]);
        r.object = Some(crate::results::ObjectRef {
            id: 7,
            x: 0,
            y: 0,
            w: 4,
            h: 4,
        });
        let fresh = [r.clone()];
        // first-buffer: not on a buffer without object 7's box, then once on the next with it.
        assert!(c
            .carry(AnalyticsMeta::FirstBuffer, &fresh, &[(3, 11)])
            .is_empty());
        assert_eq!(
            c.carry(AnalyticsMeta::FirstBuffer, &[], &[(7, 12)]),
            vec![(r.clone(), 12)]
        );
        assert!(c
            .carry(AnalyticsMeta::FirstBuffer, &[], &[(7, 13)])
            .is_empty());
        // every-buffer: on every buffer where the box is, until the track ends.
        assert_eq!(
            c.carry(AnalyticsMeta::EveryBuffer, &[], &[(7, 14)]),
            vec![(r.clone(), 14)]
        );
        assert!(c.carry(AnalyticsMeta::EveryBuffer, &[], &[]).is_empty());
        c.forget(7);
        assert!(c
            .carry(AnalyticsMeta::EveryBuffer, &[], &[(7, 15)])
            .is_empty());
    }
}
