//! Frame preprocessing: colour conversion to RGB, short-side resize, square crops and packing of
//! clips into model input tensors.
//!
//! Everything here is independent of GStreamer: the element maps a buffer, describes it with a
//! [`FrameView`], turns it into a [`ScaledFrame`] with a [`Scaler`] and, once a clip is complete,
//! packs its frames into the input tensor with [`pack_clip`].

use std::fmt;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

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

/// Fixed-point precision of the YUV → RGB coefficients.
const FRAC_BITS: u32 = 20;
const ROUND_HALF: i32 = 1 << (FRAC_BITS - 1);

/// YUV → RGB coefficients in fixed point (value × 2^FRAC_BITS).
#[derive(Clone, Copy, Debug)]
struct YuvCoeffs {
    y_offset: i32,
    y_mul: i32,
    r_v: i32,
    g_u: i32,
    g_v: i32,
    b_u: i32,
}

impl YuvCoeffs {
    fn new(matrix: YuvMatrix, range: YuvRange) -> Self {
        let (kr, kb) = match matrix {
            YuvMatrix::Bt601 => (0.299_f64, 0.114_f64),
            YuvMatrix::Bt709 => (0.2126_f64, 0.0722_f64),
        };
        let kg = 1.0 - kr - kb;
        let (y_offset, y_scale, c_scale) = match range {
            YuvRange::Limited => (16, 255.0 / 219.0, 255.0 / 224.0),
            YuvRange::Full => (0, 1.0, 1.0),
        };
        let fixed = |v: f64| (v * f64::from(1_u32 << FRAC_BITS)).round() as i32;
        Self {
            y_offset,
            y_mul: fixed(y_scale),
            r_v: fixed(2.0 * (1.0 - kr) * c_scale),
            g_u: fixed(2.0 * kb * (1.0 - kb) / kg * c_scale),
            g_v: fixed(2.0 * kr * (1.0 - kr) / kg * c_scale),
            b_u: fixed(2.0 * (1.0 - kb) * c_scale),
        }
    }
}

#[inline(always)]
fn fixed_to_u8(v: i32) -> u8 {
    (v >> FRAC_BITS).clamp(0, 255) as u8
}

/// Converts one row of 4:4:4 Y'CbCr (chroma already upsampled to the luma width) to RGB.
fn yuv444_row(c: &YuvCoeffs, y_row: &[u8], u_row: &[u8], v_row: &[u8], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { yuv444_row_avx2(c, y_row, u_row, v_row, dst) };
    }
    yuv444_row_body(c, y_row, u_row, v_row, dst)
}

/// The same loop compiled for AVX2, where the compiler vectorises it (8 pixels a step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn yuv444_row_avx2(c: &YuvCoeffs, y_row: &[u8], u_row: &[u8], v_row: &[u8], dst: &mut [u8]) {
    yuv444_row_body(c, y_row, u_row, v_row, dst)
}

#[inline(always)]
fn yuv444_row_body(c: &YuvCoeffs, y_row: &[u8], u_row: &[u8], v_row: &[u8], dst: &mut [u8]) {
    for (((d, &y), &u), &v) in dst.chunks_exact_mut(3).zip(y_row).zip(u_row).zip(v_row) {
        let u = i32::from(u) - 128;
        let v = i32::from(v) - 128;
        let y = c.y_mul * (i32::from(y) - c.y_offset) + ROUND_HALF;
        d[0] = fixed_to_u8(y + c.r_v * v);
        d[1] = fixed_to_u8(y - c.g_u * u - c.g_v * v);
        d[2] = fixed_to_u8(y + c.b_u * u);
    }
}

/// Nearest-neighbour horizontal chroma upsampling: each source sample fills two destination
/// samples (the last one alone when the destination width is odd).
#[inline(always)]
fn upsample_row(mut src: impl Iterator<Item = u8>, dst: &mut [u8]) {
    let mut pairs = dst.chunks_exact_mut(2);
    for (d, s) in (&mut pairs).zip(&mut src) {
        d[0] = s;
        d[1] = s;
    }
    if let ([last], Some(s)) = (pairs.into_remainder(), src.next()) {
        *last = s;
    }
}

/// Copies tightly packed pixels of a 3- or 4-byte format to RGB, picking bytes `R`, `G`, `B` of
/// each `BPP`-byte pixel.
#[inline(always)]
fn packed_row<const BPP: usize, const R: usize, const G: usize, const B: usize>(
    src: &[u8],
    dst: &mut [u8],
) {
    for (s, d) in src.chunks_exact(BPP).zip(dst.chunks_exact_mut(3)) {
        d[0] = s[R];
        d[1] = s[G];
        d[2] = s[B];
    }
}

/// Bytes per pixel of a packed RGB format, `None` for Y'CbCr formats.
fn packed_bpp(format: PixelFormat) -> Option<usize> {
    match format {
        PixelFormat::Rgb | PixelFormat::Bgr => Some(3),
        PixelFormat::I420 | PixelFormat::Nv12 => None,
        _ => Some(4),
    }
}

/// Converts tightly packed pixels of the packed `format` in `src` to RGB in `dst` (as many
/// pixels as both hold). Y'CbCr formats are not handled here.
fn packed_to_rgb(format: PixelFormat, src: &[u8], dst: &mut [u8]) {
    match format {
        PixelFormat::Rgb => {
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
        }
        PixelFormat::Bgr => packed_row::<3, 2, 1, 0>(src, dst),
        PixelFormat::Rgbx | PixelFormat::Rgba => packed_row::<4, 0, 1, 2>(src, dst),
        PixelFormat::Bgrx | PixelFormat::Bgra => packed_row::<4, 2, 1, 0>(src, dst),
        PixelFormat::Xrgb | PixelFormat::Argb => packed_row::<4, 1, 2, 3>(src, dst),
        PixelFormat::Xbgr | PixelFormat::Abgr => packed_row::<4, 3, 2, 1>(src, dst),
        PixelFormat::I420 | PixelFormat::Nv12 => {}
    }
}

/// One plane's geometry: bytes per row and number of rows.
#[derive(Clone, Copy, Debug)]
struct PlaneShape {
    row_bytes: usize,
    rows: usize,
}

fn plane_shapes(format: PixelFormat, width: u32, height: u32) -> Vec<PlaneShape> {
    let w = width as usize;
    let h = height as usize;
    let cw = w.div_ceil(2);
    let ch = h.div_ceil(2);
    let packed = |bpp: usize| {
        vec![PlaneShape {
            row_bytes: w * bpp,
            rows: h,
        }]
    };
    match format {
        PixelFormat::Rgb | PixelFormat::Bgr => packed(3),
        PixelFormat::I420 => vec![
            PlaneShape {
                row_bytes: w,
                rows: h,
            },
            PlaneShape {
                row_bytes: cw,
                rows: ch,
            },
            PlaneShape {
                row_bytes: cw,
                rows: ch,
            },
        ],
        PixelFormat::Nv12 => vec![
            PlaneShape {
                row_bytes: w,
                rows: h,
            },
            PlaneShape {
                row_bytes: 2 * cw,
                rows: ch,
            },
        ],
        _ => packed(4),
    }
}

/// Checks the frame's size, strides and plane lengths, so that conversion can index freely.
fn validate_frame(frame: &FrameView<'_>) -> Result<(), PreprocessError> {
    let (width, height, format) = (frame.width, frame.height, frame.format);
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSizedFrame { width, height });
    }
    for (plane, shape) in plane_shapes(format, width, height).into_iter().enumerate() {
        let stride = frame.strides[plane];
        if stride < shape.row_bytes {
            return Err(PreprocessError::StrideTooSmall {
                format,
                width,
                height,
                plane,
                stride,
                row_bytes: shape.row_bytes,
            });
        }
        let needed = (shape.rows - 1)
            .checked_mul(stride)
            .and_then(|n| n.checked_add(shape.row_bytes));
        let len = frame.planes[plane].len();
        if needed.is_none_or(|needed| len < needed) {
            return Err(PreprocessError::PlaneTooShort {
                format,
                width,
                height,
                plane,
                len,
                needed: needed.unwrap_or(usize::MAX),
                rows: shape.rows,
                stride,
            });
        }
    }
    Ok(())
}

/// Row `y` of `plane` (the first `row_bytes` bytes); the frame must have been validated.
#[inline(always)]
fn plane_row<'a>(frame: &FrameView<'a>, plane: usize, y: usize, row_bytes: usize) -> &'a [u8] {
    let start = y * frame.strides[plane];
    &frame.planes[plane][start..start + row_bytes]
}

/// Chroma rows upsampled to the luma width, reused between rows and frames.
#[derive(Debug, Default)]
struct ChromaRows {
    u: Vec<u8>,
    v: Vec<u8>,
}

/// Converts a validated frame to tightly packed RGB8 in `dst` (exactly width*height*3 bytes).
fn convert_to_rgb(frame: &FrameView<'_>, dst: &mut [u8], chroma: &mut ChromaRows) {
    let all = Rect {
        x: 0,
        y: 0,
        width: frame.width as usize,
        height: frame.height as usize,
    };
    convert_rect_to_rgb(frame, all, dst, chroma);
}

/// A rectangle of pixels inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

/// Converts the rectangle `r` of a validated frame (which it must fit in) to tightly packed RGB8
/// in `dst` (exactly r.width*r.height*3 bytes): the same values as converting the whole frame
/// and cutting the rectangle out.
fn convert_rect_to_rgb(frame: &FrameView<'_>, r: Rect, dst: &mut [u8], chroma: &mut ChromaRows) {
    let w = frame.width as usize;
    let (x0, x1) = (r.x, r.x + r.width);
    let row_rgb = r.width * 3;
    if let Some(bpp) = packed_bpp(frame.format) {
        for (y, d) in (r.y..).zip(dst.chunks_exact_mut(row_rgb)) {
            let row = plane_row(frame, 0, y, w * bpp);
            packed_to_rgb(frame.format, &row[x0 * bpp..x1 * bpp], d);
        }
        return;
    }
    let coeffs = YuvCoeffs::new(frame.matrix, frame.range);
    let cw = w.div_ceil(2);
    chroma.u.resize(w, 0);
    chroma.v.resize(w, 0);
    for (y, d) in (r.y..).zip(dst.chunks_exact_mut(row_rgb)) {
        // A new chroma row every second luma row (and at the rectangle's first row).
        if y % 2 == 0 || y == r.y {
            if frame.format == PixelFormat::Nv12 {
                let uv_row = plane_row(frame, 1, y / 2, 2 * cw);
                upsample_row(uv_row.iter().step_by(2).copied(), &mut chroma.u);
                upsample_row(uv_row.iter().skip(1).step_by(2).copied(), &mut chroma.v);
            } else {
                upsample_row(
                    plane_row(frame, 1, y / 2, cw).iter().copied(),
                    &mut chroma.u,
                );
                upsample_row(
                    plane_row(frame, 2, y / 2, cw).iter().copied(),
                    &mut chroma.v,
                );
            }
        }
        yuv444_row(
            &coeffs,
            &plane_row(frame, 0, y, w)[x0..x1],
            &chroma.u[x0..x1],
            &chroma.v[x0..x1],
            d,
        );
    }
}

/// The element's resampling: bilinear, every channel on its own (alpha not premultiplied).
fn bilinear() -> ResizeOptions {
    ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .use_alpha(false)
}

fn resize_error(e: impl fmt::Display) -> PreprocessError {
    PreprocessError::Resize(e.to_string())
}

/// Reusable converter/resizer (keeps fast_image_resize's Resizer and scratch buffers between frames).
#[derive(Debug)]
pub struct Scaler {
    resizer: Resizer,
    /// Full-resolution input of the resize (converted RGB, or packed pixels copied tight).
    src: Vec<u8>,
    /// Resized packed pixels in the source byte order, before reordering to RGB.
    dst: Vec<u8>,
    chroma: ChromaRows,
}

impl Default for Scaler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scaler {
    /// A scaler with empty scratch buffers; they grow to the largest frame seen and are kept.
    pub fn new() -> Self {
        Self {
            resizer: Resizer::new(),
            src: Vec::new(),
            dst: Vec::new(),
            chroma: ChromaRows::default(),
        }
    }

    /// Convert to RGB (from any PixelFormat, honouring strides; alpha/padding dropped; YUV with the
    /// given matrix/range, chroma upsampled) and resize with bilinear filtering so that the short side
    /// equals `scale_size` (long side = round(long * scale_size / short), at least 1), keeping the
    /// aspect ratio in pixels. If the frame already has that size, no resampling.
    ///
    /// Y'CbCr chroma is upsampled by sample replication before the resize. Packed RGB formats are
    /// resized in their own byte order (every channel independently, alpha not premultiplied) and
    /// reordered afterwards, which gives the same result as converting first.
    pub fn scale(
        &mut self,
        frame: &FrameView<'_>,
        scale_size: u32,
    ) -> Result<ScaledFrame, PreprocessError> {
        let mut out = ScaledFrame::default();
        self.scale_into(frame, scale_size, &mut out)?;
        Ok(out)
    }

    /// Same, writing into an existing ScaledFrame to reuse its allocation.
    pub fn scale_into(
        &mut self,
        frame: &FrameView<'_>,
        scale_size: u32,
        out: &mut ScaledFrame,
    ) -> Result<(), PreprocessError> {
        let (width, height) = (frame.width, frame.height);
        let (out_w, out_h) = scaled_size(width, height, scale_size)?;
        validate_frame(frame)?;
        let too_large = || PreprocessError::ScaledFrameTooLarge {
            width,
            height,
            scale_size,
        };
        let src_len = rgb_len(width, height).ok_or_else(too_large)?;
        let out_len = rgb_len(out_w, out_h).ok_or_else(too_large)?;

        out.width = out_w;
        out.height = out_h;
        out.data.resize(out_len, 0);

        if (out_w, out_h) == (width, height) {
            convert_to_rgb(frame, &mut out.data, &mut self.chroma);
            return Ok(());
        }

        let options = bilinear();

        let Some(bpp) = packed_bpp(frame.format) else {
            // Y'CbCr: convert at full resolution, then resize the RGB image.
            self.src.resize(src_len, 0);
            convert_to_rgb(frame, &mut self.src, &mut self.chroma);
            let src =
                ImageRef::new(width, height, &self.src, PixelType::U8x3).map_err(resize_error)?;
            let mut dst = Image::from_slice_u8(out_w, out_h, &mut out.data, PixelType::U8x3)
                .map_err(resize_error)?;
            return self
                .resizer
                .resize(&src, &mut dst, &options)
                .map_err(resize_error);
        };

        // Packed RGB: resize the mapped plane directly when its rows are tight, else a tight
        // copy (the resizer would otherwise blend the row padding into the right-hand column).
        let pixel_type = if bpp == 3 {
            PixelType::U8x3
        } else {
            PixelType::U8x4
        };
        let row_bytes = width as usize * bpp;
        let tight_len = row_bytes * height as usize;
        let plane = frame.planes[0];
        let src = if frame.strides[0] == row_bytes && plane.len() >= tight_len {
            &plane[..tight_len]
        } else {
            self.src.resize(tight_len, 0);
            for (y, d) in self.src.chunks_exact_mut(row_bytes).enumerate() {
                d.copy_from_slice(plane_row(frame, 0, y, row_bytes));
            }
            &self.src[..]
        };
        let src = ImageRef::new(width, height, src, pixel_type).map_err(resize_error)?;
        if frame.format == PixelFormat::Rgb {
            let mut dst = Image::from_slice_u8(out_w, out_h, &mut out.data, PixelType::U8x3)
                .map_err(resize_error)?;
            return self
                .resizer
                .resize(&src, &mut dst, &options)
                .map_err(resize_error);
        }
        self.dst.resize(out_len / 3 * bpp, 0);
        let mut dst =
            Image::from_slice_u8(out_w, out_h, &mut self.dst, pixel_type).map_err(resize_error)?;
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(resize_error)?;
        packed_to_rgb(frame.format, &self.dst, &mut out.data);
        Ok(())
    }
}

/// The source pixels that output pixels `start..start + count` of an axis resampled from `len`
/// to `out_len` pixels read (bilinear, support 1 scaled by the reduction): the span `a..b` of
/// source pixels (with a pixel of margin, `a` even so that 4:2:0 chroma stays aligned) and the
/// output pixels' box within it, `(left, size)` in source pixels from `a`.
fn source_span(len: u32, out_len: u32, start: u32, count: u32) -> (usize, usize, f64, f64) {
    let scale = f64::from(len) / f64::from(out_len);
    let (left, size) = (f64::from(start) * scale, f64::from(count) * scale);
    let support = scale.max(1.0);
    let a = (((left - support).floor() - 1.0).max(0.0) as usize) & !1;
    let b = ((left + size + support).ceil() + 1.0).min(f64::from(len)) as usize;
    let left = left - a as f64;
    (a, b, left, size.min(b as f64 - a as f64 - left))
}

impl Scaler {
    /// What [`Scaler::scale`] followed by cutting out the centred `crop`×`crop` square
    /// ([`CropPosition::Center`], as [`pack_clip`] does) gives, with only the source pixels that
    /// square reads converted and resampled: a `crop`×`crop` [`ScaledFrame`], whose own centred
    /// crop is itself. The fixed-point resampling weights are computed for the square's box
    /// instead of the whole frame, so a value may differ from `scale`'s by one or two levels
    /// (each of the two resampling passes rounds).
    pub fn scale_centre(
        &mut self,
        frame: &FrameView<'_>,
        scale_size: u32,
        crop: u32,
    ) -> Result<ScaledFrame, PreprocessError> {
        let (width, height) = (frame.width, frame.height);
        let (out_w, out_h) = scaled_size(width, height, scale_size)?;
        validate_frame(frame)?;
        if crop == 0 {
            return Err(PreprocessError::ZeroCropSize);
        }
        if crop > out_w || crop > out_h {
            return Err(PreprocessError::CropTooLarge {
                crop,
                index: 0,
                width: out_w,
                height: out_h,
            });
        }
        let (cx, cy) = crop_origin(out_w, out_h, crop, CropPosition::Center);
        let too_large = || PreprocessError::ScaledFrameTooLarge {
            width,
            height,
            scale_size,
        };
        let mut out = ScaledFrame {
            width: crop,
            height: crop,
            data: vec![0; rgb_len(crop, crop).ok_or_else(too_large)?],
        };
        if (out_w, out_h) == (width, height) {
            let square = Rect {
                x: cx as usize,
                y: cy as usize,
                width: crop as usize,
                height: crop as usize,
            };
            convert_rect_to_rgb(frame, square, &mut out.data, &mut self.chroma);
            return Ok(out);
        }
        let (x0, x1, left, box_w) = source_span(width, out_w, cx, crop);
        let (y0, y1, top, box_h) = source_span(height, out_h, cy, crop);
        let span = Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        };
        let span_len = span
            .width
            .checked_mul(span.height)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(too_large)?;
        self.src.resize(span_len, 0);
        convert_rect_to_rgb(frame, span, &mut self.src, &mut self.chroma);
        let src = ImageRef::new(
            span.width as u32,
            span.height as u32,
            &self.src,
            PixelType::U8x3,
        )
        .map_err(resize_error)?;
        let mut dst = Image::from_slice_u8(crop, crop, &mut out.data, PixelType::U8x3)
            .map_err(resize_error)?;
        let options = bilinear().crop(left, top, box_w, box_h);
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(resize_error)?;
        Ok(out)
    }
}

/// Where the square crop sits along the frame's long side (the short side is always centred).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropPosition {
    Start,
    Center,
    End,
}

impl CropPosition {
    /// The three crops of the three-crop test protocol, in order.
    pub const THREE: [CropPosition; 3] =
        [CropPosition::Start, CropPosition::Center, CropPosition::End];
}

/// Top-left corner `(x, y)` of a `crop`×`crop` square in a `width`×`height` frame: along the long
/// side at `pos` (Start = 0, Center = (len − crop) / 2, End = len − crop), the short side centred.
/// A square frame counts as landscape (the position applies to x). `crop` must fit the frame.
pub fn crop_origin(width: u32, height: u32, crop: u32, pos: CropPosition) -> (u32, u32) {
    let along = |len: u32| {
        let spare = len.saturating_sub(crop);
        match pos {
            CropPosition::Start => 0,
            CropPosition::Center => spare / 2,
            CropPosition::End => spare,
        }
    };
    let centred = |len: u32| len.saturating_sub(crop) / 2;
    if height > width {
        (centred(width), along(height))
    } else {
        (along(width), centred(height))
    }
}

/// Memory layout of one batch item of the model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[c][t][y][x]`
    Ncthw,
    /// `[t][y][x][c]`
    Nthwc,
}

/// Per-channel normalisation in RGB order: (x - mean[c]) / std[c], x in 0..=255.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Mean per channel (R, G, B), in pixel units (0..=255).
    pub mean: [f32; 3],
    /// Standard deviation per channel (R, G, B), in pixel units; finite and non-zero.
    pub std: [f32; 3],
}

impl Normalization {
    /// Leaves pixel values unchanged (0..=255).
    pub const IDENTITY: Normalization = Normalization {
        mean: [0.0; 3],
        std: [1.0; 3],
    };
}

/// Element types a model input can have.
pub trait TensorElement: Copy + Default + Send + 'static {
    /// Whether [`TensorElement::from_normalized`] uses the normalisation (false when the model
    /// normalises itself); when true, [`pack_clip`] rejects a zero or non-finite std.
    const USES_NORMALIZATION: bool = true;

    /// The tensor value of `pixel` (0..=255) of `channel` (0 = R, 1 = G, 2 = B).
    fn from_normalized(pixel: u8, channel: usize, norm: &Normalization) -> Self;

    /// Converts a row of RGB pixels into interleaved tensor values through `luts` (see
    /// [`build_luts`]); `src` and `dst` have the same length.
    #[inline]
    fn convert_row(src: &[u8], dst: &mut [Self], luts: &[[Self; 256]; 3]) {
        for (px, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
            d[0] = luts[0][usize::from(px[0])];
            d[1] = luts[1][usize::from(px[1])];
            d[2] = luts[2][usize::from(px[2])];
        }
    }
}

impl TensorElement for f32 {
    #[inline]
    fn from_normalized(pixel: u8, channel: usize, norm: &Normalization) -> Self {
        (f32::from(pixel) - norm.mean[channel]) / norm.std[channel]
    }
}

impl TensorElement for half::f16 {
    #[inline]
    fn from_normalized(pixel: u8, channel: usize, norm: &Normalization) -> Self {
        half::f16::from_f32(f32::from_normalized(pixel, channel, norm))
    }
}

impl TensorElement for u8 {
    const USES_NORMALIZATION: bool = false;

    #[inline]
    fn from_normalized(pixel: u8, _channel: usize, _norm: &Normalization) -> Self {
        pixel
    }

    /// The tables are the identity for raw bytes: a plain copy.
    #[inline]
    fn convert_row(src: &[u8], dst: &mut [Self], _luts: &[[Self; 256]; 3]) {
        dst.copy_from_slice(src);
    }
}

/// Per-channel lookup tables: `lut[c][v] == T::from_normalized(v, c, norm)`.
fn build_luts<T: TensorElement>(norm: &Normalization) -> [[T; 256]; 3] {
    let mut luts = [[T::default(); 256]; 3];
    for (channel, lut) in luts.iter_mut().enumerate() {
        for (value, entry) in (0..=u8::MAX).zip(lut.iter_mut()) {
            *entry = T::from_normalized(value, channel, norm);
        }
    }
    luts
}

/// The `crop` rows (each `3 * crop` bytes) of the crop of `frame` at `pos`; the crop must fit.
fn crop_rows(frame: &ScaledFrame, crop: u32, pos: CropPosition) -> impl Iterator<Item = &[u8]> {
    let c = crop as usize;
    let (x0, y0) = crop_origin(frame.width, frame.height, crop, pos);
    let row_bytes = frame.width as usize * 3;
    let start = y0 as usize * row_bytes + x0 as usize * 3;
    frame.data[start..]
        .chunks(row_bytes)
        .take(c)
        .map(move |row| &row[..3 * c])
}

/// Pack one clip (T frames, in order) cropped to crop×crop at `pos` into `out`, which holds exactly
/// 3*T*crop*crop elements of one batch item in `layout` (NCTHW: [c][t][y][x]; NTHWC: [t][y][x][c]).
/// Channels in RGB order.
///
/// Values come from 256-entry tables per channel filled with [`TensorElement::from_normalized`],
/// so every element equals exactly what that function returns for its pixel. Frames may differ
/// in size; each is cropped on its own. Nothing is written when an error is returned.
pub fn pack_clip<T: TensorElement>(
    frames: &[&ScaledFrame],
    crop: u32,
    pos: CropPosition,
    norm: &Normalization,
    layout: Layout,
    out: &mut [T],
) -> Result<(), PreprocessError> {
    if frames.is_empty() {
        return Err(PreprocessError::EmptyClip);
    }
    if crop == 0 {
        return Err(PreprocessError::ZeroCropSize);
    }
    let c = crop as usize;
    let n_frames = frames.len();
    let plane = c * c;
    let expected = plane
        .checked_mul(n_frames)
        .and_then(|n| n.checked_mul(3))
        .unwrap_or(usize::MAX);
    if out.len() != expected {
        return Err(PreprocessError::OutputLength {
            expected,
            actual: out.len(),
            frames: n_frames,
            crop,
        });
    }
    for (index, frame) in frames.iter().enumerate() {
        let (width, height) = (frame.width, frame.height);
        let expected = rgb_len(width, height).unwrap_or(usize::MAX);
        if frame.data.len() != expected {
            return Err(PreprocessError::ScaledFrameSizeMismatch {
                index,
                width,
                height,
                expected,
                len: frame.data.len(),
            });
        }
        if crop > width || crop > height {
            return Err(PreprocessError::CropTooLarge {
                crop,
                index,
                width,
                height,
            });
        }
    }
    if T::USES_NORMALIZATION {
        if let Some((channel, value)) = norm
            .std
            .iter()
            .enumerate()
            .find(|(_, s)| !s.is_finite() || **s == 0.0)
        {
            return Err(PreprocessError::InvalidStd {
                channel,
                value: *value,
            });
        }
    }

    let luts = build_luts::<T>(norm);
    let [lut_r, lut_g, lut_b] = &luts;
    match layout {
        Layout::Ncthw => {
            let (r_all, rest) = out.split_at_mut(n_frames * plane);
            let (g_all, b_all) = rest.split_at_mut(n_frames * plane);
            let planes = r_all
                .chunks_exact_mut(plane)
                .zip(g_all.chunks_exact_mut(plane))
                .zip(b_all.chunks_exact_mut(plane));
            for (frame, ((r_plane, g_plane), b_plane)) in frames.iter().zip(planes) {
                let rows = r_plane
                    .chunks_exact_mut(c)
                    .zip(g_plane.chunks_exact_mut(c))
                    .zip(b_plane.chunks_exact_mut(c));
                for (src, ((r_row, g_row), b_row)) in crop_rows(frame, crop, pos).zip(rows) {
                    for (((px, r), g), b) in src
                        .chunks_exact(3)
                        .zip(r_row.iter_mut())
                        .zip(g_row.iter_mut())
                        .zip(b_row.iter_mut())
                    {
                        *r = lut_r[usize::from(px[0])];
                        *g = lut_g[usize::from(px[1])];
                        *b = lut_b[usize::from(px[2])];
                    }
                }
            }
        }
        Layout::Nthwc => {
            for (frame, dst_frame) in frames.iter().zip(out.chunks_exact_mut(3 * plane)) {
                for (src, dst_row) in
                    crop_rows(frame, crop, pos).zip(dst_frame.chunks_exact_mut(3 * c))
                {
                    T::convert_row(src, dst_row, &luts);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    /// Value of alpha / padding bytes inside a pixel ('x' or 'A').
    const FILL: u8 = 0x77;
    /// Value of the bytes between the end of a row and the next stride.
    const PAD: u8 = 0xAA;

    /// The 4x2 test image, RGB per pixel.
    const PIXELS: [[[u8; 3]; 4]; 2] = [
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]],
        [[10, 20, 30], [40, 50, 60], [70, 80, 90], [254, 253, 252]],
    ];
    const PIXELS_RGB: [u8; 24] = [
        255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3, //
        10, 20, 30, 40, 50, 60, 70, 80, 90, 254, 253, 252,
    ];

    /// Lays `pixels` out in the byte order spelled by `order` (e.g. "xBGR": filler, B, G, R),
    /// with 3 padding bytes after every row but the last. Returns (data, stride).
    fn packed_image(pixels: &[Vec<[u8; 3]>], order: &str) -> (Vec<u8>, usize) {
        packed_image_padded(pixels, order, 3, false)
    }

    /// As [`packed_image`] with `pad` padding bytes per row, also after the last if `pad_last`.
    fn packed_image_padded(
        pixels: &[Vec<[u8; 3]>],
        order: &str,
        pad: usize,
        pad_last: bool,
    ) -> (Vec<u8>, usize) {
        let width = pixels[0].len();
        let stride = width * order.len() + pad;
        let mut data = Vec::new();
        for (y, row) in pixels.iter().enumerate() {
            for px in row {
                for ch in order.chars() {
                    data.push(match ch {
                        'R' => px[0],
                        'G' => px[1],
                        'B' => px[2],
                        _ => FILL,
                    });
                }
            }
            if pad_last || y + 1 < pixels.len() {
                data.extend(std::iter::repeat_n(PAD, pad));
            }
        }
        (data, stride)
    }

    fn packed_view<'a>(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &'a [u8],
        stride: usize,
    ) -> FrameView<'a> {
        FrameView {
            format,
            width,
            height,
            planes: [data, &[], &[]],
            strides: [stride, 0, 0],
            matrix: YuvMatrix::Bt601,
            range: YuvRange::Limited,
        }
    }

    fn check_packed_format(format: PixelFormat, order: &str) {
        let pixels: Vec<Vec<[u8; 3]>> = PIXELS.iter().map(|r| r.to_vec()).collect();
        let (data, stride) = packed_image(&pixels, order);
        assert_eq!(stride, 4 * order.len() + 3);
        let view = packed_view(format, 4, 2, &data, stride);
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_eq!((out.width, out.height), (4, 2));
        assert_eq!(out.data, PIXELS_RGB.to_vec(), "{format:?}");
    }

    macro_rules! packed_format_tests {
        ($($name:ident: $format:ident, $order:literal;)*) => {$(
            #[test]
            fn $name() {
                check_packed_format(PixelFormat::$format, $order);
            }
        )*};
    }

    packed_format_tests! {
        format_rgb: Rgb, "RGB";
        format_bgr: Bgr, "BGR";
        format_rgbx: Rgbx, "RGBx";
        format_bgrx: Bgrx, "BGRx";
        format_xrgb: Xrgb, "xRGB";
        format_xbgr: Xbgr, "xBGR";
        format_rgba: Rgba, "RGBA";
        format_bgra: Bgra, "BGRA";
        format_argb: Argb, "ARGB";
        format_abgr: Abgr, "ABGR";
    }

    #[test]
    fn bgrx_bytes_spelled_out() {
        // 2x2 frame, stride 11 (8 pixel bytes + 3 padding bytes), no padding after the last row.
        let data = [
            3, 2, 1, 9, 30, 20, 10, 9, PAD, PAD, PAD, //
            6, 5, 4, 9, 60, 50, 40, 9,
        ];
        let view = packed_view(PixelFormat::Bgrx, 2, 2, &data, 11);
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_eq!(out.data, vec![1, 2, 3, 10, 20, 30, 4, 5, 6, 40, 50, 60]);
    }

    // 6x4 Y'CbCr test frame: luma per pixel, chroma per 2x2 block.
    const Y_6X4: [[u8; 6]; 4] = [
        [16, 235, 81, 100, 100, 118],
        [126, 0, 60, 145, 70, 66],
        [145, 200, 41, 62, 58, 90],
        [44, 255, 100, 128, 30, 200],
    ];
    const U_6X4: [[u8; 3]; 2] = [[128, 90, 150], [54, 240, 200]];
    const V_6X4: [[u8; 3]; 2] = [[128, 240, 90], [34, 110, 60]];

    // Expected RGB, computed in double precision from the BT.601/BT.709 equations
    // (Kr, Kb = 0.299, 0.114 / 0.2126, 0.0722; limited: (Y-16)*255/219, (C-128)*255/224),
    // rounded half up and clamped.
    const BT601_LIMITED: [[u8; 18]; 4] = [
        [
            0, 0, 0, 255, 255, 255, 254, 0, 0, 255, 22, 21, 37, 120, 142, 58, 141, 163,
        ],
        [
            128, 128, 128, 0, 0, 0, 230, 0, 0, 255, 74, 74, 2, 85, 107, 0, 80, 103,
        ],
        [
            0, 255, 1, 64, 255, 65, 0, 0, 255, 25, 24, 255, 0, 76, 194, 0, 113, 231,
        ],
        [
            0, 138, 0, 128, 255, 129, 69, 69, 255, 102, 101, 255, 0, 43, 162, 106, 241, 255,
        ],
    ];
    const BT709_FULL: [[u8; 18]; 4] = [
        [
            16, 16, 16, 235, 235, 235, 255, 36, 10, 255, 55, 29, 40, 114, 141, 58, 132, 159,
        ],
        [
            126, 126, 126, 0, 0, 0, 236, 15, 0, 255, 100, 74, 10, 84, 111, 6, 80, 107,
        ],
        [
            0, 203, 8, 52, 255, 63, 13, 28, 249, 34, 49, 255, 0, 76, 192, 0, 108, 224,
        ],
        [
            0, 102, 0, 107, 255, 118, 72, 87, 255, 100, 115, 255, 0, 48, 164, 93, 218, 255,
        ],
    ];

    /// Planar layout with `pad` bytes after every row but the last. Returns (data, stride).
    fn plane<const W: usize>(rows: &[[u8; W]], pad: usize) -> (Vec<u8>, usize) {
        let mut data = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            data.extend_from_slice(row);
            if i + 1 < rows.len() {
                data.extend(std::iter::repeat_n(PAD, pad));
            }
        }
        (data, W + pad)
    }

    fn interleave_uv<const W: usize, const W2: usize>(
        u: &[[u8; W]],
        v: &[[u8; W]],
    ) -> Vec<[u8; W2]> {
        u.iter()
            .zip(v)
            .map(|(u, v)| {
                let mut row = [0; W2];
                for i in 0..W {
                    row[2 * i] = u[i];
                    row[2 * i + 1] = v[i];
                }
                row
            })
            .collect()
    }

    fn scale_i420<const W: usize, const CW: usize>(
        y: &[[u8; W]],
        u: &[[u8; CW]],
        v: &[[u8; CW]],
        matrix: YuvMatrix,
        range: YuvRange,
    ) -> ScaledFrame {
        let (yp, ys) = plane(y, 3);
        let (up, us) = plane(u, 2);
        let (vp, vs) = plane(v, 1);
        let view = FrameView {
            format: PixelFormat::I420,
            width: W as u32,
            height: y.len() as u32,
            planes: [&yp, &up, &vp],
            strides: [ys, us, vs],
            matrix,
            range,
        };
        let short = (W as u32).min(y.len() as u32);
        Scaler::new().scale(&view, short).expect("scale")
    }

    fn scale_nv12<const W: usize, const CW2: usize>(
        y: &[[u8; W]],
        uv: &[[u8; CW2]],
        matrix: YuvMatrix,
        range: YuvRange,
    ) -> ScaledFrame {
        let (yp, ys) = plane(y, 1);
        let (uvp, uvs) = plane(uv, 3);
        let view = FrameView {
            format: PixelFormat::Nv12,
            width: W as u32,
            height: y.len() as u32,
            planes: [&yp, &uvp, &[]],
            strides: [ys, uvs, 0],
            matrix,
            range,
        };
        let short = (W as u32).min(y.len() as u32);
        Scaler::new().scale(&view, short).expect("scale")
    }

    fn rows_flat<const N: usize>(rows: &[[u8; N]]) -> Vec<u8> {
        rows.iter().flatten().copied().collect()
    }

    #[test]
    fn format_i420_bt601_limited() {
        let out = scale_i420(&Y_6X4, &U_6X4, &V_6X4, YuvMatrix::Bt601, YuvRange::Limited);
        assert_eq!((out.width, out.height), (6, 4));
        // Y=16 black, Y=235 white, Y=126 mid grey, Y=81/U=90/V=240 saturated red.
        assert_eq!(&out.data[0..3], &[0, 0, 0]);
        assert_eq!(&out.data[3..6], &[255, 255, 255]);
        assert_eq!(&out.data[18..21], &[128, 128, 128]);
        assert_eq!(&out.data[6..9], &[254, 0, 0]);
        assert_eq!(out.data, rows_flat(&BT601_LIMITED));
    }

    #[test]
    fn format_i420_bt709_full() {
        let out = scale_i420(&Y_6X4, &U_6X4, &V_6X4, YuvMatrix::Bt709, YuvRange::Full);
        // Full range: Y passes through for grey; Y=100/U=150/V=90 -> 40.16, 113.67, 140.82.
        assert_eq!(&out.data[0..3], &[16, 16, 16]);
        assert_eq!(&out.data[21..24], &[0, 0, 0]);
        assert_eq!(&out.data[12..15], &[40, 114, 141]);
        assert_eq!(out.data, rows_flat(&BT709_FULL));
    }

    #[test]
    fn format_nv12_bt601_limited() {
        let uv: Vec<[u8; 6]> = interleave_uv(&U_6X4, &V_6X4);
        let out = scale_nv12(&Y_6X4, &uv, YuvMatrix::Bt601, YuvRange::Limited);
        assert_eq!((out.width, out.height), (6, 4));
        assert_eq!(out.data, rows_flat(&BT601_LIMITED));
    }

    #[test]
    fn format_nv12_bt709_full() {
        let uv: Vec<[u8; 6]> = interleave_uv(&U_6X4, &V_6X4);
        let out = scale_nv12(&Y_6X4, &uv, YuvMatrix::Bt709, YuvRange::Full);
        assert_eq!(out.data, rows_flat(&BT709_FULL));
    }

    // 5x3 frame (odd both ways): uniform Y=120, chroma 3x2 blocks; the last column and the last
    // row use the last chroma sample alone.
    const Y_5X3: [[u8; 5]; 3] = [[120; 5]; 3];
    const U_5X3: [[u8; 3]; 2] = [[60, 128, 200], [100, 180, 30]];
    const V_5X3: [[u8; 3]; 2] = [[200, 128, 60], [90, 40, 220]];
    const ODD_BT601_LIMITED: [[u8; 15]; 3] = [
        [
            236, 89, 0, 236, 89, 0, 121, 121, 121, 121, 121, 121, 13, 148, 255,
        ],
        [
            236, 89, 0, 236, 89, 0, 121, 121, 121, 121, 121, 121, 13, 148, 255,
        ],
        [
            60, 163, 65, 60, 163, 65, 0, 172, 226, 0, 172, 226, 255, 85, 0,
        ],
    ];
    const ODD_BT709_LIMITED: [[u8; 15]; 3] = [
        [
            250, 97, 0, 250, 97, 0, 121, 121, 121, 121, 121, 121, 0, 142, 255,
        ],
        [
            250, 97, 0, 250, 97, 0, 121, 121, 121, 121, 121, 121, 0, 142, 255,
        ],
        [
            53, 147, 62, 53, 147, 62, 0, 157, 231, 0, 157, 231, 255, 93, 0,
        ],
    ];

    #[test]
    fn i420_odd_size() {
        let out = scale_i420(&Y_5X3, &U_5X3, &V_5X3, YuvMatrix::Bt601, YuvRange::Limited);
        assert_eq!((out.width, out.height), (5, 3));
        assert_eq!(out.data, rows_flat(&ODD_BT601_LIMITED));
    }

    #[test]
    fn nv12_odd_size_bt709_limited() {
        let uv: Vec<[u8; 6]> = interleave_uv(&U_5X3, &V_5X3);
        let out = scale_nv12(&Y_5X3, &uv, YuvMatrix::Bt709, YuvRange::Limited);
        assert_eq!(out.data, rows_flat(&ODD_BT709_LIMITED));
    }

    fn uniform_halves(width: usize, height: usize, a: [u8; 3], b: [u8; 3]) -> Vec<Vec<[u8; 3]>> {
        (0..height)
            .map(|_| {
                (0..width)
                    .map(|x| if x < width / 2 { a } else { b })
                    .collect()
            })
            .collect()
    }

    fn assert_close(actual: &[u8], expected: &[f64], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (f64::from(*a) - e).abs() <= 1.0,
                "{what}: byte {i} is {a}, expected {e} +-1 (all: {actual:?})"
            );
        }
    }

    #[test]
    fn resize_uniform_region() {
        let px = [100, 150, 200];
        let pixels = uniform_halves(8, 4, px, px);
        let (data, stride) = packed_image(&pixels, "RGBx");
        let view = packed_view(PixelFormat::Rgbx, 8, 4, &data, stride);
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_eq!((out.width, out.height), (4, 2));
        let expected: Vec<f64> = (0..8).flat_map(|_| [100.0, 150.0, 200.0]).collect();
        assert_close(&out.data, &expected, "uniform");
    }

    #[test]
    fn resize_two_regions_bilinear_weights() {
        // Left half a, right half b; 8 -> 4 columns is a factor 2, so the bilinear (tent) kernel
        // spans 2 source pixels each side. Output column x is centred on source 2x+1:
        // x=0 sees only a; x=1 sees a,a,a,b with weights .25,.75,.75,.25 -> (7a+b)/8;
        // x=2 -> (a+7b)/8; x=3 sees only b. Rows are uniform, so rows do not mix values.
        let a = [40_u8, 100, 0];
        let b = [200_u8, 20, 255];
        let mut expected_row = Vec::new();
        for (wa, wb) in [(8.0, 0.0), (7.0, 1.0), (1.0, 7.0), (0.0, 8.0)] {
            for c in 0..3 {
                expected_row.push((wa * f64::from(a[c]) + wb * f64::from(b[c])) / 8.0);
            }
        }
        let expected: Vec<f64> = expected_row.iter().chain(&expected_row).copied().collect();
        let pixels = uniform_halves(8, 4, a, b);
        // Both the direct path (tight RGB) and the converted path (padded BGRx).
        let tight: Vec<u8> = pixels.iter().flatten().flatten().copied().collect();
        let view = packed_view(PixelFormat::Rgb, 8, 4, &tight, 24);
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_eq!((out.width, out.height), (4, 2));
        assert_close(&out.data, &expected, "tight RGB");

        let (data, stride) = packed_image(&pixels, "BGRx");
        let view = packed_view(PixelFormat::Bgrx, 8, 4, &data, stride);
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_close(&out.data, &expected, "BGRx");

        // Padding that is a whole number of pixels must not leak into the right-hand column.
        let (data, stride) = packed_image_padded(&pixels, "xRGB", 8, true);
        assert_eq!(stride, 40);
        let view = packed_view(PixelFormat::Xrgb, 8, 4, &data, stride);
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_close(&out.data, &expected, "xRGB");
    }

    #[test]
    fn resize_i420_converts_before_resizing() {
        // Left half Y=100/U=150/V=90 -> (37, 120, 142), right half Y=58/U=200/V=60 -> (0, 76, 194)
        // in BT.601 limited range (see BT601_LIMITED). Chroma blocks do not straddle the halves,
        // so the full-resolution RGB image is exactly two uniform halves and the 8x4 -> 4x2
        // resize gives a, (7a+b)/8, (a+7b)/8, b per row.
        let a = [37.0, 120.0, 142.0];
        let b = [0.0, 76.0, 194.0];
        let mut expected_row = Vec::new();
        for (wa, wb) in [(8.0, 0.0), (7.0, 1.0), (1.0, 7.0), (0.0, 8.0)] {
            for c in 0..3 {
                expected_row.push((wa * a[c] + wb * b[c]) / 8.0);
            }
        }
        let expected: Vec<f64> = expected_row.iter().chain(&expected_row).copied().collect();
        let y = [[100, 100, 100, 100, 58, 58, 58, 58]; 4];
        let u = [[150, 150, 200, 200]; 2];
        let v = [[90, 90, 60, 60]; 2];
        let (yp, ys) = plane(&y, 0);
        let (up, us) = plane(&u, 0);
        let (vp, vs) = plane(&v, 0);
        let view = FrameView {
            format: PixelFormat::I420,
            width: 8,
            height: 4,
            planes: [&yp, &up, &vp],
            strides: [ys, us, vs],
            matrix: YuvMatrix::Bt601,
            range: YuvRange::Limited,
        };
        let out = Scaler::new().scale(&view, 2).expect("scale");
        assert_eq!((out.width, out.height), (4, 2));
        assert_close(&out.data, &expected, "I420");
    }

    #[test]
    fn resize_packed_layouts_agree() {
        // Every packed layout and stride arrangement must resize to the same RGB as tight RGB.
        let pixels: Vec<Vec<[u8; 3]>> = (0..6)
            .map(|y| {
                (0..10)
                    .map(|x| {
                        let i = (y * 10 + x) as u32;
                        [
                            (i * 37 % 256) as u8,
                            (i * 91 % 256) as u8,
                            (255 - i * 13 % 256) as u8,
                        ]
                    })
                    .collect()
            })
            .collect();
        let tight: Vec<u8> = pixels.iter().flatten().flatten().copied().collect();
        let mut scaler = Scaler::new();
        let reference = scaler
            .scale(&packed_view(PixelFormat::Rgb, 10, 6, &tight, 30), 4)
            .expect("scale");
        assert_eq!((reference.width, reference.height), (7, 4)); // 10 * 4 / 6 = 6.67
        for (format, order, pad, pad_last) in [
            (PixelFormat::Rgb, "RGB", 3, true),    // in place, stride 33
            (PixelFormat::Rgb, "RGB", 1, true),    // stride 31: tight copy
            (PixelFormat::Bgr, "BGR", 0, false),   // tight
            (PixelFormat::Bgrx, "BGRx", 4, true),  // in place, stride 44
            (PixelFormat::Xrgb, "xRGB", 2, true),  // stride 42: tight copy
            (PixelFormat::Abgr, "ABGR", 4, false), // last row short: tight copy
            (PixelFormat::Rgba, "RGBA", 0, false),
            (PixelFormat::Argb, "ARGB", 8, true),
        ] {
            let (data, stride) = packed_image_padded(&pixels, order, pad, pad_last);
            let out = scaler
                .scale(&packed_view(format, 10, 6, &data, stride), 4)
                .expect("scale");
            assert_eq!(out, reference, "{format:?} stride {stride}");
        }
    }

    #[test]
    fn scaled_size_keeps_aspect_ratio() {
        assert_eq!(scaled_size(340, 256, 256), Ok((340, 256)));
        assert_eq!(scaled_size(320, 240, 256), Ok((341, 256))); // 341.33
        assert_eq!(scaled_size(240, 320, 256), Ok((256, 341)));
        assert_eq!(scaled_size(1920, 1080, 256), Ok((455, 256))); // 455.11
        assert_eq!(scaled_size(3, 2, 3), Ok((5, 3))); // 4.5 rounds up
        assert_eq!(scaled_size(2, 1, 4), Ok((8, 4)));
        assert_eq!(scaled_size(300, 300, 224), Ok((224, 224)));
        assert_eq!(scaled_size(16, 1, 1), Ok((16, 1)));
        assert_eq!(
            scaled_size(0, 10, 256),
            Err(PreprocessError::ZeroSizedFrame {
                width: 0,
                height: 10
            })
        );
        assert_eq!(scaled_size(10, 10, 0), Err(PreprocessError::ZeroScaleSize));
        assert!(matches!(
            scaled_size(u32::MAX, 1, 2),
            Err(PreprocessError::TooElongated { .. })
        ));
        assert!(matches!(
            scaled_size(4096, 1, 256),
            Err(PreprocessError::TooElongated {
                scaled_long: 1_048_576,
                ..
            })
        ));
        assert_eq!(scaled_size(4096, 256, 256), Ok((4096, 256))); // 16:1 still taken
        assert!(scaled_size(4097, 256, 256).is_err());
    }

    fn gray_rgb(width: u32, height: u32, value: u8) -> Vec<u8> {
        vec![value; (width * height * 3) as usize]
    }

    #[test]
    fn scale_dimensions() {
        let mut scaler = Scaler::new();
        let data = gray_rgb(340, 256, 90);
        let out = scaler
            .scale(
                &packed_view(PixelFormat::Rgb, 340, 256, &data, 340 * 3),
                256,
            )
            .expect("scale");
        assert_eq!((out.width, out.height), (340, 256));
        assert_eq!(out.data, data);

        let data = gray_rgb(320, 240, 90);
        let out = scaler
            .scale(
                &packed_view(PixelFormat::Rgb, 320, 240, &data, 320 * 3),
                256,
            )
            .expect("scale");
        assert_eq!((out.width, out.height), (341, 256));
        assert_eq!(out.data.len(), 341 * 256 * 3);
        assert!(out.data.iter().all(|&v| v == 90));

        let data = gray_rgb(240, 320, 90);
        let out = scaler
            .scale(
                &packed_view(PixelFormat::Rgb, 240, 320, &data, 240 * 3),
                256,
            )
            .expect("scale");
        assert_eq!((out.width, out.height), (256, 341));
        assert_eq!(out.data.len(), 256 * 341 * 3);
    }

    #[test]
    fn scale_into_reuses_allocation() {
        let mut scaler = Scaler::new();
        let data = gray_rgb(64, 48, 7);
        let view = packed_view(PixelFormat::Rgb, 64, 48, &data, 64 * 3);
        let mut out = ScaledFrame::default();
        scaler.scale_into(&view, 24, &mut out).expect("scale");
        assert_eq!(
            (out.width, out.height, out.data.len()),
            (32, 24, 32 * 24 * 3)
        );
        let ptr = out.data.as_ptr();
        let data2 = gray_rgb(64, 48, 200);
        let view = packed_view(PixelFormat::Rgb, 64, 48, &data2, 64 * 3);
        scaler.scale_into(&view, 24, &mut out).expect("scale");
        assert_eq!(out.data.as_ptr(), ptr);
        assert!(out.data.iter().all(|&v| v == 200));
    }

    #[test]
    fn error_plane_too_short() {
        let (yp, ys) = plane(&Y_6X4, 3);
        let (up, us) = plane(&U_6X4, 2);
        let (vp, vs) = plane(&V_6X4, 1);
        let view = FrameView {
            format: PixelFormat::I420,
            width: 6,
            height: 4,
            planes: [&yp, &up, &vp[..vp.len() - 1]],
            strides: [ys, us, vs],
            matrix: YuvMatrix::Bt601,
            range: YuvRange::Limited,
        };
        let err = Scaler::new().scale(&view, 4).expect_err("short plane");
        // V plane: 2 rows of 3 bytes, stride 4 -> 4 + 3 = 7 bytes needed, 6 given.
        assert_eq!(
            err,
            PreprocessError::PlaneTooShort {
                format: PixelFormat::I420,
                width: 6,
                height: 4,
                plane: 2,
                len: 6,
                needed: 7,
                rows: 2,
                stride: 4,
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("plane 2") && msg.contains("I420 6x4"), "{msg}");
        assert!(
            msg.contains("6 bytes") && msg.contains("at least 7"),
            "{msg}"
        );
    }

    #[test]
    fn error_packed_plane_too_short_and_stride_too_small() {
        let data = vec![0_u8; 4 * 4 * 2 - 1];
        let err = Scaler::new()
            .scale(&packed_view(PixelFormat::Argb, 4, 2, &data, 16), 2)
            .expect_err("short");
        assert!(
            matches!(
                err,
                PreprocessError::PlaneTooShort {
                    plane: 0,
                    len: 31,
                    needed: 32,
                    ..
                }
            ),
            "{err:?}"
        );
        let data = vec![0_u8; 64];
        let err = Scaler::new()
            .scale(&packed_view(PixelFormat::Rgbx, 4, 2, &data, 15), 2)
            .expect_err("stride");
        assert!(
            matches!(
                err,
                PreprocessError::StrideTooSmall {
                    plane: 0,
                    stride: 15,
                    row_bytes: 16,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("stride of 15"), "{err}");
    }

    #[test]
    fn error_zero_sized_frame_and_scale() {
        let err = Scaler::new()
            .scale(&packed_view(PixelFormat::Rgb, 0, 2, &[], 0), 2)
            .expect_err("zero");
        assert_eq!(
            err,
            PreprocessError::ZeroSizedFrame {
                width: 0,
                height: 2
            }
        );
        assert!(err.to_string().contains("0x2"), "{err}");
        let data = gray_rgb(2, 2, 0);
        let err = Scaler::new()
            .scale(&packed_view(PixelFormat::Rgb, 2, 2, &data, 6), 0)
            .expect_err("zero scale");
        assert_eq!(err, PreprocessError::ZeroScaleSize);
    }

    /// Distinct value of frame `t`, channel `c`, pixel (x, y) for the packing tests.
    fn value(t: usize, c: usize, x: usize, y: usize) -> u8 {
        (1 + t * 120 + c * 40 + y * 6 + x) as u8
    }

    fn clip_frame(t: usize, width: u32, height: u32) -> ScaledFrame {
        let mut data = Vec::new();
        for y in 0..height as usize {
            for x in 0..width as usize {
                for c in 0..3 {
                    data.push(value(t, c, x, y));
                }
            }
        }
        ScaledFrame {
            width,
            height,
            data,
        }
    }

    fn expected_ncthw(x0: usize, y0: usize, crop: usize, frames: usize) -> Vec<u8> {
        let mut out = vec![0; 3 * frames * crop * crop];
        for c in 0..3 {
            for t in 0..frames {
                for y in 0..crop {
                    for x in 0..crop {
                        out[((c * frames + t) * crop + y) * crop + x] = value(t, c, x0 + x, y0 + y);
                    }
                }
            }
        }
        out
    }

    fn expected_nthwc(x0: usize, y0: usize, crop: usize, frames: usize) -> Vec<u8> {
        let mut out = vec![0; 3 * frames * crop * crop];
        for t in 0..frames {
            for y in 0..crop {
                for x in 0..crop {
                    for c in 0..3 {
                        out[((t * crop + y) * crop + x) * 3 + c] = value(t, c, x0 + x, y0 + y);
                    }
                }
            }
        }
        out
    }

    fn pack_u8(width: u32, height: u32, crop: u32, pos: CropPosition, layout: Layout) -> Vec<u8> {
        let f0 = clip_frame(0, width, height);
        let f1 = clip_frame(1, width, height);
        let mut out = vec![0_u8; 3 * 2 * (crop * crop) as usize];
        pack_clip(
            &[&f0, &f1],
            crop,
            pos,
            &Normalization::IDENTITY,
            layout,
            &mut out,
        )
        .expect("pack");
        out
    }

    #[test]
    fn pack_literal_landscape_center() {
        // 6x4 frames, crop 2 at the centre: x0 = (6-2)/2 = 2, y0 = (4-2)/2 = 1.
        let ncthw = pack_u8(6, 4, 2, CropPosition::Center, Layout::Ncthw);
        assert_eq!(
            ncthw,
            vec![
                9, 10, 15, 16, 129, 130, 135, 136, // R: t0, t1
                49, 50, 55, 56, 169, 170, 175, 176, // G
                89, 90, 95, 96, 209, 210, 215, 216, // B
            ]
        );
        let nthwc = pack_u8(6, 4, 2, CropPosition::Center, Layout::Nthwc);
        assert_eq!(
            nthwc,
            vec![
                9, 49, 89, 10, 50, 90, 15, 55, 95, 16, 56, 96, // t0
                129, 169, 209, 130, 170, 210, 135, 175, 215, 136, 176, 216, // t1
            ]
        );
    }

    #[test]
    fn pack_positions_landscape() {
        // 6x4, crop 2: y centred at 1; x = 0 / 2 / 4.
        for (pos, x0) in [
            (CropPosition::Start, 0),
            (CropPosition::Center, 2),
            (CropPosition::End, 4),
        ] {
            assert_eq!(
                pack_u8(6, 4, 2, pos, Layout::Ncthw),
                expected_ncthw(x0, 1, 2, 2),
                "{pos:?}"
            );
            assert_eq!(
                pack_u8(6, 4, 2, pos, Layout::Nthwc),
                expected_nthwc(x0, 1, 2, 2),
                "{pos:?}"
            );
        }
    }

    #[test]
    fn pack_positions_portrait() {
        // 4x6, crop 2: x centred at 1; y = 0 / 2 / 4.
        for (pos, y0) in [
            (CropPosition::Start, 0),
            (CropPosition::Center, 2),
            (CropPosition::End, 4),
        ] {
            assert_eq!(
                pack_u8(4, 6, 2, pos, Layout::Ncthw),
                expected_ncthw(1, y0, 2, 2),
                "{pos:?}"
            );
            assert_eq!(
                pack_u8(4, 6, 2, pos, Layout::Nthwc),
                expected_nthwc(1, y0, 2, 2),
                "{pos:?}"
            );
        }
    }

    #[test]
    fn pack_positions_square_follow_width() {
        // 5x5, crop 2: y centred at 1; x = 0 / 1 / 3.
        for (pos, x0) in [
            (CropPosition::Start, 0),
            (CropPosition::Center, 1),
            (CropPosition::End, 3),
        ] {
            assert_eq!(
                pack_u8(5, 5, 2, pos, Layout::Ncthw),
                expected_ncthw(x0, 1, 2, 2),
                "{pos:?}"
            );
        }
        // Crop as large as the short side: 6x4 crop 4 at End -> x0 = 2, y0 = 0.
        assert_eq!(
            pack_u8(6, 4, 4, CropPosition::End, Layout::Nthwc),
            expected_nthwc(2, 0, 4, 2)
        );
    }

    fn one_pixel(rgb: [u8; 3]) -> ScaledFrame {
        ScaledFrame {
            width: 1,
            height: 1,
            data: rgb.to_vec(),
        }
    }

    #[test]
    fn pack_normalization_f32() {
        let fair = Normalization {
            mean: [114.75; 3],
            std: [57.375; 3],
        };
        let frame = one_pixel([200, 100, 50]);
        let mut out = [0.0_f32; 3];
        pack_clip(
            &[&frame],
            1,
            CropPosition::Center,
            &fair,
            Layout::Ncthw,
            &mut out,
        )
        .expect("pack");
        // (200 - 114.75) / 57.375 = 85.25 / 57.375, (100 - 114.75) / 57.375, (50 - 114.75) / 57.375
        let expected = [1.485_838_8_f32, -0.257_080_6, -1.128_540_3];
        for (a, e) in out.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{out:?}");
        }

        let imagenet = Normalization {
            mean: [123.675, 116.28, 103.53],
            std: [58.395, 57.12, 57.375],
        };
        pack_clip(
            &[&frame],
            1,
            CropPosition::Center,
            &imagenet,
            Layout::Nthwc,
            &mut out,
        )
        .expect("pack");
        let expected = [1.307_046_8_f32, -0.285_014, -0.932_984_7];
        for (a, e) in out.iter().zip(expected) {
            assert!((a - e).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn pack_f16() {
        let fair = Normalization {
            mean: [114.75; 3],
            std: [57.375; 3],
        };
        let frame = one_pixel([200, 0, 255]);
        let mut out = [f16::ZERO; 3];
        pack_clip(
            &[&frame],
            1,
            CropPosition::Start,
            &fair,
            Layout::Ncthw,
            &mut out,
        )
        .expect("pack");
        // 1.48584 -> 1 + 497/1024 (0x3DF1); -2.0 (0xC000); 2.44444 -> 2 * (1 + 228/1024) (0x40E4).
        let bits: Vec<u16> = out.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, vec![0x3DF1, 0xC000, 0x40E4]);
    }

    #[test]
    fn pack_u8_ignores_normalization() {
        let odd = Normalization {
            mean: [10.0, 20.0, 30.0],
            std: [0.0, 2.0, 3.0], // would be rejected for float outputs
        };
        let frame = one_pixel([200, 100, 50]);
        let mut out = [0_u8; 3];
        pack_clip(
            &[&frame],
            1,
            CropPosition::End,
            &odd,
            Layout::Ncthw,
            &mut out,
        )
        .expect("pack");
        assert_eq!(out, [200, 100, 50]);

        let mut out = [0.0_f32; 3];
        let err = pack_clip(
            &[&frame],
            1,
            CropPosition::End,
            &odd,
            Layout::Ncthw,
            &mut out,
        )
        .expect_err("std 0");
        assert_eq!(
            err,
            PreprocessError::InvalidStd {
                channel: 0,
                value: 0.0
            }
        );
    }

    #[test]
    fn pack_errors() {
        let f0 = clip_frame(0, 6, 4);
        let f1 = clip_frame(1, 6, 4);
        let norm = Normalization::IDENTITY;
        let mut out = vec![0.0_f32; 23];
        let err = pack_clip(
            &[&f0, &f1],
            2,
            CropPosition::Center,
            &norm,
            Layout::Ncthw,
            &mut out,
        )
        .expect_err("length");
        assert_eq!(
            err,
            PreprocessError::OutputLength {
                expected: 24,
                actual: 23,
                frames: 2,
                crop: 2
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("24") && msg.contains("23"), "{msg}");

        let mut out = vec![0.0_f32; 3 * 2 * 25];
        let err = pack_clip(
            &[&f0, &f1],
            5,
            CropPosition::Center,
            &norm,
            Layout::Ncthw,
            &mut out,
        )
        .expect_err("crop");
        assert_eq!(
            err,
            PreprocessError::CropTooLarge {
                crop: 5,
                index: 0,
                width: 6,
                height: 4
            }
        );
        assert!(err.to_string().contains("5x5"), "{err}");

        let mut out: Vec<f32> = Vec::new();
        let err = pack_clip::<f32>(&[], 2, CropPosition::Center, &norm, Layout::Ncthw, &mut out)
            .expect_err("empty");
        assert_eq!(err, PreprocessError::EmptyClip);
        let err = pack_clip(
            &[&f0],
            0,
            CropPosition::Center,
            &norm,
            Layout::Ncthw,
            &mut out,
        )
        .expect_err("zero crop");
        assert_eq!(err, PreprocessError::ZeroCropSize);

        let mut broken = clip_frame(1, 6, 4);
        broken.data.pop();
        let mut out = vec![0.0_f32; 3 * 2 * 4];
        let err = pack_clip(
            &[&f0, &broken],
            2,
            CropPosition::Center,
            &norm,
            Layout::Nthwc,
            &mut out,
        )
        .expect_err("broken frame");
        assert!(
            matches!(
                err,
                PreprocessError::ScaledFrameSizeMismatch {
                    index: 1,
                    expected: 72,
                    len: 71,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn pixel_format_names() {
        assert_eq!(PixelFormat::from_name("xBGR"), Some(PixelFormat::Xbgr));
        assert_eq!(PixelFormat::from_name("NV12"), Some(PixelFormat::Nv12));
        assert_eq!(PixelFormat::from_name("xbgr"), None);
        assert_eq!(PixelFormat::from_name("YUY2"), None);
        assert_eq!(PixelFormat::Bgrx.to_string(), "BGRx");
        assert_eq!(PixelFormat::I420.n_planes(), 3);
        assert_eq!(PixelFormat::Nv12.n_planes(), 2);
        assert_eq!(PixelFormat::Abgr.n_planes(), 1);
    }

    /// Rough timings; run with `cargo test --release -- --ignored --nocapture timing`.
    #[test]
    #[ignore]
    fn timing() {
        use std::hint::black_box;
        use std::time::Instant;

        let (w, h) = (1920_usize, 1080_usize);
        let y: Vec<u8> = (0..w * h).map(|i| (i % 251) as u8).collect();
        let u: Vec<u8> = (0..w * h / 4).map(|i| (i % 241) as u8).collect();
        let v: Vec<u8> = (0..w * h / 4).map(|i| (i % 239) as u8).collect();
        let view = FrameView {
            format: PixelFormat::I420,
            width: w as u32,
            height: h as u32,
            planes: [&y, &u, &v],
            strides: [w, w / 2, w / 2],
            matrix: YuvMatrix::Bt709,
            range: YuvRange::Limited,
        };
        let mut scaler = Scaler::new();
        let mut out = ScaledFrame::default();
        scaler.scale_into(&view, 256, &mut out).expect("scale");
        let n = 50;
        let start = Instant::now();
        for _ in 0..n {
            scaler
                .scale_into(black_box(&view), 256, &mut out)
                .expect("scale");
        }
        let per = start.elapsed() / n;
        println!(
            "scale 1920x1080 I420 -> {}x{}: {per:?}",
            out.width, out.height
        );

        let mut rgb = vec![0_u8; w * h * 3];
        let start = Instant::now();
        for _ in 0..n {
            convert_to_rgb(black_box(&view), &mut rgb, &mut ChromaRows::default());
        }
        println!(
            "  of which I420->RGB at 1920x1080: {:?}",
            start.elapsed() / n
        );

        let frame = ScaledFrame {
            width: 341,
            height: 256,
            data: (0..341 * 256 * 3).map(|i| (i % 253) as u8).collect(),
        };
        let frames: Vec<&ScaledFrame> = (0..64).map(|_| &frame).collect();
        let norm = Normalization {
            mean: [114.75; 3],
            std: [57.375; 3],
        };
        let mut tensor = vec![0.0_f32; 3 * 64 * 224 * 224];
        let mut tensor16 = vec![f16::ZERO; 3 * 64 * 224 * 224];
        for layout in [Layout::Ncthw, Layout::Nthwc] {
            let n = 20;
            let start = Instant::now();
            for _ in 0..n {
                pack_clip(
                    &frames,
                    224,
                    CropPosition::Center,
                    &norm,
                    layout,
                    &mut tensor,
                )
                .expect("pack");
                black_box(&tensor);
            }
            println!(
                "pack_clip 64x224x224 f32 {layout:?}: {:?}",
                start.elapsed() / n
            );
            let start = Instant::now();
            for _ in 0..n {
                pack_clip(
                    &frames,
                    224,
                    CropPosition::Center,
                    &norm,
                    layout,
                    &mut tensor16,
                )
                .expect("pack");
                black_box(&tensor16);
            }
            println!(
                "pack_clip 64x224x224 f16 {layout:?}: {:?}",
                start.elapsed() / n
            );
        }
    }

    /// Bytes from a fixed linear congruential sequence.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    /// Planes of noise for a `format` frame, rows `pad` bytes longer than their pixels.
    struct NoiseFrame {
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: Vec<Vec<u8>>,
        strides: Vec<usize>,
    }

    impl NoiseFrame {
        fn new(format: PixelFormat, width: u32, height: u32, pad: usize, seed: u32) -> Self {
            let shapes = plane_shapes(format, width, height);
            let strides: Vec<usize> = shapes.iter().map(|p| p.row_bytes + pad).collect();
            let planes = shapes
                .iter()
                .zip(&strides)
                .zip(seed..)
                .map(|((p, s), seed)| noise(s * p.rows, seed))
                .collect();
            Self {
                format,
                width,
                height,
                planes,
                strides,
            }
        }

        fn view(&self, matrix: YuvMatrix, range: YuvRange) -> FrameView<'_> {
            let plane = |k: usize| self.planes.get(k).map_or(&[][..], |d| &d[..]);
            let stride = |k: usize| self.strides.get(k).copied().unwrap_or(0);
            FrameView {
                format: self.format,
                width: self.width,
                height: self.height,
                planes: [plane(0), plane(1), plane(2)],
                strides: [stride(0), stride(1), stride(2)],
                matrix,
                range,
            }
        }
    }

    /// `scale_centre` against `scale` and cutting the centred square out, over formats, sizes
    /// (landscape, portrait, odd, up- and downscaled, unscaled) and crops up to the short side.
    #[test]
    fn scale_centre_is_the_centre_of_scale() {
        let cases = [
            (PixelFormat::I420, 320, 240, 256, 224),
            (PixelFormat::I420, 1920, 1080, 256, 224),
            (PixelFormat::I420, 333, 251, 128, 112),
            (PixelFormat::Nv12, 240, 320, 256, 256),
            (PixelFormat::Nv12, 641, 479, 100, 37),
            (PixelFormat::I420, 64, 48, 48, 40),
            (PixelFormat::Bgrx, 320, 240, 160, 160),
            (PixelFormat::Rgb, 97, 131, 300, 224),
            (PixelFormat::Rgba, 50, 40, 40, 40),
        ];
        let (mut exact, mut total) = (0usize, 0usize);
        for (i, &(format, width, height, scale_size, crop)) in cases.iter().enumerate() {
            // Strides with padding, so that rows are read through them.
            let frame = NoiseFrame::new(format, width, height, 5, i as u32 * 3);
            let view = frame.view(YuvMatrix::Bt601, YuvRange::Limited);
            let full = Scaler::new().scale(&view, scale_size).expect("scale");
            let want: Vec<u8> = crop_rows(&full, crop, CropPosition::Center)
                .flatten()
                .copied()
                .collect();
            let got = Scaler::new()
                .scale_centre(&view, scale_size, crop)
                .expect("scale_centre");
            assert_eq!((got.width, got.height), (crop, crop), "case {i}");
            assert_eq!(got.data.len(), want.len(), "case {i}");
            for (j, (g, w)) in got.data.iter().zip(&want).enumerate() {
                assert!(g.abs_diff(*w) <= 2, "case {i}, byte {j}: {g} against {w}");
            }
            exact += got.data.iter().zip(&want).filter(|(g, w)| g == w).count();
            total += want.len();
        }
        // Rounding differences (0.16 % of the bytes here), not a shifted or blurred square.
        assert!(exact * 100 >= total * 99, "{exact} of {total} bytes equal");
    }

    #[test]
    fn scale_centre_errors() {
        let rgb = vec![0u8; 4 * 2 * 3];
        let view = FrameView {
            format: PixelFormat::Rgb,
            width: 4,
            height: 2,
            planes: [&rgb, &[], &[]],
            strides: [12, 0, 0],
            matrix: YuvMatrix::Bt601,
            range: YuvRange::Limited,
        };
        let mut scaler = Scaler::new();
        assert_eq!(
            scaler.scale_centre(&view, 2, 3),
            Err(PreprocessError::CropTooLarge {
                crop: 3,
                index: 0,
                width: 4,
                height: 2
            })
        );
        assert_eq!(
            scaler.scale_centre(&view, 2, 0),
            Err(PreprocessError::ZeroCropSize)
        );
        let (square, _) = (scaler.scale_centre(&view, 2, 2).expect("fits"), ());
        assert_eq!((square.width, square.height, square.data.len()), (2, 2, 12));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Any frame size, scale and crop: `scale_centre` never panics, refuses what `pack_clip`
        /// would refuse, and otherwise gives the centre of `scale` within two levels.
        #[test]
        fn scale_centre_on_any_size(
            format in proptest::sample::select(vec![PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Rgb, PixelFormat::Bgrx]),
            width in 1u32..70,
            height in 1u32..70,
            scale_size in 1u32..90,
            crop in 0u32..90,
            seed in 0u32..1000,
        ) {
            let frame = NoiseFrame::new(format, width, height, 0, seed);
            let view = frame.view(YuvMatrix::Bt709, YuvRange::Full);
            let full = Scaler::new().scale(&view, scale_size);
            let got = Scaler::new().scale_centre(&view, scale_size, crop);
            match (full, got) {
                (Ok(full), Ok(got)) => {
                    proptest::prop_assert!(crop >= 1 && crop <= full.width.min(full.height));
                    proptest::prop_assert_eq!((got.width, got.height), (crop, crop));
                    let want: Vec<u8> = crop_rows(&full, crop, CropPosition::Center)
                        .flatten()
                        .copied()
                        .collect();
                    proptest::prop_assert_eq!(got.data.len(), want.len());
                    for (g, w) in got.data.iter().zip(&want) {
                        proptest::prop_assert!(g.abs_diff(*w) <= 2, "{} against {}", g, w);
                    }
                }
                (Ok(full), Err(e)) => {
                    let expected = if crop == 0 {
                        PreprocessError::ZeroCropSize
                    } else {
                        PreprocessError::CropTooLarge { crop, index: 0, width: full.width, height: full.height }
                    };
                    proptest::prop_assert_eq!(e, expected);
                }
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                (Err(a), Ok(_)) => proptest::prop_assert!(false, "scale failed ({}), scale_centre did not", a),
            }
        }
    }

    /// The AVX2 build of the conversion loop (taken where the CPU has it) and the portable one
    /// give the same bytes, for every matrix and range and a row length no vector width divides.
    #[test]
    fn yuv_row_paths_agree() {
        let n = 1001;
        let (y, u, v) = (noise(n, 1), noise(n, 2), noise(n, 3));
        for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
            for range in [YuvRange::Limited, YuvRange::Full] {
                let c = YuvCoeffs::new(matrix, range);
                let (mut fast, mut plain) = (vec![0u8; 3 * n], vec![1u8; 3 * n]);
                yuv444_row(&c, &y, &u, &v, &mut fast);
                yuv444_row_body(&c, &y, &u, &v, &mut plain);
                assert_eq!(fast, plain, "{matrix:?} {range:?}");
            }
        }
    }
}
