//! The engines open in this process, and the constructors elements get them from: every element
//! opening the same model on the same backend (same key) shares one engine, one model in memory
//! and one batcher for all its clips. The backends only open their model
//! ([`LocalBackend::open`], [`RemoteBackend::open`]); the front puts a batcher around it here.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use super::local::{LocalBackend, LocalSettings};
use super::remote::{RemoteBackend, RemoteSettings};
use super::{Backend, EngineError, SharedEngine};

type Entry = (Box<dyn Any + Send>, Weak<SharedEngine>);

static ENGINES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// What makes two local engines the same engine.
#[derive(PartialEq, Eq)]
struct LocalKey {
    path: PathBuf,
    settings: LocalSettings,
}

impl SharedEngine {
    /// The shared engine running the model file `path` in this process (opened now, or the one
    /// already open for it with the same settings: provider choice, device, CUDA memory limit,
    /// OpenVINO options), with the batching threads every element using it submits clips to. See
    /// [`LocalBackend::open`].
    pub fn local(path: &Path, settings: &LocalSettings) -> Result<Arc<SharedEngine>, EngineError> {
        let key = LocalKey {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            settings: settings.clone(),
        };
        SharedEngine::shared(key, || {
            let backend = LocalBackend::open(path, settings)?;
            Ok(Box::new(backend))
        })
    }

    /// The shared engine sending clips to the model `settings` name on its servers (opened now,
    /// or the one already open with the same settings). See [`RemoteBackend::open`].
    pub fn remote(settings: RemoteSettings) -> Result<Arc<SharedEngine>, EngineError> {
        SharedEngine::shared(settings.clone(), || {
            Ok(Box::new(RemoteBackend::open(settings)?))
        })
    }

    /// The engine open under `key` (a backend's own key type: keys of different types never
    /// match), else one around the backend `open` returns. Opened under the registry's lock, so
    /// users starting at once get one engine; it closes when its last user drops it.
    pub fn shared<K: Any + Eq + Send>(
        key: K,
        open: impl FnOnce() -> Result<Box<dyn Backend>, EngineError>,
    ) -> Result<Arc<SharedEngine>, EngineError> {
        let mut engines = ENGINES
            .lock()
            .map_err(|_| EngineError::Inference("engine registry lock poisoned".into()))?;
        engines.retain(|(_, weak)| weak.strong_count() > 0);
        let open_one = engines
            .iter()
            .filter(|(k, _)| k.downcast_ref::<K>() == Some(&key))
            .find_map(|(_, weak)| weak.upgrade());
        if let Some(engine) = open_one {
            return Ok(engine);
        }
        let engine = Arc::new(SharedEngine::new(open()?)?);
        engines.push((Box::new(key), Arc::downgrade(&engine)));
        Ok(engine)
    }
}
