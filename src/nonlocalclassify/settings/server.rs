//! The remote backend (docs/design.md, "Remote inference"): KServe v2 inference servers that run
//! the model instead of this process, used when `server` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use super::{Property, Range};
use crate::engine::remote::{RemoteSettings, Secret};

/// Milliseconds.
pub const SERVER_TIMEOUT: Range<u32> = Range::new(1, 3_600_000, 10_000);
/// Batches in flight.
pub const SERVER_REQUESTS: Range<u32> = Range::new(1, 64, 4);

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub server: Option<String>,
    pub server_model: Option<String>,
    pub timeout_ms: u32,
    pub requests: u32,
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Prints as `<redacted>`.
    pub token: Option<Secret>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            server: None,
            server_model: None,
            timeout_ms: SERVER_TIMEOUT.default,
            requests: SERVER_REQUESTS.default,
            ca: None,
            cert: None,
            key: None,
            token: None,
        }
    }
}

impl ServerSettings {
    pub fn properties() -> Vec<Property<Self>> {
        vec![
            Property::string(
                "server",
                "Server",
                "KServe v2 gRPC inference servers (Triton) to run the model on instead of this process: host:port, http://host:port or https://host:port (TLS), several separated by commas (clips are spread over the ready ones); unset = ONNX Runtime in-process",
                |s| &mut s.server,
            ),
            Property::string(
                "server-model",
                "Server model",
                "Name of the model on the servers (default: the stem of the 'model' file name, as export_model.py --triton-repo names it)",
                |s| &mut s.server_model,
            ),
            Property::uint(
                "server-timeout",
                "Server timeout",
                "Milliseconds a batch may wait for the servers' answer, retries and reconnections included, and the start for a ready server; then live streams drop the clips (counted), others fail",
                SERVER_TIMEOUT,
                |s| &mut s.timeout_ms,
            ),
            Property::uint(
                "server-requests",
                "Server requests",
                "Batches in flight to the servers at once (their batchers merge requests of every client)",
                SERVER_REQUESTS,
                |s| &mut s.requests,
            ),
            Property::string(
                "server-ca",
                "Server CA",
                "PEM file of the CA that signed the servers' TLS certificates (turns TLS on; the certificates are checked against it)",
                |s| &mut s.ca,
            ),
            Property::string(
                "server-cert",
                "Server client certificate",
                "PEM file of the client certificate sent to the servers (mutual TLS; with server-key)",
                |s| &mut s.cert,
            ),
            Property::string(
                "server-key",
                "Server client key",
                "PEM file of the private key of server-cert",
                |s| &mut s.key,
            ),
            Property::custom(
                glib::ParamSpecString::builder("server-token")
                    .nick("Server token")
                    .blurb("Bearer token sent to the servers (authorization header, for servers behind an authenticating proxy); write-only, never logged")
                    .write_only()
                    .mutable_ready()
                    .build(),
                |s: &mut Self, v| {
                    s.token = v
                        .get::<Option<String>>()
                        .unwrap_or_default()
                        .filter(|t| !t.is_empty())
                        .map(Secret::new)
                },
                // Never read back: the declaration is write-only.
                |_| None::<String>.to_value(),
            ),
        ]
    }

    /// The remote backend's settings when `server` is set (the model name on the server:
    /// `server-model`, else the stem of `model`, as `export_model.py --triton-repo` names its
    /// entry).
    pub fn remote(&self, model: Option<&str>) -> Option<Result<RemoteSettings, String>> {
        let servers = self.server.as_deref().filter(|s| !s.trim().is_empty())?;
        let name = self
            .server_model
            .clone()
            .filter(|m| !m.trim().is_empty())
            .or_else(|| {
                let stem = Path::new(model?).file_stem()?;
                Some(stem.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let path = |p: &Option<String>| p.as_ref().filter(|p| !p.is_empty()).map(PathBuf::from);
        Some(
            RemoteSettings::new(
                servers,
                &name,
                Duration::from_millis(u64::from(self.timeout_ms.max(1))),
                self.requests.max(1) as usize,
                path(&self.ca),
                path(&self.cert),
                path(&self.key),
                self.token.as_ref().map(Secret::expose),
            )
            .map_err(|e| e.to_string()),
        )
    }
}
