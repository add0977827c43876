//! The keeper's state and its lease in Redis (features `manage` and `redis`), for replicas that
//! share one Redis: one replica at a time holds the lease and keeps the subscriptions; the others
//! hand it the lifecycle notifications they receive. State writes are fenced by the lease, so a
//! replica that lost it (paused past its time to live) cannot overwrite what the new keeper wrote.

use std::time::Duration;

use super::state::{KeptSubscription, StateStore};
use crate::error::KeeperError;
use crate::model::ChangeNotification;

/// How replicas agree on one keeper.
///
/// ```
/// use msgraph_notify::subscription::Coordination;
/// // RedisState is the implementation; one for a single process needs no lease at all.
/// fn is_object_safe(_: &dyn Coordination) {}
/// ```
pub trait Coordination: Send + Sync {
    /// Acquires or extends the keeper lease: `true` while this replica is the keeper.
    fn hold_lease(&self) -> Result<bool, KeeperError>;
    /// Passes a lifecycle notification to the replica holding the lease.
    fn hand_over(&self, notification: &ChangeNotification) -> Result<(), KeeperError>;
    /// The notifications other replicas handed over, oldest first; each is taken once.
    fn take_handed_over(&self) -> Result<Vec<ChangeNotification>, KeeperError>;
}

impl<T: Coordination + ?Sized> Coordination for std::sync::Arc<T> {
    fn hold_lease(&self) -> Result<bool, KeeperError> {
        (**self).hold_lease()
    }

    fn hand_over(&self, notification: &ChangeNotification) -> Result<(), KeeperError> {
        (**self).hand_over(notification)
    }

    fn take_handed_over(&self) -> Result<Vec<ChangeNotification>, KeeperError> {
        (**self).take_handed_over()
    }
}

/// Most notifications taken from the hand-over list in one pass.
const TAKE_AT_MOST: isize = 1000;

/// Sets the lease to this holder when it is free or already this holder's; extends it.
const HOLD: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

/// Writes the state only while this holder has the lease.
const FENCED_SET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0";

/// The keeper's state (`{prefix}state`), its lease (`{prefix}lease`) and the hand-over list
/// (`{prefix}lifecycle`) in Redis. Default prefix `msgraph-notify:keeper:`, lease 5 minutes
/// (extended before each subscription's requests, and at least every 10 s by the run loop).
///
/// Run Redis with persistence (AOF), as SECURITY.md requires for the replay memory: a Redis that
/// forgot the state makes the keeper create its subscriptions again, once, and the old ones
/// deliver until they expire.
pub struct RedisState {
    client: redis::Client,
    prefix: String,
    holder: String,
    lease_ttl: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisState")
            .field("prefix", &self.prefix)
            .field("holder", &self.holder)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// State at `url` (`redis://`, `rediss://`), this replica named by a random holder id.
    /// Does not connect yet.
    ///
    /// ```
    /// use msgraph_notify::subscription::RedisState;
    /// let state = RedisState::open("redis://127.0.0.1:6379/")?
    ///     .prefix("contoso:keeper:")
    ///     .lease_ttl(std::time::Duration::from_secs(20));
    /// # Ok::<(), msgraph_notify::KeeperError>(())
    /// ```
    pub fn open(url: &str) -> Result<Self, KeeperError> {
        Self::open_with_password(url, None)
    }

    /// [`RedisState::open`] with a password kept out of the URL (from a secret store or the
    /// environment).
    pub fn open_with_password(url: &str, password: Option<&str>) -> Result<Self, KeeperError> {
        use redis::IntoConnectionInfo;
        let refuse = |e: redis::RedisError| {
            KeeperError::State(format!(
                "in Redis: the URL does not parse: {}",
                e.category()
            ))
        };
        let mut info = url.into_connection_info().map_err(refuse)?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(refuse)?;
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        Ok(RedisState {
            client,
            prefix: "msgraph-notify:keeper:".to_owned(),
            holder: id.iter().map(|b| format!("{b:02x}")).collect(),
            lease_ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(2),
        })
    }

    /// The key prefix (one per application and tenant sharing a Redis).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the lease lasts without being extended: a keeper that dies is replaced this
    /// much later (default 5 minutes). The keeper extends it before each subscription's
    /// requests and [`Keeper::run`](super::Keeper::run) at least every 10 s; keep it longer than
    /// one subscription's requests can take (Graph's retries included, about 3 minutes at
    /// worst) and under the shortest renewal margin (15 minutes for presence).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn run<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, KeeperError> {
        let mut conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| KeeperError::State(format!("in Redis: cannot {what}: {e}")))?;
        conn.set_read_timeout(Some(self.timeout))
            .and_then(|()| conn.set_write_timeout(Some(self.timeout)))
            .and_then(|()| f(&mut conn))
            .map_err(|e| KeeperError::State(format!("in Redis: cannot {what}: {e}")))
    }
}

impl StateStore for RedisState {
    fn load(&self) -> Result<Vec<KeptSubscription>, KeeperError> {
        let text: Option<String> = self.run("read the state", |c| {
            redis::cmd("GET").arg(self.key("state")).query(c)
        })?;
        match text {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                KeeperError::State(format!(
                    "in Redis ({}state) does not parse: {e}",
                    self.prefix
                ))
            }),
        }
    }

    /// Written only while this replica holds the lease (else nothing is written).
    fn save(&self, kept: &[KeptSubscription]) -> Result<(), KeeperError> {
        let json = serde_json::to_string(kept)
            .map_err(|e| KeeperError::State(format!("cannot serialise: {e}")))?;
        let written: i64 = self.run("write the state", |c| {
            redis::cmd("EVAL")
                .arg(FENCED_SET)
                .arg(2)
                .arg(self.key("lease"))
                .arg(self.key("state"))
                .arg(&self.holder)
                .arg(json)
                .query(c)
        })?;
        if written == 1 {
            Ok(())
        } else {
            Err(KeeperError::State(format!(
                "in Redis ({}state) was not written: this replica no longer holds the keeper \
                 lease (another replica keeps the subscriptions now)",
                self.prefix
            )))
        }
    }
}

impl Coordination for RedisState {
    fn hold_lease(&self) -> Result<bool, KeeperError> {
        let ms = u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let held: i64 = self.run("hold the keeper lease", |c| {
            redis::cmd("EVAL")
                .arg(HOLD)
                .arg(1)
                .arg(self.key("lease"))
                .arg(&self.holder)
                .arg(ms)
                .query(c)
        })?;
        Ok(held == 1)
    }

    fn hand_over(&self, notification: &ChangeNotification) -> Result<(), KeeperError> {
        // What the keeper needs, not the secret: the notification was checked where it arrived.
        let mut notification = notification.clone();
        notification.client_state = None;
        notification.encrypted_content = None;
        let json = serde_json::to_string(&notification)
            .map_err(|e| KeeperError::State(format!("cannot serialise: {e}")))?;
        let _: i64 = self.run("hand over a lifecycle notification", |c| {
            redis::cmd("RPUSH")
                .arg(self.key("lifecycle"))
                .arg(json)
                .query(c)
        })?;
        Ok(())
    }

    fn take_handed_over(&self) -> Result<Vec<ChangeNotification>, KeeperError> {
        let key = self.key("lifecycle");
        let (items,): (Vec<String>,) = self.run("take the handed-over notifications", |c| {
            redis::pipe()
                .atomic()
                .cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(TAKE_AT_MOST - 1)
                .cmd("LTRIM")
                .arg(&key)
                .arg(TAKE_AT_MOST)
                .arg(-1)
                .ignore()
                .query(c)
        })?;
        // A notification that does not parse was not written by a replica: skipped.
        Ok(items
            .iter()
            .filter_map(|text| serde_json::from_str(text).ok())
            .collect())
    }
}
