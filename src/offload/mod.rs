//! Offloaded payloads: the resource data Graph keeps in the subscriber's blob storage when a
//! notification delivered through Azure Event Hubs would be larger than a hub message (1 MB).
//!
//! # The protocol, and the rules we chose where Microsoft's documents are silent
//!
//! From Graph's documentation ("Receive change notifications through Azure Event Hubs",
//! *Subscriptions for rich notifications with large payloads*): the subscription names a
//! `blobStoreUrl`, a Key Vault secret holding the connection string of a storage account. A
//! notification larger than 1 MB then arrives **without** `resource`, `resourceData` and
//! `encryptedContent`, and carries `additionalPayloadStorageId`, "an ID that points to the blob
//! in your storage account where these properties are stored".
//!
//! The documentation gives neither the container nor the blob's format. This crate's rules:
//!
//! - **Container**: [`DEFAULT_CONTAINER`], `microsoft-graph-change-notifications`. Graph is given
//!   only a connection string (which names no container), so the name must be Graph's own; it
//!   is the one deployments of this feature use. [`azure::AzureBlobStore::container`] changes it.
//! - **Blob name**: `additionalPayloadStorageId`, verbatim, as the blob's name in that container
//!   (at most [`MAX_BLOB_NAME_CHARS`] characters, Azure's limit; no empty path segment, no `.`
//!   or `..` segment, no backslash, no control character).
//! - **Blob content**: one JSON object (UTF-8) holding the omitted properties by their
//!   notification names: `encryptedContent` (required), `resource` and `resourceData`. Other
//!   members are ignored, so a blob holding the whole notification also works; nothing else is
//!   ever taken from the blob. `subscriptionId`, `tenantId`, `clientState` and the rest come from
//!   the hub's record, which the hub authenticated. A property both the record and the blob carry
//!   must be equal in both, or the item is refused.
//! - **Trust**: the encrypted content a blob holds is checked exactly as an inline one: the key
//!   choice, the HMAC signature before any decryption, the replay store. That proves it was
//!   made for this key, not that Graph made it: anyone holding the public certificate can make
//!   content that verifies, so write access to the container must be held as closely as write
//!   access to the hub. Whoever can write there can also delete or bloat a blob, and its item is
//!   then rejected (not found, too large), not retried. A blob holding a payload seen before is
//!   caught by the replay store, as an inline copy would be.
//! - **Budget**: at most `max_payload_bytes` (16 MiB by default) of offloaded payloads is read for
//!   one body, all its items together, one blob at a time: an item whose blob exceeds it alone is
//!   rejected ([`PayloadError::TooLarge`]), one whose blob exceeds what the items before it left
//!   is rejected ([`PayloadError::OverBudget`]) and the blob is not read whole.
//!
//! # The step
//!
//! Fetching is a pluggable [`PayloadStore`]. Give one to
//! [`ReceiverBuilder::payload_store`](crate::receiver::ReceiverBuilder::payload_store) and
//! [`Receiver::receive_trusted_transport`](crate::receiver::Receiver::receive_trusted_transport)
//! fetches each offloaded item's blob (after its cheap checks: `clientState`, the
//! subscription's binding) and verifies and decrypts it as any encrypted item. Without one, such
//! an item is [`Outcome::Offloaded`](crate::receiver::Outcome::Offloaded), with its id.
//! [`MemoryPayloadStore`] keeps blobs in memory (tests, fixtures); the feature `azure-blob` adds [`azure::AzureBlobStore`], for an Azure Storage account (or
//! Azurite, Microsoft's storage emulator).

use serde::Deserialize;
use serde_json::Value;

pub use crate::error::PayloadError;
use crate::error::{Error, Result};
use crate::model::{ChangeNotification, EncryptedContent};

#[cfg(feature = "azure-blob")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-blob")))]
pub mod azure;
mod memory;

pub use memory::MemoryPayloadStore;

/// The blob container Graph writes offloaded payloads to.
pub const DEFAULT_CONTAINER: &str = "microsoft-graph-change-notifications";

/// Azure's limit on a blob's name, in characters.
pub const MAX_BLOB_NAME_CHARS: usize = 1024;

/// The default limit on an offloaded payload's size: 16 MiB. Graph offloads what exceeds a
/// 1 MB hub message; the limit bounds the memory one item can take.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// Where offloaded payloads are read from: the subscriber's blob storage.
///
/// `fetch` blocks the calling thread until the blob is read (a receiver calls it from
/// [`Receiver::receive_trusted_transport`](crate::receiver::Receiver::receive_trusted_transport),
/// which is synchronous); from async code, call the receiver in `spawn_blocking`.
///
/// An implementation must return [`PayloadError::TooLarge`] rather than read more than
/// `max_bytes`, [`PayloadError::NotFound`] for a blob that does not exist, and
/// [`PayloadError::Unavailable`] for anything that may pass (the store out of reach, throttled,
/// refusing the credentials): the item is then not judged, and a consumer retries it.
///
/// [`MemoryPayloadStore`] is the in-process one; an implementation of your own follows the same
/// contract:
///
/// ```
/// use msgraph_notify::offload::{MemoryPayloadStore, PayloadError, PayloadStore};
///
/// /// A store that logs each read, over blobs kept in memory.
/// struct Logged(MemoryPayloadStore);
///
/// impl PayloadStore for Logged {
///     fn fetch(&self, storage_id: &str, max_bytes: usize) -> Result<Vec<u8>, PayloadError> {
///         println!("reading {storage_id} (at most {max_bytes} bytes)");
///         self.0.fetch(storage_id, max_bytes)
///     }
/// }
///
/// let store = Logged(MemoryPayloadStore::from_iter([("id-1", b"{}".to_vec())]));
/// assert_eq!(store.fetch("id-1", 10)?, b"{}");
/// assert!(matches!(store.fetch("id-1", 1), Err(PayloadError::TooLarge { limit: 1 })));
/// assert!(matches!(store.fetch("id-2", 10), Err(PayloadError::NotFound)));
/// # Ok::<(), PayloadError>(())
/// ```
pub trait PayloadStore: Send + Sync {
    /// The bytes of the blob named `storage_id` (an item's `additionalPayloadStorageId`), at
    /// most `max_bytes` of them.
    fn fetch(&self, storage_id: &str, max_bytes: usize) -> Result<Vec<u8>, PayloadError>;
}

/// Checks `storage_id` against the rules for a blob name (see the [module](self)).
///
/// ```
/// use msgraph_notify::offload::check_blob_name;
/// assert!(check_blob_name("2b8e0a51-3f39-4a7e-9d2d-55e5c4b2a0a1").is_ok());
/// assert!(check_blob_name("a/../b").is_err());
/// assert!(check_blob_name("").is_err());
/// ```
pub fn check_blob_name(storage_id: &str) -> Result<(), PayloadError> {
    let bad = |why: &str| Err(PayloadError::InvalidName(why.to_owned()));
    if storage_id.is_empty() {
        return bad("empty");
    }
    if storage_id.chars().count() > MAX_BLOB_NAME_CHARS {
        return bad("longer than 1,024 characters");
    }
    if storage_id.chars().any(char::is_control) {
        return bad("holds a control character");
    }
    if storage_id.contains('\\') {
        // Azure may read it as a `/`: no segment could then be checked.
        return bad("holds a backslash");
    }
    if storage_id
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return bad("an empty, `.` or `..` path segment");
    }
    Ok(())
}

/// The most bytes of JSON a blob's `resourceData` may take. Graph's `resourceData` names the
/// resource (`@odata.type`, `@odata.id`, `id`, at most a few more properties); kept as a JSON
/// tree, 16 MiB of tiny values would take many times their size.
pub const MAX_RESOURCE_DATA_BYTES: usize = 64 * 1024;

/// What an offloaded payload's blob holds (see the [module](self)).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    #[serde(default)]
    resource: Option<String>,
    /// Kept as text until its size is checked.
    #[serde(default, borrow)]
    resource_data: Option<&'a serde_json::value::RawValue>,
    #[serde(default, alias = "EncryptedContent")]
    encrypted_content: Option<EncryptedContent>,
}

/// The field name errors about a blob's content carry.
const BLOB_FIELD: &str = "additionalPayloadStorageId (the blob)";

/// The notification with the properties its blob holds filled in: `encryptedContent`,
/// `resource` and `resourceData` (see the [module](self) for the rules).
///
/// # Errors
///
/// [`Error::Malformed`] when the blob is not a JSON object of that shape, lacks
/// `encryptedContent`, or holds a property the notification already carries with another value.
///
/// ```
/// use msgraph_notify::ChangeNotification;
/// use msgraph_notify::offload::merge_payload;
///
/// let n: ChangeNotification = serde_json::from_str(
///     r#"{"subscriptionId":"s1","tenantId":"t1","additionalPayloadStorageId":"blob-1"}"#,
/// )?;
/// let blob = br#"{"resource":"chats('19:a')/messages('1')","encryptedContent":{
///     "data":"AA==","dataKey":"AA==","dataSignature":"AA==",
///     "encryptionCertificateId":"c1","encryptionCertificateThumbprint":"00"}}"#;
/// let merged = merge_payload(n, blob)?;
/// assert_eq!(merged.resource.as_deref(), Some("chats('19:a')/messages('1')"));
/// assert!(merged.encrypted_content.is_some());
/// assert!(merge_payload(merged.clone(), b"[1]").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn merge_payload(
    mut notification: ChangeNotification,
    blob: &[u8],
) -> Result<ChangeNotification> {
    let payload: Payload<'_> = serde_json::from_slice(blob).map_err(|e| {
        Error::malformed(
            BLOB_FIELD,
            format!("not a JSON object holding encryptedContent: {e}"),
        )
    })?;
    let Some(content) = payload.encrypted_content else {
        return Err(Error::malformed(
            format!("{BLOB_FIELD}.encryptedContent"),
            "missing",
        ));
    };
    if notification
        .encrypted_content
        .as_ref()
        .is_some_and(|inline| *inline != content)
    {
        return Err(conflict("encryptedContent"));
    }
    notification.encrypted_content = Some(content);
    fill(&mut notification.resource, payload.resource, "resource")?;
    let resource_data =
        match payload.resource_data {
            Some(raw) if raw.get().len() > MAX_RESOURCE_DATA_BYTES => {
                return Err(Error::malformed(
                    format!("{BLOB_FIELD}.resourceData"),
                    format!(
                        "over {MAX_RESOURCE_DATA_BYTES} bytes (Graph's resourceData names the \
                     resource: @odata.type, @odata.id, id)"
                    ),
                ));
            }
            Some(raw) => Some(serde_json::from_str::<Value>(raw.get()).map_err(|e| {
                Error::malformed(format!("{BLOB_FIELD}.resourceData"), e.to_string())
            })?),
            None => None,
        };
    fill(
        &mut notification.resource_data,
        resource_data,
        "resourceData",
    )?;
    Ok(notification)
}

/// Sets `slot` from the blob, refusing a value that differs from one the record carried.
fn fill<T: PartialEq>(
    slot: &mut Option<T>,
    from_blob: Option<T>,
    name: &'static str,
) -> Result<()> {
    match (slot.as_ref(), from_blob) {
        (Some(inline), Some(blob)) if *inline != blob => Err(conflict(name)),
        (None, Some(blob)) => {
            *slot = Some(blob);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn conflict(name: &'static str) -> Error {
    Error::malformed(
        name,
        "the notification and its offloaded payload (the blob) carry different values",
    )
}
