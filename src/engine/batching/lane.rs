//! What each lane's batching thread does: claim the oldest sheet with a submitted clip, let it
//! fill, run it on the backend (in chunks of the backend's run size) and answer every request in
//! it with its clips' scores, counting the runs and their time for [`super::EngineProfile`].

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use half::f16;

use super::{lock_queue, recycle, BatchShared};
use crate::engine::batch::ClipElement;
use crate::engine::sheet::Sheet;
use crate::engine::{Backend, Batch, EngineError, SpanClips};

/// The batching thread: claim the oldest batch with a submitted clip, let it fill (until full,
/// or the timeout after claiming it), wait for the clips still being packed into it, run it,
/// answer each request.
pub(super) fn batch_loop(backend: &dyn Backend, shared: &BatchShared, lane: usize) {
    loop {
        let Some(sheet) = next_sheet(shared) else {
            return;
        };
        let started = Instant::now();
        let run_before = shared.run_ns.load(Ordering::Relaxed);
        let result = run_sheet(backend, &sheet, shared, lane);
        for reply in &sheet.replies {
            let answer = match &result {
                Ok(scores) => scores
                    .get(reply.first..reply.first + reply.items)
                    .map(<[Vec<f32>]>::to_vec)
                    .ok_or_else(|| "the model returned too few scores".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let _ = reply.tx.send(answer);
        }
        recycle(shared, vec![sheet.data]);
        let total = started.elapsed().as_nanos() as u64;
        let run = shared.run_ns.load(Ordering::Relaxed) - run_before;
        shared
            .other_ns
            .fetch_add(total.saturating_sub(run), Ordering::Relaxed);
    }
}

/// The next sheet to run, once ready (None: the batcher stops).
fn next_sheet(shared: &BatchShared) -> Option<Sheet> {
    let mut q = lock_queue(shared);
    let id = loop {
        if q.stop {
            return None;
        }
        if let Some(id) = q.sheets.claim() {
            break id;
        }
        q = shared.cond.wait(q).unwrap_or_else(|e| e.into_inner());
    };
    let timeout = q.batching.map_or(Duration::ZERO, |b| b.timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if q.stop {
            return None;
        }
        let now = Instant::now();
        if let Some(sheet) = q.sheets.take_if_ready(id, now >= deadline) {
            return Some(sheet);
        }
        q = if q.sheets.is_closed(id) {
            // Only reservations still being packed hold it back.
            shared.cond.wait(q).unwrap_or_else(|e| e.into_inner())
        } else {
            shared
                .cond
                .wait_timeout(q, deadline.saturating_duration_since(now))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0)
        };
    }
}

/// Run a sheet's reserved items as one batch (in chunks of the backend's run size, e.g. the
/// graph's fixed batch); the scores of every reserved item, in order.
fn run_sheet(
    backend: &dyn Backend,
    sheet: &Sheet,
    stats: &BatchShared,
    lane: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let spans = sheet.key.spans.as_ref();
    match &sheet.data {
        Batch::F32(v) => run_typed::<f32>(backend, sheet, &v[..], stats, lane, spans),
        Batch::F16(v) => run_typed::<f16>(backend, sheet, &v[..], stats, lane, spans),
        Batch::U8(v) => run_typed::<u8>(backend, sheet, &v[..], stats, lane, spans),
    }
}

fn run_typed<T: ClipElement>(
    backend: &dyn Backend,
    sheet: &Sheet,
    data: &[T],
    stats: &BatchShared,
    lane: usize,
    spans: Option<&SpanClips>,
) -> Result<Vec<Vec<f32>>, EngineError> {
    // The reserved items as slices of the sheet, one after another: a backend can hand a chunk
    // over as one block (the sheet has room for the padding of its last chunk).
    let per = sheet.key.per_item();
    let items: Vec<&[T]> = data.chunks_exact(per.max(1)).take(sheet.reserved).collect();
    if items.len() < sheet.reserved {
        return Err(EngineError::Inference(format!(
            "{} values for {} clip items",
            data.len(),
            sheet.reserved
        )));
    }
    let step = backend.run_size(items.len()).max(1);
    let mut shape = sheet.key.shape;
    shape[0] = step as i64;
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(step) {
        let started = Instant::now();
        scores.extend(match spans {
            Some(what) => backend.run_spans(Some(lane), shape, what, T::bytes(chunk)?)?,
            None => backend.run(Some(lane), shape, T::items(chunk))?,
        });
        stats.runs.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        stats
            .run_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    Ok(scores)
}
