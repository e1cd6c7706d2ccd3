//! Boxes as the element uses them: checked against the frame, compared by overlap, and the
//! square each clip of an object is cropped from.

use crate::preprocess::Square;

use super::Detection;

/// A box in frame pixels, inside the frame, at least [`MIN_SIDE`] pixels wide and high.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxF {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Boxes narrower or lower than this (after clipping to the frame) are refused.
pub const MIN_SIDE: f64 = 2.0;

/// How much larger than the object's box (its longer side) the square crop is: context around
/// the object, as the per-person protocols crop (AVA-style boxes with a margin).
pub const ENLARGE: f64 = 1.25;

/// Why a box is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Width or height zero or negative.
    Empty,
    /// Nothing of it (or less than [`MIN_SIDE`] pixels) lies inside the frame.
    Outside,
    /// Another box on the same frame carries the same tracking id.
    DuplicateId,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Empty => "a box of zero or negative width or height",
            Refusal::Outside => "a box outside the frame (or less than 2 pixels inside it)",
            Refusal::DuplicateId => "two boxes on one frame with the same tracking id",
        }
    }
}

impl BoxF {
    /// The detection's box clipped to a `width` × `height` frame.
    pub fn clipped(d: &Detection, width: u32, height: u32) -> Result<BoxF, Refusal> {
        if d.w <= 0 || d.h <= 0 {
            return Err(Refusal::Empty);
        }
        let (x0, y0) = (f64::from(d.x), f64::from(d.y));
        let (x1, y1) = (x0 + f64::from(d.w), y0 + f64::from(d.h));
        let (cx0, cy0) = (x0.max(0.0), y0.max(0.0));
        let (cx1, cy1) = (x1.min(f64::from(width)), y1.min(f64::from(height)));
        if cx1 - cx0 < MIN_SIDE || cy1 - cy0 < MIN_SIDE {
            return Err(Refusal::Outside);
        }
        Ok(BoxF {
            x: cx0,
            y: cy0,
            w: cx1 - cx0,
            h: cy1 - cy0,
        })
    }

    pub fn centre(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Intersection over union (0 for disjoint boxes).
    pub fn iou(&self, o: &BoxF) -> f64 {
        let iw = (self.x + self.w).min(o.x + o.w) - self.x.max(o.x);
        let ih = (self.y + self.h).min(o.y + o.h) - self.y.max(o.y);
        if iw <= 0.0 || ih <= 0.0 {
            return 0.0;
        }
        let inter = iw * ih;
        inter / (self.w * self.h + o.w * o.h - inter)
    }

    /// The box in whole pixels (x, y, w, h), as messages and metadata carry it.
    pub fn pixels(&self) -> (i32, i32, i32, i32) {
        let r = |v: f64| v.round() as i32;
        (r(self.x), r(self.y), r(self.w), r(self.h))
    }
}

/// The square a clip of the object in `b` is cropped from on a `width` × `height` frame: centred
/// on the box, its side the box's longer side times [`ENLARGE`] (at most the frame's shorter
/// side), moved inside the frame where it would cross an edge.
pub fn crop_square(b: &BoxF, width: u32, height: u32) -> Square {
    let short = width.min(height).max(1);
    let side = ((b.w.max(b.h) * ENLARGE).round() as u32).clamp(1, short);
    let (cx, cy) = b.centre();
    let place = |centre: f64, len: u32| {
        let start = (centre - f64::from(side) / 2.0).round();
        start.clamp(0.0, f64::from(len - side)) as u32
    };
    Square {
        x: place(cx, width),
        y: place(cy, height),
        side,
    }
}
