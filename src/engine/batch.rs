//! Clip data on its way to a backend: a [`Batch`] owns the packed clips of one request, and
//! [`Items`] lends a backend the clips of one model run (slices of the requests' own buffers, so
//! that the only copy is the backend's, into its input).

use half::f16;

use crate::config::InputType;

/// Input data of one batch, in the model's element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    F32(Vec<f32>),
    F16(Vec<f16>),
    U8(Vec<u8>),
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

    /// `len` zeros of the element type `ty`.
    pub fn zeros(ty: InputType, len: usize) -> Batch {
        match ty {
            InputType::F32 => Batch::F32(vec![0.0; len]),
            InputType::F16 => Batch::F16(vec![f16::ZERO; len]),
            InputType::U8 => Batch::U8(vec![0; len]),
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
            Batch::F32(v) => f(Items::F32(&split(v, per))),
            Batch::F16(v) => f(Items::F16(&split(v, per))),
            Batch::U8(v) => f(Items::U8(&split(v, per))),
        }
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
    fn of(batch: &Batch) -> Option<&[Self]>;
    fn items<'a>(items: &'a [&'a [Self]]) -> Items<'a>;
}

impl ClipElement for f32 {
    fn of(batch: &Batch) -> Option<&[f32]> {
        match batch {
            Batch::F32(v) => Some(v),
            _ => None,
        }
    }
    fn items<'a>(items: &'a [&'a [f32]]) -> Items<'a> {
        Items::F32(items)
    }
}

impl ClipElement for f16 {
    fn of(batch: &Batch) -> Option<&[f16]> {
        match batch {
            Batch::F16(v) => Some(v),
            _ => None,
        }
    }
    fn items<'a>(items: &'a [&'a [f16]]) -> Items<'a> {
        Items::F16(items)
    }
}

impl ClipElement for u8 {
    fn of(batch: &Batch) -> Option<&[u8]> {
        match batch {
            Batch::U8(v) => Some(v),
            _ => None,
        }
    }
    fn items<'a>(items: &'a [&'a [u8]]) -> Items<'a> {
        Items::U8(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_lends_its_clips_in_order() {
        let batch = Batch::U8((0..12).collect());
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
        assert_eq!(half.with_items(3, |items| items.len()), 2);
        assert_eq!(half.input_type(), InputType::F16);
    }
}
