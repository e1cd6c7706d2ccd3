//! Packing a clip's scaled frames into one batch item of the model input: crop, layout and
//! per-channel normalisation through lookup tables.

use super::*;

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
pub(super) fn crop_rows(
    frame: &ScaledFrame,
    crop: u32,
    pos: CropPosition,
) -> impl Iterator<Item = &[u8]> {
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
