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

/// A sampler cutting clips by time at 25 fps (every test of sampling by time samples at 25).
fn at_25_fps(sampling: Sampling) -> ClipSampler<u64> {
    ClipSampler::with_rate(sampling, Rate::new(25, 1))
}

/// `count` frames `ms` milliseconds apart, each lasting `ms` (for `run_timed`).
fn every(ms: u64, count: u64) -> Vec<(u64, u64)> {
    (0..count).map(|n| (n * ms, ms)).collect()
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
    let (clips, tail) = run_timed(&mut at_25_fps(s(4, 1, 4)), &every(20, 17));
    assert_eq!(clips, vec![(0, vec![0, 2, 4, 6]), (1, vec![8, 10, 12, 14])]);
    // Frame 16 (320 ms) takes instant 8; clip 2 has 1 of 4: dropped.
    assert!(tail.is_empty());
    // Frames between the instants are not asked for.
    let t = |ms: u64| FrameTiming {
        pts: Some(ms * 1_000_000),
        duration: Some(20_000_000),
    };
    let mut sampler = at_25_fps(s(4, 1, 4));
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
    let mut sampler = at_25_fps(s(4, 1, 4));
    let (clips, _) = run_timed(&mut sampler, &frames);
    assert_eq!(clips, vec![(0, vec![0, 1, 2, 4]), (1, vec![5, 6, 7, 8])]);
    // frame-stride 2 and overlapping clips: instants k·2 + 2·i.
    let mut sampler = at_25_fps(s(2, 2, 2));
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
    let mut sampler = at_25_fps(s(4, 1, 4));
    let (clips, tail) = run_timed(&mut sampler, &every(80, 4));
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
    let mut sampler = at_25_fps(s(3, 1, 3));
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
    let mut sampler = at_25_fps(s(2, 1, 2));
    let (clips, tail) = run_timed(&mut sampler, &[(0, 40), (hour, 40)]);
    let indices: Vec<u64> = clips.iter().map(|c| c.0).collect();
    assert_eq!(indices, (44938..=44999).collect::<Vec<_>>());
    assert!(clips.iter().all(|c| c.1 == [1, 1]));
    // Instant 90000 (the frame's own) is left for clip 45000, which has 1 of 2: kept at EOS.
    assert_eq!(tail, vec![(45000, vec![1, 1])]);
    // A frame lasting for ever reaches only 5 s.
    let mut sampler = at_25_fps(s(2, 1, 2));
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
