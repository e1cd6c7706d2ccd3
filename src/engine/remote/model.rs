//! A model served by KServe v2 gRPC servers: opened once (readiness, metadata, configuration
//! parameters), then run batch by batch from the engine's batching threads.
//!
//! The engine owns one Tokio runtime (one network thread) per remote model; the batching threads
//! block on it, never a streaming thread. A batch is sent to the next usable server; a server
//! that fails (unreachable, timed out, not ready) is skipped while it backs off (0.1 s doubling
//! to 2 s) and the batch goes to another, or waits for one, until `server-timeout` has passed
//! since the batch was first sent: then it fails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::client::{CallError, Client, ServerStats};
use super::pool::{Pick, Pool};
use super::proto;
use super::settings::{RemoteSettings, SettingsError};
use super::tensor::{self, WireElement};
use crate::config::{ModelIo, ModelMetadata};

/// How a [`RemoteError::Lost`] message starts (the batching front hands errors on as text).
const LOST: &str = "no answer from the servers";

/// Whether an inference error message says the servers were lost (no answer within the
/// bound), as opposed to a model or request fault.
pub fn is_lost(message: &str) -> bool {
    message.starts_with(LOST)
}

/// A remote engine failure, for users: names the server(s) and the model.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("cannot start the network thread of the remote engine: {0}")]
    Runtime(String),
    #[error("{0}")]
    Tls(String),
    #[error(
        "no server of '{servers}' had model '{model}' ready within server-timeout ({ms} ms): {reason}; start the server or check the server and server-model properties"
    )]
    NotReady {
        servers: String,
        model: String,
        ms: u128,
        reason: String,
    },
    #[error("server '{server}', model '{model}': {reason}")]
    Model {
        server: String,
        model: String,
        reason: String,
    },
    #[error(
        "no answer from the servers '{servers}' for model '{model}' within server-timeout ({ms} ms): {reason}"
    )]
    Lost {
        servers: String,
        model: String,
        ms: u128,
        reason: String,
    },
}

/// An opened remote model.
pub struct RemoteModel {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
    pub settings: RemoteSettings,
    pub io: ModelIo,
    pub metadata: ModelMetadata,
    /// The server's batch limit (0 = it does not batch; the graph's batch then is fixed).
    pub max_batch: usize,
    /// The server the model was described by.
    pub described_by: String,
}

/// A duration's milliseconds (for messages).
fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl RemoteModel {
    /// Connect, wait up to `server-timeout` for a server with the model ready, and read the
    /// model's metadata and configuration parameters from it.
    pub fn open(settings: RemoteSettings) -> Result<RemoteModel, RemoteError> {
        let scrub = |text: String| match &settings.token {
            Some(t) => t.scrub(&text),
            None => text,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nonlocal-grpc")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        let clients = {
            let _inside = runtime.enter();
            settings
                .servers
                .iter()
                .map(|a| Client::new(a, &settings))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| RemoteError::Tls(scrub(e)))?
        };
        let pool = Pool::new(clients);
        let model = settings.model.clone();
        let started = Instant::now();
        let deadline = started + settings.timeout;
        // The first server with the model ready describes it.
        let found = loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(RemoteError::NotReady {
                    servers: settings.servers_shown(),
                    model,
                    ms: ms(settings.timeout),
                    reason: scrub(pool.last_errors()),
                });
            }
            let server = match pool.pick(now) {
                Pick::Server(s) => s,
                Pick::WaitUntil(at) => {
                    std::thread::sleep(at.min(deadline).saturating_duration_since(now));
                    continue;
                }
            };
            let left = deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            let client = &server.client;
            let checked = runtime.block_on(async {
                if !client.server_ready(left).await? {
                    return Err(CallError {
                        retry: true,
                        message: "the server is not ready".into(),
                    });
                }
                if !client.model_ready(&model, &settings.version, left).await? {
                    // A ready server (all its models loaded) without this one: no use waiting.
                    return Err(CallError {
                        retry: false,
                        message: "the server has no such model ready; check server-model".into(),
                    });
                }
                let meta = client.model_metadata(&model, &settings.version).await?;
                let config = client.model_config(&model, &settings.version).await?;
                Ok((meta, config))
            });
            match checked {
                Ok(found) => {
                    pool.succeeded(server);
                    break (server.client.address.shown.clone(), found);
                }
                // A refused TLS handshake at start is a setting to fix: said at once, not
                // after server-timeout.
                Err(e) if e.is_tls_refusal() => {
                    return Err(RemoteError::Model {
                        server: server.client.address.shown.clone(),
                        model,
                        reason: scrub(format!(
                            "the TLS handshake failed ({}); check server-ca, server-cert and \
                             server-key",
                            e.message
                        )),
                    })
                }
                Err(e) if e.retry => pool.failed(server, Instant::now(), &e.message),
                Err(e) => {
                    return Err(RemoteError::Model {
                        server: server.client.address.shown.clone(),
                        model,
                        reason: scrub(e.message),
                    })
                }
            }
        };
        let (server, (meta, (params, max_batch))) = found;
        let model_err = |reason: String| RemoteError::Model {
            server: server.clone(),
            model: model.clone(),
            reason,
        };
        let io = tensor::model_io(&meta.inputs, &meta.outputs).map_err(model_err)?;
        let metadata = metadata_from(&params).map_err(|e| model_err(e.to_string()))?;
        Ok(RemoteModel {
            runtime,
            pool,
            io,
            metadata,
            max_batch: usize::try_from(max_batch).unwrap_or(0),
            described_by: server.clone(),
            settings,
        })
    }

    /// The batch size the served graph fixes, if any (the server does not batch it).
    pub fn fixed_batch(&self) -> Option<usize> {
        (self.max_batch == 0)
            .then(|| self.io.input_shape.first().copied())
            .flatten()
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b > 0)
    }

    /// Classify `items` (each one clip item shaped `item_shape`, batch dimension ignored) on the
    /// servers; returns each item's scores. Blocks the calling (batching) thread up to
    /// `server-timeout`.
    pub fn infer<T: WireElement>(
        &self,
        item_shape: &[i64],
        items: &[&[T]],
    ) -> Result<Vec<Vec<f32>>, RemoteError> {
        // A fixed batch is padded with the last item; a server limit splits the batch.
        let step = match (self.fixed_batch(), self.max_batch) {
            (Some(b), _) => b,
            (None, 0) => items.len().max(1),
            (None, m) => m,
        };
        let mut scores = Vec::with_capacity(items.len());
        for chunk in items.chunks(step.max(1)) {
            let mut padded: Vec<&[T]> = chunk.to_vec();
            if self.fixed_batch().is_some() {
                while padded.len() < step {
                    padded.extend(chunk.last().copied());
                }
            }
            let got = self.infer_once(item_shape, &padded)?;
            scores.extend(got.into_iter().take(chunk.len()));
        }
        Ok(scores)
    }

    fn infer_once<T: WireElement>(
        &self,
        item_shape: &[i64],
        items: &[&[T]],
    ) -> Result<Vec<Vec<f32>>, RemoteError> {
        let scrub = |text: String| match &self.settings.token {
            Some(t) => t.scrub(&text),
            None => text,
        };
        let n = items.len();
        let mut shape = item_shape.to_vec();
        match shape.first_mut() {
            Some(b) => *b = n as i64,
            None => shape.push(n as i64),
        }
        let request = proto::ModelInferRequest {
            model_name: self.settings.model.clone(),
            model_version: self.settings.version.clone(),
            inputs: vec![proto::model_infer_request::InferInputTensor {
                name: self.io.input_name.clone(),
                datatype: T::DATATYPE.into(),
                shape,
                ..Default::default()
            }],
            outputs: vec![proto::model_infer_request::InferRequestedOutputTensor {
                name: self.io.output_name.clone(),
                ..Default::default()
            }],
            raw_input_contents: vec![tensor::encode(items).into()],
            ..Default::default()
        };
        let deadline = Instant::now() + self.settings.timeout;
        let lost = |pool: &Pool| RemoteError::Lost {
            servers: self.settings.servers_shown(),
            model: self.settings.model.clone(),
            ms: ms(self.settings.timeout),
            reason: scrub(pool.last_errors()),
        };
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(lost(&self.pool));
            }
            let server = match self.pool.pick(now) {
                Pick::Server(s) => s,
                Pick::WaitUntil(at) => {
                    std::thread::sleep(at.min(deadline).saturating_duration_since(now));
                    continue;
                }
            };
            let left = deadline.saturating_duration_since(now);
            let result = self
                .runtime
                .block_on(server.client.infer(request.clone(), left));
            match result {
                Ok((datatype, _shape, raw)) => {
                    self.pool.succeeded(server);
                    let flat = tensor::decode_scores(&datatype, &raw).map_err(|reason| {
                        RemoteError::Model {
                            server: server.client.address.shown.clone(),
                            model: self.settings.model.clone(),
                            reason,
                        }
                    })?;
                    if flat.is_empty() || !flat.len().is_multiple_of(n) {
                        return Err(RemoteError::Model {
                            server: server.client.address.shown.clone(),
                            model: self.settings.model.clone(),
                            reason: format!(
                                "the server returned {} scores for a batch of {n}",
                                flat.len()
                            ),
                        });
                    }
                    return Ok(flat.chunks(flat.len() / n).map(<[f32]>::to_vec).collect());
                }
                Err(e) if e.retry => self.pool.failed(server, Instant::now(), &e.message),
                Err(e) => {
                    return Err(RemoteError::Model {
                        server: server.client.address.shown.clone(),
                        model: self.settings.model.clone(),
                        reason: scrub(e.message),
                    })
                }
            }
        }
    }

    /// What the servers counted for this model so far, summed over the servers that answer.
    pub fn server_statistics(&self) -> ServerStats {
        self.pool
            .servers
            .iter()
            .filter_map(|s| {
                self.runtime
                    .block_on(s.client.statistics(&self.settings.model))
                    .ok()
            })
            .sum()
    }

    /// The servers usable now (not backing off after a failure).
    pub fn usable_servers(&self) -> Vec<String> {
        let now = Instant::now();
        self.pool
            .servers
            .iter()
            .filter(|s| self.pool.usable(s, now))
            .map(|s| s.client.address.shown.clone())
            .collect()
    }
}

/// The model configuration's parameters read as the element's model metadata (same keys).
pub fn metadata_from(
    params: &HashMap<String, String>,
) -> Result<ModelMetadata, crate::config::ConfigError> {
    ModelMetadata::parse(|key| params.get(key).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputKind;

    #[test]
    fn configuration_parameters_are_the_metadata_contract() {
        let params: HashMap<String, String> = [
            ("clip.length", "4"),
            ("clip.frame_stride", "2"),
            ("output.kind", "logits"),
            ("labels", "a\nb"),
            ("unrelated", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let meta = metadata_from(&params).unwrap();
        assert_eq!(meta.clip_length, Some(4));
        assert_eq!(meta.frame_stride, Some(2));
        assert_eq!(meta.output_kind, Some(OutputKind::Logits));
        assert_eq!(meta.labels.as_deref(), Some("a\nb"));
        assert_eq!(meta.crop_size, None);
        let bad: HashMap<String, String> = [("clip.length".to_string(), "-3".to_string())].into();
        assert!(metadata_from(&bad)
            .unwrap_err()
            .to_string()
            .contains("clip.length"));
    }
}
