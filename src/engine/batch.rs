//! Clip data on its way to a backend: a [`Batch`] owns packed clips (a request's, or a whole
//! batch in formation, see `super::sheet`), and [`Items`] lends a backend the clips of one model
//! run (slices of that buffer). A batch's values live in [`Clips`]: an ordinary vector, or host
//! memory its backend allocated (page-locked under CUDA, where a batch lying in one such buffer
//! goes to the card in one DMA transfer, with no copy on the host).

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use half::f16;

use crate::config::InputType;

/// Input data of one batch, in the model's element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    F32(Clips<f32>),
    F16(Clips<f16>),
    U8(Clips<u8>),
}

/// The values of a [`Batch`]: a vector, or memory a backend lent ([`Clips::lent`]).
pub struct Clips<T>(Store<T>);

enum Store<T> {
    Heap(Vec<T>),
    Lent {
        ptr: NonNull<T>,
        len: usize,
        /// Keeps the memory alive (and gives it back when dropped).
        _owner: Box<dyn Send>,
    },
}

// SAFETY: a lent store is `len` values only this value reaches (see `Clips::lent`), read through
// `&self` and written through `&mut self` like a vector's; the owner is only dropped.
unsafe impl<T: Send> Send for Clips<T> {}
unsafe impl<T: Sync> Sync for Clips<T> {}

impl<T> Clips<T> {
    /// `len` values at `ptr`, kept alive by `owner`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` initialised values of `T`, reached
    /// through nothing but the returned value, for as long as `owner` lives.
    pub(crate) unsafe fn lent(ptr: NonNull<T>, len: usize, owner: Box<dyn Send>) -> Clips<T> {
        Clips(Store::Lent {
            ptr,
            len,
            _owner: owner,
        })
    }

    /// Whether the values live in memory a backend lent rather than in a vector.
    pub fn is_lent(&self) -> bool {
        matches!(self.0, Store::Lent { .. })
    }
}

impl<T> Deref for Clips<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.0 {
            Store::Heap(v) => v,
            // SAFETY: see `Clips::lent`.
            Store::Lent { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<T> DerefMut for Clips<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Store::Heap(v) => v,
            // SAFETY: see `Clips::lent`.
            Store::Lent { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<T> From<Vec<T>> for Clips<T> {
    fn from(v: Vec<T>) -> Clips<T> {
        Clips(Store::Heap(v))
    }
}

impl<T> FromIterator<T> for Clips<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Clips<T> {
        Clips(Store::Heap(iter.into_iter().collect()))
    }
}

/// A copy in an ordinary vector.
impl<T: Clone> Clone for Clips<T> {
    fn clone(&self) -> Clips<T> {
        Clips(Store::Heap(self.to_vec()))
    }
}

impl<T: PartialEq> PartialEq for Clips<T> {
    fn eq(&self, other: &Clips<T>) -> bool {
        **self == **other
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Clips<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clips")
            .field("len", &self.len())
            .field("lent", &self.is_lent())
            .finish()
    }
}

impl From<Vec<f32>> for Batch {
    fn from(v: Vec<f32>) -> Batch {
        Batch::F32(v.into())
    }
}

impl From<Vec<f16>> for Batch {
    fn from(v: Vec<f16>) -> Batch {
        Batch::F16(v.into())
    }
}

impl From<Vec<u8>> for Batch {
    fn from(v: Vec<u8>) -> Batch {
        Batch::U8(v.into())
    }
}

impl Batch {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Batch::F32(v) => v.len(),
            Batch::F16(v) => v.len(),
            Batch::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the values live in memory a backend lent (see [`Clips::lent`]).
    pub fn is_lent(&self) -> bool {
        match self {
            Batch::F32(v) => v.is_lent(),
            Batch::F16(v) => v.is_lent(),
            Batch::U8(v) => v.is_lent(),
        }
    }

    /// Copy `other`'s values into this batch (same element type and length), or say why not.
    pub fn copy_from(&mut self, other: &Batch) -> Result<(), String> {
        self.values_mut().copy_from(other)
    }

    /// The values, for writing.
    pub fn values_mut(&mut self) -> ValuesMut<'_> {
        match self {
            Batch::F32(v) => ValuesMut::F32(v),
            Batch::F16(v) => ValuesMut::F16(v),
            Batch::U8(v) => ValuesMut::U8(v),
        }
    }

    /// `len` zeros of the element type `ty`.
    pub fn zeros(ty: InputType, len: usize) -> Batch {
        match ty {
            InputType::F32 => Batch::from(vec![0.0f32; len]),
            InputType::F16 => Batch::from(vec![f16::ZERO; len]),
            InputType::U8 => Batch::from(vec![0u8; len]),
        }
    }

    pub(crate) fn input_type(&self) -> InputType {
        match self {
            Batch::F32(_) => InputType::F32,
            Batch::F16(_) => InputType::F16,
            Batch::U8(_) => InputType::U8,
        }
    }

    /// Lend the batch's `per`-element clips to `f` as [`Items`].
    pub(crate) fn with_items<R>(&self, per: usize, f: impl FnOnce(Items<'_>) -> R) -> R {
        fn split<T>(v: &[T], per: usize) -> Vec<&[T]> {
            v.chunks_exact(per.max(1)).collect()
        }
        match self {
            Batch::F32(v) => f(Items::F32(&split(&v[..], per))),
            Batch::F16(v) => f(Items::F16(&split(&v[..], per))),
            Batch::U8(v) => f(Items::U8(&split(&v[..], per))),
        }
    }
}

/// Values to write clips into (a [`Batch`]'s, or a [`super::Slot`]'s room in a batch being
/// formed), in the model's input element type.
pub enum ValuesMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [f16]),
    U8(&'a mut [u8]),
}

impl ValuesMut<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ValuesMut::F32(v) => v.len(),
            ValuesMut::F16(v) => v.len(),
            ValuesMut::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy `data`'s values in (same element type and length), or say why not.
    pub fn copy_from(&mut self, data: &Batch) -> Result<(), String> {
        match (&mut *self, data) {
            (ValuesMut::F32(a), Batch::F32(b)) if a.len() == b.len() => a.copy_from_slice(b),
            (ValuesMut::F16(a), Batch::F16(b)) if a.len() == b.len() => a.copy_from_slice(b),
            (ValuesMut::U8(a), Batch::U8(b)) if a.len() == b.len() => a.copy_from_slice(b),
            (_, b) => {
                return Err(format!(
                    "cannot copy {} {:?} input values into {} values",
                    b.len(),
                    b.input_type(),
                    self.len()
                ))
            }
        }
        Ok(())
    }
}

/// The clips of one model run, one slice per clip, all of the model's input element type.
#[derive(Clone, Copy, Debug)]
pub enum Items<'a> {
    F32(&'a [&'a [f32]]),
    F16(&'a [&'a [f16]]),
    U8(&'a [&'a [u8]]),
}

impl Items<'_> {
    /// Number of clips.
    pub fn len(&self) -> usize {
        match self {
            Items::F32(v) => v.len(),
            Items::F16(v) => v.len(),
            Items::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The clips' element type.
    pub fn input_type(&self) -> InputType {
        match self {
            Items::F32(_) => InputType::F32,
            Items::F16(_) => InputType::F16,
            Items::U8(_) => InputType::U8,
        }
    }
}

/// The element types a batch can hold, with access to their slice in a [`Batch`].
pub(crate) trait ClipElement: Copy + Send + Sync + 'static {
    fn items<'a>(items: &'a [&'a [Self]]) -> Items<'a>;
    /// The clips as bytes: uint8 clips only (source spans, see `crate::engine::SpanClips`).
    fn bytes<'a>(items: &'a [&'a [Self]]) -> Result<&'a [&'a [u8]], crate::engine::EngineError> {
        let _ = items;
        Err(crate::engine::EngineError::Inference(
            "source spans must be uint8".into(),
        ))
    }
}

impl ClipElement for f32 {
    fn items<'a>(items: &'a [&'a [f32]]) -> Items<'a> {
        Items::F32(items)
    }
}

impl ClipElement for f16 {
    fn items<'a>(items: &'a [&'a [f16]]) -> Items<'a> {
        Items::F16(items)
    }
}

impl ClipElement for u8 {
    fn items<'a>(items: &'a [&'a [u8]]) -> Items<'a> {
        Items::U8(items)
    }
    fn bytes<'a>(items: &'a [&'a [u8]]) -> Result<&'a [&'a [u8]], crate::engine::EngineError> {
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lends_its_clips_in_order() {
        let batch = Batch::from((0..12).collect::<Vec<u8>>());
        let got = batch.with_items(4, |items| {
            assert_eq!(items.input_type(), InputType::U8);
            match items {
                Items::U8(v) => v.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
                _ => Vec::new(),
            }
        });
        assert_eq!(
            got,
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
        );
        let half = Batch::zeros(InputType::F16, 6);
        assert!(matches!(&half, Batch::F16(c) if !c.is_lent()));
        assert_eq!(half.with_items(3, |items| items.len()), 2);
        assert_eq!(half.input_type(), InputType::F16);
    }

    #[test]
    fn lent_clips_read_write_and_give_their_memory_back_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        struct Owner {
            _memory: Box<[u8]>,
            dropped: Arc<AtomicUsize>,
        }
        impl Drop for Owner {
            fn drop(&mut self) {
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut memory: Box<[u8]> = vec![7; 6].into_boxed_slice();
        let ptr = NonNull::new(memory.as_mut_ptr()).unwrap();
        let owner = Owner {
            _memory: memory,
            dropped: Arc::clone(&dropped),
        };
        // SAFETY: the six bytes belong to `owner` (moved, not reallocated) and nothing else.
        let mut clips = unsafe { Clips::lent(ptr, 6, Box::new(owner)) };
        assert!(clips.is_lent());
        clips[2] = 9;
        assert_eq!(&clips[..], [7, 7, 9, 7, 7, 7]);
        let batch = Batch::U8(clips);
        let copy = batch.clone();
        assert!(batch.is_lent() && !copy.is_lent());
        assert_eq!(copy, batch);
        let mut other = Batch::zeros(InputType::U8, 6);
        other.copy_from(&batch).unwrap();
        assert_eq!(other, batch);
        assert!(other.copy_from(&Batch::zeros(InputType::U8, 5)).is_err());
        assert!(other.copy_from(&Batch::zeros(InputType::F16, 6)).is_err());
        assert_eq!(batch.with_items(3, |items| items.len()), 2);
        drop(batch);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        drop(copy);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
}
