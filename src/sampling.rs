//! Clip sampling (DESIGN.md "Clip sampling").
//!
//! Frame index n counts decoded frames from 0 since the last reset. Clip k takes frames
//! `k·clip_stride + i·frame_stride`, i = 0..clip_length−1. Only frames some clip needs are kept
//! (and, by the element, converted at all); overlapping clips share the same `Arc`ed frames, so a
//! frame is preprocessed once however many clips use it.

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
    fn span(&self) -> u64 {
        u64::from(self.clip_length - 1) * u64::from(self.frame_stride)
    }

    /// Index of the first frame of clip `k`.
    pub fn clip_start(&self, k: u64) -> u64 {
        k * u64::from(self.clip_stride)
    }

    /// Index of the last frame of clip `k`.
    pub fn clip_end(&self, k: u64) -> u64 {
        self.clip_start(k) + self.span()
    }

    /// Frame indices of clip `k`, in order.
    pub fn clip_frames(&self, k: u64) -> impl Iterator<Item = u64> {
        let (start, fs) = (self.clip_start(k), u64::from(self.frame_stride));
        (0..u64::from(self.clip_length)).map(move |i| start + i * fs)
    }

    /// The clips that contain frame `n`, as a range of clip indices to test.
    fn candidate_clips(&self, n: u64) -> std::ops::RangeInclusive<u64> {
        let cs = u64::from(self.clip_stride);
        let first = n.saturating_sub(self.span()).div_ceil(cs);
        first..=n / cs
    }

    /// Whether any clip samples frame `n`.
    pub fn is_sampled(&self, n: u64) -> bool {
        let fs = u64::from(self.frame_stride);
        self.candidate_clips(n)
            .any(|k| (n - self.clip_start(k)).is_multiple_of(fs))
    }
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
    next_index: u64,
    next_clip: u64,
    kept: VecDeque<Kept<F>>,
}

impl<F> ClipSampler<F> {
    /// A sampler; zero lengths or strides are taken as 1.
    pub fn new(sampling: Sampling) -> Self {
        Self {
            sampling: Sampling {
                clip_length: sampling.clip_length.max(1),
                frame_stride: sampling.frame_stride.max(1),
                clip_stride: sampling.clip_stride.max(1),
            },
            next_index: 0,
            next_clip: 0,
            kept: VecDeque::new(),
        }
    }

    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Forget every frame and start counting from 0 again (stream start, flush, caps change).
    pub fn reset(&mut self) {
        self.next_index = 0;
        self.next_clip = 0;
        self.kept.clear();
    }

    /// Index the next pushed frame will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Whether the next frame is sampled, i.e. whether the caller must preprocess it.
    pub fn wants_next(&self) -> bool {
        self.sampling.is_sampled(self.next_index)
    }

    /// Frames held at the moment (for tests and memory accounting).
    pub fn kept_frames(&self) -> usize {
        self.kept.len()
    }

    /// Account for the next decoded frame; `frame` must be `Some` when `wants_next()` was true
    /// (a `None` there is ignored). Returns the clips this frame completes, oldest first.
    pub fn push(&mut self, frame: Option<F>, timing: FrameTiming) -> Vec<Clip<F>> {
        let n = self.next_index;
        self.next_index += 1;
        if let Some(frame) = frame.filter(|_| self.sampling.is_sampled(n)) {
            self.kept.push_back(Kept {
                index: n,
                frame: Arc::new(frame),
                timing,
            });
        }
        let mut clips = Vec::new();
        while self.sampling.clip_end(self.next_clip) <= n {
            if let Some(clip) = self.cut(self.next_clip, n) {
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
        if self.next_index > 0 {
            let last = self.next_index - 1;
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
        let mut frames = Vec::with_capacity(self.sampling.clip_length as usize);
        let mut first_timing = None;
        let mut last_timing = FrameTiming::default();
        for idx in self.sampling.clip_frames(k).take_while(|&i| i <= last) {
            let kept = self.kept.iter().find(|f| f.index == idx)?;
            first_timing.get_or_insert(kept.timing);
            last_timing = kept.timing;
            frames.push(Arc::clone(&kept.frame));
        }
        let have = frames.len() as u32;
        let want = self.sampling.clip_length;
        if have == 0 || 2 * have < want {
            return None;
        }
        let filler = Arc::clone(frames.last()?);
        frames.resize(want as usize, filler);
        let timestamp = first_timing.and_then(|t| t.pts);
        let end = last_timing
            .pts
            .map(|pts| pts + last_timing.duration.unwrap_or(0));
        Some(Clip {
            index: k,
            frames,
            timestamp,
            duration: timestamp.zip(end).map(|(s, e)| e.saturating_sub(s)),
            padded: want - have,
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
}
