//! The subscriptions an application wants, as a JSON file of objects with Graph's own property
//! names. The certificate and the `clientState` are not in it: they come from the receiver's own
//! configuration (its keys and its clientState secret).

use std::time::Duration;

use serde::Deserialize;

use crate::error::KeeperError;

/// One desired subscription.
///
/// ```
/// use msgraph_notify::subscription::DesiredSubscription;
/// let desired = DesiredSubscription::from_json(r#"[
///   {"resource": "/chats/getAllMessages", "changeType": "created,updated",
///    "notificationUrl": "https://receiver.example/notify",
///    "lifecycleNotificationUrl": "https://receiver.example/lifecycle",
///    "includeResourceData": true, "encryptionCertificateId": "cert-2026"},
///   {"resource": "/communications/presences/4f3e8b2a",
///    "notificationUrl": "https://receiver.example/notify",
///    "encryptionCertificateId": "cert-2026", "expirationMinutes": 60}
/// ]"#)?;
/// assert_eq!(desired.len(), 2);
/// assert_eq!(desired[1].change_type, None); // every change type the resource supports
/// # Ok::<(), msgraph_notify::subscription::KeeperError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DesiredSubscription {
    /// The resource path (`/communications/presences/{id}`, `/chats/getAllMessages`, …).
    pub resource: String,
    /// `created`, `updated`, `deleted`, comma-separated; default: all the resource supports.
    #[serde(default)]
    pub change_type: Option<String>,
    /// Where Graph delivers.
    pub notification_url: String,
    /// Where lifecycle notifications go (required by Teams resources for lifetimes over 1 hour).
    #[serde(default)]
    pub lifecycle_notification_url: Option<String>,
    /// Must be `true` (the default): this crate keeps subscriptions with resource data.
    #[serde(default = "yes")]
    pub include_resource_data: bool,
    /// The id of the receiver's certificate that Graph encrypts for.
    pub encryption_certificate_id: String,
    /// The lifetime asked for at each create and renewal, in minutes; default: the resource's
    /// longest. Graph may grant less; the keeper schedules from what Graph granted.
    #[serde(default)]
    pub expiration_minutes: Option<u64>,
}

fn yes() -> bool {
    true
}

impl DesiredSubscription {
    /// Reads a JSON array of desired subscriptions (or `{"subscriptions": [...]}`).
    ///
    /// # Errors
    ///
    /// [`KeeperError::Desired`] naming the entry and what is wrong: not JSON, an unknown
    /// property, `includeResourceData: false`, two entries with the same key.
    pub fn from_json(text: &str) -> Result<Vec<Self>, KeeperError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum File {
            List(Vec<DesiredSubscription>),
            Object {
                subscriptions: Vec<DesiredSubscription>,
            },
        }
        let list = match serde_json::from_str::<File>(text) {
            Ok(
                File::List(list)
                | File::Object {
                    subscriptions: list,
                },
            ) => list,
            Err(_) => {
                // Parse again as a plain list for serde's precise message.
                serde_json::from_str::<Vec<DesiredSubscription>>(text).map_err(|e| {
                    KeeperError::Desired(format!(
                        "{e}: expected a JSON array of objects with resource, notificationUrl, \
                         encryptionCertificateId (and optionally changeType, \
                         lifecycleNotificationUrl, includeResourceData, expirationMinutes)"
                    ))
                })?
            }
        };
        let mut keys = std::collections::BTreeSet::new();
        for (i, entry) in list.iter().enumerate() {
            if !entry.include_resource_data {
                return Err(KeeperError::Desired(format!(
                    "entry {i} ({}) has includeResourceData false: keep subscriptions without \
                     resource data with another tool",
                    entry.resource
                )));
            }
            if !keys.insert(entry.key()) {
                return Err(KeeperError::Desired(format!(
                    "entry {i} repeats {}: each subscription once",
                    entry.key()
                )));
            }
        }
        Ok(list)
    }

    /// What names the entry in the keeper's state: `changeType resource -> notificationUrl`,
    /// and `(lifecycle URL)` when there is one. A change of any of these is another
    /// subscription (Graph cannot add a lifecycle URL by PATCH): the old one is released and a
    /// new one created.
    pub fn key(&self) -> String {
        let mut key = format!(
            "{} {} -> {}",
            self.change_type.as_deref().unwrap_or("*"),
            self.resource,
            self.notification_url
        );
        if let Some(lifecycle) = &self.lifecycle_notification_url {
            key.push_str(&format!(" (lifecycle {lifecycle})"));
        }
        key
    }

    /// The lifetime asked for, if set.
    pub fn lifetime(&self) -> Option<Duration> {
        self.expiration_minutes
            .map(|m| Duration::from_secs(m.saturating_mul(60)))
    }
}
