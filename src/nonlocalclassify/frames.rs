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
