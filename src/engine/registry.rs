//! The engines open in this process, so that every element opening the same model on the same
//! backend (same key) shares one engine: one model in memory, one batcher for all its clips.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use super::{Backend, EngineError, SharedEngine};

type Entry = (Box<dyn Any + Send>, Weak<SharedEngine>);

static ENGINES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

impl SharedEngine {
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
