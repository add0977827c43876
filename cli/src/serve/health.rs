//! What a POST needs before it may be answered 202: the signing keys loaded, the replay store
//! answering (fail-closed), the decryption key usable, the payload store reachable. While one is
//! missing, POSTs get 503 with `Retry-After` (Graph keeps the delivery and retries), `/readyz`
//! answers 503 naming it, and `msgraph_notify_dependency_unavailable{dependency=…}` is 1.
//!
//! Two signs make a dependency missing: a direct look (no signing key loaded; the fail-closed
//! Redis store marked unavailable), and items already accepted that wait on it (a worker holds
//! an item whose error [`Error::is_transient`] names it, retrying with back-off). The second
//! clears itself: the waiting item's next success ends the wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use msgraph_notify::Error;
use msgraph_notify::error::TokenError;
use msgraph_notify::replay::RedisReplayStore;
use msgraph_notify::token::SigningKeys;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One thing a POST needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// Microsoft's token signing keys (`--jwks-url`, the OpenID metadata).
    SigningKeys,
    /// The shared replay store (`--replay redis://…`, fail-closed).
    ReplayStore,
    /// The private key of an item's certificate (a PKCS#11 token, a vault).
    DecryptionKey,
    /// The blob store of offloaded payloads.
    PayloadStore,
}

impl Dependency {
    const ALL: [Dependency; 4] = [
        Dependency::SigningKeys,
        Dependency::ReplayStore,
        Dependency::DecryptionKey,
        Dependency::PayloadStore,
    ];

    /// The metric label and the word `/readyz` says.
    pub fn label(self) -> &'static str {
        match self {
            Dependency::SigningKeys => "signing_keys",
            Dependency::ReplayStore => "replay_store",
            Dependency::DecryptionKey => "decryption_key",
            Dependency::PayloadStore => "payload_store",
        }
    }

    /// The dependency a transient error waits on (`None` for a verdict on the item).
    pub fn of(error: &Error) -> Option<Dependency> {
        if !error.is_transient() {
            return None;
        }
        Some(match error {
            Error::ReplayStore(_) => Dependency::ReplayStore,
            Error::KeyUnavailable(_) => Dependency::DecryptionKey,
            Error::Payload(_) => Dependency::PayloadStore,
            Error::Token(TokenError::KeysUnavailable { .. }) => Dependency::SigningKeys,
            // A transient error of a kind this build does not know: hold POSTs as for the key.
            _ => Dependency::DecryptionKey,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

type Labels = Vec<(&'static str, String)>;

/// The dependencies of `serve`, looked at before each POST and by `/readyz`.
pub struct Health {
    /// The signing keys that must be loaded before a POST is accepted (`None`: none needed).
    keys: Option<SigningKeys>,
    /// The fail-closed replay store.
    replay: Option<Arc<RedisReplayStore>>,
    /// The Redis replay store, fail-closed or not: its fault and its forgotten memories.
    redis: Option<Arc<RedisReplayStore>>,
    memory_losses: Gauge,
    /// Items accepted and waiting on each dependency.
    waiting: [AtomicU64; 4],
    unavailable: Family<Labels, Gauge>,
    waiting_items: Family<Labels, Gauge>,
    refused: Family<Labels, Counter>,
}

impl Health {
    pub fn new(
        keys: Option<SigningKeys>,
        replay: Option<Arc<RedisReplayStore>>,
        redis: Option<Arc<RedisReplayStore>>,
    ) -> Self {
        Health {
            keys,
            replay,
            redis,
            memory_losses: Gauge::default(),
            waiting: Default::default(),
            unavailable: Family::default(),
            waiting_items: Family::default(),
            refused: Family::default(),
        }
    }

    /// Registers the dependency metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dependency_unavailable",
            "1 while a dependency of POSTs is missing (signing_keys, replay_store, decryption_key, payload_store): POSTs are answered 503",
            self.unavailable.clone(),
        );
        registry.register(
            "waiting_items",
            "Accepted items waiting, retried with back-off, for a dependency to come back",
            self.waiting_items.clone(),
        );
        registry.register(
            "replay_memory_losses",
            "Times the Redis replay memory was found emptied (restarted without persistence, or flushed) since start",
            self.memory_losses.clone(),
        );
        registry.register(
            "unavailable_answers",
            "POSTs answered 503 because a dependency was missing, by dependency",
            self.refused.clone(),
        );
        // Every dependency's series, at 0 from the start.
        for dependency in Dependency::ALL {
            let labels = vec![("dependency", dependency.label().to_owned())];
            let _ = self.unavailable.get_or_create(&labels);
            let _ = self.waiting_items.get_or_create(&labels);
            let _ = self.refused.get_or_create(&labels);
        }
    }

    /// The first dependency that is missing now, if any (and the gauges brought up to date).
    pub fn missing(&self) -> Option<Dependency> {
        if let Some(redis) = &self.redis {
            self.memory_losses
                .set(i64::try_from(redis.losses_detected()).unwrap_or(i64::MAX));
        }
        let mut first = None;
        for dependency in Dependency::ALL {
            let down = self.is_missing(dependency);
            self.unavailable
                .get_or_create(&vec![("dependency", dependency.label().to_owned())])
                .set(i64::from(down));
            if down && first.is_none() {
                first = Some(dependency);
            }
        }
        first
    }

    fn is_missing(&self, dependency: Dependency) -> bool {
        let direct = match dependency {
            Dependency::SigningKeys => self.keys.as_ref().is_some_and(|k| k.snapshot().is_empty()),
            Dependency::ReplayStore => self.replay.as_ref().is_some_and(|s| !s.is_available()),
            _ => false,
        };
        direct || self.waiting[dependency.index()].load(Ordering::Acquire) > 0
    }

    /// Why the Redis replay store is unavailable, in a word (`authentication`, `refused`,
    /// `timeout`, `closed`, `memory_lost`), when it is.
    pub fn replay_fault(&self) -> Option<&'static str> {
        self.redis.as_ref()?.fault().map(|f| f.label())
    }

    /// What is missing, in words for a warning, with the Redis store's fault when it is that.
    pub fn describe(&self, missing: Dependency) -> String {
        match missing {
            Dependency::SigningKeys => {
                "the token signing keys are not loaded (fetching them is retried)".to_owned()
            }
            Dependency::ReplayStore => format!(
                "the replay store is unavailable ({}); POSTs are refused until it answers",
                self.replay_fault().unwrap_or("not answering")
            ),
            Dependency::DecryptionKey => {
                "a decryption key is unavailable; accepted items wait for it".to_owned()
            }
            Dependency::PayloadStore => {
                "the blob store of offloaded payloads is unavailable; accepted items wait for it"
                    .to_owned()
            }
        }
    }

    /// A POST answered 503 for `dependency`.
    pub fn refused(&self, dependency: Dependency) {
        self.refused
            .get_or_create(&vec![("dependency", dependency.label().to_owned())])
            .inc();
    }

    /// `items` accepted items now wait on `dependency` (until the guard is dropped).
    pub fn wait(&self, dependency: Dependency, items: u64) -> Waiting<'_> {
        self.waiting[dependency.index()].fetch_add(items, Ordering::AcqRel);
        self.waiting_items
            .get_or_create(&vec![("dependency", dependency.label().to_owned())])
            .inc_by(items as i64);
        Waiting {
            health: self,
            dependency,
            items,
        }
    }
}

/// Items waiting on a dependency; the wait ends when this is dropped.
pub struct Waiting<'a> {
    health: &'a Health,
    dependency: Dependency,
    items: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.health.waiting[self.dependency.index()].fetch_sub(self.items, Ordering::AcqRel);
        self.health
            .waiting_items
            .get_or_create(&vec![("dependency", self.dependency.label().to_owned())])
            .dec_by(self.items as i64);
    }
}
