//! The resampling graph on ONNX Runtime's CPU provider against the element's own scaler: the
//! same pixels within the rounding of either (the CUDA provider is checked against this in
//! tests/gpu.rs).

use super::*;
use crate::preprocess::{
    crop_origin, CropPosition, FrameView, PixelFormat, ScaledFrame, Scaler, YuvMatrix, YuvRange,
};

/// An RGB frame with edges and gradients in every channel, so that a shifted or mis-scaled
/// crop shows.
fn frame(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let stripe = if (x / 7 + y / 5) % 2 == 0 { 200 } else { 30 };
            data.push(((x * 255) / width.max(1)) as u8);
            data.push(((y * 255) / height.max(1)) as u8);
            data.push(stripe + ((x * 7 + y * 3) % 25) as u8);
        }
    }
    data
}

fn view(data: &[u8], width: u32, height: u32) -> FrameView<'_> {
    FrameView {
        format: PixelFormat::Rgb,
        width,
        height,
        planes: [data, &[], &[]],
        strides: [width as usize * 3, 0, 0],
        matrix: YuvMatrix::Bt601,
        range: YuvRange::Limited,
    }
}

/// The centred square of `scaled`, tightly packed RGB.
fn centre(scaled: &ScaledFrame, crop: u32) -> Vec<u8> {
    let (x0, y0) = crop_origin(scaled.width, scaled.height, crop, CropPosition::Center);
    let mut out = Vec::new();
    for y in y0..y0 + crop {
        let row = ((y * scaled.width + x0) * 3) as usize;
        out.extend_from_slice(&scaled.data[row..row + crop as usize * 3]);
    }
    out
}

/// Resample `frames` copies of one span on the CPU into items of `layout`.
fn resample(
    span: &ScaledFrame,
    geometry: CentreSpan,
    frames: usize,
    clips: usize,
    layout: Layout,
) -> Vec<u8> {
    let env = crate::engine::runtime()
        .unwrap_or_else(|e| panic!("ONNX Runtime is needed (tools/run-tests sets it up): {e}"));
    let what = SpanClips {
        span: geometry,
        frames,
        layout,
    };
    let n = (clips * frames) as i64;
    let mut spans = DynTensor::new(
        &Allocator::default(),
        TensorElementType::Uint8,
        vec![n, i64::from(span.height), i64::from(span.width), 3],
    )
    .unwrap();
    {
        let (_, data) = spans.try_extract_tensor_mut::<u8>().unwrap();
        for chunk in data.chunks_exact_mut(span.data.len()) {
            chunk.copy_from_slice(&span.data);
        }
    }
    let crop = i64::from(geometry.crop);
    // One item more than the clips, to see that nothing past them is written.
    let mut out_shape = match layout {
        Layout::Nthwc => vec![clips as i64 + 1, frames as i64, crop, crop, 3],
        Layout::Ncthw => vec![clips as i64 + 1, 3, frames as i64, crop, crop],
    };
    out_shape.truncate(5);
    let mut out =
        DynTensor::new(&Allocator::default(), TensorElementType::Uint8, out_shape).unwrap();
    out.try_extract_tensor_mut::<u8>().unwrap().1.fill(7);
    let mut resampler = Resampler::new();
    resampler
        .run(
            || {
                crate::engine::local::session::plain_builder(&env)
                    .map_err(|e| EngineError::Inference(e.to_string()))
            },
            &spans,
            &what,
            clips,
            &mut out,
        )
        .unwrap();
    out.try_extract_tensor::<u8>().unwrap().1.to_vec()
}

/// Largest and mean absolute difference.
fn diff(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let d: Vec<u8> = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).collect();
    let max = d.iter().copied().max().unwrap_or(0);
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / d.len().max(1) as f64;
    (max, mean)
}

#[test]
fn the_graph_gives_the_scalers_centre_crop() {
    // (width, height, scale size, crop): up (240 → 256), down (antialiased), odd sizes, portrait,
    // a frame already at the scale size (no resampling), the crop touching the frame's border.
    // Reductions differ a little more: ONNX Runtime widens the antialiasing filter by the
    // span's reduction to the crop, a little less than the frame's (the span has margins).
    // (Measured: enlargements within 1 level, mean ≤ 0.1; reductions within 4, mean ≤ 0.23.)
    for (w, h, scale, crop, within, mean_within) in [
        (320, 240, 256, 224, 1, 0.15),
        (640, 480, 256, 224, 5, 0.3),
        (97, 61, 64, 50, 1, 0.15),
        (480, 640, 256, 224, 5, 0.3),
        (300, 224, 224, 224, 0, 0.0),
        (120, 90, 96, 96, 1, 0.15),
    ] {
        let data = frame(w, h);
        let v = view(&data, w, h);
        let mut scaler = Scaler::new();
        let want = centre(&scaler.scale(&v, scale).unwrap(), crop);
        let (span, geometry) = scaler.centre_span(&v, scale, crop).unwrap();
        assert_eq!((span.width, span.height), (geometry.width, geometry.height));
        let got = resample(&span, geometry, 2, 1, Layout::Nthwc);
        let item = want.len() * 2;
        let (max, mean) = diff(&got[..want.len()], &want);
        assert!(
            max <= within && mean <= mean_within,
            "{w}x{h} → {scale}, crop {crop}: off by up to {max} (mean {mean:.3})"
        );
        assert_eq!(&got[want.len()..item], &got[..want.len()], "frame 2");
        assert!(got[item..].iter().all(|&b| b == 7), "past the clips");
    }
}

#[test]
fn channels_first_items_hold_each_clip_in_order() {
    let (w, h, scale, crop) = (97, 61, 64, 50);
    let data = frame(w, h);
    let mut scaler = Scaler::new();
    let (span, geometry) = scaler.centre_span(&view(&data, w, h), scale, crop).unwrap();
    let hwc = resample(&span, geometry, 3, 2, Layout::Nthwc);
    let cthw = resample(&span, geometry, 3, 2, Layout::Ncthw);
    let plane = (crop * crop) as usize;
    let item = plane * 3 * 3;
    for clip in 0..2 {
        for c in 0..3 {
            for t in 0..3 {
                for p in 0..plane {
                    assert_eq!(
                        cthw[clip * item + (c * 3 + t) * plane + p],
                        hwc[clip * item + (t * plane + p) * 3 + c],
                        "clip {clip} channel {c} frame {t} pixel {p}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_region_puts_output_pixels_on_half_pixel_centres() {
    // 10 span pixels, the box from 2 to 7 onto 4 outputs: centres at 2 + (x + 0.5) · 1.25 − 0.5,
    // in the padded axis (one more pixel on the left) ...
    let (start, end) = axis_roi(10, 1, 2.0, 5.0, 4);
    let at = |x: f64| f64::from(start) * 11.0 + x * f64::from(end - start) * 11.0 / 3.0;
    for x in 0..4 {
        let want = 1.0 + 2.0 + (f64::from(x) + 0.5) * 1.25 - 0.5;
        assert!(
            (at(f64::from(x)) - want).abs() < 1e-5,
            "pixel {x}: {}",
            at(f64::from(x))
        );
    }
    // ... and a one-pixel crop at the box's centre.
    let (start, end) = axis_roi(10, 1, 2.0, 5.0, 1);
    assert_eq!(start, end);
    assert!((f64::from(start) * 11.0 - (1.0 + 2.0 + 2.5 - 0.5)).abs() < 1e-5);
}

#[test]
fn only_spans_whose_box_reaches_the_frame_border_are_padded() {
    // (width, height, scale size, crop, padded): the centre box well inside the frame reads
    // only span pixels; an enlarged box spanning the short side reads past its first pixel.
    for (w, h, scale, crop, padded) in [
        (320, 240, 256, 224, false),
        (97, 61, 64, 50, false),
        (120, 90, 96, 96, true),
        (90, 120, 96, 96, true),
    ] {
        let data = frame(w, h);
        let (_, geometry) = Scaler::new()
            .centre_span(&view(&data, w, h), scale, crop)
            .unwrap();
        assert_eq!(
            needs_pad(&geometry),
            padded,
            "{w}x{h} → {scale}, crop {crop}"
        );
    }
}
