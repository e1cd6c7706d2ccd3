//! Short-side scaling with fast_image_resize (whole frames, or only the centre crop's source
//! pixels) and where square crops sit.

use std::fmt;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::colour::*;
use super::*;

/// The element's resampling: bilinear, every channel on its own (alpha not premultiplied).
pub(super) fn bilinear() -> ResizeOptions {
    ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .use_alpha(false)
}

fn resize_error(e: impl fmt::Display) -> PreprocessError {
    PreprocessError::Resize(e.to_string())
}

/// Resample `src` with the element's resampling ([`bilinear`]) into `dst`, an image of `size`
/// (width, height) pixels of `pixel_type`.
fn resize_into(
    resizer: &mut Resizer,
    src: &ImageRef<'_>,
    (width, height): (u32, u32),
    dst: &mut [u8],
    pixel_type: PixelType,
) -> Result<(), PreprocessError> {
    let mut dst = Image::from_slice_u8(width, height, dst, pixel_type).map_err(resize_error)?;
    resizer
        .resize(src, &mut dst, &bilinear())
        .map_err(resize_error)
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
        let size = (out_w, out_h);

        if size == (width, height) {
            convert_to_rgb(frame, &mut out.data, &mut self.chroma);
            return Ok(());
        }

        // The resize's input: Y'CbCr converted to RGB at full resolution; packed RGB as mapped
        // when its rows are tight, else a tight copy (the resizer would otherwise blend the row
        // padding into the right-hand column).
        let packed = packed_bpp(frame.format);
        let (src, pixel_type) = match packed {
            None => {
                self.src.resize(src_len, 0);
                convert_to_rgb(frame, &mut self.src, &mut self.chroma);
                (&self.src[..], PixelType::U8x3)
            }
            Some(bpp) => {
                let pixel_type = if bpp == 3 {
                    PixelType::U8x3
                } else {
                    PixelType::U8x4
                };
                let row_bytes = width as usize * bpp;
                let tight_len = row_bytes * height as usize;
                let plane = frame.planes[0];
                if frame.strides[0] == row_bytes && plane.len() >= tight_len {
                    (&plane[..tight_len], pixel_type)
                } else {
                    self.src.resize(tight_len, 0);
                    for (y, d) in self.src.chunks_exact_mut(row_bytes).enumerate() {
                        d.copy_from_slice(plane_row(frame, 0, y, row_bytes));
                    }
                    (&self.src[..], pixel_type)
                }
            }
        };
        let src = ImageRef::new(width, height, src, pixel_type).map_err(resize_error)?;
        match packed {
            // Packed RGB in another byte order: resized in its own order, then reordered.
            Some(bpp) if frame.format != PixelFormat::Rgb => {
                self.dst.resize(out_len / 3 * bpp, 0);
                resize_into(&mut self.resizer, &src, size, &mut self.dst, pixel_type)?;
                packed_to_rgb(frame.format, &self.dst, &mut out.data);
                Ok(())
            }
            _ => resize_into(&mut self.resizer, &src, size, &mut out.data, pixel_type),
        }
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

/// The source pixels the centred `crop`×`crop` square of a frame scaled to a short side of
/// `scale_size` reads (see [`Scaler::centre_span`]), and where that square's box lies in them:
/// what a backend that resamples on its own device needs to finish the job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CentreSpan {
    /// The span's size in source pixels (its RGB copy is `width × height × 3` bytes).
    pub width: u32,
    pub height: u32,
    /// The square's box in the span, in source pixels from the span's top-left corner: output
    /// pixel (x, y)'s centre is at (left + (x + 0.5) · box_width / crop, top + ...).
    pub left: f64,
    pub top: f64,
    pub box_width: f64,
    pub box_height: f64,
    /// The square's side in output pixels.
    pub crop: u32,
}

impl CentreSpan {
    /// Whether the square is the span itself, pixel for pixel (the frame needs no resampling).
    pub fn is_identity(&self) -> bool {
        let side = f64::from(self.crop);
        (self.width, self.height) == (self.crop, self.crop)
            && (self.left, self.top, self.box_width, self.box_height) == (0.0, 0.0, side, side)
    }
}

/// The centred square's source rectangle and geometry (see [`CentreSpan`]), checked.
fn centre_geometry(
    frame: &FrameView<'_>,
    scale_size: u32,
    crop: u32,
) -> Result<(Rect, CentreSpan), PreprocessError> {
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
    if (out_w, out_h) == (width, height) {
        let square = Rect {
            x: cx as usize,
            y: cy as usize,
            width: crop as usize,
            height: crop as usize,
        };
        let side = f64::from(crop);
        let span = CentreSpan {
            width: crop,
            height: crop,
            left: 0.0,
            top: 0.0,
            box_width: side,
            box_height: side,
            crop,
        };
        return Ok((square, span));
    }
    let (x0, x1, left, box_width) = source_span(width, out_w, cx, crop);
    let (y0, y1, top, box_height) = source_span(height, out_h, cy, crop);
    let rect = Rect {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    };
    rect.width
        .checked_mul(rect.height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(too_large)?;
    let span = CentreSpan {
        width: rect.width as u32,
        height: rect.height as u32,
        left,
        top,
        box_width,
        box_height,
        crop,
    };
    Ok((rect, span))
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
        let (rect, span) = centre_geometry(frame, scale_size, crop)?;
        let mut out = ScaledFrame {
            width: crop,
            height: crop,
            data: vec![0; rgb_len(crop, crop).unwrap_or(0)],
        };
        if span.is_identity() {
            convert_rect_to_rgb(frame, rect, &mut out.data, &mut self.chroma);
            return Ok(out);
        }
        self.src.resize(rect.width * rect.height * 3, 0);
        convert_rect_to_rgb(frame, rect, &mut self.src, &mut self.chroma);
        let src = ImageRef::new(span.width, span.height, &self.src, PixelType::U8x3)
            .map_err(resize_error)?;
        let mut dst = Image::from_slice_u8(crop, crop, &mut out.data, PixelType::U8x3)
            .map_err(resize_error)?;
        let options = bilinear().crop(span.left, span.top, span.box_width, span.box_height);
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(resize_error)?;
        Ok(out)
    }

    /// The source pixels [`Scaler::scale_centre`] would resample, converted to RGB but not
    /// resampled (a `span.width × span.height` [`ScaledFrame`]), and the [`CentreSpan`] that
    /// says how to finish: for backends that resample on their own device.
    pub fn centre_span(
        &mut self,
        frame: &FrameView<'_>,
        scale_size: u32,
        crop: u32,
    ) -> Result<(ScaledFrame, CentreSpan), PreprocessError> {
        let (rect, span) = centre_geometry(frame, scale_size, crop)?;
        let mut out = ScaledFrame {
            width: span.width,
            height: span.height,
            data: vec![0; rect.width * rect.height * 3],
        };
        convert_rect_to_rgb(frame, rect, &mut out.data, &mut self.chroma);
        Ok((out, span))
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

/// A square region of a frame, in its pixels: what objects mode crops around an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Square {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

impl Scaler {
    /// The `square` of `frame` resampled to `size`×`size` RGB (bilinear, as the element's
    /// scaling), with only the source pixels the square reads converted: the square plus the
    /// resampling's support, within the frame.
    pub fn scale_square(
        &mut self,
        frame: &FrameView<'_>,
        square: Square,
        size: u32,
    ) -> Result<ScaledFrame, PreprocessError> {
        validate_frame(frame)?;
        if size == 0 {
            return Err(PreprocessError::ZeroCropSize);
        }
        let fits = |at: u32, len: u32| at.checked_add(square.side).is_some_and(|end| end <= len);
        if square.side == 0 || !fits(square.x, frame.width) || !fits(square.y, frame.height) {
            return Err(PreprocessError::CropTooLarge {
                crop: square.side,
                index: 0,
                width: frame.width,
                height: frame.height,
            });
        }
        let mut out = ScaledFrame {
            width: size,
            height: size,
            data: vec![0; rgb_len(size, size).unwrap_or(0)],
        };
        // The resampling reads up to its support (one source pixel per output pixel, scaled by
        // the reduction) around the square, plus a pixel of margin.
        let margin = (f64::from(square.side) / f64::from(size)).max(1.0).ceil() as u32 + 1;
        let x0 = square.x.saturating_sub(margin);
        let y0 = square.y.saturating_sub(margin);
        let x1 = (square.x + square.side)
            .saturating_add(margin)
            .min(frame.width);
        let y1 = (square.y + square.side)
            .saturating_add(margin)
            .min(frame.height);
        let rect = Rect {
            x: x0 as usize,
            y: y0 as usize,
            width: (x1 - x0) as usize,
            height: (y1 - y0) as usize,
        };
        if square.side == size {
            let exact = Rect {
                x: square.x as usize,
                y: square.y as usize,
                width: size as usize,
                height: size as usize,
            };
            convert_rect_to_rgb(frame, exact, &mut out.data, &mut self.chroma);
            return Ok(out);
        }
        self.src.resize(rect.width * rect.height * 3, 0);
        convert_rect_to_rgb(frame, rect, &mut self.src, &mut self.chroma);
        let src = ImageRef::new(x1 - x0, y1 - y0, &self.src, PixelType::U8x3)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        let mut dst = Image::from_slice_u8(size, size, &mut out.data, PixelType::U8x3)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        let side = f64::from(square.side);
        let options = bilinear().crop(
            f64::from(square.x - x0),
            f64::from(square.y - y0),
            side,
            side,
        );
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| PreprocessError::Resize(e.to_string()))?;
        Ok(out)
    }
}
