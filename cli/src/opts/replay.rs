//! Replay detection (`--replay` and its companions, `serve` and `consume`): the in-process
//! memory, Redis (fail-closed or fail-open), or off.

use std::sync::Arc;

use msgraph_notify::replay::{
    DEFAULT_REPLAY_TTL, Fingerprint, RedisReplayStore, ReplayGuard, ReplayStore, ReplayStoreError,
};

use crate::{Fail, fail};

/// Replay detection (`serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayOpts {
    /// Where accepted items are remembered, so that a replayed or retried item is reported as a
    /// duplicate instead of being decrypted again: `memory` (this process), a Redis URL
    /// (`redis://HOST:PORT/DB` or `rediss://` for TLS: shared by every replica using it; the
    /// password from MSGRAPH_NOTIFY_REDIS_PASSWORD), or `off`. `off` is unsafe: whoever captured
    /// one genuine POST can have it processed again for as long as its token lives (up to 24
    /// hours), with its changeType or subscription rewritten.
    #[arg(
        long = "replay",
        value_name = "STORE",
        default_value = "memory",
        env = "MSGRAPH_NOTIFY_REPLAY",
        hide_env_values = true
    )]
    pub replay: String,

    /// What to do while the Redis replay store cannot be reached: `closed` (answer POSTs 503 so
    /// Graph retries later; items already queued are rejected, never processed unchecked) or
    /// `open` (process items without the duplicate check, with a warning).
    #[arg(long, value_name = "MODE", default_value = "closed", value_parser = ["closed", "open"], env = "MSGRAPH_NOTIFY_REPLAY_UNAVAILABLE")]
    pub replay_unavailable: String,

    /// Milliseconds one Redis command may take.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000), env = "MSGRAPH_NOTIFY_REPLAY_TIMEOUT_MS")]
    pub replay_timeout_ms: u64,

    /// How many accepted items the in-process replay memory holds (about 130 bytes each); past
    /// it the oldest are forgotten first.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000), env = "MSGRAPH_NOTIFY_REPLAY_CAPACITY")]
    pub replay_capacity: u32,

    /// How long an accepted item is remembered, in seconds. At least 86400 (24 hours, the
    /// longest validation-token lifetime), so that no replay a valid token allows gets through.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_REPLAY_TTL.as_secs(), value_parser = clap::value_parser!(u64).range(86_400..=30 * 86_400), env = "MSGRAPH_NOTIFY_REPLAY_TTL")]
    pub replay_ttl: u64,
}

/// The environment variable holding the Redis password.
pub const REDIS_PASSWORD_ENV: &str = "MSGRAPH_NOTIFY_REDIS_PASSWORD";

/// The replay store `serve` uses, and what it knows of Redis.
pub struct Replay {
    /// For the receiver (None: off).
    pub store: Option<Arc<dyn ReplayStore>>,
    /// The Redis store, when fail-closed: POSTs get 503 while it is unavailable.
    pub fail_closed: Option<Arc<RedisReplayStore>>,
    /// When fail-open: counts the items let through unchecked while Redis was unavailable.
    pub unchecked: Option<prometheus_client::metrics::counter::Counter>,
}

impl Replay {
    /// No replay store (`--replay off`, or `serve --forward`, whose consumer keeps one).
    pub fn off() -> Self {
        Replay {
            store: None,
            fail_closed: None,
            unchecked: None,
        }
    }
}

/// A Redis store that lets items through, with a warning, while Redis cannot be reached.
#[derive(Debug)]
struct FailOpen {
    inner: Arc<RedisReplayStore>,
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
    unchecked: prometheus_client::metrics::counter::Counter,
}

impl FailOpen {
    /// An item let through unchecked: counted, and warned about at most once a second.
    fn let_through(&self, e: &ReplayStoreError) {
        self.unchecked.inc();
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            crate::log::warn(&format!(
                "{e}; --replay-unavailable open: processing items without the duplicate check"
            ));
        }
    }
}

impl ReplayStore for FailOpen {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        self.inner.insert_if_absent(fingerprint).or_else(|e| {
            self.let_through(&e);
            Ok(true)
        })
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        self.inner.remove(fingerprint);
    }

    fn insert_all(&self, fingerprints: &[Fingerprint]) -> Result<(), ReplayStoreError> {
        // As insert_if_absent: an unreachable Redis does not stop the flow (these items were
        // already counted when they were checked).
        if let Err(e) = self.inner.insert_all(fingerprints) {
            crate::log::warn(&format!(
                "{e}; --replay-unavailable open: {} printed items are not recorded",
                fingerprints.len()
            ));
        }
        Ok(())
    }

    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        // Unreachable Redis: treated as "not seen", as insert_if_absent does; counted.
        self.inner.contains(fingerprint).or_else(|e| {
            self.let_through(&e);
            Ok(false)
        })
    }
}

impl ReplayOpts {
    /// The replay store chosen.
    pub fn store(&self) -> Result<Replay, Fail> {
        let ttl = std::time::Duration::from_secs(self.replay_ttl);
        match self.replay.as_str() {
            "memory" => Ok(Replay {
                store: Some(Arc::new(ReplayGuard::new(
                    self.replay_capacity as usize,
                    ttl,
                ))),
                fail_closed: None,
                unchecked: None,
            }),
            "off" => {
                crate::log::warn(
                    "--replay off: a captured POST can be replayed and is processed again \
                     each time, for as long as its validation token lives",
                );
                Ok(Replay::off())
            }
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let password = crate::secret::env(REDIS_PASSWORD_ENV);
                let store = match &password {
                    Some(p) => RedisReplayStore::open_with_password(url, p, ttl),
                    None => RedisReplayStore::open(url, ttl),
                }
                .map_err(|e| fail!("--replay: {e}"))?
                .with_timeout(std::time::Duration::from_millis(self.replay_timeout_ms));
                let store = Arc::new(store);
                if let Err(e) = store.ping() {
                    crate::log::warn(&format!("the replay store is not reachable yet: {e}"));
                }
                Ok(if self.replay_unavailable == "open" {
                    let unchecked = prometheus_client::metrics::counter::Counter::default();
                    Replay {
                        store: Some(Arc::new(FailOpen {
                            inner: store,
                            last_warning: std::sync::Mutex::new(None),
                            unchecked: unchecked.clone(),
                        })),
                        fail_closed: None,
                        unchecked: Some(unchecked),
                    }
                } else {
                    Replay {
                        store: Some(Arc::clone(&store) as Arc<dyn ReplayStore>),
                        fail_closed: Some(store),
                        unchecked: None,
                    }
                })
            }
            // Not echoed: it may be a URL with a password in it.
            _ => Err(fail!(
                "--replay: expected `memory`, `off` or a redis:// (rediss://) URL"
            )),
        }
    }
}
