//! Replay and duplicate detection: a bounded, time-limited memory of accepted items.
//!
//! A genuine POST can be replayed by whoever captured it for as long as its validation token lives
//! (8 to 24 hours), and Graph itself retries deliveries it thinks failed. Each accepted item is
//! remembered by SHA-256 of its `dataSignature` (the signature is unique per
//! item: every item has its own symmetric key); a second arrival is reported as a duplicate.
//! Only the signature is fingerprinted: it is the one authenticated value of the item, whereas the
//! subscription id and other metadata can be changed by whoever replays the POST.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::model::ChangeNotification;

/// Remembers accepted items (by SHA-256 of their `dataSignature`) for `ttl`, at most `capacity` of them (the oldest are forgotten
/// first when full). Memory stays within `capacity` × about 80 bytes whatever arrives.
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
    seen: HashMap<[u8; 32], Instant>,
    order: VecDeque<([u8; 32], Instant)>,
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` items for `ttl` each. Match `ttl` to the longest token
    /// lifetime (24 hours) to refuse every replay a valid token allows.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn fingerprint(n: &ChangeNotification) -> Option<[u8; 32]> {
        let content = n.encrypted_content.as_ref()?;
        let signature = content.data_signature.as_deref()?;
        // The crate's base64 decoding is canonical, so one signature has one spelling.
        Some(Sha256::digest(signature.trim().as_bytes()).into())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((key, at)) = inner.order.front().copied() {
            if now.duration_since(at) < self.ttl {
                break;
            }
            inner.order.pop_front();
            if inner.seen.get(&key) == Some(&at) {
                inner.seen.remove(&key);
            }
        }
    }

    /// Whether this item was accepted within the TTL.
    pub fn contains(&self, notification: &ChangeNotification) -> bool {
        let Some(key) = Self::fingerprint(notification) else {
            return false;
        };
        let now = Instant::now();
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        inner.seen.contains_key(&key)
    }

    /// Records an accepted item. Returns `false` when it was already recorded (a duplicate).
    /// Items without encrypted content are not tracked and always return `true`.
    pub fn insert(&self, notification: &ChangeNotification) -> bool {
        let Some(key) = Self::fingerprint(notification) else {
            return true;
        };
        let now = Instant::now();
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if inner.seen.contains_key(&key) {
            return false;
        }
        while inner.seen.len() >= self.capacity {
            let Some((old, at)) = inner.order.pop_front() else {
                break;
            };
            if inner.seen.get(&old) == Some(&at) {
                inner.seen.remove(&old);
            }
        }
        inner.seen.insert(key, now);
        inner.order.push_back((key, now));
        true
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
}
