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
//!
//! Sampling by time's rates and grid are in `time`.

mod time;

use std::collections::VecDeque;
use std::sync::Arc;

pub use time::{Rate, TimeGrid, MAX_RATE, MAX_REACH};

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
mod tests;
