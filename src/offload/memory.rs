//! The in-process payload store: blobs kept in memory, by name.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use super::{PayloadError, PayloadStore};

/// A [`PayloadStore`] holding its blobs in memory, by name: for tests, fixtures, fuzzing, and a
/// process that receives offloaded payloads by some other way than blob storage.
///
/// Blobs can be added and removed while a receiver reads it (share it in an `Arc`). It keeps
/// the store's contract: [`PayloadError::NotFound`] for a name it does not hold,
/// [`PayloadError::TooLarge`] for a blob over the limit (nothing is copied then). `Debug` shows
/// how many blobs it holds, never their bytes.
///
/// ```
/// use std::sync::Arc;
/// use msgraph_notify::offload::{MemoryPayloadStore, PayloadError, PayloadStore};
///
/// let store = Arc::new(MemoryPayloadStore::new());
/// store.insert("id-1", b"{}".to_vec());
/// assert_eq!(store.fetch("id-1", 10)?, b"{}");
/// assert_eq!(store.fetch("id-1", 1), Err(PayloadError::TooLarge { limit: 1 }));
/// assert_eq!(store.fetch("id-2", 10), Err(PayloadError::NotFound));
/// // Given to a receiver as `Arc<dyn PayloadStore>`, and still filled from here:
/// let shared: Arc<dyn PayloadStore> = store.clone();
/// store.insert("id-2", b"[]".to_vec());
/// assert_eq!(shared.fetch("id-2", 10)?, b"[]");
/// # Ok::<(), PayloadError>(())
/// ```
#[derive(Default)]
pub struct MemoryPayloadStore {
    blobs: RwLock<HashMap<String, Vec<u8>>>,
}

impl MemoryPayloadStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `blob` under `storage_id` (an item's `additionalPayloadStorageId`), returning the
    /// blob it replaces, if any.
    pub fn insert(
        &self,
        storage_id: impl Into<String>,
        blob: impl Into<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        self.write().insert(storage_id.into(), blob.into())
    }

    /// Removes the blob named `storage_id`, returning it.
    pub fn remove(&self, storage_id: &str) -> Option<Vec<u8>> {
        self.write().remove(storage_id)
    }

    /// How many blobs the store holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no blob.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic while the lock was held cannot leave the map half-changed (each change is one
    // HashMap call), so a poisoned lock is used as it is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<u8>>> {
        self.blobs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<u8>>> {
        self.blobs.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Into<String>, V: Into<Vec<u8>>> FromIterator<(K, V)> for MemoryPayloadStore {
    /// A store holding these (name, blob) pairs.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        MemoryPayloadStore {
            blobs: RwLock::new(
                iter.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }
}

impl fmt::Debug for MemoryPayloadStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPayloadStore")
            .field("blobs", &self.len())
            .finish()
    }
}

impl PayloadStore for MemoryPayloadStore {
    fn fetch(&self, storage_id: &str, max_bytes: usize) -> Result<Vec<u8>, PayloadError> {
        let blobs = self.read();
        let blob = blobs.get(storage_id).ok_or(PayloadError::NotFound)?;
        if blob.len() > max_bytes {
            return Err(PayloadError::TooLarge { limit: max_bytes });
        }
        Ok(blob.clone())
    }
}
