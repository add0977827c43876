//! Replay detection (`--replay` and its companions, `serve` and `consume`): the in-process
//! memory, Redis (fail-closed or fail-open), or off.

use std::sync::Arc;

use msgraph_notify::replay::{
    DEFAULT_REDIS_PREFIX, DEFAULT_REPLAY_TTL, Fingerprint, RedisFault, RedisReplayStore,
    ReplayGuard, ReplayMemory, ReplayStore, ReplayStoreError,
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

    /// The prefix of the Redis keys, so that several deployments share one server each with a
    /// memory of its own. Default: `msgraph-notify:replay:` for `serve`; for `consume`,
    /// `msgraph-notify:replay:group:GROUP:`, one memory per consumer group (two groups reading
    /// one topic must not see each other's items as duplicates).
    #[arg(long, value_name = "PREFIX", env = "MSGRAPH_NOTIFY_REPLAY_KEY_PREFIX")]
    pub replay_key_prefix: Option<String>,

    /// Accept, at start, a loss of the Redis replay memory that was recorded (Redis restarted
    /// without persistence, or flushed): without it the store refuses to check items for one
    /// time to live after the loss (POSTs answered 503, records waiting), since a POST captured
    /// before the loss would pass as new. Use once, knowingly, then remove it.
    #[arg(long, env = "MSGRAPH_NOTIFY_REPLAY_ACCEPT_LOSS")]
    pub replay_accept_loss: bool,
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
    /// The Redis store, fail-closed or fail-open: for readiness and metrics, its
    /// [`fault`](RedisReplayStore::fault) (authentication, refused, timeout, memory_lost), its
    /// [`memory`](RedisReplayStore::memory) and
    /// [`losses_detected`](RedisReplayStore::losses_detected).
    pub redis: Option<Arc<RedisReplayStore>>,
}

impl Replay {
    /// No replay store (`--replay off`, or `serve --forward`, whose consumer keeps one).
    pub fn off() -> Self {
        Replay {
            store: None,
            fail_closed: None,
            unchecked: None,
            redis: None,
        }
    }
}

/// Says, as soon as it happens, when the Redis store finds its memory lost and whenever the cause
/// of its failures changes (each cause named: authentication, refused, timeout, closed, memory
/// lost): a thread that looks every second while the store lives, whether or not items flow
/// (a fail-closed `serve` answers 503 and sends none; its probe's pings find the loss).
fn watch(store: &Arc<RedisReplayStore>) {
    let store = Arc::downgrade(store);
    let spawned = std::thread::Builder::new()
        .name("replay-watch".into())
        .spawn(move || {
            let mut losses = 0;
            let mut fault = None;
            while let Some(store) = store.upgrade() {
                if store.losses_detected() > losses {
                    losses = store.losses_detected();
                    crate::log::warn(
                        "the Redis replay memory was lost (its marker key is gone: Redis \
                         restarted without persistence, or was flushed): items are not checked \
                         until one --replay-ttl has passed, or until a restart with \
                         --replay-accept-loss; make Redis persistent (appendonly yes, see \
                         SECURITY.md)",
                    );
                }
                if store.fault() != fault {
                    fault = store.fault();
                    match store.last_error() {
                        Some(e) => crate::log::warn(&format!("replay store: {e}")),
                        None => crate::log::info("replay store: Redis answers again"),
                    }
                }
                drop(store);
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        });
    if let Err(e) = spawned {
        crate::log::warn(&format!(
            "cannot watch the replay store ({e}): its faults are seen in each item's error only"
        ));
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
    /// The replay store chosen (`serve`: one memory per key prefix).
    pub fn store(&self) -> Result<Replay, Fail> {
        self.store_in(None)
    }

    /// The replay store chosen, for the consumer group `group` (`consume`): unless
    /// --replay-key-prefix says otherwise, the Redis keys are the group's own
    /// (`msgraph-notify:replay:group:GROUP:`), so that two groups reading one topic do not see
    /// each other's items as duplicates.
    #[cfg(feature = "kafka")]
    pub fn store_for_group(&self, group: &str) -> Result<Replay, Fail> {
        self.store_in(Some(group))
    }

    /// The Redis key prefix: --replay-key-prefix, else the default, with the consumer group's
    /// own part for `consume`.
    #[cfg_attr(
        not(any(feature = "kafka", test)),
        allow(dead_code, reason = "consume's groups")
    )]
    fn prefix(&self, group: Option<&str>) -> String {
        match (&self.replay_key_prefix, group) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(group)) => format!("{DEFAULT_REDIS_PREFIX}group:{group}:"),
            (None, None) => DEFAULT_REDIS_PREFIX.to_owned(),
        }
    }

    fn store_in(&self, group: Option<&str>) -> Result<Replay, Fail> {
        let ttl = std::time::Duration::from_secs(self.replay_ttl);
        match self.replay.as_str() {
            "memory" => Ok(Replay {
                store: Some(Arc::new(ReplayGuard::new(
                    self.replay_capacity as usize,
                    ttl,
                ))),
                fail_closed: None,
                unchecked: None,
                redis: None,
            }),
            "off" => {
                crate::log::warn(
                    "--replay off: a captured POST can be replayed and is processed again \
                     each time, for as long as its validation token lives",
                );
                Ok(Replay::off())
            }
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let store = Arc::new(self.redis(url, ttl, group)?);
                watch(&store);
                Ok(if self.replay_unavailable == "open" {
                    let unchecked = prometheus_client::metrics::counter::Counter::default();
                    Replay {
                        store: Some(Arc::new(FailOpen {
                            inner: Arc::clone(&store),
                            last_warning: std::sync::Mutex::new(None),
                            unchecked: unchecked.clone(),
                        })),
                        fail_closed: None,
                        unchecked: Some(unchecked),
                        redis: Some(store),
                    }
                } else {
                    Replay {
                        store: Some(Arc::clone(&store) as Arc<dyn ReplayStore>),
                        fail_closed: Some(Arc::clone(&store)),
                        unchecked: None,
                        redis: Some(store),
                    }
                })
            }
            // Not echoed: it may be a URL with a password in it.
            _ => Err(fail!(
                "--replay: expected `memory`, `off` or a redis:// (rediss://) URL"
            )),
        }
    }

    /// The Redis store, checked once: a server that refuses our credentials stops the start
    /// (waiting will not fix it); one not reachable yet is said, with its cause; a lost memory is
    /// said, and accepted with --replay-accept-loss.
    fn redis(
        &self,
        url: &str,
        ttl: std::time::Duration,
        group: Option<&str>,
    ) -> Result<RedisReplayStore, Fail> {
        let password = crate::secret::env(REDIS_PASSWORD_ENV);
        let store = match &password {
            Some(p) => RedisReplayStore::open_with_password(url, p, ttl),
            None => RedisReplayStore::open(url, ttl),
        }
        .map_err(|e| fail!("--replay: {e}"))?
        .with_timeout(std::time::Duration::from_millis(self.replay_timeout_ms))
        .with_prefix(self.prefix(group));
        match store.ping() {
            Ok(()) => {}
            Err(e) if store.fault() == Some(RedisFault::Authentication) => {
                return Err(fail!(
                    "--replay: {e}: the password is wrong or missing; put the right one in \
                     {REDIS_PASSWORD_ENV} (or the URL); not starting, since no item could be \
                     checked"
                ));
            }
            Err(e) if store.fault() == Some(RedisFault::MemoryLost) => {
                if self.replay_accept_loss {
                    store
                        .accept_loss()
                        .map_err(|e| fail!("--replay-accept-loss: {e}"))?;
                    crate::log::warn(
                        "--replay-accept-loss: the lost replay memory is accepted; a POST \
                         captured before the loss is taken as new until its token expires. \
                         Remove the option now",
                    );
                } else {
                    crate::log::warn(&format!(
                        "replay store: {e}; or restart once with --replay-accept-loss"
                    ));
                }
            }
            Err(e) => crate::log::warn(&format!("replay store: not reachable yet: {e}")),
        }
        if let ReplayMemory::Whole { since } = store.memory() {
            let age = std::time::SystemTime::now()
                .duration_since(since)
                .unwrap_or_default();
            crate::log::info(&format!(
                "replay store: Redis, keys {}*, remembered for {} s; this memory began {} s ago",
                store.prefix(),
                ttl.as_secs(),
                age.as_secs()
            ));
            if age < std::time::Duration::from_secs(60) && !self.replay_accept_loss {
                crate::log::warn(&format!(
                    "replay store: the replay memory in Redis began {} s ago (its marker is \
                     new): a first start, or a memory lost while nothing ran (the two cannot be \
                     told apart); Redis must be persistent (appendonly yes, see SECURITY.md)",
                    age.as_secs()
                ));
            }
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        replay: ReplayOpts,
    }

    #[test]
    fn consume_keeps_one_memory_per_group_unless_a_prefix_is_given() {
        let opts = Cli::parse_from(["x", "--replay", "redis://127.0.0.1:1/0"]).replay;
        assert_eq!(opts.prefix(None), "msgraph-notify:replay:");
        assert_eq!(opts.prefix(Some("a")), "msgraph-notify:replay:group:a:");
        assert_ne!(opts.prefix(Some("a")), opts.prefix(Some("b")));
        let opts = Cli::parse_from(["x", "--replay-key-prefix", "tenant-1:"]).replay;
        assert_eq!(opts.prefix(None), "tenant-1:");
        assert_eq!(opts.prefix(Some("a")), "tenant-1:");
    }
}
