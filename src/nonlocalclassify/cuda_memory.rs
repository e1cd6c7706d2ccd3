//! Video in CUDA memory (`video/x-raw(memory:CUDAMemory)`, the caps feature of GStreamer's NVIDIA
//! elements: nvh264dec, cudaupload, cudaconvertscale, ...).
//!
//! The element offers the feature in its pad templates, after the system-memory caps, only when
//! GStreamer's CUDA library (`libgstcuda-1.0.so.0`, gst-plugins-bad >= 1.22) can be loaded: only
//! elements built on it produce such memory. Sampled frames in CUDA memory are mapped for
//! reading like any other (GstCudaMemory copies the frame to a host staging buffer on a plain
//! read map; unsampled frames are never mapped, so they never leave the card).
//!
//! The CUDA context a producer shares (the `gst.cuda.context` GstContext) and its card, against
//! the element's `device-id`, are decided here too ([`context_card`]): the frames go through the
//! host today, so any card works; the on-card path (docs/design.md) will refuse another card.

use std::sync::LazyLock;

use super::frames::formats;

/// The caps feature of GStreamer's CUDA memory (GST_CAPS_FEATURE_MEMORY_CUDA_MEMORY).
pub const CUDA_MEMORY_FEATURE: &str = "memory:CUDAMemory";

/// GStreamer's CUDA library, whose presence decides whether the element offers CUDA memory.
#[cfg(not(windows))]
pub const CUDA_LIBRARY: &str = "libgstcuda-1.0.so.0";
/// GStreamer's CUDA library, whose presence decides whether the element offers CUDA memory.
#[cfg(windows)]
pub const CUDA_LIBRARY: &str = "gstcuda-1.0-0.dll";

/// The GstContext type in which CUDA elements share their CUDA context (GST_CUDA_CONTEXT_TYPE).
pub const CUDA_CONTEXT_TYPE: &str = "gst.cuda.context";

/// The field of a `gst.cuda.context` context holding the context's card (a guint, the CUDA
/// device index, as the element's `device-id` numbers the cards).
pub const CUDA_DEVICE_ID_FIELD: &str = "cuda-device-id";

/// The formats GstCudaMemory holds (the CUDA allocator's formats of gst-plugins-bad 1.22 that the
/// element also takes; later versions keep these): every format of the element but xRGB and
/// xBGR.
const CUDA_FORMATS: [gst_video::VideoFormat; 10] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
];

/// Whether GStreamer's CUDA library can be loaded in this process, decided once.
///
/// The library is opened (and kept open: it may be loaded by nvcodec anyway, and unloading the
/// GL libraries it links is not always safe); nothing in it is called.
pub fn cuda_library_loadable() -> bool {
    static LOADABLE: LazyLock<bool> = LazyLock::new(|| {
        // SAFETY: opening GStreamer's CUDA library runs no code of it beyond the dynamic
        // linker's (it has no initialisers; CUDA itself is loaded only by gst_cuda_load_library,
        // which is not called), and the handle is never closed, so nothing of it is unloaded
        // while in use.
        match unsafe { libloading::Library::new(CUDA_LIBRARY) } {
            Ok(library) => {
                std::mem::forget(library);
                true
            }
            Err(_) => false,
        }
    });
    *LOADABLE
}

/// The element's formats that CUDA memory may hold, in the element's order.
pub fn cuda_formats() -> Vec<gst_video::VideoFormat> {
    formats().filter(|f| CUDA_FORMATS.contains(f)).collect()
}

/// The element's pad template caps: system memory in every format it takes, then, when
/// `cuda_memory`, CUDA memory in [`cuda_formats`]. System memory first, so that an element
/// offered both by the element picks system memory as it did before CUDA memory was offered.
pub fn template_caps(cuda_memory: bool) -> gst::Caps {
    let mut caps = gst_video::VideoCapsBuilder::new()
        .format_list(formats())
        .build();
    if cuda_memory {
        let cuda = gst_video::VideoCapsBuilder::new()
            .features([CUDA_MEMORY_FEATURE])
            .format_list(cuda_formats())
            .build();
        caps.merge(cuda);
    }
    caps
}

/// Whether (fixed) caps carry frames in CUDA memory.
pub fn is_cuda_memory(caps: &gst::CapsRef) -> bool {
    caps.features(0)
        .is_some_and(|f| f.contains(CUDA_MEMORY_FEATURE))
}

/// The card of a CUDA context shared as a GstContext (`gst.cuda.context`, its `cuda-device-id`);
/// `None` for another context type or one without the field.
pub fn context_device(context: &gst::ContextRef) -> Option<u32> {
    (context.context_type() == CUDA_CONTEXT_TYPE)
        .then(|| context.structure().get::<u32>(CUDA_DEVICE_ID_FIELD).ok())
        .flatten()
}

/// Where the CUDA context of the video upstream is, against the element's `device-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextCard {
    /// No CUDA context upstream (system memory, or a producer that shares none).
    NoContext,
    /// On the card the engine runs on.
    Same,
    /// On another card than `device-id`.
    Other { context: u32, device_id: i32 },
}

/// Decide [`ContextCard`] from the element's `device-id` and the context's card, if any.
pub fn context_card(device_id: i32, context_device: Option<u32>) -> ContextCard {
    match context_device {
        None => ContextCard::NoContext,
        Some(card) if i64::from(card) == i64::from(device_id) => ContextCard::Same,
        Some(card) => ContextCard::Other {
            context: card,
            device_id,
        },
    }
}

impl ContextCard {
    /// The error of a path that needs the frames on the engine's card (the on-card path,
    /// docs/design.md): one sentence naming both cards and what to change; `Ok` otherwise.
    pub fn require_same(self) -> Result<(), String> {
        match self {
            ContextCard::NoContext | ContextCard::Same => Ok(()),
            ContextCard::Other { context, device_id } => Err(format!(
                "the video arrives in CUDA memory of card {context} but device-id={device_id}: set device-id={context}, or decode on card {device_id} (the nvcodec element whose cuda-device-id is {device_id})"
            )),
        }
    }

    /// A line for the debug log: where the frames are and how they reach the engine today.
    pub fn describe(self) -> String {
        match self {
            ContextCard::NoContext => {
                "no CUDA context upstream: sampled frames are read through the host".to_string()
            }
            ContextCard::Same => {
                "the CUDA context upstream is on device-id's card: sampled frames are read through the host".to_string()
            }
            ContextCard::Other { context, device_id } => format!(
                "the CUDA context upstream is on card {context}, device-id={device_id}: sampled frames are read through the host"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
