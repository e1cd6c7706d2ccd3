//! Frame preprocessing: colour conversion to RGB, short-side resize, square crops and packing of
//! clips into model input tensors.
//!
//! Everything here is independent of GStreamer: the element maps a buffer, describes it with a
//! [`FrameView`], turns it into a [`ScaledFrame`] with a [`Scaler`] and, once a clip is complete,
//! packs its frames into the input tensor with [`pack_clip`].

//!
//! - [`colour`]: packed RGB and Y'CbCr frames to RGB8;
//! - [`scale`]: short-side scaling ([`Scaler`]) and crop positions;
//! - [`pack`]: clips into model input tensors ([`pack_clip`]).

use std::fmt;

mod colour;
mod pack;
mod scale;

pub use pack::{pack_clip, Layout, Normalization, TensorElement};
pub use scale::{crop_origin, CentreSpan, CropPosition, Scaler, Square};

#[cfg(test)]
mod tests;

/// Pixel formats the element accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgba,
    Bgra,
    Argb,
    Abgr,
    I420,
    Nv12,
}

impl PixelFormat {
    /// Every supported format, in the order the element lists them in its caps.
    pub const ALL: [PixelFormat; 12] = [
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Xrgb,
        PixelFormat::Xbgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Argb,
        PixelFormat::Abgr,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ];

    /// The format's name as it appears in `video/x-raw` caps (`"RGBx"`, `"I420"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
            PixelFormat::Xrgb => "xRGB",
            PixelFormat::Xbgr => "xBGR",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Argb => "ARGB",
            PixelFormat::Abgr => "ABGR",
            PixelFormat::I420 => "I420",
            PixelFormat::Nv12 => "NV12",
        }
    }

    /// Parses a caps format name (exact, case-sensitive as in caps); `None` for unsupported ones.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Number of planes the format uses (packed RGB 1, NV12 2, I420 3).
    pub fn n_planes(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            _ => 1,
        }
    }

    /// Whether the format is Y'CbCr (so [`YuvMatrix`] and [`YuvRange`] apply).
    pub fn is_yuv(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// YUV → RGB conversion parameters (ignored for RGB formats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvMatrix {
    Bt601,
    Bt709,
}

/// Quantisation range of Y'CbCr samples: limited (Y 16–235, Cb/Cr 16–240) or full (0–255).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvRange {
    Limited,
    Full,
}

/// A borrowed view of one decoded frame, as GStreamer maps it: per-plane data and strides
/// (packed RGB formats use plane 0 only; I420 uses 3 planes, NV12 2).
pub struct FrameView<'a> {
    /// Pixel format of the planes.
    pub format: PixelFormat,
    /// Width in pixels (at least 1).
    pub width: u32,
    /// Height in pixels (at least 1).
    pub height: u32,
    /// Plane data; unused planes may be empty. The last row of a plane needs no padding.
    pub planes: [&'a [u8]; 3],
    /// Bytes from the start of one row of a plane to the start of the next.
    pub strides: [usize; 3],
    /// Y'CbCr matrix (I420/NV12 only).
    pub matrix: YuvMatrix,
    /// Y'CbCr quantisation range (I420/NV12 only).
    pub range: YuvRange,
}

/// A frame converted to tightly packed RGB8 (HWC) and resized so its short side is the scale size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaledFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, rows top to bottom, R G B per pixel.
    pub data: Vec<u8>,
}

/// Everything that can go wrong while preprocessing; each message says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame is {width}x{height}; width and height must both be at least 1")]
    ZeroSizedFrame { width: u32, height: u32 },

    #[error("scale size is 0; the short side must be scaled to at least 1 pixel")]
    ZeroScaleSize,

    #[error(
        "{width}x{height} frames are more than {MAX_ASPECT}:1 (scaled to a short side of \
         {scale_size} every frame would be {scaled_long} pixels long); crop the video to a usual \
         aspect ratio first (videocrop)"
    )]
    TooElongated {
        width: u32,
        height: u32,
        scale_size: u32,
        scaled_long: u64,
    },

    #[error(
        "scaling a {width}x{height} frame to a short side of {scale_size} gives a long side \
         larger than {max} pixels; use a smaller scale size",
        max = u32::MAX
    )]
    ScaledFrameTooLarge {
        width: u32,
        height: u32,
        scale_size: u32,
    },

    #[error(
        "plane {plane} of the {format} {width}x{height} frame has a stride of {stride} bytes, \
         but one row needs at least {row_bytes}"
    )]
    StrideTooSmall {
        format: PixelFormat,
        width: u32,
        height: u32,
        plane: usize,
        stride: usize,
        row_bytes: usize,
    },

    #[error(
        "plane {plane} of the {format} {width}x{height} frame holds {len} bytes, but needs at \
         least {needed} ({rows} rows, stride {stride})"
    )]
    PlaneTooShort {
        format: PixelFormat,
        width: u32,
        height: u32,
        plane: usize,
        len: usize,
        needed: usize,
        rows: usize,
        stride: usize,
    },

    #[error("crop size is 0; it must be at least 1")]
    ZeroCropSize,

    #[error(
        "crop {crop}x{crop} is larger than frame {index} of the clip ({width}x{height} after \
         scaling); the crop size must not exceed the scale size"
    )]
    CropTooLarge {
        crop: u32,
        index: usize,
        width: u32,
        height: u32,
    },

    #[error(
        "frame {index} of the clip is {width}x{height} and should hold {expected} RGB bytes, \
         but holds {len}"
    )]
    ScaledFrameSizeMismatch {
        index: usize,
        width: u32,
        height: u32,
        expected: usize,
        len: usize,
    },

    #[error("the clip has no frames; a clip needs at least one")]
    EmptyClip,

    #[error(
        "output slice holds {actual} elements, but a clip of {frames} frames cropped to \
         {crop}x{crop} needs exactly {expected} (3 x {frames} x {crop} x {crop})"
    )]
    OutputLength {
        expected: usize,
        actual: usize,
        frames: usize,
        crop: u32,
    },

    #[error("normalisation std[{channel}] (RGB order) is {value}; it must be finite and non-zero")]
    InvalidStd { channel: usize, value: f32 },

    #[error("resizing failed: {0}")]
    Resize(String),
}

/// Size a `width`×`height` frame gets when its short side is scaled to `scale_size`, keeping the
/// aspect ratio: the long side becomes `round(long * scale_size / short)` (halves round up), at
/// least 1. A square frame becomes `scale_size`×`scale_size`.
/// The most elongated frames scaled (long side : short side). Each scaled frame of a clip is
/// held until the clip is packed, so a 4096×1 stream would otherwise need gigabytes per clip.
pub const MAX_ASPECT: u64 = 16;

pub fn scaled_size(
    width: u32,
    height: u32,
    scale_size: u32,
) -> Result<(u32, u32), PreprocessError> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSizedFrame { width, height });
    }
    if scale_size == 0 {
        return Err(PreprocessError::ZeroScaleSize);
    }
    let (short, long) = if width <= height {
        (u64::from(width), u64::from(height))
    } else {
        (u64::from(height), u64::from(width))
    };
    let scaled_long = ((2 * long * u64::from(scale_size) + short) / (2 * short)).max(1);
    if long > MAX_ASPECT * short {
        return Err(PreprocessError::TooElongated {
            width,
            height,
            scale_size,
            scaled_long,
        });
    }
    let scaled_long =
        u32::try_from(scaled_long).map_err(|_| PreprocessError::ScaledFrameTooLarge {
            width,
            height,
            scale_size,
        })?;
    Ok(if width <= height {
        (scale_size, scaled_long)
    } else {
        (scaled_long, scale_size)
    })
}

/// Bytes of a tightly packed RGB8 image, `None` if that does not fit in `usize`.
fn rgb_len(width: u32, height: u32) -> Option<usize> {
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
}
