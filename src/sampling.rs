//! Clip sampling (docs/design.md "Clip sampling").
//!
//! Clips are cut from a sequence of *model frames*. Clip k takes model frames
//! `k·clip_stride + i·frame_stride`, i = 0..clip_length−1. Only frames some clip needs are kept
//! (and, by the element, converted at all); overlapping clips share the same `Arc`ed frames, so a
//! frame is preprocessed once however many clips use it.
//!
//! By frame count (no sampling rate, the default) model frame n is decoded frame n, counted from 0
//! since the last reset. By time ([`ClipSampler::with_rate`]: the model's `clip.fps` or the
//! element's `clip-fps`) model frame m is the sampling instant `t_m = t0 + m / rate` (t0: PTS of the
//! first decoded frame since the reset) and takes the decoded frame nearest to it by PTS: the first
//! decoded frame j whose `PTS + duration / 2` is not before `t_m` ([`TimeGrid`]). With durations
//! equal to the gaps between PTS (what decoders give) that is exactly the nearest frame, ties going
//! to the earlier one; a source slower than the rate gives a frame to several instants.

use std::collections::VecDeque;
use std::sync::Arc;

/// How clips are cut from the frame sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    pub clip_length: u32,
    pub frame_stride: u32,
    pub clip_stride: u32,
}

impl Sampling {
    // Zero lengths and strides count as 1 here too, as in `ClipSampler::new`: `Sampling` is a
    // public struct, so its methods must not divide by zero or underflow on any value.
    fn length(&self) -> u64 {
        u64::from(self.clip_length.max(1))
    }

    fn stride(&self) -> u64 {
        u64::from(self.frame_stride.max(1))
    }

    fn step(&self) -> u64 {
        u64::from(self.clip_stride.max(1))
    }

    fn span(&self) -> u64 {
        (self.length() - 1) * self.stride()
    }

    /// Index of the first frame of clip `k`.
    pub fn clip_start(&self, k: u64) -> u64 {
        k.saturating_mul(self.step())
    }

    /// Index of the last frame of clip `k`.
    pub fn clip_end(&self, k: u64) -> u64 {
        self.clip_start(k).saturating_add(self.span())
    }

    /// Frame indices of clip `k`, in order.
    pub fn clip_frames(&self, k: u64) -> impl Iterator<Item = u64> {
        let (start, fs) = (self.clip_start(k), self.stride());
        (0..self.length()).map(move |i| start.saturating_add(i * fs))
    }

    /// Decoded frames a stream needs for one clip: at end of stream the first clip is classified
    /// once it has at least half of its sampled frames (`ClipSampler::finish`).
    pub fn min_frames(&self) -> u64 {
        (self.length().div_ceil(2) - 1) * self.stride() + 1
    }

    /// The clips that contain frame `n`, as a range of clip indices to test.
    fn candidate_clips(&self, n: u64) -> std::ops::RangeInclusive<u64> {
        let cs = self.step();
        let first = n.saturating_sub(self.span()).div_ceil(cs);
        first..=n / cs
    }

    /// The clips that sample frame `n`, in order.
    pub fn clips_sampling(&self, n: u64) -> impl Iterator<Item = u64> + '_ {
        let (span, fs) = (self.span(), self.stride());
        self.candidate_clips(n).filter(move |&k| {
            let offset = n - self.clip_start(k);
            offset <= span && offset.is_multiple_of(fs)
        })
    }

    /// Whether any clip samples frame `n`: some clip k of the candidates with
    /// k·clip-stride ≡ n (mod frame-stride). Solved directly (the solutions k form one residue
    /// class modulo frame-stride / gcd), so the cost does not grow with the clip span.
    pub fn is_sampled(&self, n: u64) -> bool {
        let (cs, fs) = (self.step(), self.stride());
        let candidates = self.candidate_clips(n);
        let (first, last) = (*candidates.start(), *candidates.end());
        if first > last {
            return false;
        }
        let g = gcd(cs, fs);
        if !n.is_multiple_of(g) {
            return false;
        }
        let period = fs / g;
        // k ≡ (n/g)·(cs/g)⁻¹ (mod period)
        let k0 = mul_mod(
            (n / g) % period,
            inverse_mod((cs / g) % period, period),
            period,
        );
        let k = first + (k0 + period - first % period) % period;
        k <= last
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

/// The inverse of `a` modulo `m` (`a` and `m` coprime; 0 when `m` is 1).
fn inverse_mod(a: u64, m: u64) -> u64 {
    let (mut r0, mut r1) = (i128::from(m), i128::from(a));
    let (mut t0, mut t1) = (0i128, 1i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    t0.rem_euclid(i128::from(m)) as u64
}

/// Highest sampling rate (frames per second) sampling by time accepts.
pub const MAX_RATE: u32 = 1000;

/// A sampling rate in frames per second, `num / den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    /// A rate of `num / den` frames per second; `None` unless both are positive.
    pub fn new(num: u32, den: u32) -> Option<Self> {
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    /// Parse "25", "29.97" or "30000/1001": a positive rate of at most [`MAX_RATE`] frames per
    /// second with at most 6 decimals.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let rate = if let Some((n, d)) = text.split_once('/') {
            Self::new(n.trim().parse().ok()?, d.trim().parse().ok()?)?
        } else {
            let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
            if whole.is_empty() && frac.is_empty()
                || frac.len() > 6
                || !whole
                    .bytes()
                    .chain(frac.bytes())
                    .all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let den = 10u64.pow(frac.len() as u32);
            let num = whole
                .parse::<u64>()
                .ok()
                .or(whole.is_empty().then_some(0))?
                .checked_mul(den)?
                .checked_add(frac.parse::<u64>().unwrap_or(0))?;
            let g = gcd(num, den).max(1);
            Self::new(u32::try_from(num / g).ok()?, u32::try_from(den / g).ok()?)?
        };
        rate.within_limit().then_some(rate)
    }

    /// Whether the rate is at most [`MAX_RATE`] frames per second.
    pub fn within_limit(&self) -> bool {
        u64::from(self.num) <= u64::from(MAX_RATE) * u64::from(self.den)
    }

    /// Frames per second as a decimal (for messages).
    pub fn as_f64(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Nanoseconds from the first sampling instant to instant `m` (rounded down).
    pub fn offset(&self, m: u64) -> u64 {
        let ns = u128::from(m) * 1_000_000_000 * u128::from(self.den) / u128::from(self.num);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Sampling by time: which model frames (sampling instants) each decoded frame takes.
///
/// Decoded frame j has an effective PTS: its PTS, raised to the previous frame's when it goes
/// backwards, or the previous frame's PTS + duration when it has none (0 for a first frame without
/// one). It *reaches* up to `PTS + duration / 2` and takes every instant not yet taken up to
/// there. Instants after the last frame's reach are not covered (at end of stream they count as
/// missing frames of their clip).
#[derive(Clone, Copy, Debug)]
pub struct TimeGrid {
    rate: Rate,
    /// Effective PTS of the first decoded frame.
    t0: Option<u64>,
    /// Effective PTS and end (PTS + duration) of the last decoded frame.
    last: Option<(u64, u64)>,
    /// Instants taken so far: instants 0..covered have a frame.
    covered: u64,
}

impl TimeGrid {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            t0: None,
            last: None,
            covered: 0,
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Instants that have a frame (model frames 0..covered).
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Time of instant `m` (ns); `None` before the first frame.
    pub fn instant(&self, m: u64) -> Option<u64> {
        self.t0.map(|t0| t0.saturating_add(self.rate.offset(m)))
    }

    fn effective(&self, timing: FrameTiming) -> (u64, u64) {
        let pts = match (timing.pts, self.last) {
            (Some(pts), Some((prev, _))) => pts.max(prev),
            (Some(pts), None) => pts,
            (None, Some((_, end))) => end,
            (None, None) => 0,
        };
        let duration = timing.duration.unwrap_or(0);
        (pts, duration)
    }

    /// The first instant after time `t` (ns): the smallest m with t0 + offset(m) > t.
    fn first_after(&self, t0: u64, t: u64) -> u64 {
        let Some(after) = t.checked_sub(t0) else {
            return 0;
        };
        let (num, den) = (u128::from(self.rate.num), u128::from(self.rate.den));
        // offset(m) = ⌊m·1e9·den / num⌋ ≤ after ⇔ m·1e9·den < (after + 1)·num.
        let end = ((u128::from(after) + 1) * num).div_ceil(1_000_000_000 * den);
        u64::try_from(end).unwrap_or(u64::MAX)
    }

    /// The instants a frame with `timing` would take, without taking them. Instants from
    /// `covered()` to the start of the range are skipped: they lie more than [`MAX_REACH`] before
    /// the frame (a gap in the stream) and get no frame.
    pub fn peek(&self, timing: FrameTiming) -> std::ops::Range<u64> {
        let (pts, duration) = self.effective(timing);
        let reach = pts.saturating_add((duration / 2).min(MAX_REACH));
        let t0 = self.t0.unwrap_or(pts);
        let end = self.first_after(t0, reach).max(self.covered);
        let start = pts
            .checked_sub(MAX_REACH + 1)
            .map_or(0, |before| self.first_after(t0, before))
            .clamp(self.covered, end);
        start..end
    }

    /// Account for the next decoded frame; returns the instants it takes.
    pub fn take(&mut self, timing: FrameTiming) -> std::ops::Range<u64> {
        let range = self.peek(timing);
        let (pts, duration) = self.effective(timing);
        self.t0.get_or_insert(pts);
        self.last = Some((pts, pts.saturating_add(duration)));
        self.covered = range.end;
        range
    }
}

/// How far (ns) a decoded frame reaches in sampling by time: instants more than this after its
/// PTS are left to later frames, instants more than this before it get no frame. Bounds the work
/// one frame can cause whatever its duration or the gap before it.
pub const MAX_REACH: u64 = 5_000_000_000;

/// Timing of one frame (nanoseconds; `None` when the buffer had none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameTiming {
    pub pts: Option<u64>,
    pub duration: Option<u64>,
}

/// A complete clip, ready for inference.
#[derive(Debug)]
pub struct Clip<F> {
    pub index: u64,
    pub frames: Vec<Arc<F>>,
    /// PTS of the first sampled frame.
    pub timestamp: Option<u64>,
    /// From `timestamp` to the end (PTS + duration) of the last sampled frame.
    pub duration: Option<u64>,
    /// How many frames were repeated to complete it at end of stream.
    pub padded: u32,
}

struct Kept<F> {
    index: u64,
    frame: Arc<F>,
    timing: FrameTiming,
}

/// Keeps the frames that pending clips still need and cuts clips as they complete.
pub struct ClipSampler<F> {
    sampling: Sampling,
    /// Decoded frames pushed since the last reset.
    next_index: u64,
    /// Sampling by time; `None`: model frame n is decoded frame n.
    grid: Option<TimeGrid>,
    next_clip: u64,
    kept: VecDeque<Kept<F>>,
}

impl<F> ClipSampler<F> {
    /// A sampler by frame count; zero lengths or strides are taken as 1.
    pub fn new(sampling: Sampling) -> Self {
        Self::with_rate(sampling, None)
    }

    /// A sampler by time at `rate` (by frame count when `None`); zero lengths or strides are
    /// taken as 1.
    pub fn with_rate(sampling: Sampling, rate: Option<Rate>) -> Self {
        Self {
            sampling: Sampling {
                clip_length: sampling.clip_length.max(1),
                frame_stride: sampling.frame_stride.max(1),
                clip_stride: sampling.clip_stride.max(1),
            },
            next_index: 0,
            grid: rate.map(TimeGrid::new),
            next_clip: 0,
            kept: VecDeque::new(),
        }
    }

    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// The sampling rate when sampling by time.
    pub fn rate(&self) -> Option<Rate> {
        self.grid.map(|g| g.rate())
    }

    /// Forget every frame and start counting from 0 again (stream start, flush, caps change).
    pub fn reset(&mut self) {
        self.next_index = 0;
        self.next_clip = 0;
        self.kept.clear();
        if let Some(grid) = &mut self.grid {
            *grid = TimeGrid::new(grid.rate());
        }
    }

    /// Index the next pushed decoded frame will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Model frames that have a frame so far (decoded frames when sampling by frame count).
    pub fn covered(&self) -> u64 {
        self.grid.map_or(self.next_index, |g| g.covered())
    }

    /// Whether the next frame is sampled (by frame count), i.e. whether the caller must
    /// preprocess it. Sampling by time needs the frame's timing: use [`Self::wants`].
    pub fn wants_next(&self) -> bool {
        self.wants(FrameTiming::default())
    }

    /// Whether the next frame, with `timing`, is sampled, i.e. whether the caller must
    /// preprocess it.
    pub fn wants(&self, timing: FrameTiming) -> bool {
        match &self.grid {
            None => self.sampling.is_sampled(self.next_index),
            Some(grid) => grid.peek(timing).any(|m| self.sampling.is_sampled(m)),
        }
    }

    /// The model frames the next decoded frame, with `timing`, would give (one by frame count;
    /// none, one or several by time).
    pub fn peek(&self, timing: FrameTiming) -> std::ops::Range<u64> {
        match &self.grid {
            None => self.next_index..self.next_index + 1,
            Some(grid) => grid.peek(timing),
        }
    }

    /// Frames held at the moment, one per model frame (for tests and memory accounting).
    pub fn kept_frames(&self) -> usize {
        self.kept.len()
    }

    /// Account for the next decoded frame; `frame` must be `Some` when `wants(timing)` was true
    /// (a `None` there is ignored). Returns the clips this frame completes, oldest first.
    pub fn push(&mut self, frame: Option<F>, timing: FrameTiming) -> Vec<Clip<F>> {
        let n = self.next_index;
        self.next_index += 1;
        let before = self.covered();
        let taken = match &mut self.grid {
            None => n..n + 1,
            Some(grid) => grid.take(timing),
        };
        // Instants skipped over a gap have no frame: clips starting there are skipped at once.
        let skipped = before..taken.start;
        if let Some(frame) = frame {
            let frame = Arc::new(frame);
            for m in taken.clone().filter(|&m| self.sampling.is_sampled(m)) {
                self.kept.push_back(Kept {
                    index: m,
                    frame: Arc::clone(&frame),
                    timing,
                });
            }
        }
        let covered = self.covered();
        let mut clips = Vec::new();
        while self.sampling.clip_end(self.next_clip) < covered {
            if skipped.contains(&self.sampling.clip_start(self.next_clip)) {
                self.next_clip = taken.start.div_ceil(self.sampling.step());
                continue;
            }
            if let Some(clip) = self.cut(self.next_clip, covered - 1) {
                clips.push(clip);
            }
            self.next_clip += 1;
        }
        self.evict();
        clips
    }

    /// End of stream: clips already started are completed by repeating their last frame when they
    /// have at least half of their frames, else dropped. The sampler is reset afterwards.
    pub fn finish(&mut self) -> Vec<Clip<F>> {
        let mut clips = Vec::new();
        let covered = self.covered();
        if covered > 0 {
            let last = covered - 1;
            let mut k = self.next_clip;
            while self.sampling.clip_start(k) <= last {
                if let Some(clip) = self.cut(k, last) {
                    clips.push(clip);
                }
                k += 1;
            }
        }
        self.reset();
        clips
    }

    /// Build clip `k` from the kept frames up to index `last`, padding with its last frame when at
    /// least half are there.
    fn cut(&self, k: u64, last: u64) -> Option<Clip<F>> {
        let want = self.sampling.clip_length;
        // Count before allocating: a clip with fewer than half its frames is dropped, so the
        // allocation below is bounded by twice the frames seen, whatever clip-length is.
        let have = self
            .sampling
            .clip_frames(k)
            .take_while(|&i| i <= last)
            .count() as u64;
        if have == 0 || 2 * have < u64::from(want) {
            return None;
        }
        let mut frames = Vec::with_capacity(want as usize);
        let mut first_timing = None;
        let mut last_timing = FrameTiming::default();
        for idx in self.sampling.clip_frames(k).take_while(|&i| i <= last) {
            let kept = self.kept.iter().find(|f| f.index == idx)?;
            first_timing.get_or_insert(kept.timing);
            last_timing = kept.timing;
            frames.push(Arc::clone(&kept.frame));
        }
        let filler = Arc::clone(frames.last()?);
        frames.resize(want as usize, filler);
        let timestamp = first_timing.and_then(|t| t.pts);
        let end = last_timing
            .pts
            .map(|pts| pts.saturating_add(last_timing.duration.unwrap_or(0)));
        Some(Clip {
            index: k,
            frames,
            timestamp,
            duration: timestamp.zip(end).map(|(s, e)| e.saturating_sub(s)),
            padded: want - have as u32,
        })
    }

    /// Drop frames before the first frame of the oldest clip not yet cut.
    fn evict(&mut self) {
        let keep_from = self.sampling.clip_start(self.next_clip);
        while self.kept.front().is_some_and(|f| f.index < keep_from) {
            self.kept.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(clip_length: u32, frame_stride: u32, clip_stride: u32) -> Sampling {
        Sampling {
            clip_length,
            frame_stride,
            clip_stride,
        }
    }

    #[test]
    fn min_frames_is_the_shortest_stream_giving_a_clip() {
        for (l, fs) in [(1, 1), (2, 1), (4, 2), (5, 3), (8, 8), (64, 1), (7, 0)] {
            let sampling = s(l, fs, 1000);
            let clips_of = |frames: u64| {
                let mut sampler = ClipSampler::new(sampling);
                let mut clips = 0;
                for n in 0..frames {
                    let frame = sampler.wants_next().then_some(n);
                    clips += sampler.push(frame, timing(n)).len();
                }
                clips + sampler.finish().len()
            };
            let min = sampling.min_frames();
            assert_eq!((clips_of(min), clips_of(min - 1)), (1, 0), "{sampling:?}");
        }
    }

    fn timing(n: u64) -> FrameTiming {
        FrameTiming {
            pts: Some(1000 + n * 40),
            duration: Some(40),
        }
    }

    /// Push `count` frames whose payload is their index; collect clips as (index, frame ids).
    fn run(sampler: &mut ClipSampler<u64>, count: u64) -> Vec<(u64, Vec<u64>)> {
        let mut out = Vec::new();
        for _ in 0..count {
            let n = sampler.next_index();
            let frame = sampler.wants_next().then_some(n);
            for clip in sampler.push(frame, timing(n)) {
                out.push((clip.index, clip.frames.iter().map(|f| **f).collect()));
            }
        }
        out
    }

    #[test]
    fn non_overlapping_clips_with_frame_stride() {
        // 4 frames every 2nd frame; next clip starts 8 frames later.
        let mut sampler = ClipSampler::new(s(4, 2, 8));
        let clips = run(&mut sampler, 20);
        assert_eq!(clips, vec![(0, vec![0, 2, 4, 6]), (1, vec![8, 10, 12, 14])]);
        assert!(!s(4, 2, 8).is_sampled(7));
        assert!(s(4, 2, 8).is_sampled(14));
    }

    #[test]
    fn overlapping_sliding_clips_share_frames() {
        let mut sampler = ClipSampler::new(s(4, 1, 2));
        let clips = run(&mut sampler, 9);
        assert_eq!(
            clips,
            vec![
                (0, vec![0, 1, 2, 3]),
                (1, vec![2, 3, 4, 5]),
                (2, vec![4, 5, 6, 7])
            ]
        );
        // Frames 6..=8 are still kept for clips 3 and beyond, nothing older.
        assert_eq!(sampler.kept_frames(), 3);
    }

    #[test]
    fn gaps_between_clips_are_not_kept() {
        // clip-stride larger than the clip span: frames 4..9 belong to no clip.
        let sampling = s(2, 2, 10);
        let sampled: Vec<u64> = (0..22).filter(|&n| sampling.is_sampled(n)).collect();
        assert_eq!(sampled, vec![0, 2, 10, 12, 20]);
        let mut sampler = ClipSampler::new(sampling);
        let clips = run(&mut sampler, 13);
        assert_eq!(clips, vec![(0, vec![0, 2]), (1, vec![10, 12])]);
        assert_eq!(sampler.kept_frames(), 0);
    }

    #[test]
    fn timestamps_and_duration() {
        let mut sampler = ClipSampler::new(s(3, 2, 6));
        let mut clips = Vec::new();
        for n in 0..12u64 {
            let frame = sampler.wants_next().then_some(n);
            clips.extend(sampler.push(frame, timing(n)));
        }
        assert_eq!(clips.len(), 2);
        // clip 1: frames 6, 8, 10 → starts at PTS(6), ends at PTS(10) + 40.
        assert_eq!(clips[1].timestamp, Some(1000 + 6 * 40));
        assert_eq!(clips[1].duration, Some(4 * 40 + 40));
        assert_eq!(clips[1].padded, 0);
    }

    #[test]
    fn missing_pts_gives_no_timestamp() {
        let mut sampler = ClipSampler::new(s(2, 1, 2));
        let clips: Vec<_> = (0..2u64)
            .flat_map(|n| sampler.push(Some(n), FrameTiming::default()))
            .collect();
        assert_eq!(clips.len(), 1);
        assert_eq!((clips[0].timestamp, clips[0].duration), (None, None));
    }

    #[test]
    fn eos_pads_clips_with_at_least_half_their_frames() {
        // 8 frames per clip, stride 1; 13 frames: clip 0 complete, clip 1 has 5 of 8 → padded.
        let mut sampler = ClipSampler::new(s(8, 1, 8));
        let clips = run(&mut sampler, 13);
        assert_eq!(clips.len(), 1);
        let tail = sampler.finish();
        assert_eq!(tail.len(), 1);
        let ids: Vec<u64> = tail[0].frames.iter().map(|f| **f).collect();
        assert_eq!(ids, vec![8, 9, 10, 11, 12, 12, 12, 12]);
        assert_eq!(tail[0].padded, 3);
        // Duration runs to the end of the last real frame.
        assert_eq!(tail[0].duration, Some(4 * 40 + 40));
        assert_eq!(sampler.next_index(), 0);
    }

    #[test]
    fn eos_drops_clips_with_less_than_half() {
        let mut sampler = ClipSampler::new(s(8, 1, 8));
        run(&mut sampler, 11); // clip 1 has 3 of 8
        assert!(sampler.finish().is_empty());
        // Exactly half is kept.
        let mut sampler = ClipSampler::new(s(8, 1, 8));
        run(&mut sampler, 4);
        assert_eq!(sampler.finish().len(), 1);
        // Nothing pushed: nothing to finish.
        let mut sampler: ClipSampler<u64> = ClipSampler::new(s(8, 1, 8));
        assert!(sampler.finish().is_empty());
    }

    #[test]
    fn eos_with_overlapping_clips_finishes_each_started_clip() {
        // length 4, stride 1, clip-stride 1; 5 frames: clips 0,1 complete; 2 (3 of 4), 3 (2 of 4)
        // padded; 4 (1 of 4) dropped.
        let mut sampler = ClipSampler::new(s(4, 1, 1));
        let clips = run(&mut sampler, 5);
        assert_eq!(clips.len(), 2);
        let tail: Vec<(u64, Vec<u64>)> = sampler
            .finish()
            .into_iter()
            .map(|c| (c.index, c.frames.iter().map(|f| **f).collect()))
            .collect();
        assert_eq!(tail, vec![(2, vec![2, 3, 4, 4]), (3, vec![3, 4, 4, 4])]);
    }

    #[test]
    fn reset_starts_over() {
        let mut sampler = ClipSampler::new(s(2, 1, 2));
        run(&mut sampler, 3);
        sampler.reset();
        assert_eq!((sampler.next_index(), sampler.kept_frames()), (0, 0));
        let clips = run(&mut sampler, 2);
        assert_eq!(clips, vec![(0, vec![0, 1])]);
    }

    /// Clips as (index, frame ids).
    type Cut = Vec<(u64, Vec<u64>)>;

    /// Push decoded frames with the given PTS (ms) and durations (ms); the payload is the frame
    /// index. Returns the complete clips as (index, frame ids) and the clips finish() adds.
    fn run_timed(sampler: &mut ClipSampler<u64>, frames: &[(u64, u64)]) -> (Cut, Cut) {
        let ids = |c: Clip<u64>| (c.index, c.frames.iter().map(|f| **f).collect());
        let mut out = Vec::new();
        for (n, &(pts, duration)) in frames.iter().enumerate() {
            let t = FrameTiming {
                pts: Some(pts * 1_000_000),
                duration: Some(duration * 1_000_000),
            };
            let frame = sampler.wants(t).then_some(n as u64);
            out.extend(sampler.push(frame, t).into_iter().map(ids));
        }
        let tail = sampler.finish().into_iter().map(ids).collect();
        (out, tail)
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("25"), Rate::new(25, 1));
        assert_eq!(Rate::parse(" 29.97 "), Rate::new(2997, 100));
        assert_eq!(Rate::parse("30000/1001"), Rate::new(30000, 1001));
        assert_eq!(Rate::parse("12.50"), Rate::new(25, 2));
        assert_eq!(Rate::parse(".5"), Rate::new(1, 2));
        assert_eq!(Rate::parse("1000"), Rate::new(1000, 1));
        for bad in [
            "",
            "0",
            "-25",
            "25fps",
            "1e3",
            "1001",
            "2/0",
            "0/1",
            "1.2345678",
            ".",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
        assert_eq!(Rate::new(25, 1).unwrap().offset(3), 120_000_000);
        // 30000/1001: instant 1 at 33.366 666… ms, rounded down.
        assert_eq!(Rate::new(30000, 1001).unwrap().offset(1), 33_366_666);
        assert_eq!(Rate::new(30000, 1001).unwrap().to_string(), "30000/1001");
    }

    #[test]
    fn by_time_a_faster_source_gives_the_nearest_frames() {
        // 50 fps source (20 ms), 25 fps model: every second frame. Clips of 4 instants, stride 1.
        let frames: Vec<(u64, u64)> = (0..17).map(|n| (n * 20, 20)).collect();
        let mut sampler = ClipSampler::with_rate(s(4, 1, 4), Rate::new(25, 1));
        let (clips, tail) = run_timed(&mut sampler, &frames);
        assert_eq!(clips, vec![(0, vec![0, 2, 4, 6]), (1, vec![8, 10, 12, 14])]);
        // Frame 16 (320 ms) takes instant 8; clip 2 has 1 of 4: dropped.
        assert!(tail.is_empty());
        // Frames between the instants are not asked for.
        let t = |ms: u64| FrameTiming {
            pts: Some(ms * 1_000_000),
            duration: Some(20_000_000),
        };
        let mut sampler: ClipSampler<u64> = ClipSampler::with_rate(s(4, 1, 4), Rate::new(25, 1));
        assert!(sampler.wants(t(0)));
        sampler.push(Some(0), t(0));
        assert!(!sampler.wants(t(20)));
        sampler.push(None, t(20));
        assert!(sampler.wants(t(40)));
    }

    #[test]
    fn by_time_30_fps_rounds_to_the_nearest_frame() {
        // 30 fps: frame j at j·33⅓ ms; instant m at 40·m ms is nearest frame round(1.2·m).
        let frames: Vec<(u64, u64)> = (0..12)
            .map(|n| (n * 100 / 3, (n * 100 + 100) / 3 - n * 100 / 3))
            .collect();
        let mut sampler = ClipSampler::with_rate(s(4, 1, 4), Rate::new(25, 1));
        let (clips, _) = run_timed(&mut sampler, &frames);
        assert_eq!(clips, vec![(0, vec![0, 1, 2, 4]), (1, vec![5, 6, 7, 8])]);
        // frame-stride 2 and overlapping clips: instants k·2 + 2·i.
        let mut sampler = ClipSampler::with_rate(s(2, 2, 2), Rate::new(25, 1));
        let (clips, _) = run_timed(&mut sampler, &frames);
        // instants 0,2 → frames 0,2 (2.4); 2,4 → 2,5 (4.8); 4,6 → 5,7 (7.2); 6,8 → 7,10 (9.6)
        assert_eq!(
            clips,
            vec![
                (0, vec![0, 2]),
                (1, vec![2, 5]),
                (2, vec![5, 7]),
                (3, vec![7, 10])
            ]
        );
    }

    #[test]
    fn by_time_a_slower_source_repeats_frames() {
        // 12.5 fps (80 ms) at 25: each frame takes two instants; an instant halfway between two
        // frames (40 ms after frame 0, 40 before frame 1) goes to the earlier one.
        let frames: Vec<(u64, u64)> = (0..4).map(|n| (n * 80, 80)).collect();
        let mut sampler = ClipSampler::with_rate(s(4, 1, 4), Rate::new(25, 1));
        let (clips, tail) = run_timed(&mut sampler, &frames);
        assert_eq!(clips, vec![(0, vec![0, 0, 1, 1]), (1, vec![2, 2, 3, 3])]);
        assert!(tail.is_empty());
        assert_eq!(sampler.next_index(), 0, "finish resets");
    }

    #[test]
    fn by_time_first_frame_sets_the_grid_and_eos_pads() {
        // PTS starting at 10 s; instants every 40 ms from there. 5 frames at 25 fps: clip 0
        // complete, clip 1 (instants 4..7) has 1 of 4 → dropped; with clips of 3: clip 1 has
        // instants 3, 4 (2 of 3) → padded.
        let frames: Vec<(u64, u64)> = (0..5).map(|n| (10_000 + n * 40, 40)).collect();
        let mut sampler = ClipSampler::with_rate(s(3, 1, 3), Rate::new(25, 1));
        let (clips, tail) = run_timed(&mut sampler, &frames);
        assert_eq!(clips, vec![(0, vec![0, 1, 2])]);
        assert_eq!(tail, vec![(1, vec![3, 4, 4])]);
    }

    #[test]
    fn by_time_a_gap_skips_instants_and_bounds_work() {
        // Two frames an hour apart: the instants more than MAX_REACH (5 s) before the second get
        // no frame, so the clips they belong to never come out; the second frame takes the 126
        // instants from 5 s before its PTS to its reach (20 ms after), i.e. clips 44938..=44999.
        let hour = 3_600_000u64;
        let mut sampler = ClipSampler::with_rate(s(2, 1, 2), Rate::new(25, 1));
        let (clips, tail) = run_timed(&mut sampler, &[(0, 40), (hour, 40)]);
        let indices: Vec<u64> = clips.iter().map(|c| c.0).collect();
        assert_eq!(indices, (44938..=44999).collect::<Vec<_>>());
        assert!(clips.iter().all(|c| c.1 == [1, 1]));
        // Instant 90000 (the frame's own) is left for clip 45000, which has 1 of 2: kept at EOS.
        assert_eq!(tail, vec![(45000, vec![1, 1])]);
        // A frame lasting for ever reaches only 5 s.
        let mut sampler: ClipSampler<u64> = ClipSampler::with_rate(s(2, 1, 2), Rate::new(25, 1));
        let t = |ms: u64, d: u64| FrameTiming {
            pts: Some(ms * 1_000_000),
            duration: Some(d.saturating_mul(1_000_000)),
        };
        sampler.push(Some(0), t(0, 40));
        let clips = sampler.push(Some(1), t(hour, u64::MAX));
        assert_eq!(sampler.covered(), (hour + 5_000) / 40 + 1);
        assert_eq!(clips.len(), 45062 - 44938 + 1);
        assert_eq!(sampler.kept_frames(), 0);
    }

    // -----------------------------------------------------------------------------------------
    // Properties: the sampler against a direct transcription of docs/design.md "Clip sampling".

    mod properties {
        use super::super::*;
        use super::timing;
        use proptest::prelude::*;

        /// Clip `k` of docs/design.md: frames `k·cs + i·fs`, i = 0..L−1.
        fn design_clip(s: Sampling, k: u64) -> Vec<u64> {
            (0..u64::from(s.clip_length))
                .map(|i| k * u64::from(s.clip_stride) + i * u64::from(s.frame_stride))
                .collect()
        }

        fn span(s: Sampling) -> u64 {
            u64::from(s.clip_length - 1) * u64::from(s.frame_stride)
        }

        /// Whether some clip samples frame `n`, by brute force over every clip that starts by `n`.
        fn design_sampled(s: Sampling, n: u64) -> bool {
            (0..=n / u64::from(s.clip_stride)).any(|k| design_clip(s, k).contains(&n))
        }

        /// The clips complete after `count` frames: those whose last frame was pushed, in order.
        fn design_complete(s: Sampling, count: u64) -> Vec<(u64, Vec<u64>)> {
            (0..)
                .map(|k| (k, design_clip(s, k)))
                .take_while(|(_, f)| *f.last().unwrap() < count)
                .collect()
        }

        /// What `finish()` must return after `count` frames: every clip that started but is not
        /// complete, padded with its last real frame when it has at least half its frames.
        fn design_tail(s: Sampling, count: u64) -> Vec<(u64, Vec<u64>, u32)> {
            if count == 0 {
                return Vec::new();
            }
            let first_open = design_complete(s, count).len() as u64;
            (first_open..)
                .take_while(|&k| k * u64::from(s.clip_stride) < count)
                .filter_map(|k| {
                    let mut frames: Vec<u64> = design_clip(s, k)
                        .into_iter()
                        .filter(|&n| n < count)
                        .collect();
                    let have = frames.len();
                    if 2 * have < s.clip_length as usize {
                        return None;
                    }
                    let last = *frames.last().unwrap();
                    frames.resize(s.clip_length as usize, last);
                    Some((k, frames, s.clip_length - have as u32))
                })
                .collect()
        }

        fn sampling() -> impl Strategy<Value = Sampling> {
            (1u32..=10, 1u32..=5, 1u32..=40).prop_map(|(clip_length, frame_stride, clip_stride)| {
                Sampling {
                    clip_length,
                    frame_stride,
                    clip_stride,
                }
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Clips are exactly docs/design.md's, complete as soon as their last frame arrives, in
            /// order; only sampled frames are asked for; the frames held are exactly the sampled
            /// frames from the start of the oldest open clip on (so never more than the clip span);
            /// finish() completes or drops the open clips by the half rule and resets.
            #[test]
            fn clips_memory_and_finish_follow_the_design(s in sampling(), count in 0u64..160) {
                let mut sampler = ClipSampler::new(s);
                let mut got = Vec::new();
                for n in 0..count {
                    prop_assert_eq!(sampler.next_index(), n);
                    let wanted = sampler.wants_next();
                    prop_assert_eq!(wanted, design_sampled(s, n), "frame {}", n);
                    prop_assert_eq!(wanted, s.is_sampled(n));
                    for clip in sampler.push(wanted.then_some(n), timing(n)) {
                        let ids: Vec<u64> = clip.frames.iter().map(|f| **f).collect();
                        // A clip comes out with the frame that completes it.
                        prop_assert_eq!(*ids.last().unwrap(), n);
                        prop_assert_eq!(clip.padded, 0);
                        prop_assert_eq!(clip.timestamp, timing(ids[0]).pts);
                        prop_assert_eq!(clip.duration, Some(n * 40 + 40 - ids[0] * 40));
                        got.push((clip.index, ids));
                    }
                    // Memory: exactly the sampled frames of the open clips.
                    let open = (0..).find(|&k| design_clip(s, k).last().unwrap() > &n).unwrap();
                    let from = open * u64::from(s.clip_stride);
                    let held = (from..=n).filter(|&m| design_sampled(s, m)).count();
                    prop_assert_eq!(sampler.kept_frames(), held, "after frame {}", n);
                    prop_assert!(sampler.kept_frames() as u64 <= span(s));
                }
                prop_assert_eq!(&got, &design_complete(s, count));

                let tail: Vec<(u64, Vec<u64>, u32)> = sampler
                    .finish()
                    .into_iter()
                    .map(|c| (c.index, c.frames.iter().map(|f| **f).collect(), c.padded))
                    .collect();
                prop_assert_eq!(&tail, &design_tail(s, count));
                prop_assert_eq!((sampler.next_index(), sampler.kept_frames()), (0, 0));
                // After finish the sampler counts from 0 again.
                if s.clip_length == 1 {
                    prop_assert_eq!(sampler.push(Some(7), timing(0)).len(), 1);
                }
            }

            /// Sampling by time against a direct transcription of docs/design.md: instant
            /// m = t0 + m/rate takes the decoded frame nearest to it by PTS (ties: the earlier),
            /// as long as it is not after the last frame's PTS + half its duration, decoded frames
            /// lasting until the next one's PTS. Only frames some instant takes are asked for;
            /// clips come out as soon as their last instant has its frame, with that frame's timing.
            #[test]
            fn by_time_clips_take_the_nearest_frames(
                s in sampling(),
                rate in prop_oneof![Just((25u32, 1u32)), Just((30000, 1001)), (1u32..=120, 1u32..=4)],
                start in prop_oneof![Just(0u64), 0u64..10_000_000_000],
                gaps in proptest::collection::vec(1u64..120_000_000, 1..120),
                last_duration in 0u64..120_000_000,
            ) {
                let rate = Rate::new(rate.0, rate.1).unwrap();
                let mut pts = vec![start];
                for g in &gaps[..gaps.len() - 1] {
                    pts.push(pts.last().unwrap() + g);
                }
                let duration = |j: usize| pts.get(j + 1).map_or(last_duration, |next| next - pts[j]);
                let end = pts.last().unwrap() + last_duration / 2;
                // The frame of every instant up to the last frame's reach, by brute force.
                let nearest: Vec<usize> = (0..)
                    .map(|m| start + rate.offset(m))
                    .take_while(|&t| t <= end)
                    .map(|t| {
                        (0..pts.len())
                            .min_by_key(|&j| (pts[j].abs_diff(t), j))
                            .unwrap()
                    })
                    .collect();
                let covered = nearest.len() as u64;
                let frame_of = |m: u64| nearest[m as usize] as u64;
                let want: Vec<(u64, Vec<u64>)> = design_complete(s, covered)
                    .into_iter()
                    .map(|(k, f)| (k, f.into_iter().map(frame_of).collect()))
                    .collect();
                let want_tail: Vec<(u64, Vec<u64>, u32)> = design_tail(s, covered)
                    .into_iter()
                    .map(|(k, f, p)| (k, f.into_iter().map(frame_of).collect(), p))
                    .collect();

                let mut sampler = ClipSampler::with_rate(s, Some(rate));
                let mut got = Vec::new();
                for j in 0..pts.len() {
                    let t = FrameTiming { pts: Some(pts[j]), duration: Some(duration(j)) };
                    let needed = nearest.iter().enumerate().any(|(m, &f)| {
                        f == j && design_sampled(s, m as u64)
                    });
                    prop_assert_eq!(sampler.wants(t), needed, "frame {}", j);
                    for clip in sampler.push(needed.then_some(j as u64), t) {
                        let ids: Vec<u64> = clip.frames.iter().map(|f| **f).collect();
                        prop_assert_eq!(clip.timestamp, Some(pts[ids[0] as usize]));
                        let last = *ids.last().unwrap() as usize;
                        prop_assert_eq!(
                            clip.duration,
                            Some(pts[last] + duration(last) - pts[ids[0] as usize])
                        );
                        got.push((clip.index, ids));
                    }
                }
                prop_assert_eq!(sampler.covered(), covered);
                prop_assert_eq!(&got, &want);
                let tail: Vec<(u64, Vec<u64>, u32)> = sampler
                    .finish()
                    .into_iter()
                    .map(|c| (c.index, c.frames.iter().map(|f| **f).collect(), c.padded))
                    .collect();
                prop_assert_eq!(&tail, &want_tail);
            }

            /// Frames without timestamps, `Some` for frames nobody samples, and `None` for frames
            /// that are sampled never panic; a clip missing a frame is never emitted.
            #[test]
            fn careless_callers_never_panic(
                s in sampling(),
                pushes in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..120),
            ) {
                let mut sampler = ClipSampler::new(s);
                let mut missing = Vec::new();
                for (n, (give, timed)) in pushes.iter().enumerate() {
                    let n = n as u64;
                    if !give && sampler.wants_next() {
                        missing.push(n);
                    }
                    let t = if *timed { timing(n) } else { FrameTiming::default() };
                    for clip in sampler.push(give.then_some(n), t) {
                        prop_assert!(clip.frames.iter().all(|f| !missing.contains(f)));
                    }
                    prop_assert!(sampler.kept_frames() as u64 <= span(s));
                }
                for clip in sampler.finish() {
                    prop_assert!(clip.frames.iter().all(|f| !missing.contains(f)));
                    prop_assert_eq!(clip.frames.len(), s.clip_length as usize);
                }
            }

            /// The closed-form `is_sampled` agrees with testing every clip that could hold the
            /// frame, for strides and frame numbers well beyond the ones above.
            #[test]
            fn is_sampled_matches_a_scan_of_the_candidate_clips(
                clip_length in 1u32..=200,
                frame_stride in 1u32..=300,
                clip_stride in 1u32..=500,
                n in 0u64..2_000_000,
            ) {
                let s = Sampling { clip_length, frame_stride, clip_stride };
                let (cs, fs) = (u64::from(clip_stride), u64::from(frame_stride));
                let span = u64::from(clip_length - 1) * fs;
                let scan = (n.saturating_sub(span).div_ceil(cs)..=n / cs)
                    .any(|k| (n - k * cs).is_multiple_of(fs));
                prop_assert_eq!(s.is_sampled(n), scan);
            }

            /// Timestamps anywhere in the u64 range (GStreamer's are) never overflow.
            #[test]
            fn any_timestamps(
                s in sampling(),
                times in proptest::collection::vec((any::<u64>(), any::<Option<u64>>()), 0..60),
            ) {
                let mut sampler = ClipSampler::new(s);
                for (n, (pts, duration)) in times.iter().enumerate() {
                    let t = FrameTiming { pts: Some(*pts), duration: *duration };
                    for clip in sampler.push(sampler.wants_next().then_some(n as u64), t) {
                        prop_assert!(clip.timestamp.is_some());
                    }
                }
                sampler.finish();
            }

            /// Any settings, zeros and u32::MAX included: no overflow, no huge allocation, and the
            /// sampler holds at most one frame per pushed frame.
            #[test]
            fn extreme_settings_never_panic(
                clip_length in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
                frame_stride in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
                clip_stride in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()],
                count in 0u64..40,
            ) {
                let raw = Sampling { clip_length, frame_stride, clip_stride };
                let mut sampler = ClipSampler::new(raw);
                let s = sampler.sampling();
                prop_assert_eq!(
                    (s.clip_length, s.frame_stride, s.clip_stride),
                    (clip_length.max(1), frame_stride.max(1), clip_stride.max(1))
                );
                // The raw settings answer like the normalised ones.
                for n in [0, 1, 2, u64::from(u32::MAX), u64::MAX / 2] {
                    prop_assert_eq!(raw.is_sampled(n), s.is_sampled(n));
                }
                let mut clips = 0usize;
                for n in 0..count {
                    let frame = sampler.wants_next().then_some(n);
                    clips += sampler.push(frame, timing(n)).len();
                    prop_assert!(sampler.kept_frames() as u64 <= n + 1);
                }
                clips += sampler.finish().len();
                prop_assert!(clips as u64 <= count);
            }
        }
    }
}
