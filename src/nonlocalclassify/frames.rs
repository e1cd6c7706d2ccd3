//! Video frames as the preprocessing module sees them: the raw formats the element takes and a
//! mapped GStreamer frame as a [`FrameView`].

use gst_video::prelude::*;

use crate::preprocess::{FrameView, PixelFormat, YuvMatrix, YuvRange};

/// The preprocessing module's format of a GStreamer format (the same caps name), if it takes it.
pub(super) fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    PixelFormat::from_name(format.to_str())
}

/// The formats the element takes, in the order its caps list them.
pub(super) fn formats() -> impl Iterator<Item = gst_video::VideoFormat> {
    PixelFormat::ALL
        .iter()
        .map(|f| gst_video::VideoFormat::from_string(f.name()))
}

/// Map a sampled frame for reading (the only place the element maps video). `cuda_memory`: the
/// caps carry `memory:CUDAMemory`, whose frames are pitched on the card: their layout is read
/// from the buffer's GstVideoMeta (the CUDA buffer pool always adds one), never guessed from the
/// caps, so a buffer without one is refused. A plain read map of CUDA memory copies the frame to
/// a host staging buffer (GstCudaMemory, gst-plugins-bad 1.22 to 1.28).
pub(super) fn map_readable<'a>(
    buf: &'a gst::BufferRef,
    info: &gst_video::VideoInfo,
    cuda_memory: bool,
) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, String> {
    if cuda_memory && buf.meta::<gst_video::VideoMeta>().is_none() {
        return Err("a frame in CUDA memory has no GstVideoMeta, so its rows' pitch is unknown: put cudadownload before nonlocalclassify".to_string());
    }
    gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info).map_err(|_| {
        if cuda_memory {
            "cannot map the frame (CUDA memory) for reading: the copy to the host failed"
                .to_string()
        } else {
            "cannot map the frame for reading".to_string()
        }
    })
}

/// Convert a mapped video frame into the preprocessing module's view.
pub(super) fn frame_view<'a>(
    frame: &'a gst_video::VideoFrameRef<&'a gst::BufferRef>,
) -> Option<FrameView<'a>> {
    let info = frame.info();
    let format = pixel_format(info.format())?;
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for i in 0..(frame.n_planes() as usize).min(3) {
        planes[i] = frame.plane_data(i as u32).ok()?;
        strides[i] = usize::try_from(frame.plane_stride()[i]).ok()?;
    }
    let colorimetry = info.colorimetry();
    Some(FrameView {
        format,
        width: frame.width(),
        height: frame.height(),
        planes,
        strides,
        matrix: if colorimetry.matrix() == gst_video::VideoColorMatrix::Bt709 {
            YuvMatrix::Bt709
        } else {
            YuvMatrix::Bt601
        },
        range: if colorimetry.range() == gst_video::VideoColorRange::Range0_255 {
            YuvRange::Full
        } else {
            YuvRange::Limited
        },
    })
}
