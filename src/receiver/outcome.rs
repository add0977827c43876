//! What a receiver hands back: one outcome per item.

use serde_json::Value;

use super::offloaded::ADDITIONAL_PAYLOAD;

use crate::decrypt::Plaintext;
use crate::error::Error;
use crate::model::{ChangeNotification, LifecycleEvent};
use crate::resource::Resource;
#[cfg(doc)]
use {
    super::{Receiver, ReceiverBuilder},
    crate::offload::PayloadStore,
};

/// What to answer and what arrived.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    /// The subscription handshake: answer `200`, `text/plain`, with exactly this body.
    Handshake(String),
    /// A notification POST (answer `202`): one outcome per item of `value`, in order.
    Notifications(Vec<Item>),
}

/// The outcome of one item of `value`.
#[derive(Debug)]
pub struct Item {
    /// The item's position in `value`.
    pub index: usize,
    /// What became of it.
    pub outcome: Outcome,
}

/// What became of one item.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Verified (token, clientState, signature) and decrypted.
    Decrypted(Box<DecryptedItem>),
    /// A change notification without resource data (nothing to verify beyond clientState).
    Basic(Box<ChangeNotification>),
    /// A lifecycle notification: renew, recreate or resync the subscription.
    Lifecycle(Box<LifecycleNotice>),
    /// Refused, with the reason. The notification is kept when it parsed.
    Rejected(Box<Rejected>),
    /// Event Hubs' reachability message, sent once when a subscription delivering to a hub is
    /// created (`subscriptionId` `"NA"`, `changeType` "Validation: Testing client application
    /// reachability for subscription Request-Id: …"). Nothing to act on; never a rejection.
    /// Recognised only by [`Receiver::receive_trusted_transport`]: through the webhook, where
    /// Graph never sends it, it is checked like any item (and fails the `clientState` check).
    Validation(Box<ValidationMessage>),
    /// A notification whose resource data was too large for the hub (over 1 MB): Graph stored it
    /// in the subscriber's blob storage under `additionalPayloadStorageId` and sent no
    /// `encryptedContent`. The item has passed the `clientState` check (and, through the webhook,
    /// which Graph never offloads to, the tokens' coverage as for an encrypted item). A receiver
    /// given a [`PayloadStore`] ([`ReceiverBuilder::payload_store`]) fetches the blob on a trusted
    /// transport and reports the item decrypted instead; this outcome is for a receiver without
    /// one, and for the webhook.
    Offloaded(Box<OffloadedItem>),
}

/// Event Hubs' validation message (see [`Outcome::Validation`]).
#[derive(Debug)]
pub struct ValidationMessage {
    /// The `Request-Id` named in `changeType`, when there is one.
    pub request_id: Option<String>,
    /// The whole item, as sent.
    pub notification: ChangeNotification,
}

/// A notification whose payload Graph kept in blob storage (see [`Outcome::Offloaded`]).
#[derive(Debug)]
pub struct OffloadedItem {
    /// `additionalPayloadStorageId`: the name of the blob holding the payload.
    pub storage_id: String,
    /// The notification (subscription, tenant, change type; no `resource`, no
    /// `encryptedContent`).
    pub notification: ChangeNotification,
}

/// A decrypted item: the notification's metadata and its typed resource.
#[derive(Debug)]
pub struct DecryptedItem {
    /// The notification (subscription, tenant, change type, resource path...).
    pub notification: ChangeNotification,
    /// The typed resource.
    pub resource: Resource,
    /// The verified plaintext, byte for byte.
    pub plaintext: Plaintext,
    /// `additionalPayloadStorageId`, for an item whose encrypted content was read from blob
    /// storage ([`ReceiverBuilder::payload_store`]); its `notification` is then the record's,
    /// with `resource` and `resourceData` from the blob and no `encryptedContent`.
    pub storage_id: Option<String>,
}

/// A lifecycle event with what the application needs to act on it.
#[derive(Debug)]
pub struct LifecycleNotice {
    /// `reauthorizationRequired`, `subscriptionRemoved`, `missed`, or an unknown value, kept.
    pub event: LifecycleEvent,
    /// The subscription concerned.
    pub subscription_id: Option<String>,
    /// Its tenant.
    pub tenant_id: Option<String>,
    /// When it expires (ISO 8601, as sent).
    pub subscription_expiration_date_time: Option<String>,
    /// The whole notification.
    pub notification: ChangeNotification,
}

/// A refused item.
#[derive(Debug)]
pub struct Rejected {
    /// Why.
    pub error: Error,
    /// The notification, when it parsed.
    pub notification: Option<ChangeNotification>,
}

impl Outcome {
    /// `decrypted`, `basic`, `lifecycle`, `rejected`, `validation` or `offloaded`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Decrypted(_) => "decrypted",
            Outcome::Basic(_) => "basic",
            Outcome::Lifecycle(_) => "lifecycle",
            Outcome::Rejected(_) => "rejected",
            Outcome::Validation(_) => "validation",
            Outcome::Offloaded(_) => "offloaded",
        }
    }

    /// Whether the item was refused.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Outcome::Rejected(_))
    }
}

impl Item {
    /// The item as one JSON object: `index`, `status`, the notification's `subscriptionId`,
    /// `tenantId`, `changeType`, `resource`; with `data` (the decrypted resource) when decrypted,
    /// `lifecycleEvent` for lifecycle items, `error` when rejected, `requestId` for Event Hubs'
    /// validation message, `additionalPayloadStorageId` for an offloaded item.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Receiver, Reply, dangerous};
    /// use msgraph_notify::{Decryptor, PrivateKey};
    ///
    /// let receiver = dangerous::skip_token_validation(Receiver::builder(Decryptor::with_key(
    ///     PrivateKey::generate(2048)?,
    ///     None,
    /// )?))
    /// .build()?;
    /// let body = br#"{"value":[
    ///     {"subscriptionId":"s1","tenantId":"t1","lifecycleEvent":"missed"},
    ///     {"subscriptionId":7}
    /// ]}"#;
    /// let Reply::Notifications(items) = receiver.receive(None, body)? else { unreachable!() };
    /// let lines: Vec<_> = items.iter().map(|item| item.to_json()).collect();
    /// assert_eq!(lines[0]["status"], "lifecycle");
    /// assert_eq!(lines[0]["lifecycleEvent"], "missed");
    /// assert_eq!(lines[0]["subscriptionId"], "s1");
    /// assert_eq!(lines[1]["status"], "rejected");
    /// assert!(lines[1]["error"].as_str().unwrap().contains("subscriptionId"));
    /// # Ok(()) }
    /// ```
    pub fn to_json(&self) -> Value {
        let mut line = Vec::new();
        self.write_line(&mut line, &[], false);
        // What `write_line` writes is JSON by construction.
        let mut out: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
        if let (Outcome::Decrypted(d), Some(object)) = (&self.outcome, out.as_object_mut()) {
            // Parsed on its own: its depth is the plaintext's, not one level more.
            let data = serde_json::from_slice(d.plaintext.as_bytes()).unwrap_or(Value::Null);
            object.insert("data".into(), data);
        }
        out
    }

    /// Appends the object of [`Item::to_json`] to `out` as one line of JSON (no line break),
    /// followed by `extra`'s fields (whose names must differ from the item's), without building
    /// a `Value`: the decrypted resource is copied as its verified bytes (on one line). This is
    /// how the command prints its lines, several times cheaper than `to_json` and printing.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Receiver, Reply, dangerous};
    /// use msgraph_notify::{Decryptor, PrivateKey};
    ///
    /// let receiver = dangerous::skip_token_validation(Receiver::builder(Decryptor::with_key(
    ///     PrivateKey::generate(2048)?,
    ///     None,
    /// )?))
    /// .build()?;
    /// let body = br#"{"value":[{"subscriptionId":"s1","lifecycleEvent":"missed"}]}"#;
    /// let Reply::Notifications(items) = receiver.receive(None, body)? else { unreachable!() };
    /// let mut out = Vec::new();
    /// items[0].write_json(&mut out, &[("line", &serde_json::json!(3))]);
    /// assert_eq!(
    ///     String::from_utf8(out)?,
    ///     r#"{"index":0,"status":"lifecycle","subscriptionId":"s1","lifecycleEvent":"missed","line":3}"#
    /// );
    /// # Ok(()) }
    /// ```
    pub fn write_json(&self, out: &mut Vec<u8>, extra: &[(&str, &Value)]) {
        self.write_line(out, extra, true);
    }

    /// [`Item::write_json`], with or without a decrypted item's `data`.
    fn write_line(&self, out: &mut Vec<u8>, extra: &[(&str, &Value)], data: bool) {
        use super::line::{field, meta, one_line};
        // Writing into a `Vec` cannot fail.
        let _ = std::io::Write::write_fmt(out, format_args!("{{\"index\":{}", self.index));
        field(out, "status", self.outcome.status());
        match &self.outcome {
            Outcome::Decrypted(d) => {
                meta(out, &d.notification);
                if let Some(id) = &d.storage_id {
                    field(out, ADDITIONAL_PAYLOAD, id);
                }
                field(out, "resourceKind", d.resource.kind());
                if data {
                    super::line::key(out, "data");
                    one_line(out, &d.plaintext);
                }
            }
            Outcome::Basic(n) => meta(out, n),
            Outcome::Lifecycle(l) => {
                meta(out, &l.notification);
                field(out, "lifecycleEvent", l.event.as_str());
                if let Some(e) = &l.subscription_expiration_date_time {
                    field(out, "subscriptionExpirationDateTime", e);
                }
            }
            Outcome::Rejected(r) => {
                if let Some(n) = &r.notification {
                    meta(out, n);
                }
                field(out, "error", &r.error.to_string());
            }
            Outcome::Validation(v) => {
                meta(out, &v.notification);
                if let Some(id) = &v.request_id {
                    field(out, "requestId", id);
                }
            }
            Outcome::Offloaded(o) => {
                meta(out, &o.notification);
                field(out, ADDITIONAL_PAYLOAD, &o.storage_id);
            }
        }
        super::line::fields(out, extra);
        out.push(b'}');
    }
}

/// What [`Receiver::screen`] hands on.
#[derive(Debug)]
pub struct Screened {
    /// The bytes to hand to the trusted transport: the body itself when every item passed, a
    /// collection of the items that passed otherwise, `None` when none did.
    pub body: Option<Vec<u8>>,
    /// How many items passed.
    pub admitted: usize,
    /// The outcomes of the items refused (all [`Outcome::Rejected`]), in order.
    pub refused: Vec<Item>,
}

pub(super) fn rejected(error: Error, notification: Option<ChangeNotification>) -> Outcome {
    Outcome::Rejected(Box::new(Rejected {
        error,
        notification,
    }))
}
