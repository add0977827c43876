//! The crate's one error type.

use std::borrow::Cow;

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
    Token(#[from] crate::token::TokenError),

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
    ReplayStore(#[from] crate::replay::ReplayStoreError),

    /// The decryption key could not be used: its own failure (a PKCS#11 token removed, a session
    /// that could not be reopened, a locked PIN, a vault out of reach), not the notification's.
    /// The item was not judged: it may succeed once the key is back. The message names the cause
    /// and never anything of the ciphertext.
    #[error("the decryption key is unavailable: {0}")]
    KeyUnavailable(String),

    /// An offloaded payload (`additionalPayloadStorageId`) could not be read from the blob store.
    /// When [`PayloadError::is_transient`](crate::offload::PayloadError::is_transient), the
    /// item was not judged and may succeed later.
    #[error("the offloaded payload (additionalPayloadStorageId) cannot be read: {0}")]
    Payload(#[from] crate::offload::PayloadError),

    /// A random number generator or key generation failure.
    #[error("cryptographic backend failure: {0}")]
    Backend(String),
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
            Error::Token(e) => matches!(e, crate::token::TokenError::KeysUnavailable { .. }),
            _ => false,
        }
    }

    /// The error's reason in the small fixed set used as a metric label (Prometheus keeps one
    /// series per value, so the set never grows with the input): `token`, `client_state`,
    /// `signature`, `duplicate`, `malformed`, `key`, `replay_store` or `other`.
    ///
    /// ```
    /// use msgraph_notify::Error;
    /// assert_eq!(Error::Verification.label(), "signature");
    /// assert_eq!(Error::ClientState.label(), "client_state");
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
            | Error::KeyUnavailable(_) => "key",
            Error::ReplayStore(_) => "replay_store",
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

/// Shorthand for `Result<T, msgraph_notify::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
