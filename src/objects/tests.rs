use std::sync::Arc;

use super::*;
use crate::preprocess::{ScaledFrame, Square};
use crate::sampling::{FrameTiming, Rate, Sampling};

fn det(mtd: u32, x: i32, y: i32, w: i32, h: i32, track: Option<u64>) -> Detection {
    Detection {
        mtd,
        x,
        y,
        w,
        h,
        confidence: 0.9,
        kind: "person".into(),
        track,
    }
}

const MS: u64 = 1_000_000;

fn tracker(max_objects: usize) -> Tracker {
    Tracker::new(TrackerConfig {
        timeout: 500 * MS,
        max_objects,
    })
}

/// A crop that records its square: width = x, height = y, data = side.
fn fake_crop(calls: &mut Vec<Square>) -> impl FnMut(Square) -> Result<ScaledFrame, String> + '_ {
    move |s: Square| {
        calls.push(s);
        Ok(ScaledFrame {
            width: s.x,
            height: s.y,
            data: s.side.to_le_bytes().to_vec(),
        })
    }
}

fn square_of(f: &Arc<ScaledFrame>) -> Square {
    let side = u32::from_le_bytes(f.data[..4].try_into().unwrap());
    Square {
        x: f.width,
        y: f.height,
        side,
    }
}

fn timing(n: u64) -> FrameTiming {
    FrameTiming {
        pts: Some(n * 40 * MS),
        duration: Some(40 * MS),
    }
}

#[test]
fn boxes_are_clipped_to_the_frame_and_hostile_ones_refused() {
    let b = BoxF::clipped(&det(0, -10, -20, 50, 60, None), 100, 80).unwrap();
    assert_eq!((b.x, b.y, b.w, b.h), (0.0, 0.0, 40.0, 40.0));
    let b = BoxF::clipped(&det(0, 90, 70, 50, 50, None), 100, 80).unwrap();
    assert_eq!((b.x, b.y, b.w, b.h), (90.0, 70.0, 10.0, 10.0));
    for (d, why) in [
        (det(0, 10, 10, 0, 5, None), Refusal::Empty),
        (det(0, 10, 10, 5, -5, None), Refusal::Empty),
        (det(0, 200, 10, 5, 5, None), Refusal::Outside),
        (det(0, -50, 10, 20, 5, None), Refusal::Outside),
        (det(0, 10, 10, 1, 1, None), Refusal::Outside),
        (det(0, 99, 10, 30, 30, None), Refusal::Outside),
        (
            det(0, i32::MAX, i32::MAX, i32::MAX, i32::MAX, None),
            Refusal::Outside,
        ),
        (
            det(0, i32::MIN, i32::MIN, i32::MAX, i32::MAX, None),
            Refusal::Outside,
        ),
    ] {
        assert_eq!(BoxF::clipped(&d, 100, 80), Err(why), "{d:?}");
    }
    // A NaN confidence does not matter to where the box is.
    let mut nan = det(0, 10, 10, 20, 20, None);
    nan.confidence = f32::NAN;
    assert!(BoxF::clipped(&nan, 100, 80).is_ok());
}

#[test]
fn the_crop_is_an_enlarged_square_around_the_box_inside_the_frame() {
    let b = BoxF {
        x: 100.0,
        y: 50.0,
        w: 40.0,
        h: 80.0,
    };
    // Side 80 × 1.25 = 100, centred on (120, 90).
    assert_eq!(
        crop_square(&b, 640, 480),
        Square {
            x: 70,
            y: 40,
            side: 100
        }
    );
    // At the frame's corner the square moves inside.
    let corner = BoxF {
        x: 0.0,
        y: 0.0,
        w: 40.0,
        h: 40.0,
    };
    assert_eq!(
        crop_square(&corner, 640, 480),
        Square {
            x: 0,
            y: 0,
            side: 50
        }
    );
    let far = BoxF {
        x: 620.0,
        y: 460.0,
        w: 20.0,
        h: 20.0,
    };
    assert_eq!(
        crop_square(&far, 640, 480),
        Square {
            x: 615,
            y: 455,
            side: 25
        }
    );
    // Never larger than the frame's short side.
    let big = BoxF {
        x: 0.0,
        y: 0.0,
        w: 640.0,
        h: 480.0,
    };
    assert_eq!(
        crop_square(&big, 640, 480),
        Square {
            x: 80,
            y: 0,
            side: 480
        }
    );
    for b in [b, corner, far, big] {
        let s = crop_square(&b, 640, 480);
        assert!(s.x + s.side <= 640 && s.y + s.side <= 480, "{s:?}");
    }
}

#[test]
fn the_trackers_ids_are_the_objects_ids() {
    let mut t = tracker(8);
    let f = t.update(
        0,
        &[
            det(1, 10, 10, 20, 40, Some(7)),
            det(2, 100, 10, 20, 40, Some(9)),
        ],
        320,
        240,
    );
    assert_eq!(f.objects.iter().map(|s| s.id).collect::<Vec<_>>(), [7, 9]);
    assert_eq!(f.objects[0].mtd, Some(1));
    // Boxes on some frames only: the object stays with its last box and no mtd.
    let f = t.update(40 * MS, &[det(5, 104, 12, 20, 40, Some(9))], 320, 240);
    assert_eq!(f.objects.len(), 2);
    assert_eq!(f.objects[0].mtd, None);
    assert_eq!(f.objects[0].boxf.x, 10.0);
    assert_eq!(f.objects[1].mtd, Some(5));
    assert_eq!(f.objects[1].boxf.x, 104.0);
    // Not seen for longer than the timeout: the track ends.
    let f = t.update(520 * MS, &[det(1, 104, 12, 20, 40, Some(9))], 320, 240);
    assert_eq!(f.ended, [7]);
    assert_eq!(f.objects.iter().map(|s| s.id).collect::<Vec<_>>(), [9]);
    // Two boxes with one id on a frame: the first is the object.
    let f = t.update(
        640 * MS,
        &[
            det(1, 104, 12, 20, 40, Some(9)),
            det(2, 10, 10, 20, 40, Some(9)),
        ],
        320,
        240,
    );
    assert_eq!(f.refused, [Refusal::DuplicateId]);
    assert_eq!(f.objects[0].mtd, Some(1));
    // The same id at another place: reported, so that its clips restart there.
    let f = t.update(680 * MS, &[det(1, 250, 150, 20, 40, Some(9))], 320, 240);
    assert_eq!(f.jumped, [9]);
    // Gone for longer than the timeout, then back: the old track ended, a new one starts with
    // the tracker's id.
    let f = t.update(1400 * MS, &[], 320, 240);
    assert_eq!(f.ended, [9]);
    assert!(t.is_empty());
    let f = t.update(1440 * MS, &[det(2, 10, 10, 20, 40, Some(9))], 320, 240);
    assert!(f.ended.is_empty() && f.jumped.is_empty());
    assert_eq!(f.objects.iter().map(|s| s.id).collect::<Vec<_>>(), [9]);
}

#[test]
fn boxes_without_ids_are_associated_by_overlap() {
    let mut t = tracker(8);
    let f = t.update(
        0,
        &[det(1, 10, 10, 40, 80, None), det(2, 200, 10, 40, 80, None)],
        320,
        240,
    );
    assert_eq!(f.objects.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
    // Both move 5 pixels, listed in the other order: each keeps its number.
    let f = t.update(
        40 * MS,
        &[det(3, 205, 10, 40, 80, None), det(4, 15, 10, 40, 80, None)],
        320,
        240,
    );
    let by_id: Vec<(u64, Option<u32>)> = f.objects.iter().map(|s| (s.id, s.mtd)).collect();
    assert_eq!(by_id, [(1, Some(4)), (2, Some(3))]);
    // A box far from both starts a third object.
    let f = t.update(80 * MS, &[det(5, 120, 150, 30, 30, None)], 320, 240);
    assert_eq!(
        f.objects.iter().map(|s| (s.id, s.mtd)).collect::<Vec<_>>(),
        [(1, None), (2, None), (3, Some(5))]
    );
    // Two boxes overlapping one track: the better overlap joins it, the other starts a track.
    let mut t = tracker(8);
    t.update(0, &[det(1, 100, 100, 40, 40, None)], 320, 240);
    let f = t.update(
        40 * MS,
        &[
            det(2, 120, 100, 40, 40, None),
            det(3, 102, 100, 40, 40, None),
        ],
        320,
        240,
    );
    assert_eq!(
        f.objects.iter().map(|s| (s.id, s.mtd)).collect::<Vec<_>>(),
        [(1, Some(3)), (2, Some(2))]
    );
}

#[test]
fn objects_past_the_cap_are_dropped_and_counted_once_per_id() {
    let mut t = tracker(2);
    let boxes: Vec<Detection> = (0..5)
        .map(|i| det(i, 10 + 60 * i as i32, 10, 40, 40, Some(u64::from(i))))
        .collect();
    let f = t.update(0, &boxes, 320, 240);
    assert_eq!(f.objects.len(), 2);
    assert_eq!(f.dropped, 3);
    let f = t.update(40 * MS, &boxes, 320, 240);
    assert_eq!(f.dropped, 0, "the same refused ids again");
    // Without ids every refused box counts.
    let mut t = tracker(1);
    let free: Vec<Detection> = (0..3)
        .map(|i| det(i, 10 + 60 * i as i32, 10, 40, 40, None))
        .collect();
    assert_eq!(t.update(0, &free, 320, 240).dropped, 2);
    assert_eq!(t.update(40 * MS, &free, 320, 240).dropped, 2);
}

#[test]
fn ten_thousand_boxes_on_a_frame_keep_the_cap() {
    let mut t = tracker(16);
    let boxes: Vec<Detection> = (0..10_000u32)
        .map(|i| det(i, (i % 300) as i32, (i / 300 % 200) as i32, 8, 8, None))
        .collect();
    let f = t.update(0, &boxes, 320, 240);
    assert_eq!(f.objects.len(), 16);
    assert_eq!(f.dropped, 10_000 - 16);
    let f = t.update(40 * MS, &boxes, 320, 240);
    assert_eq!(f.objects.len(), 16);
}

fn sampling(clip_length: u32, frame_stride: u32, clip_stride: u32) -> Sampling {
    Sampling {
        clip_length,
        frame_stride,
        clip_stride,
    }
}

/// A `w` × `h` box at (x, y).
fn at(x: f64, y: f64, w: f64, h: f64) -> BoxF {
    BoxF { x, y, w, h }
}

/// Push frames `frames` (at 25 fps) to `s` with the object's box `box_at(n)` on a 640 × 480
/// frame: the squares cropped, and the clips completed.
fn drive(
    s: &mut ObjectSampler,
    frames: std::ops::Range<u64>,
    box_at: impl Fn(u64) -> BoxF,
) -> (Vec<Square>, Vec<ObjectClip>) {
    let mut calls = Vec::new();
    let mut clips = Vec::new();
    for n in frames {
        let done = s.push(timing(n), box_at(n), 640, 480, &mut fake_crop(&mut calls));
        clips.extend(done.unwrap());
    }
    (calls, clips)
}

#[test]
fn an_objects_clip_is_cropped_from_the_square_of_its_first_frame() {
    let mut s = ObjectSampler::new(3, sampling(4, 2, 8), None);
    // The object walks right 4 pixels a frame.
    let (calls, clips) = drive(&mut s, 0..16, |n| {
        at(10.0 + 4.0 * n as f64, 20.0, 40.0, 80.0)
    });
    // Frames 0, 2, 4, 6 then 8, 10, 12, 14: one crop each, from two squares.
    assert_eq!(calls.len(), 8);
    assert_eq!(clips.len(), 2);
    let first = Square {
        x: 0,
        y: 10,
        side: 100,
    };
    let second = crop_square(&at(42.0, 20.0, 40.0, 80.0), 640, 480);
    assert_eq!(clips[0].square, first);
    assert_eq!(clips[1].square, second);
    for (clip, square) in clips.iter().zip([first, second]) {
        assert_eq!(clip.object, 3);
        assert_eq!(clip.clip.frames.len(), 4);
        assert!(clip.clip.frames.iter().all(|f| square_of(f) == square));
    }
    assert_eq!(clips[1].clip.index, 1);
    assert_eq!(clips[1].clip.timestamp, Some(8 * 40 * MS));
    assert_eq!(
        clips[1].boxf.x,
        10.0 + 4.0 * 14.0,
        "the box of the clip's last frame"
    );
}

#[test]
fn overlapping_clips_keep_their_own_squares() {
    // Clips of 4 frames every frame, starting every 2 frames: frames 2 and 3 belong to two clips.
    let mut s = ObjectSampler::new(1, sampling(4, 1, 2), None);
    let (calls, clips) = drive(&mut s, 0..6, |n| {
        at(100.0 + 20.0 * n as f64, 20.0, 40.0, 40.0)
    });
    assert_eq!(clips.len(), 2);
    for clip in &clips {
        assert!(clip.clip.frames.iter().all(|f| square_of(f) == clip.square));
    }
    assert_ne!(clips[0].square, clips[1].square);
    // Frames 2 to 5 belong to two clips each (clip 2 starts at frame 4): cropped once per square.
    assert_eq!(calls.len(), 10);
}

#[test]
fn a_track_that_ends_completes_a_clip_with_half_its_frames() {
    let still = |_| at(10.0, 20.0, 40.0, 40.0);
    let mut s = ObjectSampler::new(1, sampling(4, 1, 4), None);
    let (_, clips) = drive(&mut s, 0..6, still);
    assert_eq!(clips.len(), 1);
    // Clip 1 has frames 4 and 5 of 4: padded with its last.
    let clips = s.finish();
    assert_eq!(clips.len(), 1);
    assert_eq!(clips[0].clip.padded, 2);
    assert_eq!(s.kept_frames(), 0);
    // One frame of four is not enough.
    let mut s = ObjectSampler::new(1, sampling(4, 1, 4), None);
    drive(&mut s, 0..1, still);
    assert!(s.finish().is_empty());
}

#[test]
fn objects_sample_by_time_from_their_first_frame() {
    // 8 fps over a 25 fps stream: clip of 2 model frames, back to back.
    let mut s = ObjectSampler::new(1, sampling(2, 1, 2), Rate::new(8, 1));
    let (calls, clips) = drive(&mut s, 100..125, |_| at(10.0, 20.0, 40.0, 40.0));
    // One second: 8 instants, 4 clips; a crop per instant's frame.
    assert_eq!(clips.len(), 4);
    assert_eq!(calls.len(), 8);
    assert_eq!(clips[0].clip.timestamp, Some(100 * 40 * MS));
}

#[test]
fn a_stream_finishes_and_restarts_objects_and_stays_bounded_under_churn() {
    let config = ObjectsConfig {
        tracker: TrackerConfig {
            timeout: 100 * MS,
            max_objects: 4,
        },
        sampling: sampling(4, 1, 4),
        rate: None,
    };
    let mut objects = StreamObjects::new(config);
    let mut calls = Vec::new();
    let mut clips = 0;
    let mut most_kept = 0;
    // 2,000 frames; a new id every 3 frames, each seen for 6 frames then gone.
    for n in 0..2000u64 {
        let boxes: Vec<Detection> = (0..3u64)
            .map(|j| {
                let id = n / 3 + j;
                det(j as u32, (id % 5) as i32 * 60, 10, 40, 40, Some(id))
            })
            .filter(|d| d.track.unwrap() * 3 + 6 > n)
            .collect();
        let out = objects
            .frame(
                n * 40 * MS,
                timing(n),
                &boxes,
                320,
                240,
                fake_crop(&mut calls),
            )
            .unwrap();
        clips += out.clips.len() + out.finished.len();
        assert!(objects.len() <= 4);
        most_kept = most_kept.max(objects.kept_frames());
        calls.clear();
    }
    assert!(clips > 100, "{clips} clips");
    assert!(most_kept <= 4 * 4, "{most_kept} frames kept");
    let (rest, ended) = objects.finish();
    assert!(!ended.is_empty());
    assert!(rest.len() <= ended.len());
    assert!(objects.is_empty());
}

#[test]
fn type_filters_take_every_type_or_the_listed_ones() {
    assert!(TypeFilter::parse("").accepts("dog"));
    let f = TypeFilter::parse(" person , cyclist,");
    assert!(f.accepts("person") && f.accepts("cyclist") && !f.accepts("dog"));
}
