//! The wire types Graph POSTs: a collection of change notifications and their encrypted content.
//!
//! Reading is tolerant: every property the documentation calls optional is an `Option`, unknown
//! properties are kept in `extra`, and enumerations are open. Checking is strict where it matters
//! (base64, lengths, UTF-8), at the point the values are used.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::open_enum::open_enum;

/// The body of one POST: `changeNotificationCollection`.
///
/// ```
/// use msgraph_notify::model::ChangeNotificationCollection;
/// let body = r#"{"value":[{"subscriptionId":"s","changeType":"updated","resource":"r"}]}"#;
/// let collection: ChangeNotificationCollection = serde_json::from_str(body).unwrap();
/// assert_eq!(collection.value.len(), 1);
/// assert!(collection.validation_tokens.is_none());
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotificationCollection {
    /// The notifications.
    pub value: Vec<ChangeNotification>,
    /// The validation tokens (JWTs), one per (app, tenant) in `value`; absent for basic notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_tokens: Option<Vec<String>>,
    /// Properties this crate does not model, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `changeNotification` (or lifecycle notification) inside a collection.
///
/// `Debug` shows every field but `clientState`, which it redacts: the secret must not reach a log
/// through a printed notification or outcome.
///
/// ```
/// use msgraph_notify::ChangeNotification;
/// let n: ChangeNotification =
///     serde_json::from_str(r#"{"subscriptionId":"s1","clientState":"hunter2"}"#)?;
/// let shown = format!("{n:?}");
/// assert!(shown.contains("s1") && !shown.contains("hunter2"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotification {
    /// The notification's id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subscription this notification belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// When the subscription expires (ISO 8601, kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_expiration_date_time: Option<String>,
    /// The tenant of the changed resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// What happened to the resource (change notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    /// What happened to the subscription (lifecycle notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<LifecycleEvent>,
    /// The secret given when the subscription was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
    /// The resource path, e.g. `communications/presences/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `@odata.type`, `@odata.id` and `id` of the changed resource (an open object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_data: Option<Value>,
    /// The encrypted resource, for notifications with resource data.
    #[serde(
        default,
        alias = "EncryptedContent",
        skip_serializing_if = "Option::is_none"
    )]
    pub encrypted_content: Option<EncryptedContent>,
    /// The organization (tenant) id some examples carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// Properties this crate does not model, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for ChangeNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotification")
            .field("id", &self.id)
            .field("subscription_id", &self.subscription_id)
            .field(
                "subscription_expiration_date_time",
                &self.subscription_expiration_date_time,
            )
            .field("tenant_id", &self.tenant_id)
            .field("change_type", &self.change_type)
            .field("lifecycle_event", &self.lifecycle_event)
            .field(
                "client_state",
                &self.client_state.as_ref().map(|_| "<redacted>"),
            )
            .field("resource", &self.resource)
            .field("resource_data", &self.resource_data)
            .field("encrypted_content", &self.encrypted_content)
            .field("organization_id", &self.organization_id)
            .field("extra", &self.extra)
            .finish()
    }
}

impl ChangeNotification {
    /// Whether this is a lifecycle notification (it carries `lifecycleEvent`).
    pub fn is_lifecycle(&self) -> bool {
        self.lifecycle_event.is_some()
    }
}

/// `encryptedContent`: the resource, encrypted for the subscriber's certificate.
///
/// `data`, `dataKey` and `dataSignature` are base64 (standard alphabet, padded). They are kept as
/// strings here and decoded once, strictly, when decrypting.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    /// The AES-CBC ciphertext, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The symmetric key wrapped with RSA-OAEP, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
    /// HMAC-SHA256 of the ciphertext, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_signature: Option<String>,
    /// The subscriber's own id for the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_id: Option<String>,
    /// SHA-1 of the certificate's DER, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_thumbprint: Option<String>,
    /// Properties this crate does not model, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for EncryptedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ciphertext and wrapped key are not secret, but they are long and useless in logs.
        f.debug_struct("EncryptedContent")
            .field(
                "data",
                &self
                    .data
                    .as_ref()
                    .map(|d| format!("<{} base64 chars>", d.len())),
            )
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field(
                "encryption_certificate_thumbprint",
                &self.encryption_certificate_thumbprint,
            )
            .finish_non_exhaustive()
    }
}

open_enum! {
    /// `changeType`: an open set (Event Hubs puts free text here).
    pub enum ChangeType {
        Created => "created",
        Updated => "updated",
        Deleted => "deleted",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `lifecycleEvent`: what happened to the subscription.
    pub enum LifecycleEvent {
        /// Reauthorize or renew the subscription.
        ReauthorizationRequired => "reauthorizationRequired",
        /// Recreate the subscription and resync.
        SubscriptionRemoved => "subscriptionRemoved",
        /// Notifications were missed: resync.
        Missed => "missed",
    }
}
