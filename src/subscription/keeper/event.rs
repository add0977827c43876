//! What the keeper did: one event per action, as a JSON line for logs and, for a resync, for the
//! output stream.

use serde_json::{Value, json};

use crate::error::KeeperError;

/// What the keeper did, for logs, metrics and (for [`KeeperEvent::Resync`]) the output stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KeeperEvent {
    /// A subscription was created for a desired entry.
    Created {
        /// The desired entry's key.
        key: String,
        /// The subscription.
        id: String,
        /// The expiry Graph granted.
        expiration: String,
    },
    /// A kept subscription was found alive at start.
    Adopted {
        /// The desired entry's key.
        key: String,
        /// The subscription.
        id: String,
        /// Its expiry.
        expiration: String,
    },
    /// A subscription was renewed.
    Renewed {
        /// The desired entry's key.
        key: String,
        /// The subscription.
        id: String,
        /// The new expiry Graph granted.
        expiration: String,
    },
    /// A subscription was reauthorized (a `reauthorizationRequired` answered).
    Reauthorized {
        /// The subscription.
        id: String,
    },
    /// A subscription was gone (`subscriptionRemoved`, or 404) and was created again.
    Recreated {
        /// The desired entry's key.
        key: String,
        /// The old subscription.
        old_id: String,
        /// The new one.
        id: String,
        /// Why: `subscriptionRemoved` or `not found`.
        reason: &'static str,
        /// The new one's expiry.
        expiration: String,
    },
    /// A new encryption certificate was patched onto a subscription.
    CertificateRotated {
        /// The desired entry's key.
        key: String,
        /// The subscription.
        id: String,
        /// The certificate id.
        certificate_id: String,
        /// Its expiry, as Graph answered the PATCH.
        expiration: String,
    },
    /// Graph missed notifications (`missed`): run the resource's delta query.
    Resync {
        /// The subscription.
        subscription_id: String,
        /// Its resource.
        resource: String,
    },
    /// A kept subscription that is no longer desired was let go: forgotten, not deleted (during
    /// a rolling deploy another replica's file may still want it); Graph ends it at its expiry.
    Released {
        /// The old entry's key.
        key: String,
        /// The subscription.
        id: String,
    },
    /// An action failed; a transient failure is tried again later.
    Failed {
        /// The desired entry's key.
        key: String,
        /// `create`, `renew`, `reauthorize`, `rotate`, `adopt` or `delete`.
        action: &'static str,
        /// Why.
        error: KeeperError,
    },
}

impl KeeperEvent {
    /// The event as one JSON line: `{"status":"resync","subscriptionId":…,"resource":…}` for a
    /// resync (the output stream's form), `{"keeper":"renewed",…}` for the others (logs).
    pub fn to_json(&self) -> Value {
        match self {
            KeeperEvent::Created {
                key,
                id,
                expiration,
            } => {
                json!({"keeper": "created", "key": key, "subscriptionId": id, "expirationDateTime": expiration})
            }
            KeeperEvent::Adopted {
                key,
                id,
                expiration,
            } => {
                json!({"keeper": "adopted", "key": key, "subscriptionId": id, "expirationDateTime": expiration})
            }
            KeeperEvent::Renewed {
                key,
                id,
                expiration,
            } => {
                json!({"keeper": "renewed", "key": key, "subscriptionId": id, "expirationDateTime": expiration})
            }
            KeeperEvent::Reauthorized { id } => {
                json!({"keeper": "reauthorized", "subscriptionId": id})
            }
            KeeperEvent::Recreated {
                key,
                old_id,
                id,
                reason,
                expiration,
            } => {
                json!({"keeper": "recreated", "key": key, "oldSubscriptionId": old_id, "subscriptionId": id, "reason": reason, "expirationDateTime": expiration})
            }
            KeeperEvent::CertificateRotated {
                key,
                id,
                certificate_id,
                expiration,
            } => {
                json!({"keeper": "certificateRotated", "key": key, "subscriptionId": id, "encryptionCertificateId": certificate_id, "expirationDateTime": expiration})
            }
            KeeperEvent::Resync {
                subscription_id,
                resource,
            } => {
                json!({"status": "resync", "subscriptionId": subscription_id, "resource": resource})
            }
            KeeperEvent::Released { key, id } => {
                json!({"keeper": "released", "key": key, "subscriptionId": id})
            }
            KeeperEvent::Failed { key, action, error } => json!({
                "keeper": "failed", "key": key, "action": action, "error": error.to_string(),
                "code": match error { KeeperError::Graph(e) => e.code(), _ => None },
                "transient": error.is_transient(),
            }),
        }
    }
}
