//! The queue between the streaming thread and the worker, and its rules: which clip a live
//! stream drops when `max-pending` clips are pending (`leaky`), and what the worker takes at a
//! time. Plain logic over any item type, tested beside it.

use std::collections::{HashMap, VecDeque};

use super::Leaky;

/// An item of the queue: a clip, or something that is never dropped (an object's end).
pub(super) trait Item {
    fn is_clip(&self) -> bool;
    /// The object a clip shows (objects mode; None: the whole frame, or not a clip).
    fn object(&self) -> Option<u64>;
    /// A track's last clip (objects mode): no newer clip of its object will come.
    fn is_last(&self) -> bool;
}

/// What the streaming thread hands the worker, in order, with the worker's state.
pub(super) struct Queue<W> {
    pub(super) jobs: VecDeque<W>,
    /// Clips the worker took whose results are not published yet.
    pub(super) in_flight: usize,
    /// The bound the latest live clip was offered with (`max-pending`, times the live objects in
    /// objects mode).
    max: usize,
    /// The worker is running a job.
    pub(super) busy: bool,
    pub(super) flushing: bool,
    pub(super) stop: bool,
    /// Bumped by every flush: results of older generations are discarded.
    pub(super) generation: u64,
}

impl<W> Default for Queue<W> {
    fn default() -> Self {
        Self {
            jobs: VecDeque::new(),
            in_flight: 0,
            max: 1,
            busy: false,
            flushing: false,
            stop: false,
            generation: 0,
        }
    }
}

impl<W: Item> Queue<W> {
    /// Clips waiting for the worker.
    fn waiting_clips(&self) -> usize {
        self.jobs.iter().filter(|w| w.is_clip()).count()
    }

    /// A live stream's new clip, with at most `max` pending: queued, or dropped as `leaky` says.
    /// Returns the clips dropped, oldest first (the new one is last when it is the one dropped).
    ///
    /// - `Newest`: at `max` items waiting the new clip is dropped; the worker takes every
    ///   waiting item at once, so up to twice `max` clips are held.
    /// - `Oldest`: the clips the worker took count as pending too, so that a clip waits behind
    ///   at most `max - 1` others. At `max` a waiting clip makes way: the oldest of the new clip's
    ///   object (in frame mode, the oldest waiting clip), else the oldest that a newer waiting
    ///   clip of its own object supersedes, else, for a track's last clip, the oldest waiting
    ///   clip of a live track; else the new clip is dropped (also when nothing waits: a clip in
    ///   the engine cannot be taken back). So no object's clips crowd out another's, and a
    ///   track's last clip stays. Objects' ends are never dropped and do not count.
    pub(super) fn offer(&mut self, clip: W, max: usize, leaky: Leaky) -> Vec<W> {
        self.max = max;
        let mut dropped = Vec::new();
        match leaky {
            Leaky::Newest => {
                if self.jobs.len() >= max {
                    dropped.push(clip);
                    return dropped;
                }
            }
            Leaky::Oldest => {
                while self.waiting_clips() + self.in_flight >= max {
                    match self.victim(&clip).and_then(|i| self.jobs.remove(i)) {
                        Some(old) => dropped.push(old),
                        None => {
                            dropped.push(clip);
                            return dropped;
                        }
                    }
                }
            }
        }
        self.jobs.push_back(clip);
        dropped
    }

    /// Where the waiting clip that makes way for `new` is (see [`Queue::offer`]); None when none
    /// does.
    fn victim(&self, new: &W) -> Option<usize> {
        let clips = || self.jobs.iter().enumerate().filter(|(_, w)| w.is_clip());
        if let Some((i, _)) = clips().find(|(_, w)| w.object() == new.object()) {
            return Some(i);
        }
        let mut waiting: HashMap<Option<u64>, usize> = HashMap::new();
        for (_, w) in clips() {
            *waiting.entry(w.object()).or_default() += 1;
        }
        if let Some((i, _)) =
            clips().find(|(_, w)| waiting.get(&w.object()).is_some_and(|&n| n > 1))
        {
            return Some(i);
        }
        if new.is_last() {
            return clips().find(|(_, w)| !w.is_last()).map(|(i, _)| i);
        }
        None
    }

    /// What the worker takes now, in order: every waiting item, or with `one_batch` (a live
    /// stream dropping its oldest clips) at most that many clips, and only as many as leave
    /// room beside the clips in flight for one newer clip to wait (at least one), so that the
    /// clips left stay droppable; the objects' ends before the first clip left come along.
    pub(super) fn take(&mut self, one_batch: Option<usize>) -> Vec<W> {
        let room = self.max.saturating_sub(1).saturating_sub(self.in_flight);
        let limit = one_batch.map_or(usize::MAX, |b| b.min(room).max(1));
        let mut taken = Vec::new();
        let mut count = 0;
        while self
            .jobs
            .front()
            .is_some_and(|w| !w.is_clip() || count < limit)
        {
            let Some(work) = self.jobs.pop_front() else {
                break;
            };
            if work.is_clip() {
                count += 1;
            }
            taken.push(work);
        }
        self.in_flight += count;
        taken
    }

    /// One clip the worker took is done with (published, dropped or failed).
    pub(super) fn done(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clip of the whole frame by its index, an object's clip (object, index), a track's last
    /// clip, or an object's end.
    #[derive(Debug, PartialEq, Clone, Copy)]
    enum W {
        Clip(u64),
        Of(u64, u64),
        Last(u64, u64),
        Ended,
    }

    impl Item for W {
        fn is_clip(&self) -> bool {
            !matches!(self, W::Ended)
        }

        fn object(&self) -> Option<u64> {
            match self {
                W::Of(object, _) | W::Last(object, _) => Some(*object),
                _ => None,
            }
        }

        fn is_last(&self) -> bool {
            matches!(self, W::Last(..))
        }
    }

    fn queue(items: &[W]) -> Queue<W> {
        Queue {
            jobs: items.iter().copied().collect(),
            ..Default::default()
        }
    }

    fn waiting(q: &Queue<W>) -> Vec<W> {
        q.jobs.iter().copied().collect()
    }

    #[test]
    fn newest_drops_the_new_clip_once_max_items_wait() {
        let mut q = queue(&[W::Clip(0)]);
        assert!(q.offer(W::Clip(1), 2, Leaky::Newest).is_empty());
        assert_eq!(q.offer(W::Clip(2), 2, Leaky::Newest), vec![W::Clip(2)]);
        assert_eq!(waiting(&q), vec![W::Clip(0), W::Clip(1)]);
        // The clips the worker took do not count; the worker takes everything at once.
        assert_eq!(q.take(None), vec![W::Clip(0), W::Clip(1)]);
        assert_eq!(q.in_flight, 2);
        assert!(q.offer(W::Clip(3), 2, Leaky::Newest).is_empty());
        assert!(q.offer(W::Clip(4), 2, Leaky::Newest).is_empty());
        assert_eq!(q.offer(W::Clip(5), 2, Leaky::Newest), vec![W::Clip(5)]);
    }

    #[test]
    fn oldest_keeps_the_newest_clips_and_counts_those_in_flight() {
        let mut q = queue(&[]);
        assert!(q.offer(W::Clip(0), 2, Leaky::Oldest).is_empty());
        assert!(q.offer(W::Clip(1), 2, Leaky::Oldest).is_empty());
        // One clip at a time goes to the engine: a newer clip can always wait.
        assert_eq!(q.take(Some(8)), vec![W::Clip(0)]);
        // One clip in the engine: one more may wait; each newer one replaces it.
        assert_eq!(q.offer(W::Clip(2), 2, Leaky::Oldest), vec![W::Clip(1)]);
        assert_eq!(q.offer(W::Clip(3), 2, Leaky::Oldest), vec![W::Clip(2)]);
        assert_eq!(waiting(&q), vec![W::Clip(3)]);
        // Clip 0 published: the next clip waits beside clip 3.
        q.done();
        assert!(q.offer(W::Clip(4), 2, Leaky::Oldest).is_empty());
        assert_eq!(waiting(&q), vec![W::Clip(3), W::Clip(4)]);
        assert_eq!(q.offer(W::Clip(5), 2, Leaky::Oldest), vec![W::Clip(3)]);
        assert_eq!(waiting(&q), vec![W::Clip(4), W::Clip(5)]);
    }

    #[test]
    fn a_live_stream_dropping_its_oldest_takes_up_to_a_batch_leaving_room_for_one() {
        let mut q = queue(&[]);
        for i in 0..6 {
            assert!(q.offer(W::Clip(i), 6, Leaky::Oldest).is_empty());
        }
        // Up to one batch, and one fewer than the bound with those in flight.
        assert_eq!(q.take(Some(3)), vec![W::Clip(0), W::Clip(1), W::Clip(2)]);
        assert_eq!(q.take(Some(8)), vec![W::Clip(3), W::Clip(4)]);
        assert_eq!(q.in_flight, 5);
        assert_eq!(q.offer(W::Clip(6), 6, Leaky::Oldest), vec![W::Clip(5)]);
        assert_eq!(waiting(&q), vec![W::Clip(6)]);
        // A bound of one: one clip at a time, none waits beside it.
        let mut q = queue(&[]);
        assert!(q.offer(W::Clip(0), 1, Leaky::Oldest).is_empty());
        assert_eq!(q.take(Some(8)), vec![W::Clip(0)]);
        assert_eq!(q.offer(W::Clip(1), 1, Leaky::Oldest), vec![W::Clip(1)]);
    }

    #[test]
    fn oldest_drops_the_new_clip_only_when_every_pending_one_is_in_the_engine() {
        let mut q = queue(&[W::Clip(0), W::Clip(1)]);
        assert_eq!(q.take(None).len(), 2);
        assert_eq!(q.offer(W::Clip(2), 2, Leaky::Oldest), vec![W::Clip(2)]);
        assert_eq!(q.offer(W::Clip(3), 1, Leaky::Oldest), vec![W::Clip(3)]);
        assert!(q.jobs.is_empty());
    }

    #[test]
    fn objects_ends_are_never_dropped_nor_counted() {
        let mut q = queue(&[W::Clip(0), W::Ended, W::Clip(1), W::Ended]);
        assert_eq!(q.offer(W::Clip(2), 2, Leaky::Oldest), vec![W::Clip(0)]);
        assert_eq!(
            waiting(&q),
            vec![W::Ended, W::Clip(1), W::Ended, W::Clip(2)]
        );
        // With only ends waiting and max clips in flight, the new clip is the one dropped.
        let mut q = queue(&[W::Ended]);
        q.in_flight = 2;
        assert_eq!(q.offer(W::Clip(3), 2, Leaky::Oldest), vec![W::Clip(3)]);
        assert_eq!(waiting(&q), vec![W::Ended]);
    }

    #[test]
    fn an_object_makes_way_for_its_own_newer_clips_not_for_others() {
        let mut q = queue(&[W::Of(2, 9), W::Of(1, 0), W::Ended, W::Of(1, 1)]);
        q.in_flight = 2;
        assert_eq!(q.offer(W::Of(1, 2), 5, Leaky::Oldest), vec![W::Of(1, 0)]);
        assert_eq!(
            waiting(&q),
            vec![W::Of(2, 9), W::Ended, W::Of(1, 1), W::Of(1, 2)]
        );
        // Object 3 has none waiting: object 1's older clip, superseded, makes way.
        assert_eq!(q.offer(W::Of(3, 0), 5, Leaky::Oldest), vec![W::Of(1, 1)]);
        // Every waiting clip is its object's newest: object 4's clip is the one dropped.
        assert_eq!(q.offer(W::Of(4, 0), 5, Leaky::Oldest), vec![W::Of(4, 0)]);
        assert_eq!(
            waiting(&q),
            vec![W::Of(2, 9), W::Ended, W::Of(1, 2), W::Of(3, 0)]
        );
    }

    #[test]
    fn a_tracks_last_clip_takes_a_live_tracks_place_and_keeps_it() {
        // Object 5's track ends while its engine is busy and object 6 has a clip waiting.
        let mut q = queue(&[W::Of(6, 1)]);
        q.in_flight = 3;
        assert_eq!(q.offer(W::Last(5, 22), 4, Leaky::Oldest), vec![W::Of(6, 1)]);
        assert_eq!(
            q.offer(W::Last(5, 23), 4, Leaky::Oldest),
            vec![W::Last(5, 22)]
        );
        q.jobs.push_back(W::Ended);
        // Object 6's next clips do not take its place, under a bound lowered by the track's end.
        assert_eq!(q.offer(W::Of(6, 2), 2, Leaky::Oldest), vec![W::Of(6, 2)]);
        assert_eq!(waiting(&q), vec![W::Last(5, 23), W::Ended]);
        // Two tracks ending at once: a last clip does not take another's place.
        let mut q = queue(&[W::Last(7, 3)]);
        q.in_flight = 1;
        assert_eq!(
            q.offer(W::Last(8, 4), 2, Leaky::Oldest),
            vec![W::Last(8, 4)]
        );
    }

    #[test]
    fn a_lower_max_drops_as_many_waiting_clips_as_it_takes() {
        // Objects mode lowers max when objects leave: the queue shrinks to it at the next clip.
        let mut q = queue(&[W::Clip(0), W::Clip(1), W::Clip(2), W::Clip(3)]);
        assert_eq!(
            q.offer(W::Clip(4), 2, Leaky::Oldest),
            vec![W::Clip(0), W::Clip(1), W::Clip(2)]
        );
        assert_eq!(waiting(&q), vec![W::Clip(3), W::Clip(4)]);
    }

    #[test]
    fn take_stops_after_the_clips_asked_for_with_the_ends_among_them() {
        let mut q = queue(&[W::Ended, W::Clip(0), W::Ended, W::Clip(1), W::Clip(2)]);
        q.max = 4;
        assert_eq!(q.take(Some(1)), vec![W::Ended, W::Clip(0), W::Ended]);
        assert_eq!(q.in_flight, 1);
        assert_eq!(waiting(&q), vec![W::Clip(1), W::Clip(2)]);
        assert_eq!(q.take(None), vec![W::Clip(1), W::Clip(2)]);
        assert_eq!(q.in_flight, 3);
        for _ in 0..4 {
            q.done();
        }
        assert_eq!(q.in_flight, 0);
    }
}
