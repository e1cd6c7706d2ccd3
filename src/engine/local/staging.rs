//! Staging inputs: where one batch size's clips are copied and bound to a session (page-locked
//! host memory under CUDA; with CUDA graphs, input and output on the card, bound once).

use std::collections::HashMap;

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, TensorElementType, ValueType};

use crate::config::{InputType, ModelIo};
use crate::engine::EngineError;

/// Where one batch size's input is staged and bound to the session.
pub(super) struct Staging {
    pub(super) input: DynTensor,
    pub(super) binding: IoBinding,
    /// CUDA graphs: the input and output on the card, bound once (a captured graph replays on
    /// the same addresses); the staging input is copied into `device_input` before each run.
    pub(super) device: Option<(DynTensor, DynTensor)>,
}

/// Most staging buffers kept (shapes differ only by batch size unless elements override the
/// clip length of a model with a free time dimension).
const MAX_STAGING: usize = 16;

/// The staging input of `shape` (made on first use).
pub(super) fn staging_for<'a>(
    staging: &'a mut HashMap<Vec<i64>, Staging>,
    session: &Session,
    allocator: Option<&Allocator>,
    graph_device: Option<i32>,
    shape: &[i64],
    io: &ModelIo,
) -> Result<&'a mut Staging, EngineError> {
    let err = |e: ort::Error| EngineError::Inference(e.to_string());
    if !staging.contains_key(shape) {
        if staging.len() >= MAX_STAGING {
            staging.clear();
        }
        let ty = match io.input_type {
            Ok(InputType::F32) => TensorElementType::Float32,
            Ok(InputType::F16) => TensorElementType::Float16,
            Ok(InputType::U8) => TensorElementType::Uint8,
            Err(ref other) => {
                return Err(EngineError::Inference(format!(
                    "unsupported input element type {other}"
                )))
            }
        };
        let allocator = allocator.unwrap_or_else(|| session.allocator());
        let input = DynTensor::new(allocator, ty, shape.to_vec()).map_err(err)?;
        let mut binding = session.create_binding().map_err(err)?;
        let device = match graph_device {
            Some(device) => {
                let card = Allocator::new(
                    session,
                    MemoryInfo::new(
                        AllocationDevice::CUDA,
                        device,
                        AllocatorType::Device,
                        MemoryType::Default,
                    )
                    .map_err(err)?,
                )
                .map_err(err)?;
                let device_input = DynTensor::new(&card, ty, shape.to_vec()).map_err(err)?;
                let mut out_shape = io.output_shape.clone();
                if let Some(b) = out_shape.first_mut() {
                    *b = shape[0];
                }
                if out_shape.iter().any(|&d| d < 1) {
                    return Err(EngineError::Inference(format!(
                        "CUDA graphs need a fixed output shape, not {:?}",
                        io.output_shape
                    )));
                }
                let out_ty = match &session.outputs()[0].dtype() {
                    ValueType::Tensor { ty, .. } => *ty,
                    _ => TensorElementType::Float32,
                };
                let mut device_output = DynTensor::new(&card, out_ty, out_shape).map_err(err)?;
                binding
                    .bind_input(io.input_name.as_str(), &device_input)
                    .map_err(err)?;
                binding
                    .bind_output(io.output_name.as_str(), &mut device_output)
                    .map_err(err)?;
                Some((device_input, device_output))
            }
            None => {
                let cpu = MemoryInfo::new(
                    AllocationDevice::CPU,
                    0,
                    AllocatorType::Device,
                    MemoryType::Default,
                )
                .map_err(err)?;
                binding
                    .bind_output_to_device(io.output_name.as_str(), &cpu)
                    .map_err(err)?;
                None
            }
        };
        staging.insert(
            shape.to_vec(),
            Staging {
                input,
                binding,
                device,
            },
        );
    }
    staging
        .get_mut(shape)
        .ok_or_else(|| EngineError::Inference("staging buffer missing".into()))
}
