//! Replay and duplicate detection: a memory of accepted items, behind a small trait so that
//! several replicas can share one store.
//!
//! A genuine POST can be replayed by whoever captured it for as long as its validation token lives
//! (8 to 24 hours), with its unauthenticated metadata (`changeType`, `subscriptionId`, `resource`,
//! `tenantId`) rewritten at will; Graph itself retries deliveries it thinks failed. Each item with
//! encrypted content is therefore remembered by a [`Fingerprint`] of its encrypted content alone —
//! `dataKey`, `dataSignature` and `data`, the values the item's own key authenticates — and a
//! second arrival is reported as [`Error::Duplicate`](crate::Error::Duplicate), before any
//! private-key operation, so it is never decrypted twice.
//!
//! The [`Receiver`](crate::receiver::Receiver) records the fingerprint before the RSA unwrap
//! ([`ReplayStore::insert_if_absent`], one atomic check-and-insert, so two copies processed at the
//! same moment by two workers or two replicas are told apart) and forgets it again
//! ([`ReplayStore::remove`]) when the item then fails verification, so a forged or broken copy
//! can neither poison the memory for the genuine item nor occupy it. A forged copy cannot share a
//! genuine item's fingerprint without being byte-identical in all three fields, and then it *is*
//! the genuine item.
//!
//! The receiver binds the fingerprint to the key chosen for the item as well
//! ([`Fingerprint::of_content_for_key`]: a hash of that key's RSA modulus). With several keys live
//! during a certificate rotation, a copy rewritten to name the other key would otherwise be
//! recorded first, fail its unwrap, and make the genuine copy arriving meanwhile a duplicate;
//! bound to its key it is another item. A copy that reaches the same key another way (a
//! lower-case thumbprint, the same key registered under a second id) is still a duplicate, and
//! replicas agree whatever ids or certificates they give that key.
//!
//! [`ReplayGuard`] is the bounded in-process store. A store shared by replicas (Redis: `SET key NX
//! PX ttl`) implements the same trait.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use crate::error::ReplayStoreError;
use crate::model::{ChangeNotification, EncryptedContent};

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_REDIS_TIMEOUT, RedisReplayStore};

/// The default time an accepted item is remembered: 24 hours, the longest validation-token
/// lifetime Graph uses (v2.0 tokens), so every replay a valid token allows is caught.
pub const DEFAULT_REPLAY_TTL: Duration = Duration::from_secs(24 * 3600);

/// SHA-256 over an item's `dataKey`, `dataSignature` and `data` (as sent, each length-prefixed).
///
/// The crate's base64 decoding is strict and canonical, so one value has one accepted spelling and
/// hashing the text is hashing the bytes. Only these three fields are used: everything else in a
/// notification can be rewritten by whoever replays it.
///
/// ```
/// use msgraph_notify::replay::Fingerprint;
/// use msgraph_notify::ChangeNotification;
/// let item: ChangeNotification = serde_json::from_str(
///     r#"{"encryptedContent":{"data":"AAAA","dataKey":"BBBB","dataSignature":"CCCC"}}"#,
/// )?;
/// let mut replay = item.clone();
/// replay.change_type = Some("deleted".into()); // rewritten metadata: the same fingerprint
/// assert_eq!(Fingerprint::of(&item), Fingerprint::of(&replay));
/// assert_eq!(Fingerprint::of(&item).unwrap().to_hex().len(), 64);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of an item's encrypted content; `None` when it carries none.
    pub fn of(notification: &ChangeNotification) -> Option<Self> {
        notification
            .encrypted_content
            .as_ref()
            .map(Self::of_content)
    }

    /// The fingerprint of one `encryptedContent`.
    pub fn of_content(content: &EncryptedContent) -> Self {
        Fingerprint(Self::content_hash(content).finalize().into())
    }

    /// The fingerprint of one `encryptedContent` bound to the key that will unwrap it: `key` is
    /// any stable identity of that key (the [`Receiver`](crate::receiver::Receiver) uses a hash
    /// of the key's RSA modulus, so replicas holding the same key agree whatever ids they give
    /// it). During certificate rotation a copy rewritten to name the other key then differs from
    /// the genuine item: it fails its unwrap and is forgotten, and cannot make the genuine copy a
    /// duplicate.
    ///
    /// ```
    /// use msgraph_notify::replay::Fingerprint;
    /// use msgraph_notify::EncryptedContent;
    /// let content: EncryptedContent =
    ///     serde_json::from_str(r#"{"data":"AAAA","dataKey":"BBBB","dataSignature":"CCCC"}"#)?;
    /// let a = Fingerprint::of_content_for_key(&content, b"key A");
    /// assert_eq!(a, Fingerprint::of_content_for_key(&content, b"key A"));
    /// assert_ne!(a, Fingerprint::of_content_for_key(&content, b"key B"));
    /// assert_ne!(a, Fingerprint::of_content(&content));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn of_content_for_key(content: &EncryptedContent, key: &[u8]) -> Self {
        let mut hash = Self::content_hash(content);
        hash.update(b"key");
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(key);
        Fingerprint(hash.finalize().into())
    }

    fn content_hash(content: &EncryptedContent) -> Sha256 {
        let mut hash = Sha256::new();
        for field in [&content.data_key, &content.data_signature, &content.data] {
            let text = field.as_deref().unwrap_or("").as_bytes();
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(text);
        }
        hash
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lower-case hex digits (a key for an external store).
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// Where accepted items are remembered: check-and-insert of a [`Fingerprint`] with the store's
/// time to live, and removal of an entry whose item then failed.
///
/// Implementations must make [`insert_if_absent`](ReplayStore::insert_if_absent) atomic: of two
/// concurrent calls with one fingerprint, exactly one returns `Ok(true)`.
///
/// ```
/// use msgraph_notify::replay::{Fingerprint, ReplayGuard, ReplayStore};
/// use msgraph_notify::ChangeNotification;
/// let store: &dyn ReplayStore = &ReplayGuard::default();
/// let item: ChangeNotification =
///     serde_json::from_str(r#"{"encryptedContent":{"dataSignature":"AAAA"}}"#)?;
/// let fp = Fingerprint::of(&item).unwrap();
/// assert_eq!(store.insert_if_absent(&fp), Ok(true));
/// assert_eq!(store.insert_if_absent(&fp), Ok(false)); // a duplicate
/// store.remove(&fp);
/// assert_eq!(store.insert_if_absent(&fp), Ok(true));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub trait ReplayStore: Send + Sync + fmt::Debug {
    /// Records `fingerprint` unless it is already remembered. `Ok(true)`: it was not (process the
    /// item); `Ok(false)`: it was (a duplicate); `Err`: the store could not answer, and the
    /// receiver rejects the item rather than risk processing it twice.
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError>;

    /// Forgets `fingerprint`, recorded by [`insert_if_absent`](ReplayStore::insert_if_absent) for
    /// an item that then failed verification. Best effort: a store that cannot answer keeps the
    /// entry until its time to live ends.
    fn remove(&self, fingerprint: &Fingerprint);

    /// Records every fingerprint of `fingerprints` (remembered ones stay as they are), in as few
    /// round trips as the store allows: how a reader that records after its output (see
    /// [`contains`](ReplayStore::contains)) keeps the time between the two short. `Err`: the
    /// store could not answer; some may be recorded, and recording them again is harmless.
    fn insert_all(&self, fingerprints: &[Fingerprint]) -> Result<(), ReplayStoreError> {
        for fp in fingerprints {
            self.insert_if_absent(fp)?;
        }
        Ok(())
    }

    /// Whether `fingerprint` is remembered, without recording it: for a reader that records an
    /// item only once its output is durable (`msgraph-notify consume` records after flushing,
    /// so a crash between the check and the output loses nothing). `Err`: the store could not
    /// answer.
    ///
    /// The provided implementation records and forgets again (two round trips, and for that
    /// instant the fingerprint is held); the stores of this crate answer directly.
    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        let absent = self.insert_if_absent(fingerprint)?;
        if absent {
            self.remove(fingerprint);
        }
        Ok(!absent)
    }
}

/// The in-process [`ReplayStore`]: remembers fingerprints for `ttl`, at most `capacity` of them
/// (the oldest are forgotten first when full).
///
/// Memory is bounded whatever arrives: at most `capacity` entries, live or removed and awaiting
/// compaction, each about 130 bytes in the map and the queue together; 100,000 entries (the
/// default) stay under 16 MB (measured in `tests/bounded.rs`: 12.7 MB). Removed entries are
/// dropped at once when they are the newest, else compacted away (in constant time per removal,
/// amortized) before they fill a quarter of the capacity: a flood of forged items that are
/// recorded and then removed evicts no genuine entry while the live ones take less than three
/// quarters of the capacity. Size `capacity` to the items accepted in `ttl`: past it, the
/// oldest accepted items can be replayed again.
///
/// ```
/// use msgraph_notify::replay::ReplayGuard;
/// use std::time::Duration;
/// let guard = ReplayGuard::new(100_000, Duration::from_secs(24 * 3600));
/// assert!(guard.is_empty());
/// ```
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Live entries: fingerprint → when recorded.
    seen: HashMap<Fingerprint, Instant>,
    /// Insertion order, with entries removed since (stale: not in `seen` with this time).
    order: VecDeque<(Fingerprint, Instant)>,
    /// How many entries of `order` are stale.
    stale: usize,
}

impl Inner {
    fn is_live(&self, entry: &(Fingerprint, Instant)) -> bool {
        self.seen.get(&entry.0) == Some(&entry.1)
    }

    /// Drops the front entry, forgetting it if live.
    fn pop_front(&mut self) -> bool {
        let Some(entry) = self.order.pop_front() else {
            return false;
        };
        if self.is_live(&entry) {
            self.seen.remove(&entry.0);
        } else {
            self.stale = self.stale.saturating_sub(1);
        }
        true
    }

    fn compact(&mut self) {
        let Inner { seen, order, .. } = self;
        order.retain(|(fp, at)| seen.get(fp) == Some(at));
        self.stale = 0;
    }
}

impl Default for ReplayGuard {
    /// 100,000 items for [`DEFAULT_REPLAY_TTL`] (24 hours).
    fn default() -> Self {
        ReplayGuard::new(100_000, DEFAULT_REPLAY_TTL)
    }
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` items (at least 1) for `ttl` each. Match `ttl` to the
    /// longest token lifetime ([`DEFAULT_REPLAY_TTL`]) to refuse every replay a valid token allows.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((_, at)) = inner.order.front() {
            if now.duration_since(*at) < self.ttl {
                break;
            }
            inner.pop_front();
        }
    }

    fn record(&self, fingerprint: Fingerprint) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if inner.seen.contains_key(&fingerprint) {
            return false;
        }
        // Compaction walks the whole queue: only once removed entries are a quarter of it, so
        // its cost is constant per removal however removals and inserts interleave.
        if inner.order.len() >= self.capacity && inner.stale > 0 && inner.stale * 4 >= self.capacity
        {
            inner.compact();
        }
        while inner.order.len() >= self.capacity && inner.pop_front() {}
        inner.seen.insert(fingerprint, now);
        inner.order.push_back((fingerprint, now));
        true
    }

    /// Whether this item was accepted within the TTL.
    pub fn contains(&self, notification: &ChangeNotification) -> bool {
        let Some(fingerprint) = Fingerprint::of(notification) else {
            return false;
        };
        let mut inner = self.lock();
        self.expire(&mut inner, Instant::now());
        inner.seen.contains_key(&fingerprint)
    }

    /// Records an accepted item. Returns `false` when it was already recorded (a duplicate).
    /// Items without encrypted content are not tracked and always return `true`.
    pub fn insert(&self, notification: &ChangeNotification) -> bool {
        Fingerprint::of(notification).is_none_or(|fp| self.record(fp))
    }

    /// How many items are remembered.
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items this guard remembers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long an item is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Entries held, live and removed-but-not-yet-compacted: never more than
    /// [`capacity`](ReplayGuard::capacity); removed ones are compacted away before a live entry is
    /// ever evicted.
    pub fn slots_used(&self) -> usize {
        self.lock().order.len()
    }
}

impl ReplayStore for ReplayGuard {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        Ok(self.record(*fingerprint))
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        let mut inner = self.lock();
        if let Some(at) = inner.seen.remove(fingerprint) {
            // Most often the newest entry: dropped at once, nothing left stale.
            if inner.order.back() == Some(&(*fingerprint, at)) {
                inner.order.pop_back();
            } else {
                inner.stale += 1;
            }
        }
    }

    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        let mut inner = self.lock();
        self.expire(&mut inner, Instant::now());
        Ok(inner.seen.contains_key(fingerprint))
    }
}
