//! `consume`'s view of the replay store: items are checked before they are decrypted and
//! recorded only once their lines are flushed, so that a crash in between loses nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use msgraph_notify::replay::{Fingerprint, ReplayStore, ReplayStoreError};

/// A check-only view of the replay store for the receiver: an item is looked up before it is
/// decrypted, and recorded only once its line is flushed ([`Deferred::record`]). A crash between
/// the two loses nothing: the record is read again and the item, never recorded, decrypted.
/// Two members decrypting the same item at the same moment (two records holding it) can both
/// print it; a redelivery, which comes after, cannot.
#[derive(Debug)]
pub struct Deferred {
    inner: Arc<dyn ReplayStore>,
    /// Fingerprints of items decrypted but not yet flushed and recorded.
    pending: Mutex<Pending>,
}

/// The pending fingerprints in arrival order, with a set for membership (records may carry
/// thousands of items: no scan per item).
#[derive(Debug, Default)]
pub struct Pending {
    order: Vec<Fingerprint>,
    set: HashSet<Fingerprint>,
}

impl Pending {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.set.contains(fingerprint)
    }

    fn push(&mut self, fingerprint: Fingerprint) {
        if self.set.insert(fingerprint) {
            self.order.push(fingerprint);
        }
    }

    /// Forgets everything pushed after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        for fingerprint in self.order.drain(len.min(self.order.len())..) {
            self.set.remove(&fingerprint);
        }
    }

    fn remove(&mut self, fingerprint: &Fingerprint) {
        if self.set.remove(fingerprint) {
            self.order.retain(|fp| fp != fingerprint);
        }
    }
}

impl Deferred {
    pub fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records every pending fingerprint in the store (their lines are flushed), in one round
    /// trip where the store allows; kept pending if the store cannot answer.
    pub fn record(&self) -> Result<(), ReplayStoreError> {
        let pending = self.pending().order.clone();
        self.inner.insert_all(&pending)?;
        let mut now = self.pending();
        // Items pushed meanwhile stay; those recorded go.
        let recorded: HashSet<Fingerprint> = pending.into_iter().collect();
        now.order.retain(|fp| !recorded.contains(fp));
        now.set.retain(|fp| !recorded.contains(fp));
        Ok(())
    }
}

impl ReplayStore for Deferred {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        if self.pending().contains(fingerprint) {
            return Ok(false);
        }
        if self.inner.contains(fingerprint)? {
            return Ok(false);
        }
        let mut pending = self.pending();
        if pending.contains(fingerprint) {
            return Ok(false);
        }
        pending.push(*fingerprint);
        Ok(true)
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        self.pending().remove(fingerprint);
    }

    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        Ok(self.pending().contains(fingerprint) || self.inner.contains(fingerprint)?)
    }
}

impl Deferred {
    /// A deferred view of `inner`, with nothing pending.
    pub fn new(inner: Arc<dyn ReplayStore>) -> Self {
        Deferred {
            inner,
            pending: Mutex::new(Pending::default()),
        }
    }
}
