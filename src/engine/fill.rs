//! Copying a batch's clips into its staging input, with helper threads that never hold it up.
//!
//! A batch of I3D clips is tens of megabytes, which the card waits for while they are copied, so
//! large batches are split between threads. But with dozens of pipelines keeping every core
//! busy, a freshly woken thread may wait milliseconds for a core, and a copy that joins its
//! threads (as `std::thread::scope` does) waits for the last of them to get one. Here the
//! calling thread copies too, taking clips one at a time from a shared counter, and waits only
//! for clips a helper has already started: helpers that do not get a core in time find no work
//! left. The copy is never slower than the caller alone, and faster when cores are free.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Batches smaller than this are copied by the calling thread alone.
pub const PARALLEL_FILL_BYTES: usize = 4 << 20;

/// Most helper threads.
const MAX_HELPERS: usize = 7;

/// One batch copy: `count` slots of `len` bytes at `dst`, slot k from `srcs[k]`.
struct Job {
    dst: *mut u8,
    len: usize,
    srcs: Vec<*const u8>,
    next: AtomicUsize,
    done: AtomicUsize,
}

// SAFETY: the pointers are only dereferenced for claimed slots (index below `srcs.len()`), and
// `fill` does not return (so the buffers stay alive and unaliased) until every claimed slot is
// done; a helper that claims late gets an index past the end and touches nothing.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Copy slots until none is left unclaimed.
    fn work(&self) {
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&src) = self.srcs.get(k) else {
                return;
            };
            // SAFETY: slot k is claimed by this thread only; see `unsafe impl Send for Job`.
            unsafe { std::ptr::copy_nonoverlapping(src, self.dst.add(k * self.len), self.len) };
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

struct Helpers {
    /// The job being copied (and a count, so a helper takes each job once).
    job: Mutex<(u64, Option<Arc<Job>>)>,
    wake: Condvar,
    count: usize,
}

fn helpers() -> Option<&'static Helpers> {
    static HELPERS: OnceLock<Option<&'static Helpers>> = OnceLock::new();
    *HELPERS.get_or_init(|| {
        let count = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .min(MAX_HELPERS);
        if count == 0 {
            return None;
        }
        let helpers: &'static Helpers = Box::leak(Box::new(Helpers {
            job: Mutex::new((0, None)),
            wake: Condvar::new(),
            count,
        }));
        let mut started = 0;
        for i in 0..count {
            let spawned = std::thread::Builder::new()
                .name(format!("nonlocal-fill-{i}"))
                .spawn(move || helper_loop(helpers));
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(helpers)
    })
}

fn helper_loop(helpers: &Helpers) {
    // Refused or not, the lanes report it (see `super::priority`).
    let _ = super::priority::prefer_this_thread();
    let mut seen = 0;
    loop {
        let job = {
            let mut guard = helpers.job.lock().unwrap_or_else(|e| e.into_inner());
            while guard.0 == seen || guard.1.is_none() {
                guard = helpers.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            seen = guard.0;
            guard.1.clone()
        };
        if let Some(job) = job {
            job.work();
        }
    }
}

/// Copy `items` into the `per`-element slots of `data`, the last item into slots beyond them.
pub fn fill<T: Copy + Send + Sync>(data: &mut [T], per: usize, items: &[&[T]], last: &[T]) {
    let per = per.max(1);
    let sources = |k: usize| -> &[T] { items.get(k).copied().unwrap_or(last) };
    let helpers = helpers().filter(|_| std::mem::size_of_val(data) >= PARALLEL_FILL_BYTES);
    let slots = data.len() / per;
    let Some(helpers) = helpers.filter(|h| h.count > 0 && slots > 1) else {
        for (k, dst) in data.chunks_exact_mut(per).enumerate() {
            dst.copy_from_slice(sources(k));
        }
        return;
    };
    if (0..slots).any(|k| sources(k).len() != per) {
        // Callers check lengths; keep the slice semantics (a panic-free partial copy) anyway.
        for (k, dst) in data.chunks_exact_mut(per).enumerate() {
            let src = sources(k);
            let n = src.len().min(per);
            dst[..n].copy_from_slice(&src[..n]);
        }
        return;
    }
    let job = Arc::new(Job {
        dst: data.as_mut_ptr().cast::<u8>(),
        len: per * std::mem::size_of::<T>(),
        srcs: (0..slots)
            .map(|k| sources(k).as_ptr().cast::<u8>())
            .collect(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    {
        let mut guard = helpers.job.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 += 1;
        guard.1 = Some(Arc::clone(&job));
    }
    helpers.wake.notify_all();
    job.work();
    // Only slots a helper has claimed are outstanding, and that helper is copying them now.
    while job.done.load(Ordering::Acquire) < slots {
        std::thread::yield_now();
    }
    let mut guard = helpers.job.lock().unwrap_or_else(|e| e.into_inner());
    if guard.1.as_ref().is_some_and(|j| Arc::ptr_eq(j, &job)) {
        guard.1 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_copies_every_item_and_repeats_the_last() {
        // Large enough for the helpers, with an odd slot count.
        let per = (PARALLEL_FILL_BYTES / 3) + 7;
        let items: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8 + 1; per]).collect();
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        for _ in 0..20 {
            let mut data = vec![0u8; per * 7];
            fill(&mut data, per, &refs, refs[3]);
            for (k, slot) in data.chunks_exact(per).enumerate() {
                let want = k.min(3) as u8 + 1;
                assert!(slot.iter().all(|&v| v == want), "slot {k}");
            }
        }
        // Wider elements: the byte lengths follow the element size.
        let wide: Vec<Vec<f32>> = (0..2).map(|i| vec![i as f32 + 0.5; 1 << 20]).collect();
        let wide_refs: Vec<&[f32]> = wide.iter().map(Vec::as_slice).collect();
        let mut out = vec![0f32; 3 << 20];
        fill(&mut out, 1 << 20, &wide_refs, wide_refs[1]);
        assert!(out[..1 << 20].iter().all(|&v| v == 0.5));
        assert!(out[1 << 20..].iter().all(|&v| v == 1.5));
        // Small batches take the one-thread path, with the same result.
        let mut small = vec![0u8; 12];
        let few: [&[u8]; 2] = [&[1, 2, 3], &[4, 5, 6]];
        fill(&mut small, 3, &few, few[1]);
        assert_eq!(small, [1, 2, 3, 4, 5, 6, 4, 5, 6, 4, 5, 6]);
    }

    #[test]
    fn fill_from_many_threads_at_once() {
        let per = PARALLEL_FILL_BYTES / 2;
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                scope.spawn(move || {
                    let item = vec![t + 1; per];
                    for _ in 0..5 {
                        let mut data = vec![0u8; per * 4];
                        fill(&mut data, per, &[&item], &item);
                        assert!(data.iter().all(|&v| v == t + 1));
                    }
                });
            }
        });
    }
}
