//! One POST in, one outcome per item out: the validation handshake, `clientState`, validation
//! tokens, lifecycle events, and decryption.
//!
//! Checks run cheapest first: the size limit, the JSON, `clientState`, tokens (from the cache when
//! seen before), the key choice and field decoding; the RSA unwrap of each item comes last, so a
//! flood of forged POSTs costs no RSA private-key operation. One bad item never sinks the others.
//! The receiver knows nothing of HTTP: give it the query string and the body bytes.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::decrypt::Decryptor;
use crate::error::{Error, Result};
use crate::offload::PayloadStore;
use crate::replay::ReplayStore;
#[cfg(doc)]
use crate::token::SigningKeys;
use crate::token::{TokenCache, TokenValidator};

use body::parse_collection;
use coverage::token_strings;
use offloaded::has_offloaded;
use outcome::rejected;
use pipeline::{Sorted, Transport};
mod body;
mod builder;
mod coverage;
mod line;
mod offloaded;
mod outcome;
mod pipeline;

pub use builder::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ITEMS, DEFAULT_MAX_VALIDATION_TOKENS, ReceiverBuilder,
};
pub use outcome::{
    DecryptedItem, Item, LifecycleNotice, OffloadedItem, Outcome, Rejected, Reply, Screened,
    ValidationMessage,
};

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

impl Receiver {
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

    /// [`Receiver::receive`] for a large notification body (a captured collection of thousands
    /// of items), handed over in slices: the items go to `each` in their order, at most `slice`
    /// at a time, each slice as soon as it is decided. Memory holds one slice's decrypted items
    /// instead of the whole body's, and the first items can be written out while the later ones
    /// are decrypted. The checks are [`Receiver::receive`]'s, in the same order: the tokens are
    /// judged once for the body, and the replay store is consulted in item order across slices.
    ///
    /// `each` returns [`ControlFlow::Break`] to stop: the later items are not decrypted (nor
    /// recorded in the replay store). It is not called for a body without items; a `slice` of 0
    /// counts as 1. The errors concern the body as a whole and come before any slice, as
    /// [`Receiver::receive`]'s: too large, too many items or tokens, not JSON, or `value` missing
    /// or not an array. There is no query, so no handshake.
    ///
    /// One outcome may differ from [`Receiver::receive`]'s: a byte-identical copy of an item that
    /// failed verification in an earlier slice is verified again (and rejected for the same
    /// reason), where in one slice it is the duplicate of an item not yet forgotten.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::ops::ControlFlow;
    /// use msgraph_notify::receiver::{Outcome, Receiver};
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
    /// let spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    /// let encryptor = GraphEncryptor::new(&cert, "cert-1");
    /// let items: Vec<_> = (0..5)
    ///     .map(|n| encryptor.notification(&serde_json::json!({"n": n}), &spec))
    ///     .collect::<Result<_, _>>()?;
    /// let body = serde_json::json!({
    ///     "value": items,
    ///     "validationTokens": [issuer.token(TokenVersion::V2, "my-app", "tenant-1")],
    /// })
    /// .to_string();
    /// let mut slices = Vec::new();
    /// receiver.receive_in_slices(body.as_bytes(), 2, |slice| {
    ///     assert!(slice.iter().all(|item| matches!(item.outcome, Outcome::Decrypted(_))));
    ///     slices.push(slice.iter().map(|item| item.index).collect::<Vec<_>>());
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(slices, [vec![0, 1], vec![2, 3], vec![4]]);
    /// # Ok(()) }
    /// ```
    pub fn receive_in_slices(
        &self,
        body: &[u8],
        slice: usize,
        each: impl FnMut(Vec<Item>) -> ControlFlow<()>,
    ) -> Result<()> {
        self.receive_slices_as(body, Transport::Webhook, slice, each)
    }

    /// Handles a webhook body that was **accepted earlier** (answered 202) and kept durably since,
    /// a spool's: as [`Receiver::receive`] for a notification body, except that the validation
    /// tokens' lifetimes are judged as of `accepted_at`, when Graph sent them, so a body kept
    /// through an outage longer than a token's hour is not lost to its expiry. Every other check
    /// is made now (signature, keys, clientState, the replay store). `accepted_at` must be the
    /// receiver's own clock at arrival, stored with the body; never a time from the request.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, SystemTime};
    /// use msgraph_notify::receiver::{Outcome, Receiver, Reply};
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
    /// use msgraph_notify::token::{TokenVersion, Validation};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey};
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let issuer = TokenIssuer::new()?;
    /// let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone()))?)
    ///     .validation(Validation::new(["my-app"]))
    ///     .signing_keys(issuer.signing_keys())
    ///     .build()?;
    /// let item = GraphEncryptor::new(&cert, "cert-1")
    ///     .notification(&serde_json::json!({}), &NotificationSpec::new("tenant-1", "communications/presences/u1"))?;
    /// // Accepted three hours ago, when its token (valid for one hour) was fresh.
    /// let accepted_at = SystemTime::now() - Duration::from_secs(3 * 3600);
    /// let token = issuer.token_at(TokenVersion::V2, "my-app", "tenant-1", accepted_at);
    /// let body = serde_json::json!({"value": [item], "validationTokens": [token]}).to_string();
    /// let items = receiver.receive_accepted_at(body.as_bytes(), accepted_at)?;
    /// assert!(matches!(items[0].outcome, Outcome::Decrypted(_)));
    /// // Judged as of now, the same body's token has expired.
    /// let Reply::Notifications(now) = receiver.receive(None, body.as_bytes())? else { unreachable!() };
    /// assert!(now[0].outcome.is_rejected());
    /// # Ok(()) }
    /// ```
    pub fn receive_accepted_at(
        &self,
        body: &[u8],
        accepted_at: std::time::SystemTime,
    ) -> Result<Vec<Item>> {
        self.receive_as(body, Transport::WebhookAcceptedAt(accepted_at))
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
            self.webhook_verdicts(tokens.as_ref(), None)
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
            // Parsed once more only in this rare case: the items kept, byte for byte as sent.
            let raw = parse_collection(body, self.max_items, self.max_tokens)?;
            let values = raw.value.unwrap_or_default();
            let mut kept = b"{\"value\":[".to_vec();
            for (n, item) in keep.iter().filter_map(|&at| values.get(at)).enumerate() {
                if n > 0 {
                    kept.push(b',');
                }
                kept.extend_from_slice(item.get().as_bytes());
            }
            kept.extend_from_slice(b"]}");
            Some(kept)
        };
        Ok(Screened {
            body,
            admitted,
            refused,
        })
    }
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
