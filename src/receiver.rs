//! One POST in, one outcome per item out: the validation handshake, `clientState`, validation
//! tokens, lifecycle events, and decryption.
//!
//! Checks run cheapest first: the size limit, the JSON, `clientState`, tokens (from the cache when
//! seen before), the key choice and field decoding; the RSA unwrap of each item comes last, so a
//! flood of forged POSTs costs no RSA private-key operation. One bad item never sinks the others.
//! The receiver knows nothing of HTTP: give it the query string and the body bytes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::decrypt::{Decrypted, Decryptor, Plaintext, Prepared, encrypted_content};
use crate::error::{Error, Result};
use crate::model::{ChangeNotification, LifecycleEvent};
use crate::offload::{DEFAULT_MAX_PAYLOAD_BYTES, PayloadStore, check_blob_name, merge_payload};
use crate::replay::{Fingerprint, ReplayGuard, ReplayStore};
use crate::resource::Resource;
use crate::token::{
    SigningKeys, TokenCache, TokenError, TokenValidator, ValidatedToken, Validation, id_key,
    ids_equal,
};

/// The default body size limit: 1 MiB (a Teams message is about 28 KB at most).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

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
        let mut out = json!({"index": self.index, "status": self.outcome.status()});
        let meta = |out: &mut Value, n: &ChangeNotification| {
            for (key, value) in [
                ("subscriptionId", n.subscription_id.as_deref()),
                ("tenantId", n.tenant_id.as_deref()),
                ("changeType", n.change_type.as_ref().map(|c| c.as_str())),
                ("resource", n.resource.as_deref()),
            ] {
                if let Some(v) = value {
                    out[key] = Value::String(v.to_owned());
                }
            }
        };
        match &self.outcome {
            Outcome::Decrypted(d) => {
                meta(&mut out, &d.notification);
                if let Some(id) = &d.storage_id {
                    out[ADDITIONAL_PAYLOAD] = id.as_str().into();
                }
                out["resourceKind"] = d.resource.kind().into();
                out["data"] = serde_json::from_slice(d.plaintext.as_bytes()).unwrap_or(Value::Null);
            }
            Outcome::Basic(n) => meta(&mut out, n),
            Outcome::Lifecycle(l) => {
                meta(&mut out, &l.notification);
                out["lifecycleEvent"] = l.event.as_str().into();
                if let Some(e) = &l.subscription_expiration_date_time {
                    out["subscriptionExpirationDateTime"] = e.as_str().into();
                }
            }
            Outcome::Rejected(r) => {
                if let Some(n) = &r.notification {
                    meta(&mut out, n);
                }
                out["error"] = r.error.to_string().into();
            }
            Outcome::Validation(v) => {
                meta(&mut out, &v.notification);
                if let Some(id) = &v.request_id {
                    out["requestId"] = id.as_str().into();
                }
            }
            Outcome::Offloaded(o) => {
                meta(&mut out, &o.notification);
                out["additionalPayloadStorageId"] = o.storage_id.as_str().into();
            }
        }
        out
    }
}

/// Builds a [`Receiver`].
#[must_use]
pub struct ReceiverBuilder {
    decryptor: Decryptor,
    validation: Option<Validation>,
    keys: SigningKeys,
    skip_tokens: bool,
    client_states: Vec<Zeroizing<Vec<u8>>>,
    max_body_bytes: usize,
    parallel: bool,
    token_cache_capacity: usize,
    max_tokens: usize,
    max_items: usize,
    replay: Option<Arc<dyn ReplayStore>>,
    subscription_apps: Vec<(String, String)>,
    only_bound: bool,
    transport_only: bool,
    payload_store: Option<Arc<dyn PayloadStore>>,
    max_payload_bytes: usize,
}

/// The default limit on items per body.
pub const DEFAULT_MAX_ITEMS: usize = 1000;

/// The default limit on validation tokens per body (Graph sends one per app and tenant).
pub const DEFAULT_MAX_VALIDATION_TOKENS: usize = 100;

impl ReceiverBuilder {
    /// Token rules (the receiving app ids, tenants, leeway). Required, unless token checks are
    /// skipped with [`dangerous::skip_token_validation`].
    pub fn validation(mut self, validation: Validation) -> Self {
        self.validation = Some(validation);
        self
    }

    /// The identity platform's signing keys (from a JWKS file, or kept fresh by
    /// [`fetch`](crate::token)).
    pub fn signing_keys(mut self, keys: SigningKeys) -> Self {
        self.keys = keys;
        self
    }

    /// A `clientState` secret. Call again to accept several (rotation). When any is configured,
    /// every item must carry one of them; compared in constant time.
    pub fn client_state(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.client_states
            .push(Zeroizing::new(secret.as_ref().to_vec()));
        self
    }

    /// The largest body accepted, in bytes. Default: [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Decrypt the items of one POST in parallel (rayon). Default: off.
    pub fn parallel(mut self, on: bool) -> Self {
        self.parallel = on;
        self
    }

    /// How many validated tokens to remember. Default: 1024.
    pub fn token_cache_capacity(mut self, capacity: usize) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// The most validation tokens one body may carry. Graph sends one per (app, tenant) in the
    /// body; a body with more is refused whole ([`Error::TooMany`]) while it is parsed, so a body
    /// stuffed with tokens buys neither signature checks nor memory. Default:
    /// [`DEFAULT_MAX_VALIDATION_TOKENS`].
    pub fn max_validation_tokens(mut self, limit: usize) -> Self {
        self.max_tokens = limit;
        self
    }

    /// The most items (`value` elements) one body may carry. A body with more is refused whole
    /// ([`Error::TooMany`]) while it is parsed, before any per-item work: a 1 MiB body of
    /// half a million tiny elements costs one aborted parse, not half a million outcomes, and a
    /// captured token cannot buy unlimited RSA unwraps. Default: [`DEFAULT_MAX_ITEMS`]; raise it
    /// to open a large trusted capture.
    pub fn max_items(mut self, limit: usize) -> Self {
        self.max_items = limit;
        self
    }

    /// Report items already accepted as duplicates (replays, or Graph's retries), remembered in
    /// the in-process [`ReplayGuard`]. Default: off in the library (a service receiving from
    /// Graph should turn it on; `msgraph-notify serve` does). See [`crate::replay`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use msgraph_notify::receiver::{Outcome, Receiver, Reply};
    /// use msgraph_notify::replay::ReplayGuard;
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
    /// use msgraph_notify::token::{TokenVersion, Validation};
    /// use msgraph_notify::{Certificate, Decryptor, Error, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let issuer = TokenIssuer::new()?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["my-app"]))
    ///     .signing_keys(issuer.signing_keys())
    ///     // Remember up to 100,000 items for a day: longer than a token lives.
    ///     .replay_guard(ReplayGuard::new(100_000, Duration::from_secs(24 * 3600)))
    ///     .build()?;
    /// let spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// let body = serde_json::json!({
    ///     "value": [item],
    ///     "validationTokens": [issuer.token(TokenVersion::V2, "my-app", "tenant-1")],
    /// })
    /// .to_string();
    /// let outcome = |reply: Reply| match reply {
    ///     Reply::Notifications(mut items) => items.remove(0).outcome,
    ///     _ => unreachable!(),
    /// };
    /// assert!(matches!(outcome(receiver.receive(None, body.as_bytes())?), Outcome::Decrypted(_)));
    /// // The same POST again (a replay, or Graph retrying): reported, not processed twice.
    /// let Outcome::Rejected(again) = outcome(receiver.receive(None, body.as_bytes())?) else {
    ///     panic!("accepted twice")
    /// };
    /// assert!(matches!(again.error, Error::Duplicate));
    /// # Ok(()) }
    /// ```
    pub fn replay_guard(mut self, guard: ReplayGuard) -> Self {
        self.replay = Some(Arc::new(guard));
        self
    }

    /// Report duplicates using any [`ReplayStore`], e.g. one shared by several replicas. The
    /// same rules as [`ReceiverBuilder::replay_guard`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use msgraph_notify::receiver::{Receiver, dangerous};
    /// use msgraph_notify::replay::{ReplayGuard, ReplayStore};
    /// use msgraph_notify::{Decryptor, PrivateKey};
    /// // One store shared by two receivers (say, two listeners of one process).
    /// let store: Arc<dyn ReplayStore> = Arc::new(ReplayGuard::default());
    /// let decryptor = || Decryptor::with_key(PrivateKey::generate(2048)?, None);
    /// let a = dangerous::skip_token_validation(Receiver::builder(decryptor()?))
    ///     .replay_store(Arc::clone(&store))
    ///     .build()?;
    /// let b = dangerous::skip_token_validation(Receiver::builder(decryptor()?))
    ///     .replay_store(store)
    ///     .build()?;
    /// # let _ = (a, b);
    /// # Ok(()) }
    /// ```
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(store);
        self
    }

    /// Binds a subscription to the app that created it: its encrypted items then need a valid
    /// token issued to that app (`aud`) for their tenant, not merely one for their tenant.
    ///
    /// Graph sends one token per (app, tenant) in a body, but an item does not name its app, so
    /// without this a token of any configured app covers every item of its tenant: enough when
    /// one app receives on the endpoint, and what the protocol allows at all when several do
    /// and their subscriptions are unknown. Call once per subscription; the app must be one of
    /// [`Validation::new`]'s app ids, and a subscription bound to two apps is a build error.
    /// Subscription ids are compared ignoring ASCII case (they are GUIDs). Items of subscriptions
    /// not bound are still covered by any app's token for their tenant, unless
    /// [`ReceiverBuilder::only_bound_subscriptions`] is set.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Outcome, Receiver, Reply};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
    /// use msgraph_notify::token::{TokenError, TokenVersion, Validation};
    /// use msgraph_notify::{Certificate, Decryptor, Error, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let issuer = TokenIssuer::new()?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["app-a", "app-b"]))
    ///     .signing_keys(issuer.signing_keys())
    ///     .subscription_app("sub-of-a", "app-a")
    ///     .build()?;
    ///
    /// let mut spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// spec.subscription_id = "sub-of-a".into();
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// // A genuine token, but of the other app:
    /// let body = serde_json::json!({
    ///     "value": [item],
    ///     "validationTokens": [issuer.token(TokenVersion::V2, "app-b", "tenant-1")],
    /// });
    /// let Reply::Notifications(items) = receiver.receive(None, body.to_string().as_bytes())? else {
    ///     unreachable!()
    /// };
    /// let Outcome::Rejected(r) = &items[0].outcome else { panic!("accepted") };
    /// assert!(matches!(r.error, Error::Token(TokenError::AppNotCovered { .. })));
    /// # Ok(()) }
    /// ```
    pub fn subscription_app(
        mut self,
        subscription_id: impl Into<String>,
        app_id: impl Into<String>,
    ) -> Self {
        self.subscription_apps
            .push((subscription_id.into(), app_id.into()));
        self
    }

    /// Builds a receiver for trusted transports only ([`Receiver::receive_trusted_transport`]:
    /// Event Hubs, or the topic `msgraph-notify serve --forward` writes), which needs no token
    /// rules: [`ReceiverBuilder::validation`] becomes optional. Given none, webhook bodies through
    /// [`Receiver::receive`] still get "no token, no trust": every encrypted item is rejected
    /// ([`TokenError::Missing`]). Bindings ([`ReceiverBuilder::subscription_app`]) then serve only
    /// as the allow-list of [`ReceiverBuilder::only_bound_subscriptions`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Receiver, Reply};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .trusted_transport_only()
    ///     .build()?;
    /// let spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// let body = serde_json::json!({ "value": [item] }).to_string();
    /// assert_eq!(receiver.receive_trusted_transport(body.as_bytes())?[0].outcome.status(), "decrypted");
    /// let Reply::Notifications(posted) = receiver.receive(None, body.as_bytes())? else { unreachable!() };
    /// assert_eq!(posted[0].outcome.status(), "rejected");
    /// # Ok(()) }
    /// ```
    pub fn trusted_transport_only(mut self) -> Self {
        self.transport_only = true;
        self
    }

    /// Rejects every encrypted item whose subscription was not bound with
    /// [`ReceiverBuilder::subscription_app`] (`TokenError::UnboundSubscription`). With several
    /// apps on one endpoint this closes the gap the binding leaves: a forger holding a captured
    /// token of one app cannot cover items by naming a subscription id the receiver does not
    /// know. Needs at least one binding.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Outcome, Receiver, Reply};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
    /// use msgraph_notify::token::{TokenError, TokenVersion, Validation};
    /// use msgraph_notify::{Certificate, Decryptor, Error, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let issuer = TokenIssuer::new()?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["app-a"]))
    ///     .signing_keys(issuer.signing_keys())
    ///     .subscription_app("sub-of-a", "app-a")
    ///     .only_bound_subscriptions()
    ///     .build()?;
    /// let mut spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// spec.subscription_id = "invented".into();
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// let body = serde_json::json!({
    ///     "value": [item],
    ///     "validationTokens": [issuer.token(TokenVersion::V2, "app-a", "tenant-1")],
    /// });
    /// let Reply::Notifications(items) = receiver.receive(None, body.to_string().as_bytes())? else {
    ///     unreachable!()
    /// };
    /// let Outcome::Rejected(r) = &items[0].outcome else { panic!("accepted") };
    /// assert!(matches!(r.error, Error::Token(TokenError::UnboundSubscription(_))));
    /// # Ok(()) }
    /// ```
    pub fn only_bound_subscriptions(mut self) -> Self {
        self.only_bound = true;
        self
    }

    /// Fetch offloaded payloads from `store`: an item of a trusted transport that carries
    /// `additionalPayloadStorageId` instead of `encryptedContent` (Graph's Event Hubs delivery
    /// of a notification over 1 MB) has its blob read, after its cheap checks (`clientState`,
    /// the subscription's binding), and is then verified and decrypted as any encrypted item:
    /// [`Outcome::Decrypted`], or [`Outcome::Rejected`] with [`Error::Payload`] when the blob
    /// cannot be read (transient or not, see
    /// [`PayloadError::is_transient`](crate::offload::PayloadError::is_transient)) or with the
    /// usual errors when its content is refused. Without a store such an item is
    /// [`Outcome::Offloaded`]. Webhook bodies are never fetched for: Graph offloads only on
    /// Event Hubs. The blob's layout is in [`crate::offload`].
    ///
    /// A transient failure leaves its item unjudged, but the other items of the same body are
    /// decrypted and, with a replay store, recorded: retrying the whole body then reports them
    /// as duplicates. Keep their outcomes, or record in the store only what was handled, as
    /// `msgraph-notify consume` does.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::collections::HashMap;
    /// use std::sync::Arc;
    /// use msgraph_notify::offload::{PayloadError, PayloadStore};
    /// use msgraph_notify::receiver::{Outcome, Receiver};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    ///
    /// struct Blobs(HashMap<String, Vec<u8>>);
    /// impl PayloadStore for Blobs {
    ///     fn fetch(&self, id: &str, max: usize) -> Result<Vec<u8>, PayloadError> {
    ///         let blob = self.0.get(id).ok_or(PayloadError::NotFound)?;
    ///         if blob.len() > max {
    ///             return Err(PayloadError::TooLarge { limit: max });
    ///         }
    ///         Ok(blob.clone())
    ///     }
    /// }
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let spec = NotificationSpec::new("tenant-1", "chats('19:a')/messages('1')");
    /// let mut item = GraphEncryptor::new(&cert, "cert-1")
    ///     .notification(&serde_json::json!({"body": {"content": "big"}}), &spec)?;
    /// // What Graph sends through the hub for a notification over 1 MB, and what it stores:
    /// let blob = serde_json::json!({
    ///     "resource": item.resource.take(),
    ///     "resourceData": item.resource_data.take(),
    ///     "encryptedContent": item.encrypted_content.take(),
    /// });
    /// item.extra.insert("additionalPayloadStorageId".into(), "blob-1".into());
    /// let store = Blobs(HashMap::from([("blob-1".to_owned(), blob.to_string().into_bytes())]));
    ///
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert))?)
    ///     .trusted_transport_only()
    ///     .payload_store(Arc::new(store))
    ///     .build()?;
    /// let record = serde_json::json!({"value": [item]}).to_string();
    /// let items = receiver.receive_trusted_transport(record.as_bytes())?;
    /// let Outcome::Decrypted(d) = &items[0].outcome else { panic!("{:?}", items[0].outcome) };
    /// assert_eq!(d.notification.resource.as_deref(), Some("chats('19:a')/messages('1')"));
    /// assert_eq!(items[0].to_json()["additionalPayloadStorageId"], "blob-1");
    /// # Ok(()) }
    /// ```
    pub fn payload_store(mut self, store: Arc<dyn PayloadStore>) -> Self {
        self.payload_store = Some(store);
        self
    }

    /// The most bytes of offloaded payloads read for one body, all its items together (one blob
    /// at a time): an item whose blob is larger than what is left is rejected
    /// ([`PayloadError::TooLarge`](crate::offload::PayloadError::TooLarge)) without being read
    /// whole. With the body limit, this bounds what one body can make the receiver hold.
    /// Default: [`DEFAULT_MAX_PAYLOAD_BYTES`] (16 MiB).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::Receiver;
    /// use msgraph_notify::{Decryptor, PrivateKey};
    /// let receiver = Receiver::builder(Decryptor::with_key(PrivateKey::generate(2048)?, None)?)
    ///     .trusted_transport_only()
    ///     .max_payload_bytes(64 << 20) // 64 MiB of blobs per record
    ///     .build()?;
    /// # let _ = receiver;
    /// # Ok(()) }
    /// ```
    pub fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// The receiver.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for a configuration that would weaken a check: no validation and
    /// tokens not skipped, no app id, an empty (or blank) app id, tenant id or `clientState`
    /// secret (an empty app id would match a token with no audience), a subscription bound to an
    /// app that is not a receiving app or to two apps, or bindings while tokens are skipped.
    pub fn build(self) -> Result<Receiver> {
        if self.client_states.iter().any(|s| s.trim_ascii().is_empty()) {
            return Err(Error::malformed(
                "client_state",
                "an empty clientState secret would accept items that carry none",
            ));
        }
        if self
            .subscription_apps
            .iter()
            .any(|(sub, app)| sub.trim().is_empty() || app.trim().is_empty())
        {
            return Err(Error::malformed(
                "subscription_app",
                "a subscription id and an app id may not be empty",
            ));
        }
        let tokens = match (self.validation, self.skip_tokens) {
            (_, true) => None,
            (None, false) if self.transport_only => None,
            (Some(v), false) => {
                if v.app_ids.is_empty() {
                    return Err(Error::malformed(
                        "validation.app_ids",
                        "at least one receiving app id is needed to check validation tokens",
                    ));
                }
                if v.app_ids.iter().any(|a| a.trim().is_empty()) {
                    return Err(Error::malformed(
                        "validation.app_ids",
                        "an empty app id would accept tokens without an audience",
                    ));
                }
                if v.tenants
                    .as_ref()
                    .is_some_and(|t| t.is_empty() || t.iter().any(|t| t.trim().is_empty()))
                {
                    return Err(Error::malformed(
                        "validation.tenants",
                        "the tenant allow-list may not be empty or hold an empty tenant id",
                    ));
                }
                if let Some((sub, app)) = self
                    .subscription_apps
                    .iter()
                    .find(|(_, app)| !v.app_ids.iter().any(|a| ids_equal(a, app)))
                {
                    return Err(Error::malformed(
                        "subscription_app",
                        format!(
                            "subscription {sub:?} is bound to app {app:?}, which is not one of \
                             the receiving app ids: no token could ever cover its items"
                        ),
                    ));
                }
                Some(TokenValidator::new(v, self.keys))
            }
            (None, false) => {
                return Err(Error::malformed(
                    "validation",
                    "token validation needs the receiving app ids (ReceiverBuilder::validation)",
                ));
            }
        };
        if self.only_bound && self.subscription_apps.is_empty() {
            return Err(Error::malformed(
                "only_bound_subscriptions",
                "no subscription is bound to an app: every encrypted item would be rejected",
            ));
        }
        if tokens.is_none()
            && !self.transport_only
            && (!self.subscription_apps.is_empty() || self.only_bound)
        {
            return Err(Error::malformed(
                "subscription_app",
                "subscriptions are bound to apps through validation tokens, which are skipped",
            ));
        }
        let tokens_none = tokens.is_none();
        let mut subscription_apps: HashMap<String, String> = HashMap::new();
        for (sub, app) in self.subscription_apps {
            let sub = sub.to_ascii_lowercase();
            match subscription_apps.get(&sub) {
                Some(bound) if !ids_equal(bound, &app) => {
                    return Err(Error::malformed(
                        "subscription_app",
                        format!("subscription {sub:?} is bound to both {bound:?} and {app:?}"),
                    ));
                }
                _ => {
                    subscription_apps.insert(sub, app);
                }
            }
        }
        Ok(Receiver {
            decryptor: self.decryptor,
            tokens,
            cache: TokenCache::new(self.token_cache_capacity),
            client_states: self.client_states,
            max_body_bytes: self.max_body_bytes,
            parallel: self.parallel,
            max_tokens: self.max_tokens,
            max_items: self.max_items,
            replay: self.replay,
            subscription_apps,
            only_bound: self.only_bound,
            no_token_rules: self.transport_only && !self.skip_tokens && tokens_none,
            payload_store: self.payload_store,
            max_payload_bytes: self.max_payload_bytes,
        })
    }
}

/// Switches that turn off a security check. Each exists for one legitimate use, named in its
/// documentation.
pub mod dangerous {
    use super::ReceiverBuilder;

    /// Accepts encrypted items without validation tokens. Only for opening a captured payload
    /// offline: anyone holding your certificate can forge an `encryptedContent` that verifies.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Outcome, Receiver, Reply, dangerous};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// // A captured POST body whose tokens have long expired (here: none at all).
    /// let spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// let captured = serde_json::json!({ "value": [item] }).to_string();
    ///
    /// let builder = Receiver::builder(Decryptor::with_key(key, Some(cert))?);
    /// let offline = dangerous::skip_token_validation(builder).build()?;
    /// let Reply::Notifications(items) = offline.receive(None, captured.as_bytes())? else {
    ///     unreachable!()
    /// };
    /// assert!(matches!(items[0].outcome, Outcome::Decrypted(_)));
    /// # Ok(()) }
    /// ```
    pub fn skip_token_validation(builder: ReceiverBuilder) -> ReceiverBuilder {
        ReceiverBuilder {
            skip_tokens: true,
            ..builder
        }
    }
}

/// Turns a POST into outcomes. Build it once and share it (`Send + Sync`).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use msgraph_notify::receiver::{Outcome, Receiver, Reply};
/// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
/// use msgraph_notify::token::{TokenVersion, Validation};
/// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
///
/// let key = PrivateKey::generate(2048)?;
/// let cert = Certificate::self_signed(&key, "receiver", 30)?;
/// let issuer = TokenIssuer::new()?; // stands in for Microsoft's signing keys
///
/// // What Graph POSTs:
/// let presence = serde_json::json!({"@odata.type": "#microsoft.graph.presence", "availability": "Busy"});
/// let mut spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
/// spec.client_state = Some("secret".into());
/// let item = GraphEncryptor::new(&cert, "cert-1").notification(&presence, &spec)?;
/// let body = serde_json::json!({
///     "value": [item],
///     "validationTokens": [issuer.token(TokenVersion::V2, "my-app", "tenant-1")],
/// });
///
/// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert))?)
///     .validation(Validation::new(["my-app"]))
///     .signing_keys(issuer.signing_keys())
///     .client_state("secret")
///     .build()?;
/// let Reply::Notifications(items) = receiver.receive(None, body.to_string().as_bytes())? else {
///     unreachable!()
/// };
/// assert!(matches!(items[0].outcome, Outcome::Decrypted(_)));
///
/// // The handshake:
/// let reply = receiver.receive(Some("validationToken=Validation%3A+ok"), b"")?;
/// assert!(matches!(reply, Reply::Handshake(t) if t == "Validation: ok"));
/// # Ok(()) }
/// ```
pub struct Receiver {
    decryptor: Decryptor,
    tokens: Option<TokenValidator>,
    cache: TokenCache,
    client_states: Vec<Zeroizing<Vec<u8>>>,
    max_body_bytes: usize,
    parallel: bool,
    max_tokens: usize,
    max_items: usize,
    replay: Option<Arc<dyn ReplayStore>>,
    /// subscriptionId (ASCII lower case) → the app whose tokens alone cover its items.
    subscription_apps: HashMap<String, String>,
    /// Encrypted items of subscriptions not in `subscription_apps` are rejected.
    only_bound: bool,
    /// Built for trusted transports without token rules: webhook bodies prove nothing.
    no_token_rules: bool,
    /// Where offloaded payloads are fetched from (trusted transports only).
    payload_store: Option<Arc<dyn PayloadStore>>,
    max_payload_bytes: usize,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The clientState secrets are not shown, only how many there are.
        f.debug_struct("Receiver")
            .field("decryptor", &self.decryptor)
            .field("tokens", &self.tokens)
            .field("client_states", &self.client_states.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("parallel", &self.parallel)
            .field("replay", &self.replay)
            .field("payload_store", &self.payload_store.is_some())
            .field("max_payload_bytes", &self.max_payload_bytes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("client_states", &self.client_states.len())
            .field("skip_tokens", &self.skip_tokens)
            .finish_non_exhaustive()
    }
}

/// The two members of a collection the receiver reads, parsed with the item and token limits
/// applied while parsing.
struct RawCollection {
    value: Option<Vec<Value>>,
    validation_tokens: Option<Value>,
}

/// Parses a body as a collection, counting `value` elements and tokens as they arrive: past a
/// limit the parse stops at once with [`Error::TooMany`].
fn parse_collection(body: &[u8], max_items: usize, max_tokens: usize) -> Result<RawCollection> {
    let exceeded = std::cell::Cell::new(None);
    let seed = CollectionSeed {
        max_items,
        max_tokens,
        exceeded: &exceeded,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = seed.deserialize(&mut de).and_then(|c| de.end().map(|()| c));
    match (parsed, exceeded.get()) {
        (_, Some((what, limit))) => Err(Error::TooMany { what, limit }),
        (Ok(c), None) => Ok(c),
        (Err(e), None) if e.is_data() && e.to_string().starts_with(NOT_AN_ARRAY) => {
            Err(Error::malformed("value", "not an array"))
        }
        (Err(e), None) => Err(crate::model::BodyShape::not_a_collection(body, Some(&e))),
    }
}

#[derive(Clone, Copy)]
struct CollectionSeed<'a> {
    max_items: usize,
    max_tokens: usize,
    exceeded: &'a std::cell::Cell<Option<(&'static str, usize)>>,
}

impl<'de> DeserializeSeed<'de> for CollectionSeed<'_> {
    type Value = RawCollection;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<RawCollection, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_> {
    type Value = RawCollection;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with `value` (a changeNotificationCollection)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCollection, A::Error> {
        let mut out = RawCollection {
            value: None,
            validation_tokens: None,
        };
        let (mut seen_value, mut seen_tokens) = (false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "value" => {
                    if std::mem::replace(&mut seen_value, true) {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    out.value = map.next_value_seed(Counted {
                        what: "items",
                        limit: self.max_items,
                        exceeded: self.exceeded,
                        lenient: false,
                    })?;
                }
                "validationTokens" => {
                    if std::mem::replace(&mut seen_tokens, true) {
                        return Err(de::Error::duplicate_field("validationTokens"));
                    }
                    out.validation_tokens = map
                        .next_value_seed(Counted {
                            what: "validation tokens",
                            limit: self.max_tokens,
                            exceeded: self.exceeded,
                            lenient: true,
                        })?
                        .map(Value::Array);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// `null` or an array of at most `limit` JSON values. Anything else is an error, or, when
/// `lenient`, a list of that one value (a `validationTokens` that is not an array counts as one
/// malformed token, which fails validation like any other).
struct Counted<'a> {
    what: &'static str,
    limit: usize,
    exceeded: &'a std::cell::Cell<Option<(&'static str, usize)>>,
    lenient: bool,
}

impl Counted<'_> {
    fn other<E: de::Error>(self, value: Value) -> Result<Option<Vec<Value>>, E> {
        if self.lenient {
            Ok(Some(vec![value]))
        } else {
            Err(E::custom(NOT_AN_ARRAY))
        }
    }
}

const NOT_AN_ARRAY: &str = "value: not an array";

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Option<Vec<Value>>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Option<Vec<Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {}", self.what)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(value) = seq.next_element::<Value>()? {
            if out.len() >= self.limit {
                self.exceeded.set(Some((self.what, self.limit)));
                return Err(de::Error::custom("too many elements"));
            }
            out.push(value);
        }
        Ok(Some(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.other(value)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.other(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.other(Value::from(v))
    }
}

/// Which front door a body came through.
#[derive(Clone, Copy)]
enum Transport {
    /// A webhook POST: tokens required (unless skipped for offline use).
    Webhook,
    /// An authenticated transport (Event Hubs, the ingress topic): no tokens.
    Trusted,
}

/// A body's items, sorted by [`Receiver::sort_items`].
struct Sorted {
    /// One per item: decided, or `None` for an encrypted item in `pending`.
    outcomes: Vec<Option<Outcome>>,
    pending: Vec<(usize, ChangeNotification)>,
    tokens: Option<Value>,
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

/// Whether any outcome is an offloaded item.
fn has_offloaded(outcomes: &[Option<Outcome>]) -> bool {
    outcomes
        .iter()
        .any(|o| matches!(o, Some(Outcome::Offloaded(_))))
}

/// The prefix of `changeType` in Event Hubs' validation message.
const EVENT_HUBS_VALIDATION: &str = "Validation: Testing client application reachability";

/// `Some(request id)` when `n` is Event Hubs' validation message: `subscriptionId` `"NA"`, the
/// documented `changeType` text, and nothing that could carry data or an event.
fn event_hubs_validation(n: &ChangeNotification) -> Option<Option<String>> {
    let change = n.change_type.as_ref()?.as_str();
    if n.subscription_id.as_deref() != Some("NA")
        || !change.starts_with(EVENT_HUBS_VALIDATION)
        || n.encrypted_content.is_some()
        || n.lifecycle_event.is_some()
        || n.extra.contains_key(ADDITIONAL_PAYLOAD)
    {
        return None;
    }
    Some(
        change
            .split_once("Request-Id:")
            .map(|(_, id)| id.trim().to_owned())
            .filter(|id| !id.is_empty()),
    )
}

/// The member naming an offloaded payload's blob.
const ADDITIONAL_PAYLOAD: &str = "additionalPayloadStorageId";

/// `additionalPayloadStorageId`, when the item carries one (it must be a non-empty string).
fn offloaded_id(n: &ChangeNotification) -> Result<Option<String>> {
    match n.extra.get(ADDITIONAL_PAYLOAD) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(Some(id.clone())),
        Some(_) => Err(Error::malformed(
            ADDITIONAL_PAYLOAD,
            "not a non-empty string (the name of the blob holding the payload)",
        )),
    }
}

/// An encrypted item that passed every cheap check, waiting for its private-key operation.
struct Ready<'a> {
    index: usize,
    prepared: Prepared<'a>,
    notification: ChangeNotification,
    /// Recorded in the replay store; removed again if the item fails.
    fingerprint: Option<Fingerprint>,
}

/// What the tokens of one body prove.
#[derive(Default)]
struct Verdicts {
    present: bool,
    /// Tenant → the apps (`aud`) of its valid tokens.
    valid: HashMap<String, Vec<String>>,
    failed: HashMap<String, TokenError>,
    unattributed: Option<TokenError>,
}

impl Receiver {
    /// Starts a receiver over `decryptor`.
    pub fn builder(decryptor: Decryptor) -> ReceiverBuilder {
        ReceiverBuilder {
            decryptor,
            validation: None,
            keys: SigningKeys::default(),
            skip_tokens: false,
            client_states: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            parallel: false,
            token_cache_capacity: 1024,
            max_tokens: DEFAULT_MAX_VALIDATION_TOKENS,
            max_items: DEFAULT_MAX_ITEMS,
            replay: None,
            subscription_apps: Vec::new(),
            only_bound: false,
            transport_only: false,
            payload_store: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// The decryptor.
    pub fn decryptor(&self) -> &Decryptor {
        &self.decryptor
    }

    /// The body size limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The token validator, unless token checks were skipped.
    pub fn token_validator(&self) -> Option<&TokenValidator> {
        self.tokens.as_ref()
    }

    /// The handshake token of a query string (`validationToken=...`, percent-decoded, `+` as a
    /// space), if it has one. A leading `?` is allowed.
    ///
    /// ```
    /// use msgraph_notify::receiver::Receiver;
    /// assert_eq!(Receiver::handshake_token("validationToken=a%2Fb%20c").as_deref(), Some("a/b c"));
    /// assert_eq!(Receiver::handshake_token("other=1"), None);
    /// ```
    pub fn handshake_token(query: &str) -> Option<String> {
        let query = query.strip_prefix('?').unwrap_or(query);
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    }

    /// The `kid`s of the body's validation tokens that the signing keys lack: fetch these before
    /// [`Receiver::receive`] (the `fetch` feature's `KeyFetcher::ensure_kid` does).
    pub fn unknown_kids(&self, body: &[u8]) -> Vec<String> {
        let Some(validator) = &self.tokens else {
            return Vec::new();
        };
        if body.len() > self.max_body_bytes {
            return Vec::new();
        }
        let Ok(raw) = parse_collection(body, self.max_items, self.max_tokens) else {
            return Vec::new();
        };
        let mut kids: Vec<String> = token_strings(raw.validation_tokens.as_ref())
            .into_iter()
            .filter_map(|t| TokenValidator::peek_kid(&t))
            .filter(|kid| !validator.signing_keys().contains(kid))
            .collect();
        kids.sort();
        kids.dedup();
        kids
    }

    /// Handles one POST: the query string (without or with the `?`; `None` when there is none)
    /// and the body.
    ///
    /// Returns [`Reply::Handshake`] when the query carries `validationToken`; otherwise one
    /// [`Item`] per element of `value`. The error cases concern the body as a whole: larger than
    /// the limit ([`Error::BodyTooLarge`]), more items or validation tokens than the limits
    /// ([`Error::TooMany`], found while parsing, before any per-item work), not JSON, or `value`
    /// missing or not an array ([`Error::Malformed`]).
    pub fn receive(&self, query: Option<&str>, body: &[u8]) -> Result<Reply> {
        if let Some(token) = query.and_then(Self::handshake_token) {
            return Ok(Reply::Handshake(token));
        }
        self.receive_as(body, Transport::Webhook)
            .map(Reply::Notifications)
    }

    /// Handles one message read from a transport that authenticated its sender: an Azure Event
    /// Hubs record (Graph's Event Hubs delivery), or a record of a topic only a checking ingress
    /// writes to (`msgraph-notify serve --forward`). Graph sends **no validation tokens** on
    /// Event Hubs; the hub's own authentication is the trust, so this mode requires none.
    ///
    /// Everything else is checked as in [`Receiver::receive`]: the size and item limits, the
    /// JSON, `clientState`, the key choice, the HMAC signature, the replay store, and, with
    /// [`ReceiverBuilder::only_bound_subscriptions`], that the subscription is one of those
    /// bound (tokens being absent, the app of a binding cannot be checked here). Tokens a
    /// message carries anyway are ignored. Event Hubs' validation message is
    /// [`Outcome::Validation`]; an item whose payload was kept in blob storage is fetched and
    /// decrypted with the [`ReceiverBuilder::payload_store`], or is [`Outcome::Offloaded`]
    /// without one. A fetch blocks this call (a network read).
    ///
    /// Use it only for bytes that came through such a transport: a webhook POST proves nothing
    /// by itself and goes through [`Receiver::receive`], which requires tokens. The errors are
    /// those of [`Receiver::receive`] for a whole body.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Outcome, Receiver};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    /// use msgraph_notify::token::Validation;
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["my-app"]))
    ///     .client_state("secret")
    ///     .build()?;
    /// let mut spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// spec.client_state = Some("secret".into());
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// // An Event Hubs record: no validation tokens, and the hub's validation message.
    /// let record = serde_json::json!({"value": [item, {
    ///     "subscriptionId": "NA", "subscriptionExpirationDateTime": "NA", "clientState": "NA",
    ///     "changeType": "Validation: Testing client application reachability for subscription Request-Id: 522a8e7e-096a-494c-aaf1-ac0dcfca45b7",
    ///     "resource": "NA", "resourceData": {"@odata.type": "NA", "@odata.id": "NA", "id": "NA"}
    /// }]})
    /// .to_string();
    /// let items = receiver.receive_trusted_transport(record.as_bytes())?;
    /// assert!(matches!(items[0].outcome, Outcome::Decrypted(_)));
    /// assert_eq!(items[1].outcome.status(), "validation");
    /// // The same bytes POSTed to the webhook: no token, no trust.
    /// let msgraph_notify::receiver::Reply::Notifications(posted) = receiver.receive(None, record.as_bytes())? else {
    ///     unreachable!()
    /// };
    /// assert!(posted[0].outcome.is_rejected());
    /// # Ok(()) }
    /// ```
    pub fn receive_trusted_transport(&self, body: &[u8]) -> Result<Vec<Item>> {
        self.receive_as(body, Transport::Trusted)
    }

    /// Parses a body and sorts its items: the outcomes decided without a private-key operation,
    /// and the encrypted items left to verify and decrypt. Also returns the body's tokens.
    fn sort_items(&self, body: &[u8], transport: Transport) -> Result<Sorted> {
        if body.len() > self.max_body_bytes {
            return Err(Error::BodyTooLarge {
                size: body.len(),
                limit: self.max_body_bytes,
            });
        }
        let raw = parse_collection(body, self.max_items, self.max_tokens)?;
        let Some(values) = raw.value else {
            return Err(crate::model::BodyShape::not_a_collection(body, None));
        };

        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(values.len());
        let mut pending: Vec<(usize, ChangeNotification)> = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            let notification =
                match serde_path_to_error::deserialize::<_, ChangeNotification>(value) {
                    Ok(n) => n,
                    Err(e) => {
                        // The field's path inside the item (`encryptedContent.data`), as the later
                        // checks name theirs; the item itself when it is not an object.
                        let field = match e.path().to_string() {
                            root if root == "." => format!("value[{index}]"),
                            path => path,
                        };
                        outcomes.push(Some(rejected(
                            Error::malformed(field, e.into_inner().to_string()),
                            None,
                        )));
                        continue;
                    }
                };
            // Only on the hub's own transport (Graph sends it nowhere else): there it comes
            // before clientState, since the message carries `"NA"` there. On the webhook it is an
            // ordinary item, checked like any other: recognised there, it would let anyone
            // without the clientState have items accepted (and, under `serve --forward`,
            // written to the topic).
            if let Transport::Trusted = transport
                && let Some(request_id) = event_hubs_validation(&notification)
            {
                outcomes.push(Some(Outcome::Validation(Box::new(ValidationMessage {
                    request_id,
                    notification,
                }))));
                continue;
            }
            if !self.client_state_ok(notification.client_state.as_deref()) {
                outcomes.push(Some(rejected(Error::ClientState, Some(notification))));
                continue;
            }
            if let Some(event) = notification.lifecycle_event.clone() {
                outcomes.push(Some(Outcome::Lifecycle(Box::new(LifecycleNotice {
                    event,
                    subscription_id: notification.subscription_id.clone(),
                    tenant_id: notification.tenant_id.clone(),
                    subscription_expiration_date_time: notification
                        .subscription_expiration_date_time
                        .clone(),
                    notification,
                }))));
                continue;
            }
            if notification.encrypted_content.is_none() {
                let outcome = match offloaded_id(&notification) {
                    Ok(Some(storage_id)) => Outcome::Offloaded(Box::new(OffloadedItem {
                        storage_id,
                        notification,
                    })),
                    Ok(None) => Outcome::Basic(Box::new(notification)),
                    Err(e) => rejected(e, Some(notification)),
                };
                outcomes.push(Some(outcome));
                continue;
            }
            outcomes.push(None);
            pending.push((index, notification));
        }
        Ok(Sorted {
            outcomes,
            pending,
            tokens: raw.validation_tokens,
        })
    }

    fn receive_as(&self, body: &[u8], transport: Transport) -> Result<Vec<Item>> {
        let Sorted {
            mut outcomes,
            pending,
            tokens,
        } = self.sort_items(body, transport)?;
        let mut pending = pending;
        let verdicts = match transport {
            Transport::Webhook if !pending.is_empty() || has_offloaded(&outcomes) => {
                self.webhook_verdicts(tokens.as_ref())
            }
            _ => None,
        };
        self.check_offloaded(&mut outcomes, verdicts.as_ref());
        let fetched = match (transport, &self.payload_store) {
            (Transport::Trusted, Some(store)) => {
                self.fetch_offloaded(store.as_ref(), &mut outcomes, &mut pending)
            }
            _ => Vec::new(),
        };

        if !pending.is_empty() {
            let mut ready: Vec<Ready<'_>> = Vec::new();
            for (index, notification) in pending {
                let checked = self
                    .covered(verdicts.as_ref(), &notification)
                    .and_then(|()| self.decryptor.prepare(encrypted_content(&notification)?))
                    .and_then(|prepared| {
                        let fingerprint = self.remember(&notification, prepared.key_tag())?;
                        Ok((prepared, fingerprint))
                    });
                match checked {
                    Ok((prepared, fingerprint)) => ready.push(Ready {
                        index,
                        prepared,
                        notification,
                        fingerprint,
                    }),
                    Err(e) => outcomes[index] = Some(rejected(e, Some(notification))),
                }
            }
            let finish = |ready: Ready<'_>| (ready.index, self.finish(ready));
            let done: Vec<(usize, Outcome)> = if self.parallel && ready.len() > 1 {
                ready.into_par_iter().map(finish).collect()
            } else {
                ready.into_iter().map(finish).collect()
            };
            for (index, outcome) in done {
                outcomes[index] = Some(outcome);
            }
        }
        for (index, storage_id) in fetched {
            // The notification as the record sent it (no encryptedContent: its copy from the
            // blob, as large as the payload, is not kept once the item is decided).
            match &mut outcomes[index] {
                Some(Outcome::Decrypted(d)) => {
                    d.notification.encrypted_content = None;
                    d.storage_id = Some(storage_id);
                }
                Some(Outcome::Rejected(r)) => {
                    if let Some(n) = &mut r.notification {
                        n.encrypted_content = None;
                    }
                }
                _ => {}
            }
        }

        Ok(outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| Item {
                index,
                outcome: outcome.unwrap_or_else(|| {
                    rejected(Error::malformed("value", "item was not processed"), None)
                }),
            })
            .collect())
    }

    /// Replaces each offloaded outcome by its item with the blob's properties filled in, moved to
    /// `pending` to be verified and decrypted; or by a rejection when the blob cannot be read or
    /// used. The subscription's binding is checked before the fetch. One blob at a time, all of
    /// them within `max_payload_bytes` together. Returns the (index, blob name) of those moved.
    fn fetch_offloaded(
        &self,
        store: &dyn PayloadStore,
        outcomes: &mut [Option<Outcome>],
        pending: &mut Vec<(usize, ChangeNotification)>,
    ) -> Vec<(usize, String)> {
        use crate::offload::PayloadError;
        let budget = self.max_payload_bytes;
        let mut left = budget;
        let mut fetched = Vec::new();
        for (index, slot) in outcomes.iter_mut().enumerate() {
            if !matches!(slot, Some(Outcome::Offloaded(_))) {
                continue;
            }
            let Some(Outcome::Offloaded(offloaded)) = slot.take() else {
                continue;
            };
            let OffloadedItem {
                storage_id,
                notification,
            } = *offloaded;
            let merged = self
                .covered(None, &notification)
                .and_then(|()| Ok(check_blob_name(&storage_id)?))
                .and_then(|()| {
                    if left == 0 {
                        return Err(PayloadError::OverBudget { budget }.into());
                    }
                    match store.fetch(&storage_id, left) {
                        // Over what the items before it left, or over the whole budget: the
                        // store cannot tell; the budget being whole, it is the blob.
                        Err(PayloadError::TooLarge { .. }) if left < budget => {
                            Err(PayloadError::OverBudget { budget }.into())
                        }
                        other => Ok(other?),
                    }
                })
                .and_then(|blob| {
                    // Whatever the store did with the limit.
                    if blob.len() > budget {
                        return Err(PayloadError::TooLarge { limit: budget }.into());
                    }
                    if blob.len() > left {
                        return Err(PayloadError::OverBudget { budget }.into());
                    }
                    left -= blob.len();
                    merge_payload(notification.clone(), &blob)
                });
            match merged {
                Ok(merged) => {
                    pending.push((index, merged));
                    fetched.push((index, storage_id));
                }
                Err(e) => *slot = Some(rejected(e, Some(notification))),
            }
        }
        fetched
    }

    /// On the webhook, an offloaded item needs the tokens' coverage as an encrypted item does
    /// (Graph offloads only on Event Hubs, so a webhook one is suspect): otherwise rejected.
    fn check_offloaded(&self, outcomes: &mut [Option<Outcome>], verdicts: Option<&Verdicts>) {
        let Some(verdicts) = verdicts else {
            return;
        };
        for slot in outcomes.iter_mut() {
            let refusal = match slot {
                Some(Outcome::Offloaded(o)) => self.covered(Some(verdicts), &o.notification).err(),
                _ => None,
            };
            if let Some(e) = refusal
                && let Some(Outcome::Offloaded(o)) = slot.take()
            {
                *slot = Some(rejected(e, Some(o.notification)));
            }
        }
    }

    /// What a webhook body's tokens prove: `None` when token checks are skipped (offline use);
    /// nothing at all for a receiver built for trusted transports without token rules.
    fn webhook_verdicts(&self, tokens: Option<&Value>) -> Option<Verdicts> {
        match &self.tokens {
            Some(v) => Some(self.judge_tokens(v, tokens)),
            None if self.no_token_rules => Some(Verdicts::default()),
            None => None,
        }
    }

    /// Whether an encrypted item is covered: by the body's tokens (`verdicts`, webhook mode with
    /// token checks), and in any mode by the bound-subscription allow-list when it is on.
    fn covered(
        &self,
        verdicts: Option<&Verdicts>,
        notification: &ChangeNotification,
    ) -> Result<()> {
        let app = self.required_app(notification)?;
        match verdicts {
            Some(v) => binding(v, notification.tenant_id.as_deref(), app),
            None => Ok(()),
        }
    }

    /// The checks a webhook ingress makes before handing a body to a trusted transport
    /// (`msgraph-notify serve --forward`), while the validation tokens are still valid: the size
    /// and item limits, the JSON, `clientState`, and for each encrypted item the tokens that
    /// must cover it (and its bound app), exactly as [`Receiver::receive`] checks them. No
    /// private-key operation, no replay store: whoever reads the transport with
    /// [`Receiver::receive_trusted_transport`] decrypts and de-duplicates.
    ///
    /// Returns what to hand on: the body unchanged when every item passed, otherwise a
    /// collection of only the items that passed (tokens dropped), with the refused items'
    /// outcomes; `None` as the body when nothing passed. Errors: as [`Receiver::receive`] for a
    /// whole body.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::Receiver;
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
    /// use msgraph_notify::token::{TokenVersion, Validation};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let issuer = TokenIssuer::new()?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["my-app"]))
    ///     .signing_keys(issuer.signing_keys())
    ///     .build()?;
    /// let encryptor = GraphEncryptor::new(&cert, "cert-1");
    /// let ours = encryptor.notification(&serde_json::json!({}), &NotificationSpec::new("tenant-1", "communications/presences/u1"))?;
    /// let other = encryptor.notification(&serde_json::json!({}), &NotificationSpec::new("tenant-2", "communications/presences/u2"))?;
    /// let body = serde_json::json!({
    ///     "value": [ours, other],
    ///     "validationTokens": [issuer.token(TokenVersion::V2, "my-app", "tenant-1")],
    /// })
    /// .to_string();
    /// let screened = receiver.screen(body.as_bytes())?;
    /// assert_eq!(screened.admitted, 1); // tenant-2 has no token: not handed on
    /// assert_eq!(screened.refused.len(), 1);
    /// let forwarded = screened.body.unwrap();
    /// assert_eq!(receiver.receive_trusted_transport(&forwarded)?.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn screen(&self, body: &[u8]) -> Result<Screened> {
        let Sorted {
            mut outcomes,
            pending,
            tokens,
        } = self.sort_items(body, Transport::Webhook)?;
        let mut passed = vec![false; outcomes.len()];
        let verdicts = if !pending.is_empty() || has_offloaded(&outcomes) {
            self.webhook_verdicts(tokens.as_ref())
        } else {
            None
        };
        self.check_offloaded(&mut outcomes, verdicts.as_ref());
        if !pending.is_empty() {
            for (index, notification) in pending {
                match self.covered(verdicts.as_ref(), &notification) {
                    Ok(()) => passed[index] = true,
                    Err(e) => outcomes[index] = Some(rejected(e, Some(notification))),
                }
            }
        }
        let mut refused = Vec::new();
        let mut keep = Vec::with_capacity(outcomes.len());
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Some(outcome @ Outcome::Rejected(_)) => refused.push(Item { index, outcome }),
                Some(_) => keep.push(index),
                None if passed[index] => keep.push(index),
                None => refused.push(Item {
                    index,
                    outcome: rejected(Error::malformed("value", "item was not processed"), None),
                }),
            }
        }
        let admitted = keep.len();
        let body = if refused.is_empty() {
            Some(body.to_vec())
        } else if keep.is_empty() {
            None
        } else {
            // Parsed once more only in this rare case: the original values, byte for byte as
            // JSON values (numbers and strings as sent), of the items kept.
            let raw = parse_collection(body, self.max_items, self.max_tokens)?;
            let mut values = raw.value.unwrap_or_default();
            let kept: Vec<Value> = keep
                .iter()
                .filter_map(|&at| values.get_mut(at).map(Value::take))
                .collect();
            Some(
                serde_json::to_vec(&json!({ "value": kept }))
                    .map_err(|e| Error::malformed("value", e.to_string()))?,
            )
        };
        Ok(Screened {
            body,
            admitted,
            refused,
        })
    }

    fn finish(&self, ready: Ready<'_>) -> Outcome {
        let Ready {
            prepared,
            notification,
            fingerprint,
            ..
        } = ready;
        let Decrypted {
            resource,
            plaintext,
        } = match prepared.finish_typed(notification.resource.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                // Forget what failed: a forged or broken copy must not stand in for the genuine
                // item (it cannot share its fingerprint unless byte-identical, but it must not
                // occupy the memory either).
                if let (Some(store), Some(fp)) = (&self.replay, fingerprint) {
                    store.remove(&fp);
                }
                return rejected(e, Some(notification));
            }
        };
        Outcome::Decrypted(Box::new(DecryptedItem {
            notification,
            resource,
            plaintext,
            storage_id: None,
        }))
    }

    /// The app whose token must cover `notification`: `None` when any app's will do.
    fn required_app(&self, notification: &ChangeNotification) -> Result<Option<&str>> {
        if self.subscription_apps.is_empty() {
            return Ok(None);
        }
        let sub = notification.subscription_id.as_deref().unwrap_or_default();
        match self.subscription_apps.get(&sub.to_ascii_lowercase()) {
            Some(app) => Ok(Some(app)),
            None if self.only_bound => Err(TokenError::UnboundSubscription(sub.to_owned()).into()),
            None => Ok(None),
        }
    }

    /// Records the item in the replay store before any private-key operation: a duplicate is
    /// never decrypted twice, even when two copies are processed at the same moment. The
    /// fingerprint binds the key chosen (`key_tag`): during rotation a copy rewritten to choose
    /// another key is another item, fails its unwrap and is forgotten, and cannot make the
    /// genuine copy a duplicate; a copy choosing the same key by other spellings is a duplicate.
    fn remember(
        &self,
        notification: &ChangeNotification,
        key_tag: &[u8; 32],
    ) -> Result<Option<Fingerprint>> {
        let (Some(store), Some(content)) = (&self.replay, notification.encrypted_content.as_ref())
        else {
            return Ok(None);
        };
        let fp = Fingerprint::of_content_for_key(content, key_tag);
        if store.insert_if_absent(&fp)? {
            Ok(Some(fp))
        } else {
            Err(Error::Duplicate)
        }
    }

    fn client_state_ok(&self, sent: Option<&str>) -> bool {
        if self.client_states.is_empty() {
            return true;
        }
        let sent = sent.unwrap_or("").as_bytes();
        // Compare against every secret, without stopping early.
        let mut ok = subtle::Choice::from(0u8);
        for secret in &self.client_states {
            ok |= secret.as_slice().ct_eq(sent);
        }
        bool::from(ok) && !sent.is_empty()
    }

    fn judge_tokens(&self, validator: &TokenValidator, tokens: Option<&Value>) -> Verdicts {
        let mut tokens = token_strings(tokens);
        let mut verdicts = Verdicts {
            present: !tokens.is_empty(),
            ..Verdicts::default()
        };
        // The count was bounded while parsing (`max_validation_tokens`).
        tokens.sort_unstable();
        tokens.dedup();
        let leeway = validator.validation().leeway.as_secs();
        for token in &tokens {
            let result = match self.cache.get(token, leeway) {
                Some(hit) => Ok(hit),
                None => validator.validate(token).inspect(|valid: &ValidatedToken| {
                    self.cache.insert(token, valid.clone());
                }),
            };
            match result {
                Ok(valid) => {
                    let apps = verdicts.valid.entry(id_key(&valid.tenant_id)).or_default();
                    if !apps.contains(&valid.app_id) {
                        apps.push(valid.app_id);
                    }
                }
                // A genuine token of another app on the same URL (every check but the audience
                // passed): it covers that app's items, and says nothing against this tenant.
                Err(TokenError::Audience(_)) => {}
                Err(e) => match TokenValidator::peek_tenant(token) {
                    Some(tid) => {
                        verdicts.failed.entry(id_key(&tid)).or_insert(e);
                    }
                    None => {
                        verdicts.unattributed.get_or_insert(e);
                    }
                },
            }
        }
        verdicts
    }
}

/// The tokens of `validationTokens` as strings (a non-string entry counts as garbage).
fn token_strings(tokens: Option<&Value>) -> Vec<String> {
    match tokens {
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
            .collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.to_string()],
    }
}

/// Whether the body's tokens cover an encrypted item of `tenant` (and of `app`, when its
/// subscription is bound to one).
fn binding(verdicts: &Verdicts, tenant: Option<&str>, app: Option<&str>) -> Result<()> {
    if !verdicts.present {
        return Err(TokenError::Missing.into());
    }
    let tenant = tenant.filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::malformed(
            "tenantId",
            "missing: an item with encrypted content needs its tenant to bind a validation token",
        )
    })?;
    if let Some(e) = &verdicts.unattributed {
        return Err(e.clone().into());
    }
    // Tenant ids are GUIDs, which Microsoft writes in either case.
    let key = id_key(tenant);
    if let Some(e) = verdicts.failed.get(&key) {
        return Err(e.clone().into());
    }
    let Some(apps) = verdicts.valid.get(&key) else {
        return Err(TokenError::NotCovered(tenant.to_owned()).into());
    };
    if let Some(app) = app
        && !apps.iter().any(|a| ids_equal(a, app))
    {
        return Err(TokenError::AppNotCovered {
            app_id: app.to_owned(),
            tenant_id: tenant.to_owned(),
        }
        .into());
    }
    Ok(())
}

fn rejected(error: Error, notification: Option<ChangeNotification>) -> Outcome {
    Outcome::Rejected(Box::new(Rejected {
        error,
        notification,
    }))
}

#[cfg(feature = "fetch")]
impl Receiver {
    /// [`Receiver::receive`] after fetching the signing keys of any token whose `kid` is unknown
    /// (rate-limited by the fetcher). The fetcher must refresh the same [`SigningKeys`] this
    /// receiver was built with.
    ///
    /// Only the fetch is awaited. The verification and decryption that follow run on the calling
    /// task, synchronously, and are CPU-bound (one RSA operation per encrypted item, about 0.3 ms
    /// for RSA-2048): fine for a command or a small body, but an async server should not run them
    /// on its runtime's threads. There, await `KeyFetcher::ensure_kid` for each of
    /// [`Receiver::unknown_kids`] and then call [`Receiver::receive`] inside
    /// `tokio::task::spawn_blocking`, as `examples/axum_receiver.rs` does.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::receiver::{Outcome, Receiver, Reply};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
    /// use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
    /// use msgraph_notify::token::{TokenVersion, Validation};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    ///
    /// let issuer = TokenIssuer::new()?; // stands in for the identity platform
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let jwks_url = format!("http://{}/keys", listener.local_addr()?);
    /// # let jwks = issuer.jwks_json();
    /// # std::thread::spawn(move || {
    /// #     use std::io::{Read, Write};
    /// #     let (mut stream, _) = listener.accept().unwrap();
    /// #     let _ = stream.read(&mut [0u8; 4096]).unwrap();
    /// #     let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", jwks.len());
    /// #     stream.write_all(head.as_bytes()).unwrap();
    /// #     stream.write_all(jwks.as_bytes()).unwrap();
    /// # });
    /// // `jwks_url` serves the issuer's keys on 127.0.0.1.
    /// let fetcher = KeyFetcher::new(FetchConfig::with_jwks_url(jwks_url))?;
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["my-app"]))
    ///     .signing_keys(fetcher.signing_keys()) // empty until the first fetch
    ///     .build()?;
    ///
    /// let spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// let item = GraphEncryptor::new(&cert, "cert-1").notification(&serde_json::json!({}), &spec)?;
    /// let body = serde_json::json!({
    ///     "value": [item],
    ///     "validationTokens": [issuer.token(TokenVersion::V2, "my-app", "tenant-1")],
    /// })
    /// .to_string();
    /// let reply = tokio::runtime::Runtime::new()?
    ///     .block_on(receiver.receive_fetching_keys(&fetcher, None, body.as_bytes()))?;
    /// let Reply::Notifications(items) = reply else { unreachable!() };
    /// assert!(matches!(items[0].outcome, Outcome::Decrypted(_))); // the kid was fetched
    /// # Ok(()) }
    /// ```
    pub async fn receive_fetching_keys(
        &self,
        fetcher: &crate::token::fetch::KeyFetcher,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Reply> {
        for kid in self.unknown_kids(body) {
            fetcher.ensure_kid(&kid).await;
        }
        self.receive(query, body)
    }
}
