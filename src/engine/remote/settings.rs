//! What a remote engine is opened with: server addresses, model, time bound, TLS files, token.

use std::path::PathBuf;
use std::time::Duration;

/// Default bound on one batch's wait for an answer (docs/design.md, `server-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default number of batches in flight to the servers at once (`server-requests`).
pub const DEFAULT_REQUESTS: usize = 4;

/// A bearer token: never printed (its `Debug` and `Display` say `<redacted>`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: impl Into<String>) -> Secret {
        Secret(token.into())
    }

    /// The token itself, for the request header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the token replaced by `<redacted>` (for messages that
    /// quote what a server or library said).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.0, "<redacted>")
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One server address: `host:port`, `http://host:port` or `https://host:port` (TLS).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// As the user wrote it (for messages).
    pub shown: String,
    /// The URI the channel connects to.
    pub uri: String,
    pub tls: bool,
}

/// Everything a remote engine is opened with; engines with equal settings are shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RemoteSettings {
    pub servers: Vec<Address>,
    pub model: String,
    /// Model version on the server ("" = the server's choice).
    pub version: String,
    /// Bound on one batch's wait for an answer (retries and reconnects included), and on the
    /// wait for a ready server at start.
    pub timeout: Duration,
    /// Batches in flight at once.
    pub requests: usize,
    /// PEM file of the CA that signed the servers' certificates (turns TLS on).
    pub ca: Option<PathBuf>,
    /// PEM files of a client certificate and its key (mutual TLS).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub token: Option<Secret>,
}

/// A setting that cannot work, with what to do about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("server: no address given; set it to host:port (several separated by commas)")]
    NoServer,
    #[error(
        "server: '{0}' is not an address; write host:port, http://host:port or https://host:port"
    )]
    BadAddress(String),
    #[error("server-model: no model name given; set it to the model's name on the server")]
    NoModel,
    #[error("server-cert and server-key go together: set both (a client certificate and its key) or neither")]
    HalfIdentity,
    #[error("server-timeout must be at least 1 ms")]
    ZeroTimeout,
}

/// Parse a comma-separated address list (blanks around commas ignored).
pub fn parse_servers(list: &str) -> Result<Vec<Address>, SettingsError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (tls, rest) = if let Some(rest) = item.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = item.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = item.strip_prefix("grpc://") {
            (false, rest)
        } else {
            (false, item)
        };
        let rest = rest.trim_end_matches('/');
        let bad = || SettingsError::BadAddress(item.to_string());
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host_ok = !host.is_empty()
            && !host.contains('/')
            && !host.contains(char::is_whitespace)
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad());
        }
        out.push(Address {
            shown: item.to_string(),
            uri: format!("{}://{host}:{port}", if tls { "https" } else { "http" }),
            tls,
        });
    }
    if out.is_empty() {
        return Err(SettingsError::NoServer);
    }
    Ok(out)
}

impl RemoteSettings {
    /// Settings from the element's property values (`token` "" = none).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        servers: &str,
        model: &str,
        timeout: Duration,
        requests: usize,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        token: Option<&str>,
    ) -> Result<RemoteSettings, SettingsError> {
        let mut servers = parse_servers(servers)?;
        let model = model.trim();
        if model.is_empty() {
            return Err(SettingsError::NoModel);
        }
        if cert.is_some() != key.is_some() {
            return Err(SettingsError::HalfIdentity);
        }
        if timeout.is_zero() {
            return Err(SettingsError::ZeroTimeout);
        }
        // A CA file or a client certificate means TLS on every address.
        if ca.is_some() || cert.is_some() {
            for a in &mut servers {
                if !a.tls {
                    a.tls = true;
                    a.uri = a.uri.replacen("http://", "https://", 1);
                }
            }
        }
        Ok(RemoteSettings {
            servers,
            model: model.to_string(),
            version: String::new(),
            timeout,
            requests: requests.max(1),
            ca,
            cert,
            key,
            token: token.filter(|t| !t.is_empty()).map(Secret::new),
        })
    }

    /// The addresses as the user wrote them, comma-separated (for messages).
    pub fn servers_shown(&self) -> String {
        self.servers
            .iter()
            .map(|a| a.shown.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        let got =
            parse_servers(" a:1, http://b.example:8001 ,https://[::1]:9/,,127.0.0.1:8001").unwrap();
        let uris: Vec<_> = got.iter().map(|a| (a.uri.as_str(), a.tls)).collect();
        assert_eq!(
            uris,
            [
                ("http://a:1", false),
                ("http://b.example:8001", false),
                ("https://[::1]:9", true),
                ("http://127.0.0.1:8001", false)
            ]
        );
        assert_eq!(got[1].shown, "http://b.example:8001");
        for bad in [
            "a",
            "a:",
            ":1",
            "a:0",
            "a:99999",
            "a b:1",
            "::1:5",
            "http://x/y:1",
        ] {
            assert_eq!(
                parse_servers(bad),
                Err(SettingsError::BadAddress(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(parse_servers(" , "), Err(SettingsError::NoServer));
    }

    #[test]
    fn settings_are_checked_and_a_ca_turns_tls_on() {
        let t = Duration::from_secs(1);
        let s = RemoteSettings::new(
            "h:1,https://g:2",
            "m",
            t,
            0,
            Some("ca.pem".into()),
            None,
            None,
            Some(""),
        )
        .unwrap();
        assert!(s.servers.iter().all(|a| a.tls));
        assert_eq!(s.servers[0].uri, "https://h:1");
        assert_eq!(s.requests, 1);
        assert_eq!(s.token, None);
        assert_eq!(s.servers_shown(), "h:1,https://g:2");
        assert_eq!(
            RemoteSettings::new("h:1", " ", t, 1, None, None, None, None),
            Err(SettingsError::NoModel)
        );
        assert_eq!(
            RemoteSettings::new("h:1", "m", t, 1, None, Some("c".into()), None, None),
            Err(SettingsError::HalfIdentity)
        );
        assert_eq!(
            RemoteSettings::new("h:1", "m", Duration::ZERO, 1, None, None, None, None),
            Err(SettingsError::ZeroTimeout)
        );
    }

    #[test]
    fn the_token_never_prints() {
        let s = RemoteSettings::new(
            "h:1",
            "m",
            DEFAULT_TIMEOUT,
            1,
            None,
            None,
            None,
            Some("s3cr3t"),
        )
        .unwrap();
        let shown = format!("{s:?} {}", s.token.as_ref().unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let token = s.token.unwrap();
        assert_eq!(token.expose(), "s3cr3t");
        assert_eq!(
            token.scrub("bad header Bearer s3cr3t!"),
            "bad header Bearer <redacted>!"
        );
    }
}
