//! Validation tokens: the JWTs that prove Graph sent a notification.
//!
//! Each token must pass every check of [`Validation`]: RS256 only, a signing key chosen by `kid`,
//! the signature, `exp`/`nbf` with a leeway, `aud` among the receiving app ids, the publisher
//! (Microsoft Graph change tracking, in `appid` for v1.0 tokens and `azp` for v2.0), the issuer
//! bound exactly to the token's `tid`, and an optional tenant allow-list.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use msgraph_notify::token::{TokenValidator, Validation, TokenVersion};
//! use msgraph_notify::testing::TokenIssuer;
//! let issuer = TokenIssuer::new()?;                        // stands in for Microsoft's keys
//! let validator = TokenValidator::new(Validation::new(["my-app-id"]), issuer.signing_keys());
//! let token = issuer.token(TokenVersion::V2, "my-app-id", "my-tenant");
//! let valid = validator.validate(&token)?;
//! assert_eq!(valid.tenant_id, "my-tenant");
//! # Ok(()) }
//! ```

mod cache;
mod jwks;

#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
pub mod fetch;

pub use cache::TokenCache;
pub use jwks::{Jwks, SigningKeys};

pub use crate::error::TokenError;

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Microsoft Graph's change-tracking application: the publisher of every validation token.
pub const GRAPH_CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// The two token versions Graph sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenVersion {
    /// `ver` 1.0: issuer `https://sts.windows.net/{tid}/`, publisher in `appid`.
    V1,
    /// `ver` 2.0: issuer `https://login.microsoftonline.com/{tid}/v2.0`, publisher in `azp`.
    V2,
}

impl TokenVersion {
    /// The exact issuer for `tenant_id`.
    pub fn issuer(self, tenant_id: &str) -> String {
        match self {
            TokenVersion::V1 => format!("https://sts.windows.net/{tenant_id}/"),
            TokenVersion::V2 => format!("https://login.microsoftonline.com/{tenant_id}/v2.0"),
        }
    }

    /// The claim that names the publisher: `appid` (v1.0) or `azp` (v2.0).
    pub fn publisher_claim(self) -> &'static str {
        match self {
            TokenVersion::V1 => "appid",
            TokenVersion::V2 => "azp",
        }
    }

    /// `"1.0"` or `"2.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenVersion::V1 => "1.0",
            TokenVersion::V2 => "2.0",
        }
    }
}

/// What a validation token must satisfy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Validation {
    /// The receiving application ids: `aud` must be one of them (GUIDs compare ignoring case).
    /// Several apps may share an endpoint. No default: a receiver refuses to build with none, or
    /// with an empty one.
    pub app_ids: HashSet<String>,
    /// When set, `tid` must be one of these tenants (GUIDs compare ignoring case). Default: any
    /// tenant.
    pub tenants: Option<HashSet<String>>,
    /// Clock skew allowed on `exp` and `nbf`. Default: 5 minutes, as the .NET SDK.
    pub leeway: Duration,
    /// The publisher the token must name. Default: [`GRAPH_CHANGE_TRACKING_APP_ID`]; only tests
    /// and national clouds with another publisher should change it.
    pub publisher: String,
}

impl Validation {
    /// Tokens addressed to any of `app_ids`, from any tenant, with the default leeway.
    pub fn new<I, S>(app_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Validation {
            app_ids: app_ids.into_iter().map(Into::into).collect(),
            tenants: None,
            leeway: Duration::from_secs(300),
            publisher: GRAPH_CHANGE_TRACKING_APP_ID.to_owned(),
        }
    }

    /// Restricts `tid` to these tenants.
    pub fn allow_tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants = Some(tenants.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the clock-skew leeway.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    /// `tid`: the tenant the token covers.
    pub tenant_id: String,
    /// `aud`: the receiving app the token was issued to.
    pub app_id: String,
    /// `ver`.
    pub version: TokenVersion,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    aud: Option<Value>,
    iss: Option<String>,
    tid: Option<String>,
    ver: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// Checks validation tokens against a [`Validation`] and a set of [`SigningKeys`].
///
/// Cheap to share: the signing keys are behind an `Arc` and can be refreshed while in use.
#[derive(Debug, Clone)]
pub struct TokenValidator {
    validation: Validation,
    keys: SigningKeys,
}

impl TokenValidator {
    /// A validator for `validation` using `keys`.
    pub fn new(validation: Validation, keys: SigningKeys) -> Self {
        crate::crypto::install_jwt_provider();
        TokenValidator { validation, keys }
    }

    /// The signing keys in use.
    pub fn signing_keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// The rules in force.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// The `kid` of a token's header, without any validation (to fetch its key first).
    pub fn peek_kid(token: &str) -> Option<String> {
        parse_header(token).ok().and_then(|h| h.kid)
    }

    /// The `tid` claim of a token, without any validation: used only to attribute a failed
    /// token to its tenant, never to trust it.
    pub fn peek_tenant(token: &str) -> Option<String> {
        let payload = token.split('.').nth(1)?;
        let bytes = b64url(payload).ok()?;
        let claims: Claims = serde_json::from_slice(&bytes).ok()?;
        claims.tid
    }

    /// Runs every check on one token, its lifetime against the clock now.
    pub fn validate(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        self.validate_at(token, std::time::SystemTime::now())
    }

    /// Runs every check on one token, its lifetime (`exp`, `nbf`, with the leeway) as of `at`:
    /// the time a body was *accepted*, for a body kept durably since (a spool) and judged later.
    /// `at` must come from the receiver's own clock when the body arrived, never from the
    /// request.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::{Duration, SystemTime};
    /// use msgraph_notify::testing::TokenIssuer;
    /// use msgraph_notify::token::{TokenError, TokenValidator, TokenVersion, Validation};
    /// let issuer = TokenIssuer::new()?;
    /// let validator = TokenValidator::new(Validation::new(["app"]), issuer.signing_keys());
    /// let token = issuer.token(TokenVersion::V1, "app", "tenant"); // valid for an hour
    /// let two_hours_on = SystemTime::now() + Duration::from_secs(2 * 3600);
    /// assert_eq!(validator.validate_at(&token, two_hours_on), Err(TokenError::Expired));
    /// assert!(validator.validate_at(&token, SystemTime::now()).is_ok());
    /// # Ok(()) }
    /// ```
    pub fn validate_at(
        &self,
        token: &str,
        at: std::time::SystemTime,
    ) -> Result<ValidatedToken, TokenError> {
        let header = parse_header(token)?;
        match header.alg.as_deref() {
            Some("RS256") => {}
            other => return Err(TokenError::Algorithm(other.unwrap_or("<none>").to_owned())),
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Malformed("the header has no kid".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| match self.keys.fetch_failure() {
                Some(reason) => TokenError::KeysUnavailable {
                    kid: kid.clone(),
                    reason,
                },
                None => TokenError::UnknownKey(kid.clone()),
            })?;

        let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        rules.leeway = self.validation.leeway.as_secs();
        // The lifetime is checked below, as of `at`.
        rules.validate_exp = false;
        rules.validate_nbf = false;
        rules.validate_aud = false; // checked below, with a precise error
        rules.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &rules).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => TokenError::Signature,
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidAlgorithm => TokenError::Algorithm("?".into()),
                _ => TokenError::Malformed(e.to_string()),
            }
        })?;
        let claims = data.claims;
        // jsonwebtoken's rules, at `at`: expired when `exp < at - leeway`, not yet valid when
        // `nbf > at + leeway`.
        let at = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let leeway = self.validation.leeway.as_secs();
        let exp = claims
            .exp
            .ok_or_else(|| TokenError::Malformed("no exp claim".into()))?;
        if exp < at.saturating_sub(leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > at.saturating_add(leeway))
        {
            return Err(TokenError::NotYetValid);
        }

        let version = match claims.ver.as_deref() {
            Some("1.0") => TokenVersion::V1,
            Some("2.0") => TokenVersion::V2,
            other => return Err(TokenError::Version(other.unwrap_or("<none>").to_owned())),
        };
        let publisher = match version {
            TokenVersion::V1 => claims.appid.as_deref(),
            TokenVersion::V2 => claims.azp.as_deref(),
        };
        if publisher != Some(self.validation.publisher.as_str()) {
            return Err(TokenError::Publisher(publisher.map_or_else(
                || format!("<no {} claim>", version.publisher_claim()),
                str::to_owned,
            )));
        }
        let tenant_id = claims
            .tid
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::Malformed("no tid claim".into()))?;
        let iss = claims.iss.unwrap_or_default();
        if iss != version.issuer(&tenant_id) {
            return Err(TokenError::Issuer(iss));
        }
        if let Some(allowed) = &self.validation.tenants
            && !allowed.iter().any(|t| ids_equal(t, &tenant_id))
        {
            return Err(TokenError::Tenant(tenant_id));
        }
        // The audience is checked last: a token that passes every other check but names another
        // app is genuine (several apps may share one notification URL, and Graph sends each its
        // token in the same POST), so `TokenError::Audience` means exactly "honest, not ours".
        let app_id = match &claims.aud {
            Some(Value::String(aud)) => self.our_app(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .find_map(|a| self.our_app(a)),
            _ => None,
        };
        let Some(app_id) = app_id else {
            let shown = match &claims.aud {
                Some(Value::String(aud)) => aud.clone(),
                Some(other) => other.to_string(),
                None => "<none>".to_owned(),
            };
            return Err(TokenError::Audience(shown));
        };
        Ok(ValidatedToken {
            tenant_id,
            app_id,
            version,
            expires_at: claims.exp.unwrap_or(0),
        })
    }
}

impl TokenValidator {
    /// The configured app id that `aud` names (GUIDs compare ignoring case), as configured.
    fn our_app(&self, aud: &str) -> Option<String> {
        self.validation
            .app_ids
            .iter()
            .find(|app| ids_equal(app, aud))
            .cloned()
    }
}

/// Whether `text` is a GUID in its registry form (`8-4-4-4-12` hex digits, either case, no braces).
///
/// ```
/// use msgraph_notify::token::is_guid;
/// assert!(is_guid("0BF30F3B-4a52-48df-9a82-234910c4a086"));
/// assert!(!is_guid("my-app"));
/// ```
pub fn is_guid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether two tenant, app or subscription ids name the same thing: GUIDs compare ignoring ASCII
/// case (Microsoft writes them in either case), anything else exactly.
///
/// ```
/// use msgraph_notify::token::ids_equal;
/// assert!(ids_equal("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "72f988bf-86f1-41af-91ab-2d7cd011db47"));
/// assert!(!ids_equal("Contoso", "contoso"));
/// ```
pub fn ids_equal(a: &str, b: &str) -> bool {
    if is_guid(a) && is_guid(b) {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// `id` as a map key under which every spelling [`ids_equal`] accepts is the same: GUIDs in lower
/// case, anything else as it is.
pub(crate) fn id_key(id: &str) -> String {
    if is_guid(id) {
        id.to_ascii_lowercase()
    } else {
        id.to_owned()
    }
}

fn b64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(text)
}

fn parse_header(token: &str) -> Result<Header, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "a JWT has three dot-separated parts".into(),
        ));
    };
    let bytes = b64url(header)
        .map_err(|e| TokenError::Malformed(format!("header is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("header is not a JSON object: {e}")))
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
