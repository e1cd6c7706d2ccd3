//! Classifying on inference servers: the `--server*` options as the element's `server*`
//! properties.

use std::path::PathBuf;

use anyhow::{bail, Context};
use gst::prelude::*;

use crate::args::Args;

/// The element's `server*` properties, when classifying on inference servers.
pub struct Remote {
    server: String,
    pub model: String,
    timeout_ms: u32,
    requests: u32,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    token: Option<String>,
}

impl Remote {
    /// The servers of `--server`, `None` without it. The model's name on them is
    /// `--server-model`, else the stem of `--model`; the token is read from its file here.
    pub fn from_args(args: &Args) -> anyhow::Result<Option<Remote>> {
        let Some(server) = args.server.clone() else {
            return Ok(None);
        };
        let model = match (&args.server_model, &args.model) {
            (Some(name), _) => name.clone(),
            (None, Some(file)) => file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (None, None) => {
                bail!("--server needs --server-model NAME (the model's name on the servers)")
            }
        };
        let token = match &args.server_token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("--server-token-file {}", file.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Some(Remote {
            server,
            model,
            timeout_ms: args.server_timeout,
            requests: args.server_requests,
            ca: args.server_ca.clone(),
            cert: args.server_cert.clone(),
            key: args.server_key.clone(),
            token,
        }))
    }

    pub fn apply(&self, element: &gst::Element) {
        element.set_property("server", &self.server);
        element.set_property("server-model", &self.model);
        element.set_property("server-timeout", self.timeout_ms);
        element.set_property("server-requests", self.requests);
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        element.set_property("server-ca", path(&self.ca));
        element.set_property("server-cert", path(&self.cert));
        element.set_property("server-key", path(&self.key));
        element.set_property("server-token", self.token.as_deref());
    }
}
