//! The one interface between the batching front ([`super::SharedEngine`]) and what runs the
//! model: ONNX Runtime in this process ([`super::local`]) or another backend beside it.
//!
//! A backend opens its model (reporting a [`ModelInfo`]) and runs batches of clips; the front
//! gathers clips from every user, forms batches (at the sizes [`Backend::run_size`] asks for),
//! runs up to [`Backend::lanes`] of them at once (one batching thread per lane), and answers
//! each user with its clips' score rows.

use std::any::Any;
use std::time::Duration;

use crate::config::{InputType, ModelIo, ModelMetadata};
use crate::preprocess::{CentreSpan, Layout};

use super::{Batch, EngineError, Items};

/// What an opened model takes and gives: enough for [`crate::config::ClipConfig::resolve`].
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// The model as users name it in messages (a file path).
    pub name: String,
    /// Its input (element type, shape with -1 for dynamic dimensions) and output.
    pub io: ModelIo,
    /// The preprocessing contract (`clip.length`, `preprocess.*`, `output.kind`, labels...).
    pub metadata: ModelMetadata,
}

impl ModelInfo {
    /// The batch size the model fixes, if any (its input's first dimension when that is > 0).
    pub fn fixed_batch(&self) -> Option<usize> {
        self.io
            .input_shape
            .first()
            .and_then(|&b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
    }
}

/// Runs batches of clips through one opened model. Shared by every user of the model and called
/// from several threads at once (one per lane).
pub trait Backend: Any + Send + Sync {
    /// The model's input, output and metadata.
    fn model(&self) -> &ModelInfo;

    /// Where the model runs, for logs and benchmark tables (e.g. `cpu`, `cuda`).
    fn describe(&self) -> String;

    /// How many batches may run at once: the front runs one batching thread per lane, each
    /// calling [`Backend::run`] with its own lane number (`0..lanes()`), so that many batches
    /// can be in flight. At least 1.
    fn lanes(&self) -> usize;

    /// Run `items` (at most `shape[0]` clips, each of `shape[1..]` values of the model's input
    /// type) as one batch shaped `shape`, on `lane` (`None`: any lane, the first free one) and
    /// return each item's scores, one row per item in order. A backend may pad the batch up to
    /// `shape[0]` (the local one repeats the last clip); padding rows are not returned.
    fn run(
        &self,
        lane: Option<usize>,
        shape: [i64; 5],
        items: Items<'_>,
    ) -> Result<Vec<Vec<f32>>, EngineError>;

    /// The batch size to run `items` waiting clips at; the front runs them in chunks of that
    /// size (the last chunk possibly short). By default the model's fixed batch, else `items`.
    fn run_size(&self, items: usize) -> usize {
        self.model().fixed_batch().unwrap_or(items)
    }

    /// How many times each lane runs each batch size the front can form before the first clips
    /// (see [`super::SharedEngine::warm_up`]); 0 (the default): no warm-up.
    fn warm_up_runs(&self) -> usize {
        0
    }

    /// Whether this backend resamples clips sent as source spans itself ([`Backend::run_spans`]).
    fn resamples(&self) -> bool {
        false
    }

    /// Resample `items` (each a clip of `what.frames` uint8 RGB source spans, see [`SpanClips`])
    /// into the model's input items and run them as one batch shaped `shape`, as
    /// [`Backend::run`] does. By default: not supported (see [`Backend::resamples`]).
    fn run_spans(
        &self,
        _lane: Option<usize>,
        _shape: [i64; 5],
        _what: &SpanClips,
        _items: &[&[u8]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        Err(EngineError::Inference(format!(
            "the {} backend does not resample clips itself",
            self.describe()
        )))
    }

    /// A zeroed buffer of `len` values of `ty` for clips to be packed into, in memory this
    /// backend reads fastest (page-locked host memory under CUDA); None (the default): an
    /// ordinary vector will do.
    fn clip_buffer(&self, _ty: InputType, _len: usize) -> Option<Batch> {
        None
    }

    /// Where this backend's runs have spent their time so far (zeros when it does not measure).
    fn run_times(&self) -> RunTimes {
        RunTimes::default()
    }
}

/// Clips sent as the source pixels of their centre crops, for the backend to resample (see
/// [`Backend::run_spans`]): each clip is `frames` tightly packed RGB spans of `span.width ×
/// span.height` pixels, to become one `span.crop`² item of the model's input in `layout`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanClips {
    pub span: CentreSpan,
    pub frames: usize,
    pub layout: Layout,
}

impl SpanClips {
    /// Bytes of one clip's spans.
    pub fn clip_len(&self) -> usize {
        self.span.width as usize * self.span.height as usize * 3 * self.frames
    }
}

/// Where model runs spend their time (see [`Backend::run_times`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTimes {
    /// Copying clips into the model's input (the staging input, a request).
    pub fill: Duration,
    /// Handing the input over: the copy to the device under CUDA.
    pub bind: Duration,
    /// The model run and reading its output back.
    pub compute: Duration,
}

summable!(RunTimes {
    fill,
    bind,
    compute
});
