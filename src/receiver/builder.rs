//! The builder: every option of a receiver, checked once in `build()`.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::Receiver;
#[cfg(doc)]
use super::{Outcome, dangerous};
use crate::decrypt::Decryptor;
use crate::error::{Error, Result};
use crate::offload::{DEFAULT_MAX_PAYLOAD_BYTES, PayloadStore};
use crate::replay::{ReplayGuard, ReplayStore};
#[cfg(doc)]
use crate::token::TokenError;
use crate::token::{SigningKeys, TokenCache, TokenValidator, Validation, ids_equal};

/// The default body size limit: 1 MiB (a Teams message is about 28 KB at most).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Builds a [`Receiver`].
#[must_use]
pub struct ReceiverBuilder {
    pub(super) decryptor: Decryptor,
    pub(super) validation: Option<Validation>,
    pub(super) keys: SigningKeys,
    pub(super) skip_tokens: bool,
    pub(super) client_states: Vec<Zeroizing<Vec<u8>>>,
    pub(super) max_body_bytes: usize,
    pub(super) parallel: bool,
    pub(super) token_cache_capacity: usize,
    pub(super) max_tokens: usize,
    pub(super) max_items: usize,
    pub(super) replay: Option<Arc<dyn ReplayStore>>,
    pub(super) subscription_apps: Vec<(String, String)>,
    pub(super) only_bound: bool,
    pub(super) transport_only: bool,
    pub(super) payload_store: Option<Arc<dyn PayloadStore>>,
    pub(super) max_payload_bytes: usize,
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
    /// use std::sync::Arc;
    /// use msgraph_notify::offload::MemoryPayloadStore;
    /// use msgraph_notify::receiver::{Outcome, Receiver};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
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
    /// let store = MemoryPayloadStore::new();
    /// store.insert("blob-1", blob.to_string());
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

impl std::fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("client_states", &self.client_states.len())
            .field("skip_tokens", &self.skip_tokens)
            .finish_non_exhaustive()
    }
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
}
