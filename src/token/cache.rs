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
    map: HashMap<String, ValidatedToken>,
    order: VecDeque<String>,
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
        let hit = inner.map.get(token)?;
        if hit.expires_at.saturating_add(leeway_secs) > now {
            return Some(hit.clone());
        }
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
        if inner.map.contains_key(token) {
            inner.map.insert(token.to_owned(), valid);
            return;
        }
        if inner.map.len() >= self.capacity {
            inner.map.retain(|_, v| v.expires_at > now);
            let Inner { map, order } = &mut *inner;
            order.retain(|k| map.contains_key(k));
        }
        while inner.map.len() >= self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.map.remove(&oldest);
        }
        inner.order.push_back(token.to_owned());
        inner.map.insert(token.to_owned(), valid);
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
