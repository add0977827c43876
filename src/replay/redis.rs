//! The replay memory in Redis (feature `redis`), shared by every replica that points at it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::redis_memory::{CONTAINS, INSERT, INSERT_ALL, MarkerKind, WRITE_MARKER, read_marker};
use super::{Fingerprint, RedisFault, ReplayMemory, ReplayStore, ReplayStoreError};

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
/// later, and retry the items it had already accepted. Every error message starts with the
/// cause in words, and [`fault`](RedisReplayStore::fault) names it as a [`RedisFault`]
/// (authentication, refused, timeout, memory lost).
///
/// **A memory that knows when it forgot.** Beside the fingerprints the store keeps a marker
/// key, `{prefix}memory-marker`, without expiry. A Redis restarted without persistence, or
/// flushed, loses it with everything else, and the store notices at its next command (every
/// check-and-insert tests the marker in the same atomic script, so no item is checked against
/// an emptied memory) or [`ping`](RedisReplayStore::ping). From then on the memory is younger
/// than the replay window: a POST captured before the loss would pass as new. The store writes
/// a new marker saying so (every store on the same server and prefix then agrees) and, for one
/// time to live, refuses to answer ([`RedisFault::MemoryLost`], [`ReplayMemory::Lost`]):
/// fail-closed, items wait. An operator who knows that nothing was lost that matters can end
/// this at once with [`accept_loss`](RedisReplayStore::accept_loss). Keep Redis persistent
/// (`appendonly yes`, see SECURITY.md) so that this never happens on a restart.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use msgraph_notify::replay::{DEFAULT_REPLAY_TTL, RedisReplayStore};
/// // Needs a Redis server: see tests/receiver/redis.rs for one started on 127.0.0.1.
/// let store = RedisReplayStore::open("redis://127.0.0.1:6379/0", DEFAULT_REPLAY_TTL)?
///     .with_timeout(Duration::from_millis(500))
///     .with_prefix("msgraph-notify:replay:deployment-a:");
/// // At start: a refused password is a reason to stop, not to wait.
/// if let Err(e) = store.ping() {
///     if store.fault() == Some(msgraph_notify::replay::RedisFault::Authentication) {
///         return Err(e.into());
///     }
///     eprintln!("not reachable yet: {e}"); // names the cause: refused, timeout, ...
/// }
/// // For readiness and metrics: why it cannot answer, whether its memory is whole.
/// let _why = store.fault().map(|f| f.label()); // "memory_lost" after a restart without AOF
/// let _lost = matches!(store.memory(), msgraph_notify::replay::ReplayMemory::Lost { .. });
/// let _losses = store.losses_detected();
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
    /// The last failure: when, and its cause. Within [`RETRY_AFTER`] of it, commands fail at once
    /// instead of each waiting out the timeout.
    failed: Mutex<Option<(Instant, RedisFault, String)>>,
    /// The last error of a connection attempt the pool made (its own threads connect).
    connect_error: Arc<Mutex<Option<(RedisFault, String)>>>,
    /// What the marker says, and when it was last read while the memory is lost.
    memory: Mutex<(ReplayMemory, Option<Instant>)>,
    losses: AtomicU64,
}

/// How long after a failed command the store answers "unavailable" without trying; also how
/// often a lost memory's marker is read again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisReplayStore")
            .field("ttl_ms", &self.ttl_ms)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("available", &self.available.load(Ordering::Relaxed))
            .field("memory", &self.memory())
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

/// Keeps the cause of the pool's last failed connection attempt (r2d2 reports only "timed out"
/// to the caller).
#[derive(Debug)]
struct ConnectErrors(Arc<Mutex<Option<(RedisFault, String)>>>);

impl r2d2::HandleError<redis::RedisError> for ConnectErrors {
    fn handle_error(&self, error: redis::RedisError) {
        *lock(&self.0) = Some((RedisFault::of(&error), error.to_string()));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The default time one Redis command (or getting a connection) may take: 1 second.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The key prefix unless [`RedisReplayStore::with_prefix`] sets another.
pub const DEFAULT_REDIS_PREFIX: &str = "msgraph-notify:replay:";

impl RedisReplayStore {
    /// A store at `url` remembering items for `ttl`, with the key prefix
    /// [`DEFAULT_REDIS_PREFIX`] and [`DEFAULT_REDIS_TIMEOUT`]. Does not connect yet: the first
    /// command does.
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
        let connect_error = Arc::new(Mutex::new(None));
        let pool = Self::pool(client.clone(), timeout, &connect_error);
        Ok(RedisReplayStore {
            client,
            pool,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            timeout,
            available: AtomicBool::new(true),
            failed: Mutex::new(None),
            connect_error,
            memory: Mutex::new((ReplayMemory::Unchecked, None)),
            losses: AtomicU64::new(0),
        })
    }

    fn pool(
        client: redis::Client,
        timeout: Duration,
        connect_error: &Arc<Mutex<Option<(RedisFault, String)>>>,
    ) -> r2d2::Pool<redis::Client> {
        r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(timeout)
            .connection_customizer(Box::new(Timeouts(timeout)))
            .error_handler(Box::new(ConnectErrors(Arc::clone(connect_error))))
            .build_unchecked(client)
    }

    /// The time one command (or getting a connection) may take. Default:
    /// [`DEFAULT_REDIS_TIMEOUT`].
    pub fn with_timeout(self, timeout: Duration) -> Self {
        RedisReplayStore {
            pool: Self::pool(self.client.clone(), timeout, &self.connect_error),
            timeout,
            ..self
        }
    }

    /// The key prefix, so that several deployments (or several consumer groups) can share one
    /// server, each with a memory of its own: the fingerprints are `{prefix}{64 hex digits}` and
    /// the marker `{prefix}memory-marker`. Default: [`DEFAULT_REDIS_PREFIX`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the last command reached Redis and the memory is not lost (true before the
    /// first command).
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Why the store cannot answer now: `None` while [`is_available`](Self::is_available), else
    /// the cause of the last failure (for a readiness answer or a metric label).
    pub fn fault(&self) -> Option<RedisFault> {
        if self.is_available() {
            return None;
        }
        if matches!(self.memory(), ReplayMemory::Lost { .. }) {
            return Some(RedisFault::MemoryLost);
        }
        Some(
            lock(&self.failed)
                .as_ref()
                .map_or(RedisFault::Other, |f| f.1),
        )
    }

    /// The error of the last failure, as a command would return it (the cause first), or
    /// `None` while [`is_available`](Self::is_available): for a log line or a readiness answer.
    pub fn last_error(&self) -> Option<ReplayStoreError> {
        match self.fault()? {
            RedisFault::MemoryLost => Some(self.lost_error()),
            fault => Some(ReplayStoreError(match lock(&self.failed).as_ref() {
                Some((_, _, why)) => format!("{} ({why})", fault.words()),
                None => fault.words().to_owned(),
            })),
        }
    }

    /// Whether the memory holds every item of the replay window, as the marker last told it:
    /// see [`ReplayMemory`].
    pub fn memory(&self) -> ReplayMemory {
        lock(&self.memory).0.clone()
    }

    /// How many times this store found the memory lost (the marker gone) since it was opened:
    /// a counter for a metric.
    pub fn losses_detected(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    /// An operator's explicit choice to end a [`ReplayMemory::Lost`] at once: the marker is
    /// rewritten as accepted (every store on the same server and prefix then answers again) and
    /// the memory counts as whole from now. Replays of POSTs captured before the loss are then
    /// taken as new until their tokens expire: choose this only when no such POST can exist
    /// (nothing was received in the window before the loss) or the risk is accepted.
    ///
    /// # Errors
    ///
    /// [`ReplayStoreError`] when Redis cannot be reached.
    pub fn accept_loss(&self) -> Result<(), ReplayStoreError> {
        let marker = self.marker_key();
        let value = MarkerKind::Accepted.value_now();
        self.run_checked(
            |conn| redis::cmd("SET").arg(&marker).arg(&value).query::<()>(conn),
            false,
        )?;
        *lock(&self.memory) = (read_marker(&value, self.ttl()), None);
        self.available.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Sends `PING` and checks the marker (so a loss is noticed without traffic); updates
    /// [`is_available`](RedisReplayStore::is_available), [`fault`](Self::fault) and
    /// [`memory`](Self::memory).
    ///
    /// # Errors
    ///
    /// [`ReplayStoreError`] naming the cause when Redis cannot be reached, refuses our
    /// credentials, or the memory is lost.
    pub fn ping(&self) -> Result<(), ReplayStoreError> {
        self.run_checked(
            |conn| redis::cmd("PING").query::<String>(conn).map(drop),
            false,
        )?;
        let marker = self.marker_key();
        let exists: i64 =
            self.run_checked(|conn| redis::cmd("EXISTS").arg(&marker).query(conn), false)?;
        if exists == 0 {
            self.marker_gone()?;
        }
        self.still_lost()
    }

    fn key(&self, fingerprint: &Fingerprint) -> String {
        format!("{}{}", self.prefix, fingerprint.to_hex())
    }

    fn marker_key(&self) -> String {
        format!("{}memory-marker", self.prefix)
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
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
        if fail_fast
            && !self.is_available()
            && let Some((at, fault, why)) = lock(&self.failed).as_ref()
            && at.elapsed() < RETRY_AFTER
        {
            return Err(ReplayStoreError(format!(
                "{} ({why}); trying again shortly",
                fault.words()
            )));
        }
        let result = match self.pool.get() {
            Ok(mut conn) => command(&mut conn).map_err(|e| (RedisFault::of(&e), e.to_string())),
            Err(e) => Err(lock(&self.connect_error).take().unwrap_or_else(|| {
                (
                    RedisFault::Timeout,
                    format!("no connection within {} ms: {e}", self.timeout.as_millis()),
                )
            })),
        };
        let lost = matches!(lock(&self.memory).0, ReplayMemory::Lost { .. });
        self.available
            .store(result.is_ok() && !lost, Ordering::Relaxed);
        let mut failed = lock(&self.failed);
        match result {
            Ok(v) => {
                *failed = None;
                Ok(v)
            }
            Err((fault, why)) => {
                let e = ReplayStoreError(format!("{} ({why})", fault.words()));
                *failed = Some((Instant::now(), fault, why));
                Err(e)
            }
        }
    }

    /// At the first contact, reads the marker (creating it when there is none: a new memory);
    /// while the memory is lost, reads it again (at most every half second) and refuses.
    fn still_lost(&self) -> Result<(), ReplayStoreError> {
        let (memory, read_at) = lock(&self.memory).clone();
        match memory {
            ReplayMemory::Whole { .. } => return Ok(()),
            ReplayMemory::Lost { .. } if read_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) => {
                return Err(self.lost_error());
            }
            _ => {}
        }
        let marker = self.marker_key();
        let value: Option<String> =
            self.run_checked(|conn| redis::cmd("GET").arg(&marker).query(conn), false)?;
        match value {
            Some(value) => self.set_memory(read_marker(&value, self.ttl())),
            None if memory == ReplayMemory::Unchecked => {
                self.write_marker(MarkerKind::New)?;
            }
            None => self.marker_gone()?,
        }
        match self.memory() {
            ReplayMemory::Lost { .. } => Err(self.lost_error()),
            _ => Ok(()),
        }
    }

    /// The marker is gone: a store that had seen it records the loss (once for every store on
    /// the server: the first new marker wins); a store at its first contact starts a new memory.
    fn marker_gone(&self) -> Result<(), ReplayStoreError> {
        if self.memory() == ReplayMemory::Unchecked {
            return self.write_marker(MarkerKind::New);
        }
        if !matches!(self.memory(), ReplayMemory::Lost { .. }) {
            self.losses.fetch_add(1, Ordering::Relaxed);
        }
        self.write_marker(MarkerKind::Lost)?;
        match self.memory() {
            ReplayMemory::Lost { .. } => Err(self.lost_error()),
            _ => Ok(()),
        }
    }

    /// Writes the marker unless one is there, then reads the value that won (ours or another
    /// store's), in one script.
    fn write_marker(&self, kind: MarkerKind) -> Result<(), ReplayStoreError> {
        let marker = self.marker_key();
        let value = kind.value_now();
        let won: String = self.run_checked(
            |conn| {
                redis::cmd("EVAL")
                    .arg(WRITE_MARKER)
                    .arg(1)
                    .arg(&marker)
                    .arg(&value)
                    .query(conn)
            },
            false,
        )?;
        self.set_memory(read_marker(&won, self.ttl()));
        Ok(())
    }

    fn set_memory(&self, memory: ReplayMemory) {
        let lost = matches!(memory, ReplayMemory::Lost { .. });
        *lock(&self.memory) = (memory, Some(Instant::now()));
        if lost {
            self.available.store(false, Ordering::Relaxed);
        }
    }

    fn lost_error(&self) -> ReplayStoreError {
        let now = SystemTime::now();
        let (ago, left) = match self.memory() {
            ReplayMemory::Lost { lost_at, whole_at } => (
                now.duration_since(lost_at).unwrap_or_default().as_secs(),
                whole_at.duration_since(now).unwrap_or_default().as_secs(),
            ),
            _ => (0, 0),
        };
        ReplayStoreError(format!(
            "{} {ago} s ago (Redis restarted without persistence, or flushed): whether an item \
             was seen before cannot be told for another {left} s (one time to live after the \
             loss); make Redis persistent (appendonly yes), and an operator who accepts the risk \
             can end this at once",
            RedisFault::MemoryLost.words()
        ))
    }

    /// Runs a marker-checking script (`KEYS[1]` is the marker): the memory's state first, then
    /// the script; when it finds the marker gone, the loss is recorded and the call refused.
    fn checked(&self, script: &str, keys: &[String]) -> Result<i64, ReplayStoreError> {
        self.still_lost()?;
        let marker = self.marker_key();
        let ttl_ms = self.ttl_ms;
        let answer: i64 = self.run(|conn| {
            redis::cmd("EVAL")
                .arg(script)
                .arg(keys.len() + 1)
                .arg(&marker)
                .arg(keys)
                .arg(ttl_ms)
                .query(conn)
        })?;
        if answer >= 0 {
            return Ok(answer);
        }
        self.marker_gone()?;
        // A loss this store does not refuse (accepted meanwhile by another): once more.
        let answer: i64 = self.run(|conn| {
            redis::cmd("EVAL")
                .arg(script)
                .arg(keys.len() + 1)
                .arg(&marker)
                .arg(keys)
                .arg(ttl_ms)
                .query(conn)
        })?;
        if answer < 0 {
            return Err(self.lost_error());
        }
        Ok(answer)
    }
}

impl ReplayStore for RedisReplayStore {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        Ok(self.checked(INSERT, &[self.key(fingerprint)])? == 1)
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        let key = self.key(fingerprint);
        let _ = self.run(|conn| redis::cmd("DEL").arg(&key).query::<i64>(conn));
    }

    fn insert_all(&self, fingerprints: &[Fingerprint]) -> Result<(), ReplayStoreError> {
        if fingerprints.is_empty() {
            return Ok(());
        }
        // One script, one round trip.
        let keys: Vec<String> = fingerprints.iter().map(|fp| self.key(fp)).collect();
        self.checked(INSERT_ALL, &keys).map(drop)
    }

    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        Ok(self.checked(CONTAINS, &[self.key(fingerprint)])? > 0)
    }
}
