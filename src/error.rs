//! The crate's errors: [`Error`], and every public error enum of the rooms above it (validation
//! tokens, offloaded payloads, the replay store, subscriptions, fetching signing keys), each also
//! re-exported where it is used. This module names no other module of the crate: it is the
//! bottom of the house.

use std::borrow::Cow;

#[cfg(feature = "manage")]
mod graph;
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub use graph::{GraphError, KeeperError};

/// Everything that can go wrong while loading keys, checking tokens, or verifying and decrypting a
/// notification.
///
/// Errors about malformed input name the field and what was wrong with it. Cryptographic failures are
/// deliberately uniform: a wrong key, a bad RSA-OAEP decoding, an unwrapped key of an unusable length,
/// a signature mismatch and bad padding after a valid signature are all [`Error::Verification`], so
/// neither the message nor the variant tells an attacker which step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of the input is missing or malformed (bad base64, wrong length, wrong JSON type...).
    #[error("invalid {field}: {reason}")]
    Malformed {
        /// The field, as a JSON path such as `encryptedContent.dataKey`.
        field: Cow<'static, str>,
        /// What was wrong with it.
        reason: String,
    },

    /// The notification names an `encryptionCertificateId` for which no key is registered.
    #[error(
        "no decryption key is registered for encryptionCertificateId {0:?}: add the private key of \
         that certificate to the key ring"
    )]
    UnknownCertificateId(String),

    /// The notification names no usable certificate id and no registered key can serve it.
    #[error(
        "no decryption key matches this notification (it names no known encryptionCertificateId \
         and no registered certificate has its thumbprint)"
    )]
    NoMatchingKey,

    /// The notification's certificate thumbprint differs from the registered certificate's.
    #[error(
        "certificate thumbprint mismatch for encryptionCertificateId {certificate_id:?}: the \
         notification names {notification}, the registered certificate is {registered}"
    )]
    ThumbprintMismatch {
        /// The certificate id the key is registered under (empty when registered without an id).
        certificate_id: String,
        /// The thumbprint the notification carries.
        notification: String,
        /// The thumbprint of the registered certificate.
        registered: String,
    },

    /// The encrypted content failed verification: wrong key, altered data, key or signature. One
    /// uniform error for every cryptographic failure.
    #[error(
        "the encrypted content failed verification: it was not encrypted for this key or was \
         altered in transit"
    )]
    Verification,

    /// The content verified and decrypted, but is not UTF-8 JSON.
    #[error("the decrypted content is not valid {0}")]
    Plaintext(&'static str),

    /// A private key could not be loaded.
    #[error("cannot load the private key: {0}")]
    Key(String),

    /// A certificate could not be loaded, or does not belong to the key it was paired with.
    #[error("cannot use the certificate: {0}")]
    Certificate(String),

    /// A validation token was rejected, or none covers the item.
    #[error("validation token check failed: {0}")]
    Token(#[from] TokenError),

    /// The item's `clientState` is missing or does not equal any configured secret.
    #[error("clientState does not match any configured secret")]
    ClientState,

    /// The request body is larger than the configured limit.
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// The body holds more items (`value` elements) or validation tokens than the receiver
    /// accepts. The body is refused whole, before any per-item work, so a flood of tiny elements
    /// costs a parse and nothing more.
    #[error(
        "the body holds more than {limit} {what}: refused whole (Graph sends far fewer; raise the \
         limit only for a trusted capture)"
    )]
    TooMany {
        /// `items` or `validation tokens`.
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },

    /// The item was already accepted earlier (a replay, or Graph retrying a delivery).
    #[error("duplicate of an item already accepted")]
    Duplicate,

    /// The replay store could not say whether the item is a duplicate; the item is rejected
    /// rather than risk processing it twice.
    #[error(transparent)]
    ReplayStore(#[from] ReplayStoreError),

    /// The decryption key could not be used: its own failure (a PKCS#11 token removed, a session
    /// that could not be reopened, a locked PIN, a vault out of reach), not the notification's.
    /// The item was not judged: it may succeed once the key is back. The message names the cause
    /// and never anything of the ciphertext.
    #[error("the decryption key is unavailable: {0}")]
    KeyUnavailable(String),

    /// The decryption key's token refused our credentials (a wrong, locked or expired PIN): a
    /// fault of the configuration, not of the notification nor a passing one. Never retried (a
    /// wrong PIN tried again and again locks the token); correct the PIN and restart. The
    /// message names the PIN, never its value.
    #[error("the decryption key's token refused the PIN: {0}")]
    KeyRefused(String),

    /// An offloaded payload (`additionalPayloadStorageId`) could not be read from the blob store.
    /// When [`PayloadError::is_transient`], the
    /// item was not judged and may succeed later.
    #[error("the offloaded payload (additionalPayloadStorageId) cannot be read: {0}")]
    Payload(#[from] PayloadError),

    /// A random number generator or key generation failure.
    #[error("cryptographic backend failure: {0}")]
    Backend(String),

    /// A request to Microsoft Graph's subscription API or to Entra ID's token endpoint failed
    /// (feature `manage`).
    #[cfg(feature = "manage")]
    #[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl Error {
    /// Whether the failure is passing, not a judgement of the input: the decryption key, the
    /// replay store, the payload store or Microsoft's signing keys could not be reached, so the
    /// item was not judged and trying again later may succeed. This is the one error policy:
    /// a receiver that acknowledged an item must retry it, not drop it, when this is `true`.
    ///
    /// ```
    /// use msgraph_notify::Error;
    /// assert!(Error::KeyUnavailable("the token was removed".into()).is_transient());
    /// assert!(!Error::Verification.is_transient());
    /// assert!(!Error::Duplicate.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ReplayStore(_) | Error::KeyUnavailable(_) => true,
            Error::Payload(e) => e.is_transient(),
            Error::Token(e) => matches!(e, TokenError::KeysUnavailable { .. }),
            #[cfg(feature = "manage")]
            Error::Graph(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The error's reason in the small fixed set used as a metric label (Prometheus keeps one
    /// series per value, so the set never grows with the input): `token`, `client_state`,
    /// `signature`, `duplicate`, `malformed`, `key`, `replay_store`, `payload`, `graph` or
    /// `other`.
    ///
    /// ```
    /// use msgraph_notify::Error;
    /// assert_eq!(Error::Verification.label(), "signature");
    /// assert_eq!(Error::ClientState.label(), "client_state");
    /// let unreachable = msgraph_notify::offload::PayloadError::Unavailable("refused".into());
    /// assert_eq!(Error::Payload(unreachable).label(), "payload");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            Error::Token(_) => "token",
            Error::ClientState => "client_state",
            Error::Verification => "signature",
            Error::Duplicate => "duplicate",
            Error::Malformed { .. } | Error::Plaintext(_) => "malformed",
            Error::UnknownCertificateId(_)
            | Error::NoMatchingKey
            | Error::ThumbprintMismatch { .. }
            | Error::KeyUnavailable(_)
            | Error::KeyRefused(_) => "key",
            Error::ReplayStore(_) => "replay_store",
            Error::Payload(_) => "payload",
            #[cfg(feature = "manage")]
            Error::Graph(_) => "graph",
            _ => "other",
        }
    }

    pub(crate) fn malformed(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Malformed {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        Error::malformed(field, "missing")
    }
}

/// Why a validation token was rejected. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The body carries encrypted content but no validation tokens at all.
    #[error("the notification carries encrypted content but no validation tokens")]
    Missing,
    /// `validationTokens` is `null`: Graph sends that when the app's service principal requires
    /// app role assignment and Graph's Change Tracking principal holds no role of the app.
    #[error(
        "validationTokens is null: Graph sends null, and cannot deliver resource data, when the \
         app's service principal requires app role assignment (appRoleAssignmentRequired) and \
         Graph's Change Tracking service principal (appId 0bf30f3b-4a52-48df-9a82-234910c4a086) \
         holds no app role of the app; assign it one, or turn the requirement off"
    )]
    Null,
    /// No valid token covers the item's tenant.
    #[error("no valid validation token covers tenant {0:?}")]
    NotCovered(String),
    /// The item's subscription is not bound to an app and the receiver accepts only bound ones
    /// (`ReceiverBuilder::only_bound_subscriptions`).
    #[error("subscription {0:?} is not bound to a receiving app")]
    UnboundSubscription(String),
    /// The item's subscription is bound to an app (`ReceiverBuilder::subscription_app`) and
    /// no valid token issued to that app covers the item's tenant.
    #[error("no valid validation token issued to app {app_id:?} covers tenant {tenant_id:?}")]
    AppNotCovered {
        /// The app the item's subscription belongs to.
        app_id: String,
        /// The item's tenant.
        tenant_id: String,
    },
    /// The token is not a well-formed JWT.
    #[error("not a well-formed JWT: {0}")]
    Malformed(String),
    /// `alg` is not RS256.
    #[error("algorithm {0:?} is not allowed (only RS256)")]
    Algorithm(String),
    /// No signing key has the token's `kid`: a forgery, or keys not refreshed after a rotation.
    #[error("no signing key has kid {0:?}")]
    UnknownKey(String),
    /// No signing key has the token's `kid`, and fetching fresh keys had failed
    /// (`SigningKeys::set_fetch_failure`): the token could not be checked at all.
    #[error(
        "the signing key for kid {kid:?} could not be had: fetching the signing keys failed \
         ({reason})"
    )]
    KeysUnavailable {
        /// The token's `kid`.
        kid: String,
        /// Why the fetch failed.
        reason: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is not one of the configured app ids, and every other check passed: a genuine token
    /// of another app sharing the notification URL. `TokenValidator::validate` checks the
    /// audience last so that this variant means exactly that; the receiver ignores such tokens
    /// (they cover the other app's items) instead of counting them against their tenant.
    #[error("audience {0:?} is not one of the configured app ids")]
    Audience(String),
    /// The publisher claim (`appid` for v1.0, `azp` for v2.0) is not Microsoft Graph change
    /// tracking, or is missing.
    #[error("publisher {0:?} is not Microsoft Graph change tracking")]
    Publisher(String),
    /// `iss` is not exactly the issuer for the token's `tid` and `ver`.
    #[error("issuer {0:?} is not the issuer of the token's tenant")]
    Issuer(String),
    /// `tid` is not in the tenant allow-list.
    #[error("tenant {0:?} is not allowed")]
    Tenant(String),
    /// `ver` is neither 1.0 nor 2.0.
    #[error("token version {0:?} is not 1.0 or 2.0")]
    Version(String),
}

/// Why an offloaded payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// No blob has that name in the container.
    #[error("no blob of that name is in the container")]
    NotFound,
    /// The blob is larger than the limit.
    #[error("the blob is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body's offloaded payloads together exceed the receiver's budget
    /// (`ReceiverBuilder::max_payload_bytes`):
    /// this item's blob was not read whole. Raise the budget to read them all.
    #[error(
        "the offloaded payloads of this body exceed max_payload_bytes ({budget} bytes) together; \
         raise it to read them all"
    )]
    OverBudget {
        /// The budget, in bytes.
        budget: usize,
    },
    /// `additionalPayloadStorageId` cannot name a blob (see the `offload` module for the rules).
    #[error("not a usable blob name: {0}")]
    InvalidName(String),
    /// The store could not be read for a passing reason (out of reach, throttled, refusing the
    /// credentials, a timeout): the item was not judged and may succeed later. The message names
    /// the cause, never a credential.
    #[error("the blob store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request for this blob for good (a name it will not take, an
    /// archived blob): asking again would get the same answer. The message names the cause,
    /// never a credential.
    #[error("the blob store refused to serve this blob: {0}")]
    Refused(String),
    /// The store's configuration is unusable (a connection string without an account or a
    /// credential, an endpoint that is not an http(s) URL). The message never holds a
    /// credential.
    #[error("unusable blob store configuration: {0}")]
    Config(String),
}

impl PayloadError {
    /// Whether trying again later may succeed ([`PayloadError::Unavailable`]).
    ///
    /// ```
    /// use msgraph_notify::offload::PayloadError;
    /// assert!(PayloadError::Unavailable("connection refused".into()).is_transient());
    /// assert!(!PayloadError::NotFound.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, PayloadError::Unavailable(_))
    }
}

/// A store's own failure (unreachable, timed out): not a property of the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the replay store is unavailable: {0}")]
pub struct ReplayStoreError(pub String);

/// Why a subscription body would be refused by Graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The path names no resource that delivers resource data.
    #[error(
        "Graph delivers resource data for no resource named by {0:?}: use one of presence, \
         chatMessage, callEvent, callRecording, callTranscript, chat, team, channel, \
         conversationMember, aiInteraction, or Outlook message, event, contact paths"
    )]
    UnsupportedResource(String),
    /// An Outlook path without `$select`.
    #[error(
        "Outlook {0} subscriptions with resource data must name the properties they want: \
         add ?$select=… to the resource"
    )]
    SelectRequired(&'static str),
    /// A presence `$filter` naming too many users.
    #[error("a presence subscription may name at most {max} users; this one names {count}")]
    TooManyPresenceIds {
        /// How many the filter names.
        count: usize,
        /// The most Graph accepts.
        max: usize,
    },
    /// A change type the resource does not support, or none at all.
    #[error("{kind} subscriptions support the change types {supported}, not {given:?}")]
    ChangeType {
        /// The resource kind.
        kind: &'static str,
        /// The change type given.
        given: String,
        /// What the resource supports, comma-separated.
        supported: String,
    },
    /// A lifetime of zero or over the resource's maximum.
    #[error("{kind} subscriptions last at most {max_minutes} minutes; {minutes} minutes asked")]
    Lifetime {
        /// The resource kind.
        kind: &'static str,
        /// The lifetime asked, in whole minutes.
        minutes: u64,
        /// The maximum, in minutes.
        max_minutes: u64,
    },
    /// A lifetime over one hour without a lifecycle URL, where Graph requires one.
    #[error(
        "{kind} subscriptions longer than 60 minutes need a lifecycleNotificationUrl \
         (asked: {minutes} minutes): give one, or ask for 60 minutes or less"
    )]
    LifecycleUrlRequired {
        /// The resource kind.
        kind: &'static str,
        /// The lifetime asked, in whole minutes.
        minutes: u64,
    },
    /// A notification or lifecycle URL Graph would not call.
    #[error(
        "{field} must be an https:// URL (or EventHub:/EventGrid: for those deliveries): {url:?}"
    )]
    Url {
        /// `notificationUrl` or `lifecycleNotificationUrl`.
        field: &'static str,
        /// The URL given.
        url: String,
    },
    /// A value over its documented length, or empty.
    #[error("{field} must have 1 to {max} characters, not {len}")]
    Length {
        /// The field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The most Graph accepts.
        max: usize,
    },
    /// A lifecycle notification without the subscription id it is about.
    #[error("the lifecycle notification has no subscriptionId")]
    NoSubscriptionId,
}

#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
/// Why an HTTP request for the signing keys got no answer, as far as the error tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpFailure {
    /// The host name did not resolve: no network, no DNS, or a mistyped host.
    NameResolution,
    /// Nothing listens at the address (or a firewall refuses).
    ConnectionRefused,
    /// The TLS handshake failed (a certificate the platform does not trust, or a server that
    /// does not speak TLS).
    Tls,
    /// No answer within `FetchConfig::timeout`.
    Timeout,
    /// Another failure (the reason says which).
    Other,
}

#[cfg(feature = "fetch")]
impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpFailure::NameResolution => {
                "name resolution failed (no network or DNS, or the host does not exist)"
            }
            HttpFailure::ConnectionRefused => "the connection was refused",
            HttpFailure::Tls => "the TLS handshake failed",
            HttpFailure::Timeout => "it timed out",
            HttpFailure::Other => "it failed",
        })
    }
}

#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
/// Why fetching the signing keys failed. The previous keys stay in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed (name resolution, connection, TLS, timeout).
    #[error("request to {url} failed: {cause}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Which kind of failure.
        cause: HttpFailure,
        /// What failed, as the HTTP stack tells it.
        reason: String,
    },
    /// The answer is larger than `MAX_DOCUMENT_BYTES` (`token::fetch`).
    #[error("{url} answered more than {limit} bytes: refused")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The server answered with a non-success status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer was not the expected JSON.
    #[error("{url} did not return {what}: {reason}")]
    Parse {
        /// The URL.
        url: String,
        /// What was expected.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A refresh was skipped: the last one was less than `min_refresh_interval` ago.
    #[error("refresh skipped: the last fetch was less than the minimum interval ago")]
    RateLimited,
}

/// Shorthand for `Result<T, msgraph_notify::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
