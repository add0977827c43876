//! The in-process replay memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DEFAULT_REPLAY_TTL, Fingerprint, ReplayStore, ReplayStoreError};
use crate::model::ChangeNotification;

/// The in-process [`ReplayStore`]: remembers fingerprints for `ttl`, at most `capacity` of them
/// (the oldest are forgotten first when full).
///
/// Memory is bounded whatever arrives: at most `capacity` entries, live or removed and awaiting
/// compaction, each about 130 bytes in the map and the queue together; 100,000 entries (the
/// default) stay under 16 MB (measured in `tests/bounded/main.rs`: 12.7 MB). Removed entries are
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
