//! Where a video's clips start: the clip-stride that spreads `--clips N` clips over a video of F
//! frames, and the clips the element then makes (the formula is in main.rs's documentation and
//! `--help`). The clip arithmetic itself is the element's (`gstnonlocal::sampling::Sampling`).

use gstnonlocal::sampling::Sampling;

/// The clips the element cuts, as it resolved them from the model and its properties (its
/// `model-info`): frames per clip, the step between them, and the clip-stride it takes when none
/// is set.
#[derive(Clone, Copy, Debug)]
pub struct ClipGeometry {
    sampling: Sampling,
}

/// One video's clips: its frame count (`None` when unknown or not needed), the clip-stride the
/// element gets (0: its own default) and the clips that makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub frames: Option<u64>,
    pub clip_stride: u32,
    pub expected: Option<u64>,
}

impl ClipGeometry {
    /// `default_stride` is the element's clip-stride when the property is 0.
    pub fn new(clip_length: u32, frame_stride: u32, default_stride: u32) -> Self {
        Self {
            sampling: Sampling {
                clip_length: clip_length.max(1),
                frame_stride: frame_stride.max(1),
                clip_stride: default_stride.max(1),
            },
        }
    }

    /// Frames from the first of a clip to its last.
    fn span(&self) -> u64 {
        self.sampling.clip_end(0) + 1
    }

    /// Fewest frames that give one clip.
    pub fn min_frames(&self) -> u64 {
        self.sampling.min_frames()
    }

    /// The last frame at which the element still starts a clip (one that has at least half of
    /// its frames), for a video of `frames` frames; `None` when it starts none.
    fn last_start(&self, frames: u64) -> Option<u64> {
        frames.checked_sub(self.sampling.min_frames())
    }

    /// `clip-stride` for `clips` clips over `frames` frames: max((F − S) / (N − 1), X / N + 1, 1).
    fn stride_for(&self, frames: u64, clips: u32) -> u32 {
        let n = u64::from(clips.max(1));
        let x = self.last_start(frames).unwrap_or(0);
        let spread = if n > 1 {
            frames.saturating_sub(self.span()) / (n - 1)
        } else {
            0
        };
        let stride = spread.max(x / n + 1).max(1);
        u32::try_from(stride).unwrap_or(u32::MAX)
    }

    /// Clips the element makes over `frames` frames with `stride` (0: its default) between their
    /// starts.
    fn expected(&self, frames: u64, stride: u32) -> u64 {
        let stride = match stride {
            0 => self.sampling.clip_stride,
            s => s,
        };
        self.last_start(frames)
            .map_or(0, |x| x / u64::from(stride.max(1)) + 1)
    }

    /// The plan for `clips` clips (0: the element's consecutive clips) over `frames` frames.
    pub fn plan(&self, frames: Option<u64>, clips: u32) -> Plan {
        let clip_stride = match frames {
            Some(frames) if clips > 0 => self.stride_for(frames, clips),
            _ => 0,
        };
        Plan {
            frames,
            clip_stride,
            expected: frames.map(|f| self.expected(f, clip_stride)),
        }
    }

    /// What `--verbose` says of a plan.
    pub fn describe(&self, plan: &Plan) -> String {
        let known = |n: Option<u64>| n.map_or("unknown".into(), |n| n.to_string());
        format!(
            "{} frames, clips of {} frames every {} (span {}), clip-stride {} → {} clips",
            known(plan.frames),
            self.sampling.clip_length,
            self.sampling.frame_stride,
            self.span(),
            match plan.clip_stride {
                0 => "from the model".to_string(),
                s => s.to_string(),
            },
            known(plan.expected),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clips of 32 frames every 2nd frame: a span of 63 frames, one clip from 31 frames.
    fn geometry() -> ClipGeometry {
        ClipGeometry::new(32, 2, 64)
    }

    #[test]
    fn clips_spread_over_a_long_video() {
        // (300 − 63) / 9 = 26 < 269 / 10 + 1 = 27: ten clips, the last starting at 243.
        let plan = geometry().plan(Some(300), 10);
        assert_eq!(plan.clip_stride, 27);
        assert_eq!(plan.expected, Some(10));
        // Far more frames: the spread wins and the clips reach the last frame.
        let plan = geometry().plan(Some(10_000), 10);
        assert_eq!(plan.clip_stride, (10_000 - 63) / 9);
        assert_eq!(plan.expected, Some(10));
    }

    #[test]
    fn short_videos_get_overlapping_clips_or_none() {
        assert_eq!(geometry().min_frames(), 31);
        let plan = geometry().plan(Some(40), 10);
        assert_eq!((plan.clip_stride, plan.expected), (1, Some(10)));
        let plan = geometry().plan(Some(30), 10);
        assert_eq!((plan.clip_stride, plan.expected), (1, Some(0)));
    }

    #[test]
    fn no_count_leaves_the_stride_to_the_element() {
        let plan = geometry().plan(Some(300), 0);
        assert_eq!((plan.clip_stride, plan.expected), (0, Some(5)));
        let plan = geometry().plan(None, 10);
        assert_eq!(
            plan,
            Plan {
                frames: None,
                clip_stride: 0,
                expected: None
            }
        );
        assert!(geometry()
            .describe(&plan)
            .contains("clip-stride from the model"));
    }
}
