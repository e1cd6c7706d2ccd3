//! Colour conversion of mapped frames to tightly packed RGB8: packed RGB formats by byte
//! order, Y'CbCr (I420, NV12, ...) by fixed-point BT.601/BT.709 coefficients, whole frames or a
//! rectangle of one.

use super::*;

/// Fixed-point precision of the YUV → RGB coefficients.
const FRAC_BITS: u32 = 20;
const ROUND_HALF: i32 = 1 << (FRAC_BITS - 1);

/// YUV → RGB coefficients in fixed point (value × 2^FRAC_BITS).
#[derive(Clone, Copy, Debug)]
pub(super) struct YuvCoeffs {
    y_offset: i32,
    y_mul: i32,
    r_v: i32,
    g_u: i32,
    g_v: i32,
    b_u: i32,
}

impl YuvCoeffs {
    pub(super) fn new(matrix: YuvMatrix, range: YuvRange) -> Self {
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
pub(super) fn yuv444_row(c: &YuvCoeffs, y_row: &[u8], u_row: &[u8], v_row: &[u8], dst: &mut [u8]) {
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
pub(super) fn yuv444_row_body(
    c: &YuvCoeffs,
    y_row: &[u8],
    u_row: &[u8],
    v_row: &[u8],
    dst: &mut [u8],
) {
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
pub(super) fn packed_bpp(format: PixelFormat) -> Option<usize> {
    match format {
        PixelFormat::Rgb | PixelFormat::Bgr => Some(3),
        PixelFormat::I420 | PixelFormat::Nv12 => None,
        _ => Some(4),
    }
}

/// Converts tightly packed pixels of the packed `format` in `src` to RGB in `dst` (as many
/// pixels as both hold). Y'CbCr formats are not handled here.
pub(super) fn packed_to_rgb(format: PixelFormat, src: &[u8], dst: &mut [u8]) {
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
pub(super) struct PlaneShape {
    pub(super) row_bytes: usize,
    pub(super) rows: usize,
}

pub(super) fn plane_shapes(format: PixelFormat, width: u32, height: u32) -> Vec<PlaneShape> {
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
pub(super) fn validate_frame(frame: &FrameView<'_>) -> Result<(), PreprocessError> {
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
pub(super) fn plane_row<'a>(
    frame: &FrameView<'a>,
    plane: usize,
    y: usize,
    row_bytes: usize,
) -> &'a [u8] {
    let start = y * frame.strides[plane];
    &frame.planes[plane][start..start + row_bytes]
}

/// Chroma rows upsampled to the luma width, reused between rows and frames.
#[derive(Debug, Default)]
pub(super) struct ChromaRows {
    u: Vec<u8>,
    v: Vec<u8>,
}

/// Converts a validated frame to tightly packed RGB8 in `dst` (exactly width*height*3 bytes).
pub(super) fn convert_to_rgb(frame: &FrameView<'_>, dst: &mut [u8], chroma: &mut ChromaRows) {
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
pub(super) struct Rect {
    pub(super) x: usize,
    pub(super) y: usize,
    pub(super) width: usize,
    pub(super) height: usize,
}

/// Converts the rectangle `r` of a validated frame (which it must fit in) to tightly packed RGB8
/// in `dst` (exactly r.width*r.height*3 bytes): the same values as converting the whole frame
/// and cutting the rectangle out.
pub(super) fn convert_rect_to_rgb(
    frame: &FrameView<'_>,
    r: Rect,
    dst: &mut [u8],
    chroma: &mut ChromaRows,
) {
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
