//! Which boxes are the same object over time.
//!
//! A box related to a tracking id (a tracker upstream, such as `ioutracker`, or an application)
//! is that tracker's object: its id is the object's id. Boxes without one are associated by the
//! element itself, greedily by overlap: every (box, track) pair of the frame with an intersection
//! over union of at least [`IOU_THRESHOLD`], best first, joins the box to the track; a box left
//! over starts a track numbered by the element (from 1, skipping ids a tracker uses at the time).
//! A track not seen for `timeout` ends. At most `max_objects` tracks live at once: a new object
//! past that is refused and counted as dropped (once per tracking id while it is remembered;
//! every box without one).

use std::collections::{HashSet, VecDeque};

use super::geometry::{BoxF, Refusal};
use super::Detection;

/// Overlap at which the element's own association takes a box for a track's next position.
pub const IOU_THRESHOLD: f64 = 0.3;

/// Refused tracking ids remembered, so that each is counted as dropped once.
const REMEMBERED_REFUSALS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerConfig {
    /// How long (ns) a track lives without a box.
    pub timeout: u64,
    /// Tracks alive at once.
    pub max_objects: usize,
}

/// A live object on the current frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seen {
    pub id: u64,
    /// Its box on this frame, or the last one when it has none on this frame.
    pub boxf: BoxF,
    /// The box's mtd on this frame; `None` when the object has no box on this frame.
    pub mtd: Option<u32>,
}

/// What one frame did to the objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameObjects {
    /// Every live object, in the order their tracks started.
    pub objects: Vec<Seen>,
    /// Objects whose tracks ended (not seen for the timeout), before this frame's boxes.
    pub ended: Vec<u64>,
    /// Objects whose tracking id moved to a box that does not overlap its last one, and lies
    /// farther than its size from it: the same id at another place.
    pub jumped: Vec<u64>,
    /// Boxes not used, and why.
    pub refused: Vec<Refusal>,
    /// Objects refused a track on this frame because `max_objects` live.
    pub dropped: u64,
}

#[derive(Clone, Debug)]
struct Track {
    id: u64,
    last: BoxF,
    last_seen: u64,
    /// Numbered by a tracker upstream (else by the element).
    external: bool,
    /// The box's mtd on the current frame.
    mtd: Option<u32>,
}

#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_own: u64,
    refused_ids: VecDeque<u64>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config: TrackerConfig {
                max_objects: config.max_objects.max(1),
                ..config
            },
            tracks: Vec::new(),
            next_own: 1,
            refused_ids: VecDeque::new(),
        }
    }

    /// Live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Forget every track (flush, new stream); the element's numbering goes on.
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.refused_ids.clear();
    }

    /// End every track (end of stream): their ids.
    pub fn end_all(&mut self) -> Vec<u64> {
        self.tracks.drain(..).map(|t| t.id).collect()
    }

    /// The frame at `now` (ns, the stream's clock) with `detections`, on a `width` × `height`
    /// frame.
    pub fn update(
        &mut self,
        now: u64,
        detections: &[Detection],
        width: u32,
        height: u32,
    ) -> FrameObjects {
        let mut out = FrameObjects::default();
        let timeout = self.config.timeout;
        self.tracks.retain(|t| {
            let alive = now.saturating_sub(t.last_seen) <= timeout;
            if !alive {
                out.ended.push(t.id);
            }
            alive
        });
        for t in &mut self.tracks {
            t.mtd = None;
        }
        let mut untracked = Vec::new();
        let mut ids_now = HashSet::new();
        for d in detections {
            let b = match BoxF::clipped(d, width, height) {
                Ok(b) => b,
                Err(why) => {
                    out.refused.push(why);
                    continue;
                }
            };
            match d.track {
                Some(id) if !ids_now.insert(id) => out.refused.push(Refusal::DuplicateId),
                Some(id) => self.follow(id, b, d.mtd, now, &mut out),
                None => untracked.push((d.mtd, b)),
            }
        }
        self.associate(&untracked, now, &mut out);
        out.objects = self
            .tracks
            .iter()
            .map(|t| Seen {
                id: t.id,
                boxf: t.last,
                mtd: t.mtd,
            })
            .collect();
        out
    }

    /// A box a tracker numbered `id`.
    fn follow(&mut self, id: u64, b: BoxF, mtd: u32, now: u64, out: &mut FrameObjects) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.external && t.id == id) {
            if jumped(&t.last, &b) {
                out.jumped.push(id);
            }
            (t.last, t.last_seen, t.mtd) = (b, now, Some(mtd));
            return;
        }
        if self.tracks.len() >= self.config.max_objects {
            if !self.refused_ids.contains(&id) {
                out.dropped += 1;
                if self.refused_ids.len() == REMEMBERED_REFUSALS {
                    self.refused_ids.pop_front();
                }
                self.refused_ids.push_back(id);
            }
            return;
        }
        self.tracks.push(Track {
            id,
            last: b,
            last_seen: now,
            external: true,
            mtd: Some(mtd),
        });
    }

    /// Boxes without a tracking id: joined to the element's own tracks by overlap, best pairs
    /// first; the rest start tracks while there is room.
    fn associate(&mut self, boxes: &[(u32, BoxF)], now: u64, out: &mut FrameObjects) {
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (bi, (_, b)) in boxes.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                if t.external {
                    continue;
                }
                let iou = t.last.iou(b);
                if iou >= IOU_THRESHOLD {
                    pairs.push((iou, bi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut box_taken = vec![false; boxes.len()];
        let mut track_taken = vec![false; self.tracks.len()];
        for (_, bi, ti) in pairs {
            if box_taken[bi] || track_taken[ti] {
                continue;
            }
            (box_taken[bi], track_taken[ti]) = (true, true);
            let t = &mut self.tracks[ti];
            (t.last, t.last_seen, t.mtd) = (boxes[bi].1, now, Some(boxes[bi].0));
        }
        for (bi, &(mtd, b)) in boxes.iter().enumerate() {
            if box_taken[bi] {
                continue;
            }
            if self.tracks.len() >= self.config.max_objects {
                out.dropped += 1;
                continue;
            }
            let id = self.own_id();
            self.tracks.push(Track {
                id,
                last: b,
                last_seen: now,
                external: false,
                mtd: Some(mtd),
            });
        }
    }

    /// The next id the element numbers an object with, one no live track uses.
    fn own_id(&mut self) -> u64 {
        while self.tracks.iter().any(|t| t.id == self.next_own) {
            self.next_own = self.next_own.wrapping_add(1).max(1);
        }
        let id = self.next_own;
        self.next_own = self.next_own.wrapping_add(1).max(1);
        id
    }
}

/// Whether `b` is another place than `last`: no overlap, and centres farther apart than the
/// larger side of either box.
fn jumped(last: &BoxF, b: &BoxF) -> bool {
    let ((x0, y0), (x1, y1)) = (last.centre(), b.centre());
    let reach = last.w.max(last.h).max(b.w).max(b.h);
    last.iou(b) == 0.0 && (x1 - x0).hypot(y1 - y0) > reach
}
