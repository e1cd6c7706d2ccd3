use half::f16;

use super::colour::*;
use super::pack::*;
use super::scale::*;
use super::*;

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

fn interleave_uv<const W: usize, const W2: usize>(u: &[[u8; W]], v: &[[u8; W]]) -> Vec<[u8; W2]> {
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

/// Convert a Y'CbCr frame of luma rows `y` (rows padded by `y_pad` bytes) and chroma planes
/// `chroma` (data and stride each, as [`plane`] lays them out) to RGB: scaled to its own short
/// side, so converted but not resampled.
fn convert_yuv<const W: usize>(
    format: PixelFormat,
    (y, y_pad): (&[[u8; W]], usize),
    chroma: &[(Vec<u8>, usize)],
    matrix: YuvMatrix,
    range: YuvRange,
) -> ScaledFrame {
    let (yp, ys) = plane(y, y_pad);
    let mut planes: [&[u8]; 3] = [&yp, &[], &[]];
    let mut strides = [ys, 0, 0];
    for (k, (data, stride)) in chroma.iter().enumerate() {
        planes[k + 1] = data;
        strides[k + 1] = *stride;
    }
    let view = FrameView {
        format,
        width: W as u32,
        height: y.len() as u32,
        planes,
        strides,
        matrix,
        range,
    };
    let short = view.width.min(view.height);
    Scaler::new().scale(&view, short).expect("scale")
}

fn scale_i420<const W: usize, const CW: usize>(
    y: &[[u8; W]],
    u: &[[u8; CW]],
    v: &[[u8; CW]],
    matrix: YuvMatrix,
    range: YuvRange,
) -> ScaledFrame {
    let chroma = [plane(u, 2), plane(v, 1)];
    convert_yuv(PixelFormat::I420, (y, 3), &chroma, matrix, range)
}

fn scale_nv12<const W: usize, const CW2: usize>(
    y: &[[u8; W]],
    uv: &[[u8; CW2]],
    matrix: YuvMatrix,
    range: YuvRange,
) -> ScaledFrame {
    convert_yuv(PixelFormat::Nv12, (y, 1), &[plane(uv, 3)], matrix, range)
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

/// Where each crop position cuts, in both layouts: along the long side (landscape: x, portrait:
/// y) and along the width for square frames, the other axis centred.
#[test]
fn pack_positions() {
    use CropPosition::{Center, End, Start};
    // (width, height, crop, position, x0, y0)
    let cases = [
        // 6x4, crop 2: y centred at 1; x = 0 / 2 / 4.
        (6, 4, 2, Start, 0, 1),
        (6, 4, 2, Center, 2, 1),
        (6, 4, 2, End, 4, 1),
        // 4x6, crop 2: x centred at 1; y = 0 / 2 / 4.
        (4, 6, 2, Start, 1, 0),
        (4, 6, 2, Center, 1, 2),
        (4, 6, 2, End, 1, 4),
        // 5x5, crop 2: y centred at 1; x = 0 / 1 / 3.
        (5, 5, 2, Start, 0, 1),
        (5, 5, 2, Center, 1, 1),
        (5, 5, 2, End, 3, 1),
        // Crop as large as the short side.
        (6, 4, 4, End, 2, 0),
    ];
    for (width, height, crop, pos, x0, y0) in cases {
        let case = format!("{width}x{height}, crop {crop}, {pos:?}");
        assert_eq!(
            pack_u8(width, height, crop, pos, Layout::Ncthw),
            expected_ncthw(x0, y0, crop as usize, 2),
            "{case}"
        );
        assert_eq!(
            pack_u8(width, height, crop, pos, Layout::Nthwc),
            expected_nthwc(x0, y0, crop as usize, 2),
            "{case}"
        );
    }
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
