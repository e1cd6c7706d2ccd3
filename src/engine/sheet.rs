//! Batches in formation ("sheets"): one buffer per batch that every clip of the batch is packed
//! into straight by whoever submits it, so the batching thread runs the buffer as it stands,
//! with no copy of its own (while a lane's thread copies a batch's clips into its staging
//! input, that lane runs nothing). Under CUDA the buffer is page-locked memory the backend lent,
//! which goes to the card as one transfer.
//!
//! A submitter reserves room for its items in the open sheet of its clips' kind ([`SheetKey`])
//! under the batcher's lock, packs them outside it, and then either submits them (its reply is
//! recorded) or drops its reservation (the items stay in the sheet unanswered). A batching
//! thread claims the oldest sheet with a submitted clip, lets it fill until it is full or the
//! batch timeout passes, closes it to new reservations, waits for the reservations still being
//! packed, and runs it. This module is the bookkeeping alone, under the caller's lock; the
//! batcher ([`super::SharedEngine`]) holds the lock, the buffers and the threads.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;

use crate::config::InputType;

use super::{Batch, SpanClips};

/// What clips share a sheet: one item shape (batch dimension ignored), the same source spans
/// when the backend resamples them, one element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct SheetKey {
    pub(super) shape: [i64; 5],
    pub(super) spans: Option<SpanClips>,
    pub(super) ty: InputType,
}

impl SheetKey {
    pub(super) fn new(mut shape: [i64; 5], spans: Option<SpanClips>, ty: InputType) -> SheetKey {
        shape[0] = 1;
        SheetKey { shape, spans, ty }
    }

    /// Values per item: a span clip's bytes, or the item shape's size.
    pub(super) fn per_item(&self) -> usize {
        match &self.spans {
            Some(what) => what.clip_len(),
            None => self.shape[1..]
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .product(),
        }
    }
}

/// Where a submitted request's scores go: items `first..first + items` of the sheet.
pub(super) struct Reply {
    pub(super) first: usize,
    pub(super) items: usize,
    pub(super) tx: SyncSender<Result<Vec<Vec<f32>>, String>>,
}

/// One batch in formation.
pub(super) struct Sheet {
    pub(super) id: u64,
    pub(super) key: SheetKey,
    /// Items clips may reserve (the batch size asked for, or more for one larger request).
    pub(super) capacity: usize,
    /// The buffer: at least `capacity` items of `key.per_item()` values (more where the backend
    /// pads a batch to its run size, so a padded run reads only this buffer).
    pub(super) data: Batch,
    /// Items reserved so far (submitted, being packed, or given up).
    pub(super) reserved: usize,
    /// Reservations being packed now.
    pub(super) pending: usize,
    pub(super) replies: Vec<Reply>,
    /// No more reservations (full, or its batching thread stopped waiting for more).
    pub(super) closed: bool,
    /// A batching thread waits on this sheet.
    pub(super) claimed: bool,
}

/// A reservation: items `first..first + items` of sheet `id`, whose values start at `ptr`.
#[derive(Debug)]
pub(super) struct Reserved {
    pub(super) id: u64,
    pub(super) first: usize,
    pub(super) items: usize,
    /// The reserved values' first one (of the sheet's element type) and their number.
    pub(super) ptr: *mut u8,
    pub(super) len: usize,
}

/// The sheets of one batcher, oldest first.
#[derive(Default)]
pub(super) struct Sheets {
    sheets: VecDeque<Sheet>,
    next_id: u64,
}

/// Start of item `first` of `data` (`per` values an item) and the values of `items` items.
fn item_ptr(data: &mut Batch, per: usize, first: usize, items: usize) -> (*mut u8, usize) {
    let start = first * per;
    let len = items * per;
    let ptr = match data {
        Batch::F32(v) => v[start..start + len].as_mut_ptr().cast(),
        Batch::F16(v) => v[start..start + len].as_mut_ptr().cast(),
        Batch::U8(v) => v[start..start + len].as_mut_ptr(),
    };
    (ptr, len)
}

impl Sheets {
    /// Reserve `items` items in the open sheet of `key` when it has room for them.
    pub(super) fn reserve(&mut self, key: &SheetKey, items: usize) -> Option<Reserved> {
        let sheet = self
            .sheets
            .iter_mut()
            .rev()
            .find(|s| !s.closed && s.key == *key)?;
        if sheet.reserved + items > sheet.capacity {
            return None;
        }
        Some(Self::take_room(sheet, items))
    }

    fn take_room(sheet: &mut Sheet, items: usize) -> Reserved {
        let first = sheet.reserved;
        sheet.reserved += items;
        sheet.pending += 1;
        if sheet.reserved >= sheet.capacity {
            sheet.closed = true;
        }
        let per = sheet.key.per_item();
        let (ptr, len) = item_ptr(&mut sheet.data, per, first, items);
        Reserved {
            id: sheet.id,
            first,
            items,
            ptr,
            len,
        }
    }

    /// Open a sheet of `key` for `capacity` items in `data` (at least that many items long) and
    /// reserve `items` of them; the open sheet of `key` without room for them is closed. `data`
    /// comes back when it is too short or of another element type.
    pub(super) fn open(
        &mut self,
        key: SheetKey,
        capacity: usize,
        items: usize,
        data: Batch,
    ) -> Result<Reserved, Batch> {
        let per = key.per_item();
        let capacity = capacity.max(items);
        if data.input_type() != key.ty || data.len() < capacity * per || items == 0 {
            return Err(data);
        }
        for s in self.sheets.iter_mut().filter(|s| s.key == key) {
            s.closed = true;
        }
        self.next_id += 1;
        self.sheets.push_back(Sheet {
            id: self.next_id,
            key,
            capacity,
            data,
            reserved: 0,
            pending: 0,
            replies: Vec::new(),
            closed: false,
            claimed: false,
        });
        let sheet = self
            .sheets
            .back_mut()
            .ok_or_else(|| Batch::zeros(key.ty, 0))?;
        Ok(Self::take_room(sheet, items))
    }

    fn get(&mut self, id: u64) -> Option<&mut Sheet> {
        self.sheets.iter_mut().find(|s| s.id == id)
    }

    /// A reservation was packed and submitted: its scores go to `reply`. False when the sheet
    /// is gone (its batcher stopped).
    pub(super) fn submit(&mut self, r: &Reserved, reply: Reply) -> bool {
        match self.get(r.id) {
            Some(sheet) => {
                sheet.pending = sheet.pending.saturating_sub(1);
                sheet.replies.push(reply);
                true
            }
            None => false,
        }
    }

    /// A reservation was given up (its items stay in the sheet, unanswered).
    pub(super) fn release(&mut self, r: &Reserved) {
        if let Some(sheet) = self.get(r.id) {
            sheet.pending = sheet.pending.saturating_sub(1);
        }
    }

    /// Claim the oldest unclaimed sheet with a submitted request, for one batching thread.
    pub(super) fn claim(&mut self) -> Option<u64> {
        let sheet = self
            .sheets
            .iter_mut()
            .find(|s| !s.claimed && !s.replies.is_empty())?;
        sheet.claimed = true;
        Some(sheet.id)
    }

    /// The claimed sheet `id` once it can run: closed when `stop_waiting` (its timeout passed),
    /// and handed out when closed with nothing left being packed. None: wait for more.
    pub(super) fn take_if_ready(&mut self, id: u64, stop_waiting: bool) -> Option<Sheet> {
        let k = self.sheets.iter().position(|s| s.id == id)?;
        let sheet = &mut self.sheets[k];
        if stop_waiting {
            sheet.closed = true;
        }
        if sheet.closed && sheet.pending == 0 {
            self.sheets.remove(k)
        } else {
            None
        }
    }

    /// Take out the sheets nothing will run (closed, with every reservation given up) and give
    /// back their buffers.
    pub(super) fn sweep(&mut self) -> Vec<Batch> {
        let mut buffers = Vec::new();
        let mut k = 0;
        while k < self.sheets.len() {
            let s = &self.sheets[k];
            if s.closed && s.pending == 0 && s.replies.is_empty() && !s.claimed {
                buffers.extend(self.sheets.remove(k).map(|s| s.data));
            } else {
                k += 1;
            }
        }
        buffers
    }

    /// Whether sheet `id` is closed (waiting only for reservations being packed).
    pub(super) fn is_closed(&self, id: u64) -> bool {
        self.sheets.iter().any(|s| s.id == id && s.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn key(frames: i64) -> SheetKey {
        SheetKey::new([7, 3, frames, 2, 2], None, InputType::U8)
    }

    fn reply(r: &Reserved) -> (Reply, crate::engine::Scores) {
        let (tx, rx) = sync_channel(1);
        (
            Reply {
                first: r.first,
                items: r.items,
                tx,
            },
            rx,
        )
    }

    /// Write `value` into a reservation's values, as a submitter does.
    fn pack(r: &Reserved, value: u8) {
        // SAFETY: the reservation's values belong to this test until it submits them.
        unsafe { std::slice::from_raw_parts_mut(r.ptr, r.len) }.fill(value);
    }

    #[test]
    fn reservations_fill_one_buffer_in_order_and_close_it_when_full() {
        let mut sheets = Sheets::default();
        let k = key(4);
        assert_eq!(k.per_item(), 3 * 4 * 2 * 2);
        assert!(sheets.reserve(&k, 1).is_none(), "no open sheet yet");
        // Room for three items in a buffer of four (a run padded to four reads the fourth).
        let a = sheets
            .open(k, 3, 1, Batch::zeros(InputType::U8, 4 * 48))
            .unwrap();
        let b = sheets.reserve(&k, 2).unwrap();
        assert_eq!((a.first, a.items, b.first, b.items), (0, 1, 1, 2));
        assert_eq!((a.len, b.len), (48, 96));
        assert_eq!(b.ptr as usize - a.ptr as usize, 48, "b follows a");
        assert!(sheets.reserve(&k, 1).is_none(), "full: closed");
        pack(&b, 2);
        pack(&a, 1);
        let (ra, _rx_a) = reply(&a);
        let (rb, _rx_b) = reply(&b);
        assert!(sheets.submit(&b, rb));
        // Claimed once a request is submitted; handed out once nothing is being packed.
        let id = sheets.claim().unwrap();
        assert!(sheets.claim().is_none(), "one sheet, one thread");
        assert!(
            sheets.take_if_ready(id, true).is_none(),
            "a is still packing"
        );
        assert!(sheets.submit(&a, ra));
        let sheet = sheets.take_if_ready(id, false).unwrap();
        let Batch::U8(data) = &sheet.data else {
            panic!("u8 sheet")
        };
        assert_eq!(&data[..48], [1; 48]);
        assert_eq!(&data[48..144], [2; 96]);
        assert_eq!(&data[144..], [0; 48], "padding untouched");
        let answered: Vec<_> = sheet.replies.iter().map(|r| (r.first, r.items)).collect();
        assert_eq!(answered, [(1, 2), (0, 1)]);
    }

    #[test]
    fn kinds_keep_their_own_sheets_and_a_large_request_opens_a_larger_one() {
        let mut sheets = Sheets::default();
        let (k4, k8) = (key(4), key(8));
        let a = sheets
            .open(k4, 2, 1, Batch::zeros(InputType::U8, 2 * 48))
            .unwrap();
        let c = sheets
            .open(k8, 2, 1, Batch::zeros(InputType::U8, 2 * 96))
            .unwrap();
        assert_ne!(a.id, c.id);
        // Another kind's sheet is not touched; k4's still has room for one.
        let b = sheets.reserve(&k4, 1).unwrap();
        assert_eq!((b.id, b.first), (a.id, 1));
        // Three crops at once in sheets of two: a sheet of three, the open k8 sheet closed.
        assert!(sheets.reserve(&k8, 3).is_none());
        let d = sheets
            .open(k8, 2, 3, Batch::zeros(InputType::U8, 3 * 96))
            .unwrap();
        assert_eq!((d.first, d.items), (0, 3));
        assert!(sheets.is_closed(c.id), "the k8 sheet without room closed");
        // Too short a buffer, or another element type, comes back.
        assert!(sheets
            .open(k8, 2, 1, Batch::zeros(InputType::U8, 96))
            .is_err());
        assert!(sheets
            .open(k8, 2, 1, Batch::zeros(InputType::F32, 4 * 96))
            .is_err());
        // Sheets are claimed oldest first, each once, only once a request is submitted.
        assert!(sheets.claim().is_none());
        let (rd, _rx_d) = reply(&d);
        let (rc, _rx_c) = reply(&c);
        sheets.submit(&d, rd);
        sheets.submit(&c, rc);
        assert_eq!(sheets.claim(), Some(c.id));
        assert_eq!(sheets.claim(), Some(d.id));
        assert_eq!(sheets.claim(), None);
    }

    #[test]
    fn a_given_up_reservation_stops_holding_its_sheet_back() {
        let mut sheets = Sheets::default();
        let k = key(4);
        let a = sheets
            .open(k, 4, 1, Batch::zeros(InputType::U8, 4 * 48))
            .unwrap();
        let b = sheets.reserve(&k, 1).unwrap();
        let (ra, _rx) = reply(&a);
        sheets.submit(&a, ra);
        let id = sheets.claim().unwrap();
        // Not full and not timed out: waits for more.
        assert!(sheets.take_if_ready(id, false).is_none());
        assert!(sheets.take_if_ready(id, true).is_none(), "b still packing");
        assert!(sheets.reserve(&k, 1).is_none(), "closed at the timeout");
        sheets.release(&b);
        assert!(sheets.sweep().is_empty(), "a claimed sheet is its thread's");
        let sheet = sheets.take_if_ready(id, false).unwrap();
        assert_eq!((sheet.reserved, sheet.replies.len()), (2, 1));
        // A full sheet whose every reservation is given up is taken out, its buffer given back.
        let c = sheets
            .open(k, 1, 1, Batch::zeros(InputType::U8, 48))
            .unwrap();
        assert!(sheets.sweep().is_empty(), "c is still packing");
        sheets.release(&c);
        assert_eq!(sheets.sweep().len(), 1);
        assert!(sheets.claim().is_none());
        // A reservation of a sheet that is gone finds nothing to submit to.
        let (rb, _rx) = reply(&b);
        assert!(!sheets.submit(&b, rb));
    }
}
