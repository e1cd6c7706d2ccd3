//! The servers of one remote engine: which are usable now, spreading batches over them, and
//! backing off from the ones that failed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Client;

/// First retry delay after a failure; doubled per further failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The delay before trying a server again after `failures` failures in a row (1 or more).
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[derive(Debug, Default, Clone)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// One server and how it has been answering.
pub struct Server {
    pub client: Client,
    health: Mutex<Health>,
}

fn lock(m: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`Pool::pick`] found.
pub enum Pick<'a> {
    Server(&'a Server),
    /// Every server is backing off; the earliest may be tried at this instant.
    WaitUntil(Instant),
}

/// The servers, tried in turn.
pub struct Pool {
    pub servers: Vec<Server>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(clients: Vec<Client>) -> Pool {
        Pool {
            servers: clients
                .into_iter()
                .map(|client| Server {
                    client,
                    health: Mutex::new(Health::default()),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next usable server in turn (spreading batches over every usable one), or when the
    /// earliest backing-off one may be tried again.
    pub fn pick(&self, now: Instant) -> Pick<'_> {
        let n = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut earliest: Option<Instant> = None;
        for k in 0..n {
            let server = &self.servers[(start + k) % n];
            match lock(&server.health).retry_at {
                Some(at) if at > now => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                _ => return Pick::Server(server),
            }
        }
        Pick::WaitUntil(earliest.unwrap_or(now))
    }

    /// The server answered: usable again at once.
    pub fn succeeded(&self, server: &Server) {
        let mut h = lock(&server.health);
        h.failures = 0;
        h.retry_at = None;
    }

    /// The server failed: skipped until its backoff has passed.
    pub fn failed(&self, server: &Server, now: Instant, error: &str) {
        let mut h = lock(&server.health);
        h.failures = h.failures.saturating_add(1);
        h.retry_at = Some(now + backoff(h.failures));
        h.last_error = Some(error.to_string());
    }

    /// Each failing server's last error, as "address: error" joined by "; ".
    pub fn last_errors(&self) -> String {
        self.servers
            .iter()
            .filter_map(|s| {
                lock(&s.health)
                    .last_error
                    .as_ref()
                    .map(|e| format!("{}: {e}", s.client.address.shown))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether the server is not backing off now.
    pub fn usable(&self, server: &Server, now: Instant) -> bool {
        lock(&server.health).retry_at.is_none_or(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let ms = |n| backoff(n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [100, 200, 400, 800, 1600]
        );
        assert_eq!(ms(6), 2000);
        assert_eq!(ms(u32::MAX), 2000);
        assert_eq!(ms(0), 100);
    }
}
