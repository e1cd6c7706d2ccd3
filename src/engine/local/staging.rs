//! Staging inputs: where one batch size's clips go and how they are bound to a session. On the
//! CPU, host memory the clips are copied into. Under CUDA, page-locked host memory the clips are
//! copied into (one transfer to the card per batch), and the input on the card, that a batch
//! lying in one lent page-locked buffer (a sheet, see `host`) is copied into straight, in one
//! DMA transfer; with CUDA graphs the input stays bound on the card and the output is there too
//! (a captured graph replays on the same addresses).

use std::collections::HashMap;

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::{DynTensor, TensorElementType, ValueType};

use super::cudart::{CopyStream, HostCopy};
use crate::config::{InputType, ModelIo};
use crate::engine::EngineError;

/// Where the session runs, as staging needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    Cpu,
    /// A CUDA device; `graphs`: CUDA graphs (the output bound on the card as well).
    Cuda {
        device: i32,
        graphs: bool,
    },
}

/// Where one batch size's input is staged and bound to the session.
pub(super) struct Staging {
    /// The model's input: host memory on the CPU, the card's memory under CUDA.
    pub(super) input: DynTensor,
    /// Under CUDA, host memory (page-locked when it can be) that clips not in lent buffers are
    /// copied into first, then to the card as one transfer.
    pub(super) host: Option<DynTensor>,
    pub(super) binding: IoBinding,
    /// Under CUDA graphs, the output on the card (read back after each run).
    pub(super) output: Option<DynTensor>,
}

/// Most staging buffers kept (shapes differ only by batch size unless elements override the
/// clip length of a model with a free time dimension).
const MAX_STAGING: usize = 16;

fn card_memory(device: i32) -> ort::Result<MemoryInfo<'static>> {
    MemoryInfo::new(
        AllocationDevice::CUDA,
        device,
        AllocatorType::Device,
        MemoryType::Default,
    )
}

/// The staging input of `shape` (made on first use).
pub(super) fn staging_for<'a>(
    staging: &'a mut HashMap<Vec<i64>, Staging>,
    session: &Session,
    host_allocator: Option<&Allocator>,
    place: Place,
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
        let mut binding = session.create_binding().map_err(err)?;
        let cpu = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(err)?;
        let (input, host, output) = match place {
            Place::Cpu => {
                let input = DynTensor::new(session.allocator(), ty, shape.to_vec()).map_err(err)?;
                binding
                    .bind_output_to_device(io.output_name.as_str(), &cpu)
                    .map_err(err)?;
                (input, None, None)
            }
            Place::Cuda { device, graphs } => {
                let card =
                    Allocator::new(session, card_memory(device).map_err(err)?).map_err(err)?;
                let input = DynTensor::new(&card, ty, shape.to_vec()).map_err(err)?;
                binding
                    .bind_input(io.input_name.as_str(), &input)
                    .map_err(err)?;
                let output = if graphs {
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
                    let mut output = DynTensor::new(&card, out_ty, out_shape).map_err(err)?;
                    binding
                        .bind_output(io.output_name.as_str(), &mut output)
                        .map_err(err)?;
                    Some(output)
                } else {
                    binding
                        .bind_output_to_device(io.output_name.as_str(), &cpu)
                        .map_err(err)?;
                    None
                };
                let host = DynTensor::new(
                    host_allocator.unwrap_or_else(|| session.allocator()),
                    ty,
                    shape.to_vec(),
                )
                .map_err(err)?;
                (input, Some(host), output)
            }
        };
        staging.insert(
            shape.to_vec(),
            Staging {
                input,
                host,
                binding,
                output,
            },
        );
    }
    staging
        .get_mut(shape)
        .ok_or_else(|| EngineError::Inference("staging buffer missing".into()))
}

/// Copy `values` values from `src` (the first of a batch's items, one after another in lent
/// page-locked memory, padding included) to `input`, a tensor on the card, as one DMA transfer
/// on the lane's `stream`.
///
/// # Safety
/// `src` must be valid for reads of `values` values, not written until this returns.
pub(super) unsafe fn upload_block<T>(
    input: &mut DynTensor,
    stream: &CopyStream,
    values: usize,
    src: *const T,
) -> Result<(), String> {
    let room: usize = input.shape().iter().map(|&d| d.max(0) as usize).product();
    if src.is_null()
        || values > room
        || input.memory_info().allocation_device() != AllocationDevice::CUDA
    {
        return Err("the batch does not fit the input on the card".into());
    }
    let copy = HostCopy {
        dst: input.data_ptr_mut().cast(),
        src: src.cast(),
        bytes: values * std::mem::size_of::<T>(),
    };
    // SAFETY: the caller's promise for the source; the destination is `input`, a device
    // allocation of at least `values` values (checked above) that nothing else writes (the
    // lane's lock is held).
    unsafe { stream.copy_all(&[copy]) }
}
