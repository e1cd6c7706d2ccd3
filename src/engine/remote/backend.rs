//! The remote model behind the engine's [`Backend`] trait: the batching front forms batches of
//! every element's clips and each of its `server-requests` lanes sends one at a time, so that
//! many batches are in flight for the servers' own batchers to merge.

use half::f16;

use super::model::{RemoteError, RemoteModel};
use super::settings::RemoteSettings;
use crate::engine::{Backend, EngineError, Items, ModelInfo};

/// A model served by KServe v2 gRPC servers.
pub struct RemoteBackend {
    pub remote: RemoteModel,
    model: ModelInfo,
}

impl RemoteBackend {
    /// Connect and describe the model (see [`RemoteModel::open`]); blocks up to
    /// `server-timeout`.
    pub fn open(settings: RemoteSettings) -> Result<RemoteBackend, RemoteError> {
        let remote = RemoteModel::open(settings)?;
        let model = ModelInfo {
            name: format!(
                "{} on {}",
                remote.settings.model,
                remote.settings.servers_shown()
            ),
            io: remote.io.clone(),
            metadata: remote.metadata.clone(),
        };
        Ok(RemoteBackend { remote, model })
    }
}

impl Backend for RemoteBackend {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    fn describe(&self) -> String {
        format!(
            "server {} (model {})",
            self.remote.settings.servers_shown(),
            self.remote.settings.model
        )
    }

    fn lanes(&self) -> usize {
        self.remote.settings.requests.max(1)
    }

    fn run(
        &self,
        _lane: Option<usize>,
        shape: [i64; 5],
        items: Items<'_>,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let result = match items {
            Items::F32(items) => self.remote.infer::<f32>(&shape, items),
            Items::F16(items) => self.remote.infer::<f16>(&shape, items),
            Items::U8(items) => self.remote.infer::<u8>(&shape, items),
        };
        result.map_err(EngineError::from)
    }

    /// Exactly the clips waiting (no padding over the network), within the server's batch
    /// limit; a fixed batch is sent full.
    fn run_size(&self, items: usize) -> usize {
        match (self.remote.fixed_batch(), self.remote.max_batch) {
            (Some(b), _) => b,
            (None, 0) => items.max(1),
            (None, m) => items.clamp(1, m),
        }
    }
}
