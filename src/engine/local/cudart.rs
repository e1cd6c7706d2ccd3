//! The few CUDA runtime calls ONNX Runtime does not offer: copying a batch from page-locked host
//! memory to the model's input on the card, on a stream of the lane's own, with one wait.
//! (ONNX Runtime copies a tensor as a run of its own, with a wait each, which on a host busy with
//! dozens of pipelines costs milliseconds.) The runtime is the one ONNX Runtime's CUDA provider
//! loaded (libcudart of CUDA 13 or 12), opened at run time as ONNX Runtime itself is.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use libloading::Library;

type Stream = *mut c_void;

/// cudaMemcpyHostToDevice.
const HOST_TO_DEVICE: c_int = 1;
/// cudaStreamNonBlocking: no implicit ordering with the legacy default stream.
const NON_BLOCKING: u32 = 1;

/// The runtime library names tried, newest first.
const LIBRARIES: [&str; 3] = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"];

struct Api {
    set_device: unsafe extern "C" fn(c_int) -> c_int,
    stream_create: unsafe extern "C" fn(*mut Stream, u32) -> c_int,
    stream_destroy: unsafe extern "C" fn(Stream) -> c_int,
    memcpy_async: unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int, Stream) -> c_int,
    synchronize: unsafe extern "C" fn(Stream) -> c_int,
    error_string: unsafe extern "C" fn(c_int) -> *const c_char,
    /// Keeps the functions above loaded (the value lives in a static: never unloaded).
    _library: Library,
}

fn open(name: &str) -> Result<Api, libloading::Error> {
    // SAFETY: loading the CUDA runtime runs its initialisers, which have no preconditions; the
    // symbols are CUDA runtime functions with the C signatures declared in `Api` (CUDA's
    // cuda_runtime_api.h), and the library stays loaded as long as the pointers are used.
    unsafe {
        let library = Library::new(name)?;
        Ok(Api {
            set_device: *library.get(b"cudaSetDevice\0")?,
            stream_create: *library.get(b"cudaStreamCreateWithFlags\0")?,
            stream_destroy: *library.get(b"cudaStreamDestroy\0")?,
            memcpy_async: *library.get(b"cudaMemcpyAsync\0")?,
            synchronize: *library.get(b"cudaStreamSynchronize\0")?,
            error_string: *library.get(b"cudaGetErrorString\0")?,
            _library: library,
        })
    }
}

/// The CUDA runtime, or why it could not be opened.
fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| {
        let mut tried = Vec::new();
        for name in LIBRARIES {
            match open(name) {
                Ok(api) => return Ok(api),
                Err(e) => tried.push(format!("{name}: {e}")),
            }
        }
        Err(format!(
            "no CUDA runtime library could be opened ({})",
            tried.join("; ")
        ))
    })
    .as_ref()
    .map_err(Clone::clone)
}

impl Api {
    fn check(&self, what: &str, code: c_int) -> Result<(), String> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: cudaGetErrorString returns a static NUL-terminated string for any code.
        let text = unsafe { CStr::from_ptr((self.error_string)(code)) };
        Err(format!(
            "{what} failed: {} (CUDA error {code})",
            text.to_string_lossy()
        ))
    }
}

/// One host-to-card copy: `bytes` bytes from `src` (host memory) to `dst` (the card's).
#[derive(Clone, Copy, Debug)]
pub(super) struct HostCopy {
    pub(super) dst: *mut u8,
    pub(super) src: *const u8,
    pub(super) bytes: usize,
}

/// A CUDA stream of one lane, for copying its batches to the card.
pub(super) struct CopyStream {
    api: &'static Api,
    stream: Stream,
    device: i32,
}

// SAFETY: a CUDA stream may be used from any thread (each call sets the device first); the lane
// that owns it uses it from one thread at a time (behind the lane's lock).
unsafe impl Send for CopyStream {}

impl CopyStream {
    /// A non-blocking stream on CUDA device `device`.
    pub(super) fn new(device: i32) -> Result<CopyStream, String> {
        let api = api()?;
        let mut stream: Stream = std::ptr::null_mut();
        // SAFETY: plain CUDA runtime calls; `stream` is written by cudaStreamCreateWithFlags.
        unsafe {
            api.check("cudaSetDevice", (api.set_device)(device))?;
            api.check(
                "cudaStreamCreateWithFlags",
                (api.stream_create)(&mut stream, NON_BLOCKING),
            )?;
        }
        Ok(CopyStream {
            api,
            stream,
            device,
        })
    }

    /// Queue every copy on the stream, then wait until all are done.
    ///
    /// # Safety
    /// Each `src` must be valid for reads and each `dst` a device allocation of this device valid
    /// for writes of `bytes` bytes, none written by anyone else until this returns.
    pub(super) unsafe fn copy_all(&self, copies: &[HostCopy]) -> Result<(), String> {
        let api = self.api;
        // SAFETY: the caller's promise; the stream is this value's.
        unsafe {
            api.check("cudaSetDevice", (api.set_device)(self.device))?;
            for c in copies {
                let queued = (api.memcpy_async)(
                    c.dst.cast(),
                    c.src.cast(),
                    c.bytes,
                    HOST_TO_DEVICE,
                    self.stream,
                );
                if let Err(e) = api.check("cudaMemcpyAsync", queued) {
                    // Never return while queued copies may still read the clips.
                    let _ = (api.synchronize)(self.stream);
                    return Err(e);
                }
            }
            api.check("cudaStreamSynchronize", (api.synchronize)(self.stream))
        }
    }
}

impl Drop for CopyStream {
    fn drop(&mut self) {
        // SAFETY: the stream is this value's and no copy is queued on it (copy_all waits).
        unsafe {
            let _ = (self.api.set_device)(self.device);
            let _ = (self.api.stream_destroy)(self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_opens_or_says_what_is_missing() {
        match CopyStream::new(0) {
            // A CUDA host.
            Ok(stream) => unsafe { stream.copy_all(&[]).unwrap() },
            // No runtime (every name tried is named), or a runtime without a card.
            Err(e) if e.starts_with("no CUDA runtime library could be opened") => {
                for name in LIBRARIES {
                    assert!(e.contains(name), "{e}");
                }
            }
            Err(e) => assert!(e.starts_with("cudaSetDevice failed: "), "{e}"),
        }
    }
}
