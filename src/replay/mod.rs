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

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use crate::error::ReplayStoreError;
use crate::model::{ChangeNotification, EncryptedContent};

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_memory;
#[cfg(feature = "redis")]
pub use self::redis::{DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, RedisReplayStore};
#[cfg(feature = "redis")]
pub use self::redis_memory::{RedisFault, ReplayMemory};

pub use memory::ReplayGuard;

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
