//! Resampling on the model's own device: a small graph, built with ONNX Runtime's model editor,
//! that turns a batch's source spans (uint8 RGB, see [`CentreSpan`]) into the model's input
//! items — the centre crop's box, bilinear like the element's own scaler — run by a session on
//! the model's provider and written straight into the batch's input (on the card under CUDA).
//!
//! The graph: `Cast` to float, `Transpose` to NCHW, `Pad` (edge) by one pixel, `Resize` (linear,
//! `tf_crop_and_resize` onto the box; antialiased when the box shrinks), `Round`, `Cast` back to
//! uint8, and a `Transpose` (with a `Reshape` first for channels-first clips) into the model's
//! layout. The edge padding makes the resize read past the span's borders as the element's
//! scaler does (the border pixel repeated), where `tf_crop_and_resize` alone would read zeros;
//! it is left out where no output pixel reads past them (the span has the element's margin
//! around the box unless the box touches the frame's border), as it costs more on the card than
//! the rest of the graph together.

use ort::editor::{Graph, Model, Node, Opset, ONNX_DOMAIN};
use ort::memory::{Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::operator::Attribute;
use ort::session::builder::SessionBuilder;
use ort::session::Session;
use ort::value::{DynTensor, Shape, SymbolicDimensions, Tensor, TensorElementType, ValueType};

use crate::engine::{EngineError, SpanClips};
use crate::preprocess::{CentreSpan, Layout};

/// Opset of the graph (Resize's `antialias` attribute needs 18).
const OPSET: u32 = 18;

fn tensor(ty: TensorElementType, shape: &[i64]) -> ValueType {
    ValueType::Tensor {
        ty,
        shape: Shape::new(shape.iter().copied()),
        dimension_symbols: SymbolicDimensions::empty(shape.len()),
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attributes: Vec<Attribute>,
) -> ort::Result<Node> {
    Node::new(op, ONNX_DOMAIN, name, inputs, [output], attributes)
}

/// The resampling graph for clips in `layout`, antialiased (for boxes larger than the crop) or
/// not, the span edge-padded by a pixel first or not (`pad`, only without antialiasing). Inputs: `spans` uint8 `[frames, height, width, 3]`, `roi` float `[8]`, `sizes` int64
/// `[4]` (NCHW), and for channels-first clips `clips` int64 `[5]` (`[n, frames / n, 3, crop,
/// crop]`); output `items`, uint8, the model's input items.
fn graph(layout: Layout, antialias: bool, pad: bool) -> ort::Result<Model> {
    use TensorElementType::{Float32, Int64, Uint8};
    let mut g = Graph::new()?;
    let mut inputs = vec![
        ort::value::Outlet::new("spans", tensor(Uint8, &[-1, -1, -1, 3])),
        ort::value::Outlet::new("roi", tensor(Float32, &[8])),
        ort::value::Outlet::new("sizes", tensor(Int64, &[4])),
    ];
    if layout == Layout::Ncthw {
        inputs.push(ort::value::Outlet::new("clips", tensor(Int64, &[5])));
    }
    g.set_inputs(inputs)?;
    let out_rank = match layout {
        Layout::Nthwc => 4,
        Layout::Ncthw => 5,
    };
    g.set_outputs([ort::value::Outlet::new(
        "items",
        tensor(Uint8, &vec![-1; out_rank]),
    )])?;
    // ONNX's element type numbers, for Cast's `to`.
    let to = |ty: i64| Attribute::new("to", ty);
    g.add_node(node("Cast", "float", &["spans"], "f", vec![to(1)?])?)?;
    g.add_node(node(
        "Transpose",
        "nchw",
        &["f"],
        "fc",
        vec![Attribute::new("perm", vec![0i64, 3, 1, 2])?],
    )?)?;
    let pad = pad && !antialias;
    if pad {
        let mut pads = Tensor::<i64>::new(&Allocator::default(), [8i64])?;
        pads.extract_tensor_mut()
            .1
            .copy_from_slice(&[0, 0, 1, 1, 0, 0, 1, 1]);
        g.add_initializer("pads", pads, false)?;
        g.add_node(node(
            "Pad",
            "edge",
            &["fc", "pads"],
            "fp",
            vec![Attribute::new("mode", "edge".to_string())?],
        )?)?;
    }
    g.add_node(node(
        "Resize",
        "resize",
        &[if pad { "fp" } else { "fc" }, "roi", "", "sizes"],
        "r",
        vec![
            Attribute::new("mode", "linear".to_string())?,
            Attribute::new(
                "coordinate_transformation_mode",
                "tf_crop_and_resize".to_string(),
            )?,
            Attribute::new("antialias", i64::from(antialias))?,
        ],
    )?)?;
    g.add_node(node("Round", "round", &["r"], "rr", vec![])?)?;
    g.add_node(node("Cast", "bytes", &["rr"], "u", vec![to(2)?])?)?;
    match layout {
        Layout::Nthwc => g.add_node(node(
            "Transpose",
            "nhwc",
            &["u"],
            "items",
            vec![Attribute::new("perm", vec![0i64, 2, 3, 1])?],
        )?)?,
        Layout::Ncthw => {
            g.add_node(node("Reshape", "clips", &["u", "clips"], "ut", vec![])?)?;
            g.add_node(node(
                "Transpose",
                "ncthw",
                &["ut"],
                "items",
                vec![Attribute::new("perm", vec![0i64, 2, 1, 3, 4])?],
            )?)?;
        }
    }
    let mut model = Model::new([Opset::new(ONNX_DOMAIN, OPSET)?])?;
    model.set_graph(g)?;
    Ok(model)
}

/// `tf_crop_and_resize`'s region for one axis of `len` span pixels (the padded axis is `len +
/// 2`): output pixel `x` of `crop` lands at `left + (x + 0.5) · box / crop − 0.5` in the span,
/// as in the element's scaler (half-pixel centres).
fn axis_roi(len: u32, pad: u32, left: f64, box_len: f64, crop: u32) -> (f32, f32) {
    let last = f64::from((len + 2 * pad).max(2) - 1);
    let step = box_len / f64::from(crop);
    let start = (left + f64::from(pad) + 0.5 * step - 0.5) / last;
    let end = start + step * f64::from(crop.saturating_sub(1)) / last;
    (start as f32, end as f32)
}

/// Whether output pixels of an axis (`len` span pixels, the box at `left`, `box_len` long, onto
/// `crop` pixels) read past the span's first or last pixel, where the graph must pad it.
fn axis_reads_past(len: u32, left: f64, box_len: f64, crop: u32) -> bool {
    let step = box_len / f64::from(crop);
    let first = left + 0.5 * step - 0.5;
    let last = first + step * f64::from(crop.saturating_sub(1));
    first < 0.0 || last > f64::from(len.max(1) - 1)
}

/// Whether the span must be edge-padded for `tf_crop_and_resize` (see the module's notes).
pub(super) fn needs_pad(span: &CentreSpan) -> bool {
    axis_reads_past(span.width, span.left, span.box_width, span.crop)
        || axis_reads_past(span.height, span.top, span.box_height, span.crop)
}

/// The `roi` input for a span (NCHW: batch and channels whole).
pub(super) fn roi(span: &CentreSpan, pad: u32) -> [f32; 8] {
    let (y1, y2) = axis_roi(span.height, pad, span.top, span.box_height, span.crop);
    let (x1, x2) = axis_roi(span.width, pad, span.left, span.box_width, span.crop);
    [0.0, 0.0, y1, x1, 1.0, 1.0, y2, x2]
}

/// Sessions of the resampling graph on one lane (one per layout, antialiasing and padding met).
pub(super) struct Resampler {
    sessions: Vec<((Layout, bool, bool), Session)>,
}

impl Resampler {
    pub(super) fn new() -> Resampler {
        Resampler {
            sessions: Vec::new(),
        }
    }

    /// Resample `clips` clips of `spans` (host memory, `[clips × frames, height, width, 3]`)
    /// into the first `clips` items of `out` (the batch's input, on the card or the host),
    /// opening the graph's session with `builder` on first use.
    pub(super) fn run(
        &mut self,
        builder: impl FnOnce() -> Result<SessionBuilder, EngineError>,
        spans: &DynTensor,
        what: &SpanClips,
        clips: usize,
        out: &mut DynTensor,
    ) -> Result<(), EngineError> {
        let err = |e: ort::Error| EngineError::Inference(format!("resampling the clips: {e}"));
        let span = &what.span;
        let antialias = span.box_width > f64::from(span.crop) + 1e-9
            || span.box_height > f64::from(span.crop) + 1e-9;
        let pad = !antialias && needs_pad(span);
        let key = (what.layout, antialias, pad);
        let k = match self.sessions.iter().position(|(k, _)| *k == key) {
            Some(k) => k,
            None => {
                let builder = builder()?;
                let session = graph(what.layout, antialias, pad)
                    .and_then(|g| g.into_session(&builder))
                    .map_err(err)?;
                self.sessions.push((key, session));
                self.sessions.len() - 1
            }
        };
        let frames = (clips * what.frames) as i64;
        let crop = i64::from(span.crop);
        let item_shape: Vec<i64> = match what.layout {
            Layout::Nthwc => vec![frames, crop, crop, 3],
            Layout::Ncthw => vec![clips as i64, 3, what.frames as i64, crop, crop],
        };
        let bytes: usize = item_shape.iter().map(|&d| d as usize).product();
        let room: usize = out.shape().iter().map(|&d| d.max(0) as usize).product();
        if bytes > room || out.dtype().tensor_type() != Some(TensorElementType::Uint8) {
            return Err(EngineError::Inference(format!(
                "{clips} resampled clips do not fit the input {:?}",
                out.shape()
            )));
        }
        let session = &mut self.sessions[k].1;
        let run = || -> ort::Result<()> {
            let roi = Tensor::from_array(([8usize], roi(span, u32::from(pad)).to_vec()))?;
            let sizes = Tensor::from_array(([4usize], vec![frames, 3, crop, crop]))?;
            let mut binding = session.create_binding()?;
            binding.bind_input("spans", spans)?;
            binding.bind_input("roi", &roi)?;
            binding.bind_input("sizes", &sizes)?;
            if what.layout == Layout::Ncthw {
                let shape = vec![clips as i64, what.frames as i64, 3, crop, crop];
                binding.bind_input("clips", &Tensor::from_array(([5usize], shape))?)?;
            }
            let info = {
                let i = out.memory_info();
                MemoryInfo::new(
                    i.allocation_device(),
                    i.device_id(),
                    AllocatorType::Device,
                    MemoryType::Default,
                )?
            };
            // SAFETY: `out` is a uint8 tensor of at least `bytes` values (checked above) on
            // the device `info` describes; the view lives until the run returns, while `out`
            // is borrowed mutably.
            let view = unsafe {
                ort::value::TensorRefMut::<u8>::from_raw(
                    info,
                    out.data_ptr_mut(),
                    Shape::new(item_shape),
                )
            }?;
            binding.bind_output("items", view)?;
            session.run_binding(&binding)?;
            Ok(())
        };
        run().map_err(err)
    }
}

#[cfg(test)]
mod tests;
