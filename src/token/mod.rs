//! Validation tokens: the JWTs that prove Graph sent a notification.

/// Why a validation token was rejected. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The body carries encrypted content but no validation tokens at all.
    #[error("the notification carries encrypted content but no validation tokens")]
    Missing,
    /// No valid token covers the item's (app, tenant).
    #[error("no valid validation token covers tenant {0:?}")]
    NotCovered(String),
    /// The token is not a well-formed JWT.
    #[error("not a well-formed JWT: {0}")]
    Malformed(String),
    /// `alg` is not RS256.
    #[error("algorithm {0} is not allowed (only RS256)")]
    Algorithm(String),
    /// No signing key has the token's `kid`.
    #[error("no signing key has kid {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is not one of the configured app ids.
    #[error("audience {0:?} is not one of the configured app ids")]
    Audience(String),
    /// The publisher claim is not Microsoft Graph's change-tracking app.
    #[error("publisher {0:?} is not Microsoft Graph change tracking")]
    Publisher(String),
    /// `iss` is not the exact issuer for the token's `tid` and `ver`.
    #[error("issuer {0:?} is not the issuer of the token's tenant")]
    Issuer(String),
    /// `tid` is not in the tenant allow-list.
    #[error("tenant {0:?} is not allowed")]
    Tenant(String),
    /// `ver` is neither 1.0 nor 2.0.
    #[error("token version {0:?} is not 1.0 or 2.0")]
    Version(String),
    /// The token was refused because another token of its tenant failed.
    #[error("a validation token for tenant {0:?} failed, so its items are untrusted")]
    Tainted(String),
}
