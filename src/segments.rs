//! Action segments (docs/design.md "Segments"): consecutive clip results merged into
//! "label from … to …" spans, with a hysteresis so that a label leading for a clip or two does not
//! split a segment.
//!
//! Every clip result (in clip order) gives its best class. A clip whose best class is the open
//! segment's, or leads it by no more than `margin`, extends the segment. A clip whose best class
//! leads the segment's by more than `margin` is a *challenger*; once `clips` consecutive
//! challengers agree on their class, the open segment closes and a segment of that class opens with
//! them. Challengers that do not get there (another class comes first, or the segment's class comes
//! back, or the stream ends) are absorbed into the open segment.
//!
//! Times: a clip's centre is its timestamp + duration / 2. A segment closed by a change ends, and
//! the next one starts, halfway between the centres of the last clip of one and the first clip of
//! the other; the first segment starts at its first clip's timestamp and the last one ends at its
//! last clip's end (timestamp + duration). Each time is given as PTS, stream time and running time,
//! each computed from the clips' own values in that time base.

use crate::results::TIME_NONE;

/// Structure name of the element message posted when a segment closes (and at end of stream).
pub const SEGMENT_NAME: &str = "nonlocalclassify-segment";

/// How long and by how much a new label must lead before the segment changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hysteresis {
    /// Consecutive clips a new label must lead for (at least 1).
    pub clips: u32,
    /// How much higher than the segment label's score the new label's score must be (≥ 0).
    pub margin: f64,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self {
            clips: 2,
            margin: 0.0,
        }
    }
}

/// A time in the three bases of the contract (ns); `None` where unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub pts: Option<u64>,
    pub stream: Option<u64>,
    pub running: Option<u64>,
}

impl Times {
    fn map2(a: Self, b: Self, f: impl Fn(u64, u64) -> u64) -> Self {
        let g = |x: Option<u64>, y: Option<u64>| x.zip(y).map(|(x, y)| f(x, y));
        Self {
            pts: g(a.pts, b.pts),
            stream: g(a.stream, b.stream),
            running: g(a.running, b.running),
        }
    }

    fn shifted(self, by: Option<u64>) -> Self {
        let by = by.unwrap_or(0);
        let f = |x: Option<u64>| x.map(|x| x.saturating_add(by));
        Self {
            pts: f(self.pts),
            stream: f(self.stream),
            running: f(self.running),
        }
    }

    fn midpoint(a: Self, b: Self) -> Self {
        Self::map2(a, b, |x, y| x / 2 + y / 2 + (x % 2 + y % 2) / 2)
    }
}

/// One clip's result as the segmenter reads it.
#[derive(Clone, Copy, Debug)]
pub struct ClipScores<'a> {
    pub clip_index: u64,
    /// Times of the clip's first frame.
    pub start: Times,
    pub duration: Option<u64>,
    /// Scores of every class (as reported: after smoothing).
    pub scores: &'a [f64],
}

impl ClipScores<'_> {
    fn centre(&self) -> Times {
        self.start.shifted(self.duration.map(|d| d / 2))
    }

    fn end(&self) -> Times {
        self.start.shifted(self.duration)
    }
}

/// A finished segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// 0 for the first segment of a stream.
    pub index: u64,
    pub class: usize,
    pub label: String,
    /// Mean over the segment's clips of its label's score.
    pub score: f64,
    pub clips: u64,
    pub first_clip: u64,
    pub last_clip: u64,
    pub start: Times,
    pub end: Times,
}

fn best_class(scores: &[f64]) -> Option<usize> {
    // The first of the highest scores, as top-k ranks them (NaN ranks above everything there, so
    // it does here too).
    (0..scores.len()).reduce(|best, i| {
        if scores[i].total_cmp(&scores[best]).is_gt() {
            i
        } else {
            best
        }
    })
}

/// The segment being built.
#[derive(Debug)]
struct Open {
    class: usize,
    score_sum: f64,
    clips: u64,
    first_clip: u64,
    last_clip: u64,
    start: Times,
    last_centre: Times,
    last_end: Times,
}

/// A clip that may start a new segment.
#[derive(Debug)]
struct Challenger {
    clip_index: u64,
    centre: Times,
    end: Times,
    /// Its score of the challenging class and of the open segment's class.
    score: f64,
    score_of_open: f64,
}

/// Merges one stream's clip results into segments.
#[derive(Debug)]
pub struct Segmenter {
    hysteresis: Hysteresis,
    labels: std::sync::Arc<Vec<String>>,
    open: Option<Open>,
    challenger_class: usize,
    challengers: Vec<Challenger>,
    next_index: u64,
    /// Every segment closed since the last reset, for the summary.
    closed: Vec<Segment>,
}

impl Segmenter {
    pub fn new(hysteresis: Hysteresis, labels: std::sync::Arc<Vec<String>>) -> Self {
        Self {
            hysteresis: Hysteresis {
                clips: hysteresis.clips.max(1),
                margin: if hysteresis.margin.is_finite() {
                    hysteresis.margin.max(0.0)
                } else {
                    0.0
                },
            },
            labels,
            open: None,
            challenger_class: 0,
            challengers: Vec::new(),
            next_index: 0,
            closed: Vec::new(),
        }
    }

    /// Forget the stream (flush, stream start).
    pub fn reset(&mut self) {
        self.open = None;
        self.challengers.clear();
        self.next_index = 0;
        self.closed.clear();
    }

    /// Every segment closed since the last reset, oldest first.
    pub fn segments(&self) -> &[Segment] {
        &self.closed
    }

    /// Add the next clip's result; returns the segment it closes, if any.
    pub fn push(&mut self, clip: ClipScores<'_>) -> Option<Segment> {
        let best = best_class(clip.scores)?;
        let score = |class: usize| clip.scores.get(class).copied().unwrap_or(0.0);
        let Some(open) = &mut self.open else {
            self.open = Some(Open {
                class: best,
                score_sum: score(best),
                clips: 1,
                first_clip: clip.clip_index,
                last_clip: clip.clip_index,
                start: clip.start,
                last_centre: clip.centre(),
                last_end: clip.end(),
            });
            return None;
        };
        let current = open.class;
        let leads = best != current && score(best) > score(current) + self.hysteresis.margin;
        if !leads || (!self.challengers.is_empty() && best != self.challenger_class) {
            self.absorb_challengers();
        }
        if !leads {
            self.extend(&clip, score(current));
            return None;
        }
        self.challenger_class = best;
        self.challengers.push(Challenger {
            clip_index: clip.clip_index,
            centre: clip.centre(),
            end: clip.end(),
            score: score(best),
            score_of_open: score(current),
        });
        if self.challengers.len() < self.hysteresis.clips as usize {
            return None;
        }
        // The challengers win: close the open segment where they start.
        let challengers = std::mem::take(&mut self.challengers);
        let open = self.open.take()?;
        let boundary = Times::midpoint(open.last_centre, challengers[0].centre);
        let closed = self.close(open, boundary);
        let last = challengers.last()?;
        self.open = Some(Open {
            class: best,
            score_sum: challengers.iter().map(|c| c.score).sum(),
            clips: challengers.len() as u64,
            first_clip: challengers[0].clip_index,
            last_clip: last.clip_index,
            start: boundary,
            last_centre: last.centre,
            last_end: last.end,
        });
        Some(closed)
    }

    /// End of stream: close the open segment (challengers that did not win are part of it).
    /// Returns it; the list of [`Self::segments`] stays until the next reset.
    pub fn finish(&mut self) -> Option<Segment> {
        self.absorb_challengers();
        let open = self.open.take()?;
        let end = open.last_end;
        Some(self.close(open, end))
    }

    fn extend(&mut self, clip: &ClipScores<'_>, score: f64) {
        if let Some(open) = &mut self.open {
            open.score_sum += score;
            open.clips += 1;
            open.last_clip = clip.clip_index;
            open.last_centre = clip.centre();
            open.last_end = clip.end();
        }
    }

    fn absorb_challengers(&mut self) {
        let Some(open) = &mut self.open else {
            self.challengers.clear();
            return;
        };
        for c in self.challengers.drain(..) {
            open.score_sum += c.score_of_open;
            open.clips += 1;
            open.last_clip = c.clip_index;
            open.last_centre = c.centre;
            open.last_end = c.end;
        }
    }

    fn close(&mut self, open: Open, end: Times) -> Segment {
        let segment = Segment {
            index: self.next_index,
            class: open.class,
            label: self
                .labels
                .get(open.class)
                .cloned()
                .unwrap_or_else(|| format!("class-{}", open.class)),
            score: open.score_sum / open.clips.max(1) as f64,
            clips: open.clips,
            first_clip: open.first_clip,
            last_clip: open.last_clip,
            start: open.start,
            end,
        };
        self.next_index += 1;
        self.closed.push(segment.clone());
        segment
    }
}

impl Segment {
    /// The `nonlocalclassify-segment` fields (docs/design.md "Segments").
    pub fn write_fields(&self, s: &mut gst::StructureRef) {
        let t = |v: Option<u64>| v.unwrap_or(TIME_NONE);
        s.set("segment-index", self.index);
        s.set("label", self.label.as_str());
        s.set("score", self.score);
        s.set("clips", self.clips);
        s.set("first-clip", self.first_clip);
        s.set("last-clip", self.last_clip);
        s.set("timestamp", t(self.start.pts));
        s.set(
            "duration",
            t(self
                .start
                .pts
                .zip(self.end.pts)
                .map(|(a, b)| b.saturating_sub(a))),
        );
        s.set("stream-time", t(self.start.stream));
        s.set("stream-time-end", t(self.end.stream));
        s.set("running-time", t(self.start.running));
        s.set("running-time-end", t(self.end.running));
    }

    pub fn to_structure(&self) -> gst::Structure {
        let mut s = gst::Structure::new_empty(SEGMENT_NAME);
        self.write_fields(&mut s);
        s
    }

    /// Read a segment back from a message (or an entry of the summary's `segments`).
    pub fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        let time = |f: &str| s.get::<u64>(f).ok().map(|v| (v != TIME_NONE).then_some(v));
        let pts = time("timestamp")?;
        let duration = time("duration")?;
        Some(Self {
            index: s.get("segment-index").ok()?,
            class: 0,
            label: s.get::<String>("label").ok()?,
            score: s.get("score").ok()?,
            clips: s.get("clips").ok()?,
            first_clip: s.get("first-clip").ok()?,
            last_clip: s.get("last-clip").ok()?,
            start: Times {
                pts,
                stream: time("stream-time")?,
                running: time("running-time")?,
            },
            end: Times {
                pts: pts.zip(duration).map(|(p, d)| p.saturating_add(d)),
                stream: time("stream-time-end")?,
                running: time("running-time-end")?,
            },
        })
    }
}

/// The summary's `segments` field: one structure per segment, as in the segment messages.
pub fn segments_array(segments: &[Segment]) -> gst::Array {
    gst::Array::new(segments.iter().map(|s| s.to_structure()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MS: u64 = 1_000_000;

    fn labels() -> Arc<Vec<String>> {
        Arc::new(["a", "b", "c"].iter().map(|s| s.to_string()).collect())
    }

    /// Clip k starts at k·100 ms (stream time 1 s later, running time the same), lasts 160 ms.
    fn clip(k: u64, scores: &[f64]) -> ClipScores<'_> {
        ClipScores {
            clip_index: k,
            start: Times {
                pts: Some(k * 100 * MS),
                stream: Some(1000 * MS + k * 100 * MS),
                running: Some(k * 100 * MS),
            },
            duration: Some(160 * MS),
            scores,
        }
    }

    fn one_hot(class: usize) -> [f64; 3] {
        let mut s = [0.1; 3];
        s[class] = 0.8;
        s
    }

    /// Run classes through a segmenter; (label, first clip, last clip, clips) of every segment.
    fn segments_of(classes: &[usize], h: Hysteresis) -> Vec<(String, u64, u64, u64)> {
        let mut seg = Segmenter::new(h, labels());
        let scores: Vec<[f64; 3]> = classes.iter().map(|&c| one_hot(c)).collect();
        let mut out = Vec::new();
        for (k, s) in scores.iter().enumerate() {
            out.extend(seg.push(clip(k as u64, s)));
        }
        out.extend(seg.finish());
        assert_eq!(
            seg.segments(),
            &out[..],
            "the summary lists what was posted"
        );
        out.into_iter()
            .map(|s| (s.label, s.first_clip, s.last_clip, s.clips))
            .collect()
    }

    fn h(clips: u32, margin: f64) -> Hysteresis {
        Hysteresis { clips, margin }
    }

    fn seg(label: &str, first: u64, last: u64) -> (String, u64, u64, u64) {
        (label.to_string(), first, last, last - first + 1)
    }

    #[test]
    fn without_hysteresis_runs_of_the_best_label() {
        assert_eq!(
            segments_of(&[0, 0, 1, 1, 1, 0], h(1, 0.0)),
            vec![seg("a", 0, 1), seg("b", 2, 4), seg("a", 5, 5)]
        );
        assert!(segments_of(&[], h(1, 0.0)).is_empty());
    }

    #[test]
    fn hysteresis_absorbs_short_leads() {
        // One clip of b between a's: part of the a segment with 2 clips of hysteresis.
        assert_eq!(
            segments_of(&[0, 0, 1, 0, 0], h(2, 0.0)),
            vec![seg("a", 0, 4)]
        );
        // b then c: neither leads twice in a row; then c twice: c from clip 3.
        assert_eq!(
            segments_of(&[0, 0, 1, 2, 2, 2], h(2, 0.0)),
            vec![seg("a", 0, 2), seg("c", 3, 5)]
        );
        // A challenger still short of the hysteresis at the end belongs to the open segment.
        assert_eq!(segments_of(&[0, 0, 1], h(2, 0.0)), vec![seg("a", 0, 2)]);
        assert_eq!(
            segments_of(&[0, 1, 1, 1, 0, 0, 0], h(3, 0.0)),
            vec![seg("a", 0, 0), seg("b", 1, 3), seg("a", 4, 6)]
        );
    }

    #[test]
    fn margin_keeps_close_calls_in_the_segment() {
        let mut seg = Segmenter::new(h(1, 0.1), labels());
        assert_eq!(seg.push(clip(0, &[0.6, 0.3, 0.1])), None);
        // b leads by 0.05: not enough.
        assert_eq!(seg.push(clip(1, &[0.45, 0.5, 0.05])), None);
        // b leads by 0.3: the segment changes.
        let closed = seg.push(clip(2, &[0.3, 0.6, 0.1])).unwrap();
        assert_eq!((closed.label.as_str(), closed.clips), ("a", 2));
        // Mean of a's score over its two clips.
        assert!((closed.score - (0.6 + 0.45) / 2.0).abs() < 1e-12);
        let last = seg.finish().unwrap();
        assert_eq!((last.label.as_str(), last.clips, last.index), ("b", 1, 1));
        assert!((last.score - 0.6).abs() < 1e-12);
        // Equal scores never lead (margin 0).
        let mut seg = Segmenter::new(h(1, 0.0), labels());
        seg.push(clip(0, &[0.5, 0.5, 0.0]));
        assert_eq!(seg.push(clip(1, &[0.4, 0.4, 0.2])), None);
    }

    #[test]
    fn absorbed_challengers_count_with_the_segment_label_score() {
        let mut seg = Segmenter::new(h(2, 0.0), labels());
        seg.push(clip(0, &[0.9, 0.1, 0.0]));
        seg.push(clip(1, &[0.2, 0.7, 0.1]));
        seg.push(clip(2, &[0.7, 0.2, 0.1]));
        let s = seg.finish().unwrap();
        assert_eq!(s.clips, 3);
        assert!(
            (s.score - (0.9 + 0.2 + 0.7) / 3.0).abs() < 1e-12,
            "{}",
            s.score
        );
    }

    #[test]
    fn times_are_clip_centres_halfway() {
        let mut seg = Segmenter::new(h(2, 0.0), labels());
        let (a, b) = (one_hot(0), one_hot(1));
        assert_eq!(seg.push(clip(0, &a)), None);
        assert_eq!(seg.push(clip(1, &a)), None);
        assert_eq!(seg.push(clip(2, &b)), None);
        let first = seg.push(clip(3, &b)).unwrap();
        // Clip 1's centre 180 ms, clip 2's 280 ms: the boundary at 230 ms.
        assert_eq!(first.start.pts, Some(0));
        assert_eq!(first.end.pts, Some(230 * MS));
        assert_eq!(first.end.stream, Some(1230 * MS));
        assert_eq!(first.end.running, Some(230 * MS));
        let last = seg.finish().unwrap();
        assert_eq!(last.start, first.end);
        // Clip 3 ends at 460 ms.
        assert_eq!(last.end.pts, Some(460 * MS));
        assert_eq!((last.first_clip, last.last_clip), (2, 3));
    }

    #[test]
    fn unknown_times_stay_unknown() {
        let mut seg = Segmenter::new(h(1, 0.0), labels());
        let a = one_hot(0);
        let mut c = clip(0, &a);
        c.start.stream = None;
        c.duration = None;
        seg.push(c);
        let s = seg.finish().unwrap();
        assert_eq!(s.start.stream, None);
        assert_eq!(s.end.stream, None);
        assert_eq!(s.end.pts, Some(0));
        // No scores at all: nothing to segment.
        assert_eq!(seg.push(clip(1, &[])), None);
        assert_eq!(seg.finish(), None);
    }

    #[test]
    fn structure_round_trip() {
        gst::init().unwrap();
        let mut seg = Segmenter::new(h(1, 0.0), labels());
        let (a, b) = (one_hot(0), one_hot(1));
        seg.push(clip(0, &a));
        let s = seg.push(clip(1, &b)).unwrap();
        let st = s.to_structure();
        assert_eq!(st.name(), SEGMENT_NAME);
        assert_eq!(st.get::<&str>("label").unwrap(), "a");
        assert_eq!(st.get::<u64>("duration").unwrap(), 130 * MS);
        let back = Segment::from_structure(&st).unwrap();
        assert_eq!(
            Segment {
                class: s.class,
                ..back
            },
            s
        );
        let array = segments_array(seg.segments());
        assert_eq!(array.len(), 1);
        let first = array
            .iter()
            .next()
            .unwrap()
            .get::<gst::Structure>()
            .unwrap();
        assert_eq!(Segment::from_structure(&first).unwrap().label, "a");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// Any scores and settings: segments cover every clip once, in order, back to back in
            /// time; neighbours have different labels; each segment's label leads for `clips`
            /// consecutive clips at its start (except the first); with a hysteresis of one clip and
            /// no margin, segments are exactly the runs of the best label.
            #[test]
            fn segments_partition_the_clips(
                rows in proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, 3), 0..60),
                clips in 1u32..4,
                margin in prop_oneof![Just(0.0), 0.0f64..0.5],
            ) {
                let hyst = Hysteresis { clips, margin };
                let mut seg = Segmenter::new(hyst, labels());
                let mut out = Vec::new();
                for (k, r) in rows.iter().enumerate() {
                    out.extend(seg.push(clip(k as u64, r)));
                }
                out.extend(seg.finish());
                prop_assert_eq!(out.iter().map(|s| s.clips).sum::<u64>(), rows.len() as u64);
                for (i, s) in out.iter().enumerate() {
                    prop_assert_eq!(s.index, i as u64);
                    prop_assert_eq!(s.clips, s.last_clip - s.first_clip + 1);
                    prop_assert!(s.start.pts <= s.end.pts);
                    prop_assert!((0.0..=1.0).contains(&s.score));
                    if i > 0 {
                        let prev = &out[i - 1];
                        prop_assert_eq!(s.first_clip, prev.last_clip + 1);
                        prop_assert_eq!(s.start, prev.end);
                        prop_assert_ne!(&s.label, &prev.label);
                        for k in s.first_clip..s.first_clip + u64::from(clips) {
                            let r = &rows[k as usize];
                            prop_assert_eq!(best_class(r), Some(s.class));
                            prop_assert!(r[s.class] > r[prev.class] + margin);
                        }
                    }
                }
                if clips == 1 && margin == 0.0 {
                    let mut runs: Vec<(usize, u64)> = Vec::new();
                    for r in &rows {
                        let b = best_class(r).unwrap();
                        match runs.last_mut() {
                            Some((c, n)) if *c == b => *n += 1,
                            _ => runs.push((b, 1)),
                        }
                    }
                    let got: Vec<(usize, u64)> = out.iter().map(|s| (s.class, s.clips)).collect();
                    prop_assert_eq!(got, runs);
                }
            }
        }
    }
}
