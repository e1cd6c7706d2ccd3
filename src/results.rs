//! Scores → results: crop averaging, softmax, smoothing over clips, top-k, the stream summary, and
//! the GStreamer structure shared by the element message and the buffer meta.

use std::collections::VecDeque;

use crate::config::OutputKind;

/// Structure name of the per-clip element message (and of the fields in the meta).
pub const MESSAGE_NAME: &str = "nonlocalclassify";
/// Structure name of the end-of-stream summary message.
pub const SUMMARY_NAME: &str = "nonlocalclassify-summary";
/// `GST_CLOCK_TIME_NONE` as stored in guint64 fields.
pub const TIME_NONE: u64 = u64::MAX;

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Class scores of one clip from the model outputs of its crops: logits go through softmax per
/// crop, then the crops are averaged (the reference multi-crop protocol averages probabilities).
pub fn clip_scores(crops: &[Vec<f32>], kind: OutputKind) -> Vec<f64> {
    let Some(first) = crops.first() else {
        return Vec::new();
    };
    let mut sum = vec![0f64; first.len()];
    for crop in crops {
        let probs = match kind {
            OutputKind::Logits => softmax(crop),
            OutputKind::Probabilities => crop.clone(),
        };
        for (s, p) in sum.iter_mut().zip(probs) {
            *s += f64::from(p);
        }
    }
    let n = crops.len() as f64;
    sum.into_iter().map(|s| s / n).collect()
}

/// Running mean of the last `window` clips' scores.
#[derive(Debug)]
pub struct Smoother {
    window: usize,
    recent: VecDeque<Vec<f64>>,
}

impl Smoother {
    pub fn new(window: u32) -> Self {
        Self {
            window: window.max(1) as usize,
            recent: VecDeque::new(),
        }
    }

    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Add one clip's scores; returns the mean over the window.
    pub fn push(&mut self, scores: Vec<f64>) -> Vec<f64> {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(scores);
        mean(self.recent.iter())
    }
}

fn mean<'a>(rows: impl Iterator<Item = &'a Vec<f64>>) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    let mut n = 0usize;
    for row in rows {
        if sum.is_empty() {
            sum = vec![0.0; row.len()];
        }
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
        n += 1;
    }
    sum.iter_mut().for_each(|s| *s /= n.max(1) as f64);
    sum
}

/// The `k` best (index, score) pairs, best first; ties keep model order.
pub fn top_k(scores: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.into_iter().map(|i| (i, scores[i])).collect()
}

/// The object a result is about (`regions=objects`): its id and its box on the clip's last
/// sampled frame, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub id: u64,
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl ObjectRef {
    /// Write `object-id` and `object-box` (x, y, width, height).
    pub fn write_fields(&self, s: &mut gst::StructureRef) {
        s.set("object-id", self.id);
        s.set(
            "object-box",
            gst::Array::new([self.x, self.y, self.w, self.h]),
        );
    }

    /// Read them back; `None` when the structure has no `object-id` (frame mode).
    pub fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        let id = s.get::<u64>("object-id").ok()?;
        let b: Vec<i32> = s
            .get::<gst::Array>("object-box")
            .ok()?
            .iter()
            .filter_map(|v| v.get::<i32>().ok())
            .collect();
        let [x, y, w, h] = b[..] else { return None };
        Some(Self { id, x, y, w, h })
    }
}

/// One classification result: a clip's (smoothed) top-k, or the summary of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipResult {
    /// PTS of the clip's first frame (ns), `None` when unknown.
    pub timestamp: Option<u64>,
    pub stream_time: Option<u64>,
    pub running_time: Option<u64>,
    pub duration: Option<u64>,
    pub clip_index: u64,
    /// Best first.
    pub labels: Vec<String>,
    pub scores: Vec<f64>,
    /// Clips dropped so far in this stream.
    pub dropped: u64,
    /// From the clip's last frame arriving to its result (ns).
    pub latency: u64,
    /// The object classified (objects mode); `None` for the whole frame.
    pub object: Option<ObjectRef>,
}

impl ClipResult {
    /// Fill labels/scores from full score vector.
    pub fn ranked(scores: &[f64], labels: &[String], k: usize) -> (Vec<String>, Vec<f64>) {
        top_k(scores, k)
            .into_iter()
            .map(|(i, s)| {
                let label = labels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("class-{i}"));
                (label, s)
            })
            .unzip()
    }

    pub fn label(&self) -> Option<&str> {
        self.labels.first().map(String::as_str)
    }

    pub fn score(&self) -> Option<f64> {
        self.scores.first().copied()
    }

    /// Write the docs/design.md fields into a structure (message or meta).
    pub fn write_fields(&self, s: &mut gst::StructureRef) {
        let t = |v: Option<u64>| v.unwrap_or(TIME_NONE);
        s.set("timestamp", t(self.timestamp));
        s.set("stream-time", t(self.stream_time));
        s.set("running-time", t(self.running_time));
        s.set("duration", t(self.duration));
        s.set("clip-index", self.clip_index);
        s.set(
            "labels",
            gst::Array::new(self.labels.iter().map(|l| l.as_str())),
        );
        s.set("scores", gst::Array::new(self.scores.iter().copied()));
        s.set("label", self.label().unwrap_or(""));
        s.set("score", self.score().unwrap_or(0.0));
        s.set("dropped", self.dropped);
        s.set("latency", self.latency);
        if let Some(object) = &self.object {
            object.write_fields(s);
        }
    }

    pub fn to_structure(&self, name: &str) -> gst::Structure {
        let mut s = gst::Structure::new_empty(name);
        self.write_fields(&mut s);
        s
    }

    /// Read the fields back (the typed accessor of messages and meta).
    pub fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        let time = |f: &str| s.get::<u64>(f).ok().map(|v| (v != TIME_NONE).then_some(v));
        let labels = s
            .get::<gst::Array>("labels")
            .ok()?
            .iter()
            .map(|v| v.get::<String>().ok())
            .collect::<Option<Vec<_>>>()?;
        let scores = s
            .get::<gst::Array>("scores")
            .ok()?
            .iter()
            .map(|v| v.get::<f64>().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            timestamp: time("timestamp")?,
            stream_time: time("stream-time")?,
            running_time: time("running-time")?,
            duration: time("duration")?,
            clip_index: s.get("clip-index").ok()?,
            labels,
            scores,
            dropped: s.get("dropped").ok()?,
            latency: s.get("latency").ok()?,
            object: ObjectRef::from_structure(s),
        })
    }
}

/// Mean of every clip's scores over a stream: the file-level answer.
#[derive(Debug, Default)]
pub struct Summary {
    sum: Vec<f64>,
    clips: u64,
    first_timestamp: Option<u64>,
    /// Stream and running time of the earliest clip (the summary's own times).
    first_times: (Option<u64>, Option<u64>),
    end: Option<u64>,
}

impl Summary {
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    pub fn clips(&self) -> u64 {
        self.clips
    }

    /// Add a clip's scores; `times` are its stream and running time.
    pub fn add(
        &mut self,
        scores: &[f64],
        timestamp: Option<u64>,
        duration: Option<u64>,
        times: (Option<u64>, Option<u64>),
    ) {
        if self.sum.len() != scores.len() {
            self.sum = vec![0.0; scores.len()];
        }
        for (s, v) in self.sum.iter_mut().zip(scores) {
            *s += v;
        }
        self.clips += 1;
        if self.clips == 1 {
            self.first_times = times;
        }
        if let Some(ts) = timestamp {
            if self.first_timestamp.is_none_or(|f| ts < f) {
                self.first_times = times;
            }
            self.first_timestamp = Some(self.first_timestamp.map_or(ts, |f| f.min(ts)));
            let end = ts.saturating_add(duration.unwrap_or(0));
            self.end = Some(self.end.map_or(end, |e| e.max(end)));
        }
    }

    /// Mean scores over the stream's clips (empty when there was none).
    pub fn mean(&self) -> Vec<f64> {
        let n = self.clips.max(1) as f64;
        self.sum.iter().map(|s| s / n).collect()
    }

    /// The `nonlocalclassify-summary` structure: the result fields plus `clips`.
    pub fn to_structure(&self, labels: &[String], k: usize, dropped: u64) -> gst::Structure {
        let (labels, scores) = ClipResult::ranked(&self.mean(), labels, k);
        let result = ClipResult {
            timestamp: self.first_timestamp,
            stream_time: self.first_times.0,
            running_time: self.first_times.1,
            duration: self
                .first_timestamp
                .zip(self.end)
                .map(|(s, e)| e.saturating_sub(s)),
            clip_index: self.clips.saturating_sub(1),
            labels,
            scores,
            dropped,
            latency: 0,
            object: None,
        };
        let mut s = result.to_structure(SUMMARY_NAME);
        s.set("clips", self.clips);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_matches_hand_values() {
        let p = softmax(&[0.0, 1.0_f32.ln(), 3.0_f32.ln()]);
        // e^0 : e^0 : 3 → 1/5, 1/5, 3/5
        assert!(
            (p[0] - 0.2).abs() < 1e-6 && (p[2] - 0.6).abs() < 1e-6,
            "{p:?}"
        );
        let big = softmax(&[1000.0, 1000.0]);
        assert!((big[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn crops_are_averaged_after_softmax() {
        let crops = vec![vec![0.0, 0.0], vec![2.0_f32.ln(), 0.0]];
        let s = clip_scores(&crops, OutputKind::Logits);
        // (1/2 + 2/3) / 2 and (1/2 + 1/3) / 2
        assert!((s[0] - 7.0 / 12.0).abs() < 1e-6 && (s[1] - 5.0 / 12.0).abs() < 1e-6);
        let s = clip_scores(&[vec![0.2, 0.8], vec![0.4, 0.6]], OutputKind::Probabilities);
        assert!((s[0] - 0.3).abs() < 1e-6 && (s[1] - 0.7).abs() < 1e-6);
    }

    #[test]
    fn smoothing_window_slides() {
        let mut sm = Smoother::new(2);
        assert_eq!(sm.push(vec![1.0, 0.0]), vec![1.0, 0.0]);
        assert_eq!(sm.push(vec![0.0, 1.0]), vec![0.5, 0.5]);
        assert_eq!(sm.push(vec![0.0, 0.0]), vec![0.0, 0.5]);
        sm.reset();
        assert_eq!(sm.push(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn top_k_orders_best_first_and_truncates() {
        assert_eq!(
            top_k(&[0.1, 0.5, 0.3, 0.5], 3),
            vec![(1, 0.5), (3, 0.5), (2, 0.3)]
        );
        assert_eq!(top_k(&[0.1], 5).len(), 1);
    }

    #[test]
    fn structure_round_trip_and_none_times() {
        gst::init().unwrap();
        let r = ClipResult {
            timestamp: Some(5),
            stream_time: None,
            running_time: Some(7),
            duration: Some(9),
            clip_index: 3,
            labels: vec!["a".into(), "b".into()],
            scores: vec![0.75, 0.25],
            dropped: 2,
            latency: 11,
            object: None,
        };
        let s = r.to_structure(MESSAGE_NAME);
        assert_eq!(s.get::<u64>("stream-time").unwrap(), u64::MAX);
        assert_eq!(s.get::<&str>("label").unwrap(), "a");
        assert_eq!(s.get::<f64>("score").unwrap(), 0.75);
        assert_eq!(ClipResult::from_structure(&s), Some(r.clone()));
        assert!(!s.has_field("object-id"), "frame mode names no object");
        let object = ObjectRef {
            id: 7,
            x: 10,
            y: -2,
            w: 30,
            h: 60,
        };
        let r = ClipResult {
            object: Some(object),
            ..r
        };
        let s = r.to_structure(MESSAGE_NAME);
        assert_eq!(s.get::<u64>("object-id").unwrap(), 7);
        assert_eq!(ClipResult::from_structure(&s), Some(r));
    }

    #[test]
    fn summary_averages_every_clip() {
        gst::init().unwrap();
        let mut sum = Summary::default();
        // Clips may be published out of timestamp order: the summary's times are the earliest's.
        sum.add(
            &[0.0, 0.5, 0.5],
            Some(200),
            Some(50),
            (Some(1200), Some(2200)),
        );
        sum.add(
            &[1.0, 0.0, 0.0],
            Some(100),
            Some(50),
            (Some(1100), Some(2100)),
        );
        assert_eq!(sum.mean(), vec![0.5, 0.25, 0.25]);
        let labels: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        let s = sum.to_structure(&labels, 2, 1);
        assert_eq!(s.name(), SUMMARY_NAME);
        assert_eq!(s.get::<u64>("clips").unwrap(), 2);
        assert_eq!(s.get::<&str>("label").unwrap(), "x");
        assert_eq!(s.get::<u64>("duration").unwrap(), 150);
        assert_eq!(s.get::<u64>("dropped").unwrap(), 1);
        assert_eq!(s.get::<u64>("timestamp").unwrap(), 100);
        assert_eq!(s.get::<u64>("stream-time").unwrap(), 1100);
        assert_eq!(s.get::<u64>("running-time").unwrap(), 2100);
        let r = ClipResult::from_structure(&s).unwrap();
        assert_eq!(r.labels, vec!["x", "y"]);
    }

    // -----------------------------------------------------------------------------------------
    // Properties: whatever a model returns (NaN, infinities, huge values) and whatever timestamps
    // a stream carries, results are computed without a panic and keep their invariants.

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn score() -> impl Strategy<Value = f32> {
            prop_oneof![
                -20f32..20.0,
                Just(f32::NAN),
                Just(f32::INFINITY),
                Just(f32::NEG_INFINITY),
                Just(f32::MAX),
                Just(-f32::MAX),
                any::<f32>(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// Softmax of finite logits: probabilities in [0, 1] summing to 1, order kept.
            #[test]
            fn softmax_of_finite_logits(logits in proptest::collection::vec(-1e30f32..1e30, 1..50)) {
                let p = softmax(&logits);
                prop_assert_eq!(p.len(), logits.len());
                prop_assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{:?}", p);
                let sum: f32 = p.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-4, "{}", sum);
                for (i, j) in (0..logits.len()).zip(1..logits.len()) {
                    if logits[i] < logits[j] {
                        prop_assert!(p[i] <= p[j]);
                    }
                }
            }

            /// Any scores (NaN and infinities included), any crop count, any k: no panic, top-k
            /// is a prefix of a total order, labels and scores line up.
            #[test]
            fn any_scores_rank_without_panic(
                crops in proptest::collection::vec(proptest::collection::vec(score(), 3), 1..4),
                logits in any::<bool>(),
                k in 0usize..6,
                window in 0u32..4,
            ) {
                let kind = if logits { OutputKind::Logits } else { OutputKind::Probabilities };
                let scores = clip_scores(&crops, kind);
                prop_assert_eq!(scores.len(), 3);
                let mut smoother = Smoother::new(window);
                let smoothed = smoother.push(scores.clone());
                let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
                let (names, ranked) = ClipResult::ranked(&smoothed, &labels, k);
                prop_assert_eq!(names.len(), k.min(3));
                prop_assert_eq!(ranked.len(), names.len());
                for w in ranked.windows(2) {
                    prop_assert!(w[0].total_cmp(&w[1]).is_ge(), "{:?}", ranked);
                }
            }

            /// Clip timestamps anywhere in the u64 range, in any order: the summary spans from
            /// the earliest clip to the latest end without overflowing.
            #[test]
            fn summary_of_any_timestamps(
                clips in proptest::collection::vec(
                    (proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>())),
                    0..20,
                ),
            ) {
                gst::init().unwrap();
                let mut summary = Summary::default();
                for (ts, duration) in &clips {
                    summary.add(&[0.5, 0.5], *ts, *duration, (*ts, *ts));
                }
                prop_assert_eq!(summary.clips(), clips.len() as u64);
                let s = summary.to_structure(&["x".to_string(), "y".to_string()], 1, 0);
                let first = clips.iter().filter_map(|c| c.0).min();
                let timestamp = s.get::<u64>("timestamp").unwrap();
                prop_assert_eq!(timestamp, first.unwrap_or(TIME_NONE));
                // The summary's stream time is the earliest clip's (here equal to its timestamp).
                prop_assert_eq!(s.get::<u64>("stream-time").unwrap(), first.unwrap_or(TIME_NONE));
                if first.is_some() {
                    let end = clips
                        .iter()
                        .filter_map(|(t, d)| t.map(|t| t.saturating_add(d.unwrap_or(0))))
                        .max()
                        .unwrap();
                    prop_assert_eq!(s.get::<u64>("duration").unwrap(), end - timestamp);
                }
            }
        }
    }
}
