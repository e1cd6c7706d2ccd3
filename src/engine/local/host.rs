//! Buffers in page-locked host memory (under CUDA), lent through
//! [`Backend::clip_buffer`](crate::engine::Backend::clip_buffer): the batching front forms its
//! batches in them (sheets, which the element packs its clips into straight) and hands them to
//! its users as page-locked buffers. A batch lying in one of them goes to the card in one DMA
//! transfer, with no copy on the host (the runner does so when the batch, its padding rows
//! included, lies in one lent buffer, [`PageLocked::holds`]; otherwise the clips are copied into
//! a page-locked staging input first, as one transfer). Up to [`MAX_PAGE_LOCKED_BYTES`] are lent
//! at a time; past that (or when the allocation is refused) ordinary memory is handed out.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{DynTensor, TensorElementType};

use half::f16;

use super::cuda::outside_capture;
use crate::config::InputType;
use crate::engine::batch::{Batch, Clips};

/// Most page-locked bytes lent as clip buffers at once (1 GiB: about 200 I3D clips of 224² in
/// u8, more than dozens of streams keep in flight, and little of a host's memory).
pub(super) const MAX_PAGE_LOCKED_BYTES: usize = 1 << 30;

/// Lends page-locked clip buffers (see the module's documentation).
pub(super) struct PageLocked {
    /// ONNX Runtime's page-locked allocator of the CUDA device (not shared across threads
    /// without a lock: see ort's `Allocator`).
    allocator: Mutex<Allocator>,
    lent: Arc<Lending>,
    limit: usize,
}

/// What is lent now (buffers in use or in the engine's pool).
#[derive(Default)]
struct Lending {
    bytes: AtomicUsize,
    /// Each lent buffer: start address, length in bytes.
    ranges: Mutex<BTreeMap<usize, usize>>,
}

impl Lending {
    fn ranges(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, usize>> {
        self.ranges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a lent buffer's memory and gives its bytes back to the count when dropped.
struct Lent {
    /// Owns the memory (freed by ONNX Runtime's allocator when dropped; None once dropped).
    tensor: Option<DynTensor>,
    bytes: usize,
    /// The buffer's start address once lent (a key of `Lending::ranges`).
    start: Option<usize>,
    lent: Arc<Lending>,
}

impl Drop for Lent {
    fn drop(&mut self) {
        // Freeing page-locked memory is a CUDA call that breaks a graph being captured.
        let _outside = outside_capture();
        if let Some(start) = self.start {
            self.lent.ranges().remove(&start);
        }
        drop(self.tensor.take());
        self.lent.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// ONNX Runtime's description of page-locked host memory of CUDA device `device`.
pub(super) fn pinned_memory(device: i32) -> ort::Result<MemoryInfo<'static>> {
    MemoryInfo::new(
        AllocationDevice::CUDA_PINNED,
        device,
        AllocatorType::Device,
        MemoryType::CPUInput,
    )
}

impl PageLocked {
    /// The page-locked allocator of CUDA device `device`, from one of the model's sessions
    /// (None when ONNX Runtime offers none).
    pub(super) fn new(session: &Session, device: i32) -> Option<PageLocked> {
        let info = pinned_memory(device).ok()?;
        let allocator = Allocator::new(session, info).ok()?;
        Some(PageLocked::with_limit(allocator, MAX_PAGE_LOCKED_BYTES))
    }

    fn with_limit(allocator: Allocator, limit: usize) -> PageLocked {
        PageLocked {
            allocator: Mutex::new(allocator),
            lent: Arc::new(Lending::default()),
            limit,
        }
    }

    /// Bytes lent now.
    #[cfg(test)]
    fn lent_bytes(&self) -> usize {
        self.lent.bytes.load(Ordering::Relaxed)
    }

    /// Whether `bytes` bytes at `ptr` lie inside one buffer lent now.
    pub(super) fn holds(&self, ptr: *const u8, bytes: usize) -> bool {
        let at = ptr as usize;
        self.lent
            .ranges()
            .range(..=at)
            .next_back()
            .is_some_and(|(&start, &len)| {
                at.checked_add(bytes).is_some_and(|end| end <= start + len)
            })
    }

    /// A zeroed buffer of `len` values of `ty`, or None past the limit or when refused.
    pub(super) fn buffer(&self, ty: InputType, len: usize) -> Option<Batch> {
        Some(match ty {
            InputType::F32 => Batch::F32(self.clips::<f32>(TensorElementType::Float32, len)?),
            InputType::F16 => Batch::F16(self.clips::<f16>(TensorElementType::Float16, len)?),
            InputType::U8 => Batch::U8(self.clips::<u8>(TensorElementType::Uint8, len)?),
        })
    }

    fn clips<T: Copy>(&self, ty: TensorElementType, len: usize) -> Option<Clips<T>> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        if len == 0 || self.lent.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes > self.limit {
            self.lent.bytes.fetch_sub(bytes, Ordering::Relaxed);
            return None;
        }
        // From here on the bytes are given back by the owner's drop.
        let mut owner = Lent {
            tensor: None,
            bytes,
            start: None,
            lent: Arc::clone(&self.lent),
        };
        let tensor = {
            // Allocating page-locked memory is a CUDA call that breaks a graph being captured.
            let _outside = outside_capture();
            let allocator = self.allocator.lock().unwrap_or_else(|e| e.into_inner());
            DynTensor::new(&allocator, ty, vec![i64::try_from(len).ok()?]).ok()?
        };
        let tensor = owner.tensor.insert(tensor);
        let ptr = NonNull::new(tensor.data_ptr_mut().cast::<T>())?;
        // SAFETY: the tensor holds `len` values of `T` (its element type, checked by ONNX
        // Runtime's allocation) at `ptr`; zeroing makes every one initialised.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        let start = ptr.as_ptr() as usize;
        self.lent.ranges().insert(start, bytes);
        owner.start = Some(start);
        // SAFETY: the memory stays with the tensor, moved into (and dropped with) the owner,
        // and nothing else reaches it.
        Some(unsafe { Clips::lent(ptr, len, Box::new(owner)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ONNX Runtime's CPU allocator stands in for the page-locked one: the lending and the limit
    /// are the same code.
    fn lender(limit: usize) -> PageLocked {
        if let Err(e) = crate::engine::runtime() {
            panic!("ONNX Runtime is needed (tools/run-tests sets it up): {e}");
        }
        PageLocked::with_limit(Allocator::default(), limit)
    }

    #[test]
    fn lends_zeroed_buffers_up_to_the_limit_and_takes_bytes_back_on_drop() {
        let lender = lender(1000);
        let Some(Batch::F32(mut a)) = lender.buffer(InputType::F32, 200) else {
            panic!("no f32 buffer lent");
        };
        assert!(a.is_lent());
        assert_eq!(a.len(), 200);
        assert!(a.iter().all(|&v| v == 0.0));
        a[199] = 2.5;
        assert_eq!(a[199], 2.5);
        let at = a.as_ptr().cast::<u8>();
        assert!(lender.holds(at, 800) && lender.holds(at.wrapping_add(400), 400));
        assert!(!lender.holds(at, 801) && !lender.holds(at.wrapping_sub(1), 4));
        let elsewhere = [0u8; 64];
        assert!(!lender.holds(elsewhere.as_ptr(), 64));
        assert_eq!(lender.lent_bytes(), 800);
        // 800 + 400 bytes would pass the limit; 200 u8 fit.
        assert!(lender.buffer(InputType::F16, 200).is_none());
        assert_eq!(lender.lent_bytes(), 800);
        let Some(Batch::U8(b)) = lender.buffer(InputType::U8, 200) else {
            panic!("no u8 buffer lent");
        };
        assert_eq!(lender.lent_bytes(), 1000);
        drop(a);
        assert_eq!(lender.lent_bytes(), 200);
        assert!(
            !lender.holds(at, 800),
            "a buffer given back is no longer held"
        );
        assert!(matches!(
            lender.buffer(InputType::F16, 400),
            Some(Batch::F16(c)) if c.len() == 400 && c.is_lent()
        ));
        drop(b);
        assert_eq!(lender.lent_bytes(), 0);
        assert!(lender.buffer(InputType::U8, 0).is_none());
    }
}
