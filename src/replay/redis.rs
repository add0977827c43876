//! The replay memory in Redis (feature `redis`), shared by every replica that points at it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Fingerprint, ReplayStore, ReplayStoreError};

/// A [`ReplayStore`] in Redis: `SET {prefix}{fingerprint} 1 NX PX {ttl}`, one atomic
/// check-and-insert shared by every receiver that uses the same server and prefix, so a POST that
/// reaches two replicas is processed by exactly one. Removal is `DEL`.
///
/// Connections come from an `r2d2` pool (at most 16, opened as needed); each command has the
/// configured timeout for connecting, reading and writing. URLs are the `redis` crate's:
/// `redis://[:PASSWORD@]HOST[:PORT][/DB]` and `rediss://` for TLS (the system's trusted roots).
/// Memory on the Redis side: about 100 bytes per remembered item, for the TTL.
///
/// When Redis cannot answer, [`insert_if_absent`](ReplayStore::insert_if_absent) returns an error
/// and [`is_available`](RedisReplayStore::is_available) turns false until a command succeeds
/// again (for half a second after a failure, commands fail at once rather than each waiting out
/// the timeout; [`ping`](RedisReplayStore::ping) always tries): the receiver then rejects the
/// item (never processing it unchecked), and a server can answer `503` so that Graph retries
/// later, and retry the items it had already accepted.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use msgraph_notify::replay::{DEFAULT_REPLAY_TTL, RedisReplayStore};
/// // Needs a Redis server: see tests/receiver/redis.rs for one started on 127.0.0.1.
/// let store = RedisReplayStore::open("redis://127.0.0.1:6379/0", DEFAULT_REPLAY_TTL)?
///     .with_timeout(Duration::from_millis(500));
/// # let _ = Arc::new(store);
/// # Ok(()) }
/// ```
pub struct RedisReplayStore {
    client: redis::Client,
    pool: r2d2::Pool<redis::Client>,
    ttl_ms: u64,
    prefix: String,
    timeout: Duration,
    available: AtomicBool,
    /// When a command last failed: within [`RETRY_AFTER`] of it, commands fail at once instead
    /// of each waiting out the timeout.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after a failed command the store answers "unavailable" without trying.
const RETRY_AFTER: Duration = Duration::from_millis(500);

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisReplayStore")
            .field("ttl_ms", &self.ttl_ms)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("available", &self.available.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Sets the read and write timeouts on every connection the pool hands out.
#[derive(Debug)]
struct Timeouts(Duration);

impl r2d2::CustomizeConnection<redis::Connection, redis::RedisError> for Timeouts {
    fn on_acquire(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        conn.set_read_timeout(Some(self.0))?;
        conn.set_write_timeout(Some(self.0))
    }
}

/// The default time one Redis command (or getting a connection) may take: 1 second.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

impl RedisReplayStore {
    /// A store at `url` remembering items for `ttl`, with the key prefix `msgraph-notify:replay:`
    /// and [`DEFAULT_REDIS_TIMEOUT`]. Does not connect yet: the first command does.
    ///
    /// # Errors
    ///
    /// [`ReplayStoreError`] when the URL does not parse (the message never repeats the URL, which
    /// may hold a password).
    pub fn open(url: &str, ttl: Duration) -> Result<Self, ReplayStoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| ReplayStoreError(format!("invalid Redis URL: {}", e.category())))?;
        Self::from_client(client, ttl, DEFAULT_REDIS_TIMEOUT)
    }

    /// Like [`open`](RedisReplayStore::open), with the password given apart (so it need not be
    /// in the URL, nor on a command line).
    ///
    /// # Errors
    ///
    /// As [`open`](RedisReplayStore::open).
    pub fn open_with_password(
        url: &str,
        password: &str,
        ttl: Duration,
    ) -> Result<Self, ReplayStoreError> {
        use redis::IntoConnectionInfo;
        let info = url
            .into_connection_info()
            .map_err(|e| ReplayStoreError(format!("invalid Redis URL: {}", e.category())))?;
        let redis_settings = info.redis_settings().clone().set_password(password);
        let client = redis::Client::open(info.set_redis_settings(redis_settings))
            .map_err(|e| ReplayStoreError(format!("invalid Redis URL: {}", e.category())))?;
        Self::from_client(client, ttl, DEFAULT_REDIS_TIMEOUT)
    }

    fn from_client(
        client: redis::Client,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Self, ReplayStoreError> {
        let pool = Self::pool(client.clone(), timeout);
        Ok(RedisReplayStore {
            client,
            pool,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
            prefix: "msgraph-notify:replay:".to_owned(),
            timeout,
            available: AtomicBool::new(true),
            failed_at: std::sync::Mutex::new(None),
        })
    }

    fn pool(client: redis::Client, timeout: Duration) -> r2d2::Pool<redis::Client> {
        r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .connection_customizer(Box::new(Timeouts(timeout)))
            .build_unchecked(client)
    }

    /// The time one command (or getting a connection) may take. Default:
    /// [`DEFAULT_REDIS_TIMEOUT`].
    pub fn with_timeout(self, timeout: Duration) -> Self {
        RedisReplayStore {
            pool: Self::pool(self.client.clone(), timeout),
            timeout,
            ..self
        }
    }

    /// The key prefix, so that several deployments can share one server. Default:
    /// `msgraph-notify:replay:`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether the last command reached Redis (true before the first).
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Sends `PING`; updates [`is_available`](RedisReplayStore::is_available).
    ///
    /// # Errors
    ///
    /// [`ReplayStoreError`] naming the cause when Redis cannot be reached.
    pub fn ping(&self) -> Result<(), ReplayStoreError> {
        self.run_checked(
            |conn| redis::cmd("PING").query::<String>(conn).map(drop),
            false,
        )
    }

    fn key(&self, fingerprint: &Fingerprint) -> String {
        format!("{}{}", self.prefix, fingerprint.to_hex())
    }

    fn run<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, ReplayStoreError> {
        self.run_checked(command, true)
    }

    fn run_checked<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
        fail_fast: bool,
    ) -> Result<T, ReplayStoreError> {
        let recently_failed = || {
            self.failed_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|t| t.elapsed() < RETRY_AFTER)
        };
        if fail_fast && !self.is_available() && recently_failed() {
            return Err(ReplayStoreError(
                "Redis did not answer the last command; retrying shortly".to_owned(),
            ));
        }
        let result = match self.pool.get() {
            Ok(mut conn) => command(&mut conn).map_err(|e| ReplayStoreError(format!("Redis: {e}"))),
            Err(e) => Err(ReplayStoreError(format!("cannot connect to Redis: {e}"))),
        };
        self.available.store(result.is_ok(), Ordering::Relaxed);
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
        *failed_at = result.is_err().then(std::time::Instant::now);
        result
    }
}

impl ReplayStore for RedisReplayStore {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        let key = self.key(fingerprint);
        let set: Option<String> = self.run(|conn| {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl_ms)
                .query(conn)
        })?;
        Ok(set.is_some())
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        let key = self.key(fingerprint);
        let _ = self.run(|conn| redis::cmd("DEL").arg(&key).query::<i64>(conn));
    }

    fn insert_all(&self, fingerprints: &[Fingerprint]) -> Result<(), ReplayStoreError> {
        if fingerprints.is_empty() {
            return Ok(());
        }
        // One pipeline, one round trip.
        let mut pipe = redis::pipe();
        for fp in fingerprints {
            pipe.cmd("SET")
                .arg(self.key(fp))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl_ms)
                .ignore();
        }
        self.run(|conn| pipe.query::<()>(conn))
    }

    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        let key = self.key(fingerprint);
        let found: i64 = self.run(|conn| redis::cmd("EXISTS").arg(&key).query(conn))?;
        Ok(found > 0)
    }
}
