//! One server's gRPC channel and the KServe v2 calls the remote engine makes on it.
//!
//! The channel connects lazily and reconnects by itself after a failure (tonic); message size
//! limits are raised for I3D batches (38.5 MB a batch of 8 clips). Every call carries the bearer
//! token, when one is set, as a sensitive header, and a deadline.

use std::collections::HashMap;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::proto;
use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::settings::{Address, RemoteSettings};

/// Largest message sent or received: 1 GiB (a batch of 8 I3D float32 clips is 38.5 MB; servers
/// set their own limit, Triton's is 2 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;

/// Why a call failed, and whether another try (later, or on another server) may succeed.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The server is unreachable, timed out or is not ready: try again or elsewhere.
    pub retry: bool,
    pub message: String,
}

impl CallError {
    /// Whether the TLS handshake itself failed: the server's certificate was refused, or the
    /// server refused ours (or its absence). A setting to fix, not a server still starting.
    pub fn is_tls_refusal(&self) -> bool {
        const MARKERS: [&str; 7] = [
            "invalid peer certificate",
            "fatal alert",
            "HandshakeFailure",
            "handshake",
            "UnknownIssuer",
            "CertificateRequired",
            "BadCertificate",
        ];
        MARKERS.iter().any(|m| self.message.contains(m))
    }
}

/// A server's counts for one model: requests answered, clips (batch rows) in them, and model
/// runs; fewer runs than requests means the server's batcher merged requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub requests: u64,
    pub inferences: u64,
    pub executions: u64,
}

summable!(ServerStats {
    requests,
    inferences,
    executions
});

/// A client of one server address.
#[derive(Clone)]
pub struct Client {
    pub address: Address,
    inner: GrpcInferenceServiceClient<Channel>,
    token: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} '{}' cannot be read: {e}", path.display()))
}

/// The text of a tonic error and its sources (the transport's reason is in the sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

impl Client {
    /// A lazily connecting client of `address` (must be called inside the engine's runtime).
    pub fn new(address: &Address, settings: &RemoteSettings) -> Result<Client, String> {
        let mut endpoint = Endpoint::from_shared(address.uri.clone())
            .map_err(|e| format!("server '{}': {e}", address.shown))?
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .timeout(settings.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if address.tls {
            let mut tls = ClientTlsConfig::new();
            match &settings.ca {
                Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read(ca, "server-ca")?)),
                None => {
                    return Err(format!(
                        "server '{}' is reached over TLS but server-ca is not set; set it to the PEM file of the CA that signed the server's certificate",
                        address.shown
                    ))
                }
            }
            if let (Some(cert), Some(key)) = (&settings.cert, &settings.key) {
                tls = tls.identity(Identity::from_pem(
                    read(cert, "server-cert")?,
                    read(key, "server-key")?,
                ));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("server '{}': TLS: {}", address.shown, chain(&e)))?;
        }
        let channel = endpoint.connect_lazy();
        let token = match &settings.token {
            Some(t) => {
                let mut value = MetadataValue::try_from(format!("Bearer {}", t.expose()))
                    .map_err(|_| {
                        "server-token holds characters a header cannot carry; use the token as issued (printable ASCII)".to_string()
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Client {
            address: address.clone(),
            inner: GrpcInferenceServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            token,
            timeout: settings.timeout,
        })
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout.min(self.timeout));
        if let Some(token) = &self.token {
            // The standard header (authenticating proxies, KServe behind Istio), and the same
            // header under the prefix Triton's own --grpc-restricted-protocol check reads.
            let headers = request.metadata_mut();
            headers.insert("authorization", token.clone());
            headers.insert("triton-grpc-protocol-authorization", token.clone());
        }
        request
    }

    /// A call's answer, or why it failed (see [`Client::failure`]).
    fn answer<T>(&self, answer: Result<tonic::Response<T>, tonic::Status>) -> Result<T, CallError> {
        answer
            .map(tonic::Response::into_inner)
            .map_err(|s| self.failure(s))
    }

    fn failure(&self, status: tonic::Status) -> CallError {
        use tonic::Code;
        // A connection lost during a call comes back as Unknown with the transport's error.
        let transport = std::error::Error::source(&status).is_some()
            || status.message().contains("transport error");
        let retry = match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted => true,
            Code::Unknown => transport,
            _ => false,
        };
        let mut message = match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => format!(
                "the server refused the request ({}); check server-token",
                status.message()
            ),
            Code::Unavailable if status.message().contains("restricted") => format!(
                "the server refused the request ({}); check server-token",
                status.message()
            ),
            _ => {
                let detail = std::error::Error::source(&status)
                    .map(|s| format!(" ({})", chain(s)))
                    .unwrap_or_default();
                format!("{:?}: {}{detail}", status.code(), status.message())
            }
        };
        if message.contains("restricted") {
            // Triton's refusal of a missing or wrong token: retrying does not help.
            return CallError {
                retry: false,
                message,
            };
        }
        if message.is_empty() {
            message = "no answer".into();
        }
        CallError { retry, message }
    }

    /// Whether the server says it is ready.
    pub async fn server_ready(&self, timeout: Duration) -> Result<bool, CallError> {
        let mut c = self.inner.clone();
        let answer = c
            .server_ready(self.request(proto::ServerReadyRequest {}, timeout))
            .await;
        Ok(self.answer(answer)?.ready)
    }

    /// Whether `model` (version "" = the server's choice) is ready.
    pub async fn model_ready(
        &self,
        model: &str,
        version: &str,
        timeout: Duration,
    ) -> Result<bool, CallError> {
        let mut c = self.inner.clone();
        let req = proto::ModelReadyRequest {
            name: model.into(),
            version: version.into(),
        };
        let answer = c.model_ready(self.request(req, timeout)).await;
        Ok(self.answer(answer)?.ready)
    }

    pub async fn model_metadata(
        &self,
        model: &str,
        version: &str,
    ) -> Result<proto::ModelMetadataResponse, CallError> {
        let mut c = self.inner.clone();
        let req = proto::ModelMetadataRequest {
            name: model.into(),
            version: version.into(),
        };
        let answer = c.model_metadata(self.request(req, self.timeout)).await;
        self.answer(answer)
    }

    /// The model configuration's string parameters and its max batch size (0 = the server does
    /// not batch).
    pub async fn model_config(
        &self,
        model: &str,
        version: &str,
    ) -> Result<(HashMap<String, String>, i32), CallError> {
        let mut c = self.inner.clone();
        let req = proto::ModelConfigRequest {
            name: model.into(),
            version: version.into(),
        };
        let answer = c.model_config(self.request(req, self.timeout)).await;
        let config = self.answer(answer)?.config.unwrap_or_default();
        let params = config
            .parameters
            .into_iter()
            .map(|(k, v)| (k, v.string_value))
            .collect();
        Ok((params, config.max_batch_size))
    }

    /// What the server counted for `model` so far.
    pub async fn statistics(&self, model: &str) -> Result<ServerStats, CallError> {
        let mut c = self.inner.clone();
        let req = proto::ModelStatisticsRequest {
            name: model.into(),
            version: String::new(),
        };
        let answer = c.model_statistics(self.request(req, self.timeout)).await;
        let stats = self.answer(answer)?;
        Ok(stats
            .model_stats
            .iter()
            .map(|s| ServerStats {
                requests: s
                    .inference_stats
                    .as_ref()
                    .and_then(|i| i.success.as_ref())
                    .map_or(0, |d| d.count),
                inferences: s.inference_count,
                executions: s.execution_count,
            })
            .sum())
    }

    /// Run one inference request; returns the first output's datatype and raw contents.
    pub async fn infer(
        &self,
        request: proto::ModelInferRequest,
        timeout: Duration,
    ) -> Result<(String, Vec<i64>, bytes::Bytes), CallError> {
        let mut c = self.inner.clone();
        let answer = c.model_infer(self.request(request, timeout)).await;
        let response = self.answer(answer)?;
        let output = response
            .outputs
            .into_iter()
            .next()
            .ok_or_else(|| CallError {
                retry: false,
                message: "the server returned no output".into(),
            })?;
        let raw = response
            .raw_output_contents
            .into_iter()
            .next()
            .ok_or_else(|| CallError {
                retry: false,
                message: "the server returned no raw output contents".into(),
            })?;
        Ok((output.datatype, output.shape, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::CallError;

    fn refused(message: &str) -> bool {
        CallError {
            retry: true,
            message: message.into(),
        }
        .is_tls_refusal()
    }

    #[test]
    fn tls_refusals_are_told_apart_from_servers_not_up_yet() {
        assert!(refused(
            "Unavailable: error trying to connect (invalid peer certificate: UnknownIssuer)"
        ));
        assert!(refused(
            "Unknown: transport error (received fatal alert: CertificateRequired)"
        ));
        assert!(!refused(
            "Unavailable: tcp connect error (Connection refused (os error 111))"
        ));
        assert!(!refused("the server is not ready"));
        assert!(!refused("DeadlineExceeded: Timeout expired"));
    }
}
