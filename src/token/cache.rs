//! A bounded cache of validated tokens, so a token that comes back in many POSTs costs a lookup.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::ValidatedToken;

/// Validated tokens by their exact text, each until its `exp` (plus the leeway). Bounded: when full,
/// expired entries go first, then the oldest.
///
/// ```
/// use msgraph_notify::token::TokenCache;
/// let cache = TokenCache::new(1000);
/// assert!(cache.get("a.b.c", 0).is_none());
/// ```
#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Token → (what it proved, the sequence number of its entry in `order`).
    map: HashMap<String, (ValidatedToken, u64)>,
    /// Insertion order; an entry whose token was dropped from `map` since (expired on lookup) is
    /// stale, and never outlives the next compaction. `order.len() <= capacity` always, so the
    /// cache holds at most `capacity` tokens however they come and go.
    order: VecDeque<(String, u64)>,
    next: u64,
}

impl Inner {
    fn is_live(&self, (token, seq): &(String, u64)) -> bool {
        self.map.get(token).is_some_and(|(_, s)| s == seq)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The validated token for `token`, if cached and still within `exp + leeway_secs`.
    pub fn get(&self, token: &str, leeway_secs: u64) -> Option<ValidatedToken> {
        let now = super::now_unix();
        let mut inner = self.lock();
        let (hit, _) = inner.map.get(token)?;
        if hit.expires_at.saturating_add(leeway_secs) > now {
            return Some(hit.clone());
        }
        // Expired: its `order` entry is now stale, and goes at the next compaction.
        inner.map.remove(token);
        None
    }

    /// Remembers a validated token.
    pub fn insert(&self, token: &str, valid: ValidatedToken) {
        if self.capacity == 0 {
            return;
        }
        let now = super::now_unix();
        let mut inner = self.lock();
        if let Some(entry) = inner.map.get_mut(token) {
            entry.0 = valid;
            return;
        }
        if inner.order.len() >= self.capacity {
            // Drop expired tokens and stale entries before evicting a live one.
            let Inner { map, order, .. } = &mut *inner;
            map.retain(|_, (v, _)| v.expires_at > now);
            order.retain(|(t, seq)| map.get(t).is_some_and(|(_, s)| s == seq));
        }
        while inner.order.len() >= self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if inner.is_live(&oldest) {
                inner.map.remove(&oldest.0);
            }
        }
        let seq = inner.next;
        inner.next = inner.next.wrapping_add(1);
        inner.order.push_back((token.to_owned(), seq));
        inner.map.insert(token.to_owned(), (valid, seq));
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries held for eviction order, live or stale: never more than the capacity. (Memory is
    /// this many tokens' text plus their claims.)
    pub fn slots_used(&self) -> usize {
        self.lock().order.len()
    }
}
