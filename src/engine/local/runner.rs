//! One lane of the local backend: its sessions (one per batch size under CUDA), its staging
//! inputs, and running one batch on them, with the fallback to unfused convolutions when cuDNN
//! refuses a fused one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use half::f16;
use ort::memory::{AllocationDevice, Allocator};
use ort::session::Session;
use ort::value::PrimitiveTensorElementType;

use super::cuda::{capture_hold, count_graph_run, is_fusion_failure, GraphRuns};
use super::cudart::CopyStream;
use super::host::pinned_memory;
use super::resample::Resampler;
use super::runtime::runtime;
use super::session::{plain_builder, SessionSource};
use super::staging::{staging_for, upload_block, Place, Staging};
use super::ProviderChoice;
use crate::config::ModelIo;
use crate::engine::{EngineError, RunTimes, SpanClips};
use crate::preprocess::Layout;

/// The element types ONNX Runtime is fed clips of.
pub(super) trait TensorElement:
    PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static
{
}

impl<T: PrimitiveTensorElementType + Copy + Send + Sync + std::fmt::Debug + 'static> TensorElement
    for T
{
}

/// What a batch is made of: packed model input items, or clips as source spans the lane
/// resamples into the input first. `block`: the items lie one after another in one page-locked
/// buffer the backend lent (a sheet, see `crate::engine::sheet`), with room for the whole batch,
/// padding rows included, so they go to the card as they are, in one DMA transfer.
#[derive(Clone, Copy)]
pub(super) enum Feed<'a, T> {
    Items {
        items: &'a [&'a [T]],
        block: bool,
    },
    Spans {
        what: &'a SpanClips,
        items: &'a [&'a [u8]],
        /// The resampling graph reads them where they lie (ONNX Runtime's one transfer), with
        /// no copy into a staging input.
        block: bool,
    },
}

impl<T> Feed<'_, T> {
    fn len(&self) -> usize {
        match self {
            Feed::Items { items, .. } => items.len(),
            Feed::Spans { items, .. } => items.len(),
        }
    }
}

/// The session and its staging buffers (one per input shape met), behind the engine's lock.
pub(super) struct Runner {
    /// The first session: all batch sizes on the CPU, batch size 1 under CUDA.
    session: Session,
    /// Under CUDA, a session for each other batch size, opened on first use: ONNX Runtime's CUDA
    /// convolutions re-plan whenever a session's input shape changes, which costs far more than
    /// the run itself when batch sizes alternate, so each session keeps one shape.
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
    /// The resampling graph's sessions, for clips sent as source spans.
    resampler: Resampler,
    /// Host inputs of the resampling graph (page-locked under CUDA when it can be), by shape.
    span_staging: HashMap<Vec<i64>, ort::value::DynTensor>,
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
            pinned_memory(s.device)
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
            resampler: Resampler::new(),
            span_staging: HashMap::new(),
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
        feed: Feed<'_, T>,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let _hold = self.source.as_ref().is_some_and(|s| s.graphs).then(|| {
            let batch = shape.first().copied().unwrap_or(1);
            capture_hold(count_graph_run(&mut self.graph_runs, batch))
        });
        match self.run_once(shape, io, feed) {
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
                self.run_once(shape, io, feed)
            }
            other => other,
        }
    }

    fn run_once<T: TensorElement>(
        &mut self,
        shape: &[i64],
        io: &ModelIo,
        feed: Feed<'_, T>,
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
        let count = feed.len();
        let fits = match feed {
            Feed::Items { items, .. } => items.iter().all(|item| item.len() == per),
            Feed::Spans { what, items, .. } => {
                items.iter().all(|item| item.len() == what.clip_len())
                    && shape[1..] == item_shape(what)[..]
            }
        };
        if count == 0 {
            return Err(EngineError::Inference("a batch without clips".into()));
        }
        if count > n || !fits {
            return Err(EngineError::Inference(format!(
                "{count} clips that do not fit an input of shape {shape:?}"
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
            resampler,
            span_staging,
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
        if let Feed::Spans { what, items, block } = feed {
            let (lent_view, lent_ref);
            let staged;
            let spans: &ort::value::DynTensor = match (block, place) {
                (true, Place::Cuda { device, .. }) => {
                    lent_view = lent_spans(device, what, items).map_err(|e| err(&e))?;
                    lent_ref = lent_view.upcast_ref();
                    &lent_ref
                }
                _ => {
                    staged =
                        span_input(span_staging, host_allocator.as_ref(), session, what, items)?;
                    staged
                }
            };
            let t1 = Instant::now();
            let builder = || -> Result<ort::session::builder::SessionBuilder, EngineError> {
                match source {
                    Some(s) => Ok(s.builder(ProviderChoice::Cuda, false)?.0),
                    None => plain_builder(&runtime()?).map_err(|e| err(&e)),
                }
            };
            resampler.run(builder, spans, what, count, input)?;
            if !matches!(place, Place::Cuda { graphs: true, .. }) {
                binding
                    .bind_input(io.input_name.as_str(), &*input)
                    .map_err(|e| err(&e))?;
            }
            times.fill += t1 - t0;
            return finish(session, binding, output, times, t1, n, count);
        }
        let Feed::Items { items, block } = feed else {
            return Err(EngineError::Inference("no clips".into()));
        };
        let last = items
            .last()
            .ok_or_else(|| EngineError::Inference("a batch without clips".into()))?;
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
                let stream = if block {
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
                    // From lent page-locked memory to the input on the card, as one block.
                    Some(stream) => {
                        if !graphs {
                            binding
                                .bind_input(io.input_name.as_str(), &*input)
                                .map_err(|e| err(&e))?;
                        }
                        // SAFETY: the caller (`LocalBackend::run_on`) checked that `n` items
                        // from the first lie in one lent buffer, not written while the batch
                        // runs.
                        unsafe { upload_block(input, stream, n * per, first_item(items)) }
                            .map_err(|e| err(&e))?;
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
        times.fill += t1 - t0;
        finish(session, binding, output, times, t1, n, items.len())
    }
}

/// The first item's start (the block a batch in one buffer starts at).
fn first_item<T>(items: &[&[T]]) -> *const T {
    items.first().map_or(std::ptr::null(), |i| i.as_ptr())
}

/// Run the bound batch of `n` (its input handed over since `t1`) and return the first `count`
/// items' scores.
fn finish(
    session: &mut Session,
    binding: &mut ort::session::IoBinding,
    output: &mut Option<ort::value::DynTensor>,
    times: &mut RunTimes,
    t1: Instant,
    n: usize,
    count: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let err = |e: &dyn std::fmt::Display| EngineError::Inference(e.to_string());
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
    if !flat.len().is_multiple_of(n) || flat.is_empty() {
        return Err(EngineError::Inference(format!(
            "the model returned {} values for a batch of {n}",
            flat.len()
        )));
    }
    Ok(flat
        .chunks(flat.len() / n)
        .take(count)
        .map(<[f32]>::to_vec)
        .collect())
}

/// The shape of one model input item that `what`'s clips resample into.
fn item_shape(what: &SpanClips) -> [i64; 4] {
    let (t, c) = (what.frames as i64, i64::from(what.span.crop));
    match what.layout {
        Layout::Nthwc => [t, c, c, 3],
        Layout::Ncthw => [3, t, c, c],
    }
}

/// The resampling graph's input shape for `clips` clips of `what`'s spans: `[clips × frames,
/// height, width, 3]`.
fn span_shape(what: &SpanClips, clips: usize) -> [i64; 4] {
    [
        (clips * what.frames) as i64,
        i64::from(what.span.height),
        i64::from(what.span.width),
        3,
    ]
}

/// `items` (clips of source spans one after another in lent page-locked memory) as the
/// resampling graph's input, in place.
fn lent_spans(
    device: i32,
    what: &SpanClips,
    items: &[&[u8]],
) -> ort::Result<ort::value::TensorRefMut<'static, u8>> {
    let first = first_item(items);
    let shape = ort::value::Shape::new(span_shape(what, items.len()));
    let info = pinned_memory(device)?;
    // SAFETY: the caller (`LocalBackend::run_spans`) checked that the items lie one after
    // another in one lent page-locked buffer, which outlives the run and is not written while
    // the batch runs (the view is only read).
    unsafe { ort::value::TensorRefMut::<u8>::from_raw(info, first.cast_mut().cast(), shape) }
}

/// Most span inputs kept (one per source size and clip count met).
const MAX_SPAN_STAGING: usize = 16;

/// The resampling graph's input for `items` (`[clips × frames, height, width, 3]` uint8), in
/// host memory (page-locked from `host_allocator` when there is one), the clips copied in.
fn span_input<'a>(
    staging: &'a mut HashMap<Vec<i64>, ort::value::DynTensor>,
    host_allocator: Option<&Allocator>,
    session: &Session,
    what: &SpanClips,
    items: &[&[u8]],
) -> Result<&'a ort::value::DynTensor, EngineError> {
    let err = |e: ort::Error| EngineError::Inference(e.to_string());
    let shape = span_shape(what, items.len()).to_vec();
    if !staging.contains_key(&shape) {
        if staging.len() >= MAX_SPAN_STAGING {
            staging.clear();
        }
        let tensor = ort::value::DynTensor::new(
            host_allocator.unwrap_or_else(|| session.allocator()),
            ort::value::TensorElementType::Uint8,
            shape.clone(),
        )
        .map_err(err)?;
        staging.insert(shape.clone(), tensor);
    }
    let tensor = staging
        .get_mut(&shape)
        .ok_or_else(|| EngineError::Inference("span input missing".into()))?;
    let (_, data) = tensor.try_extract_tensor_mut::<u8>().map_err(err)?;
    let last = items
        .last()
        .ok_or_else(|| EngineError::Inference("a batch without clips".into()))?;
    crate::engine::fill::fill(data, what.clip_len(), items, last);
    Ok(tensor)
}
