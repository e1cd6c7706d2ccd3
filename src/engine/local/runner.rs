//! One lane of the local backend: its sessions (one per batch size under CUDA), its staging
//! inputs, and running one batch on them, with the fallback to unfused convolutions when cuDNN
//! refuses a fused one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use half::f16;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::PrimitiveTensorElementType;

use super::cuda::{capture_hold, count_graph_run, is_fusion_failure, GraphRuns};
use super::cudart::CopyStream;
use super::session::SessionSource;
use super::staging::{staging_for, upload, Place, Staging};
use super::ProviderChoice;
use crate::config::ModelIo;
use crate::engine::{EngineError, RunTimes};

/// The element types ONNX Runtime is fed clips of.
pub(super) trait TensorElement:
    PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static
{
}

impl<T: PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static> TensorElement
    for T
{
}

/// The session and its staging buffers (one per input shape met), behind the engine's lock.
pub(super) struct Runner {
    /// The first session: all batch sizes on the CPU, batch size 1 under CUDA.
    session: Session,
    /// Under CUDA, a session for each other batch size, opened on first use: ONNX Runtime's CUDA
    /// convolutions re-plan whenever a session's input shape changes (hundreds of milliseconds
    /// per run on the Non-local networks when batch sizes alternate), so each session keeps one.
    per_batch: HashMap<i64, Session>,
    source: Option<Arc<SessionSource>>,
    /// Whether this runner's CUDA sessions were opened with fused convolutions.
    fused: bool,
    /// The batch size `session` runs under CUDA: the graph's fixed one, else 1.
    base_batch: i64,
    staging: HashMap<Vec<i64>, Staging>,
    /// Under CUDA, allocates page-locked staging inputs for clips not in lent buffers (None:
    /// refused, ordinary memory is used).
    host_allocator: Option<Allocator>,
    /// Time spent so far copying clips into staging inputs (CPU), copying them to the card
    /// (CUDA) and running the graph.
    pub(super) times: RunTimes,
    /// Why convolution fusion was turned off (cuDNN's refusal), if it was.
    pub(super) unfused: Option<String>,
    /// Under CUDA graphs: runs so far of each batch size's session on each thread (the first
    /// `RUNS_TO_CAPTURE` may capture, see `cuda::capture_hold`).
    graph_runs: GraphRuns,
    /// Under CUDA, the stream clips are copied to the card on (made on first use), or why the
    /// CUDA runtime could not give one (clips then go through ONNX Runtime's copies).
    copy_stream: Option<Result<CopyStream, String>>,
}

/// A score tensor (float32 or float16) as float32 values.
fn scores_of<T: ort::value::TensorValueTypeMarker + ?Sized>(
    value: &ort::value::Value<T>,
) -> ort::Result<Vec<f32>> {
    match value.try_extract_tensor::<f32>() {
        Ok((_, data)) => Ok(data.to_vec()),
        Err(_) => {
            let (_, data) = value.try_extract_tensor::<f16>()?;
            Ok(data.iter().map(|v| v.to_f32()).collect())
        }
    }
}

impl Runner {
    /// A runner around `session`; under CUDA when `source` is given.
    pub(super) fn new(
        session: Session,
        source: Option<Arc<SessionSource>>,
        io: &ModelIo,
    ) -> Runner {
        let host_allocator = source.as_ref().and_then(|s| {
            MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                s.device,
                AllocatorType::Device,
                MemoryType::CPUInput,
            )
            .and_then(|info| Allocator::new(&session, info))
            .ok()
        });
        Runner {
            host_allocator,
            fused: source
                .as_ref()
                .is_some_and(|s| s.fused.load(Ordering::Relaxed)),
            // Under CUDA each batch size gets its own session (see `Runner::per_batch`).
            source,
            per_batch: HashMap::new(),
            base_batch: io
                .input_shape
                .first()
                .copied()
                .filter(|&b| b > 0)
                .unwrap_or(1),
            session,
            staging: HashMap::new(),
            times: RunTimes::default(),
            unfused: None,
            graph_runs: GraphRuns::new(),
            copy_stream: None,
        }
    }

    /// Copy `items` (each `per` elements; the last one repeated up to the batch size of `shape`)
    /// into the staging input of `shape` (on the card under CUDA), run, and return each item's
    /// scores. When cuDNN has no
    /// fused convolution for a layer of the model, the CUDA sessions are opened again without
    /// fusion and the batch is run again.
    pub(super) fn run<T: TensorElement>(
        &mut self,
        shape: &[i64],
        io: &ModelIo,
        items: &[&[T]],
        lent: bool,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let _hold = self.source.as_ref().is_some_and(|s| s.graphs).then(|| {
            let batch = shape.first().copied().unwrap_or(1);
            capture_hold(count_graph_run(&mut self.graph_runs, batch))
        });
        match self.run_once(shape, io, items, lent) {
            Err(EngineError::Inference(reason)) if is_fusion_failure(&reason) => {
                let Some(source) = self.source.as_ref().filter(|_| self.fused) else {
                    return Err(EngineError::Inference(reason));
                };
                // Every lane's next sessions open without fusion; this lane's reopen now.
                source.fused.store(false, Ordering::Relaxed);
                self.fused = false;
                self.session = source.session(ProviderChoice::Cuda)?.0;
                self.per_batch.clear();
                self.staging.clear();
                self.graph_runs.clear();
                self.unfused = Some(reason);
                self.run_once(shape, io, items, lent)
            }
            other => other,
        }
    }

    fn run_once<T: TensorElement>(
        &mut self,
        shape: &[i64],
        io: &ModelIo,
        items: &[&[T]],
        lent: bool,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let err = |e: &dyn std::fmt::Display| EngineError::Inference(e.to_string());
        let n = shape
            .first()
            .and_then(|&b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
            .ok_or_else(|| EngineError::Inference(format!("bad batch shape {shape:?}")))?;
        let per: usize = shape[1..]
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product();
        let last = items
            .last()
            .ok_or_else(|| EngineError::Inference("a batch without clips".into()))?;
        if items.len() > n || items.iter().any(|item| item.len() != per) {
            return Err(EngineError::Inference(format!(
                "{} clips of {:?} values for an input of shape {shape:?}",
                items.len(),
                items.iter().map(|i| i.len()).collect::<Vec<_>>()
            )));
        }
        let Runner {
            session,
            per_batch,
            source,
            base_batch,
            staging,
            times,
            copy_stream,
            host_allocator,
            ..
        } = self;
        let session = match source {
            Some(source) if shape[0] != *base_batch => match per_batch.entry(shape[0]) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(source.session(ProviderChoice::Cuda)?.0)
                }
            },
            _ => session,
        };
        let place = match source {
            Some(s) => Place::Cuda {
                device: s.device,
                graphs: s.graphs,
            },
            None => Place::Cpu,
        };
        let Staging {
            input,
            host,
            binding,
            output,
        } = staging_for(staging, session, host_allocator.as_ref(), place, shape, io)?;
        let t0 = Instant::now();
        let t1 = match place {
            Place::Cpu => {
                let (_, data) = input.try_extract_tensor_mut::<T>().map_err(|e| err(&e))?;
                crate::engine::fill::fill(data, per, items, last);
                let t1 = Instant::now();
                binding
                    .bind_input(io.input_name.as_str(), &*input)
                    .map_err(|e| err(&e))?;
                t1
            }
            Place::Cuda { device, graphs } => {
                // The lane's copy stream, made when the first lent batch comes.
                let stream = if lent {
                    copy_stream
                        .get_or_insert_with(|| CopyStream::new(device))
                        .as_ref()
                        .ok()
                } else {
                    None
                };
                let host = host
                    .as_mut()
                    .ok_or_else(|| EngineError::Inference("no staging input".into()))?;
                match stream {
                    // Each clip from its lent page-locked buffer to its slot on the card.
                    Some(stream) => {
                        if !graphs {
                            binding
                                .bind_input(io.input_name.as_str(), &*input)
                                .map_err(|e| err(&e))?;
                        }
                        upload(input, stream, n, per, items).map_err(|e| err(&e))?;
                        t0
                    }
                    // Clips in ordinary memory: into the page-locked staging input, which goes
                    // to the card as one transfer (ONNX Runtime's, inside the run; before it
                    // under CUDA graphs, whose input stays bound on the card).
                    _ => {
                        let (_, data) = host.try_extract_tensor_mut::<T>().map_err(|e| err(&e))?;
                        crate::engine::fill::fill(data, per, items, last);
                        let t1 = Instant::now();
                        if graphs {
                            host.copy_into(&mut *input).map_err(|e| err(&e))?;
                        } else {
                            binding
                                .bind_input(io.input_name.as_str(), &*host)
                                .map_err(|e| err(&e))?;
                        }
                        t1
                    }
                }
            }
        };
        let t2 = Instant::now();
        let flat = match output {
            Some(device_output) => {
                session.run_binding(binding).map_err(|e| err(&e))?;
                let host = device_output
                    .to(AllocationDevice::CPU, 0)
                    .map_err(|e| err(&e))?;
                scores_of(&host).map_err(|e| err(&e))?
            }
            None => {
                let outputs = session.run_binding(binding).map_err(|e| err(&e))?;
                let out = outputs
                    .values()
                    .next()
                    .ok_or_else(|| EngineError::Inference("the model returned no output".into()))?;
                scores_of(&out).map_err(|e| err(&e))?
            }
        };
        times.bind += t2 - t1;
        times.compute += t2.elapsed();
        times.fill += t1 - t0;
        if !flat.len().is_multiple_of(n) || flat.is_empty() {
            return Err(EngineError::Inference(format!(
                "the model returned {} values for a batch of {n}",
                flat.len()
            )));
        }
        Ok(flat
            .chunks(flat.len() / n)
            .take(items.len())
            .map(<[f32]>::to_vec)
            .collect())
    }
}
