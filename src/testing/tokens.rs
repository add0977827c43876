//! A stand-in for the Microsoft identity platform: signing keys and validation tokens.

use serde_json::Value;

use crate::crypto;
use crate::error::Result;

/// A stand-in for the Microsoft identity platform: its own RSA key and JWKS, minting validation
/// tokens as Graph sends them (v1.0 and v2.0), and each kind of wrong one.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use msgraph_notify::testing::{TokenFlaw, TokenIssuer};
/// use msgraph_notify::token::{TokenError, TokenValidator, TokenVersion, Validation};
/// let issuer = TokenIssuer::new()?;
/// let validator = TokenValidator::new(Validation::new(["app"]), issuer.signing_keys());
/// assert!(validator.validate(&issuer.token(TokenVersion::V1, "app", "tenant")).is_ok());
/// let expired = issuer.flawed_token(TokenVersion::V1, "app", "tenant", TokenFlaw::Expired);
/// assert_eq!(validator.validate(&expired), Err(TokenError::Expired));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TokenIssuer {
    key: crate::PrivateKey,
    kid: String,
    other: std::sync::OnceLock<crate::PrivateKey>,
}

/// A way a validation token can be wrong, for [`TokenIssuer::flawed_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFlaw {
    /// `exp` an hour ago.
    Expired,
    /// `nbf` an hour ahead.
    NotYetValid,
    /// `aud` another app.
    WrongAudience,
    /// The publisher claim names another app.
    WrongPublisher,
    /// The publisher in the claim of the other version (`azp` in a v1.0 token, `appid` in v2.0).
    PublisherInOtherVersionsClaim,
    /// An issuer that merely contains the tenant id.
    IssuerContainingTenant,
    /// The issuer of another tenant.
    OtherTenantsIssuer,
    /// `alg` `none` and no signature.
    AlgNone,
    /// HS256, keyed with the signing key's public key bytes.
    Hs256WithPublicKey,
    /// A `kid` the JWKS does not have.
    UnknownKid,
    /// The right `kid`, signed by another key.
    ForeignSignature,
    /// `ver` 3.0.
    UnknownVersion,
}

impl TokenIssuer {
    /// A new issuer with a fresh 2048-bit key.
    pub fn new() -> Result<Self> {
        let key = crate::PrivateKey::generate(2048)?;
        let kid = crypto::b64_encode(&crypto::random_bytes(9)?).replace(['+', '/'], "x");
        Ok(TokenIssuer {
            key,
            kid,
            other: std::sync::OnceLock::new(),
        })
    }

    /// An issuer signing with `key` under `kid` (to sign fixtures with a key kept on disk).
    pub fn from_key(key: crate::PrivateKey, kid: impl Into<String>) -> Self {
        TokenIssuer {
            key,
            kid: kid.into(),
            other: std::sync::OnceLock::new(),
        }
    }

    /// The `kid` of the issuer's key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document, as the identity platform serves it.
    pub fn jwks_json(&self) -> String {
        let (n, e) = self.key.public_components();
        serde_json::json!({
            "keys": [{
                "kty": "RSA", "use": "sig", "kid": self.kid,
                "n": b64url(n), "e": b64url(e),
            }]
        })
        .to_string()
    }

    /// The issuer's key set, ready for a validator.
    pub fn signing_keys(&self) -> crate::token::SigningKeys {
        let mut jwks = crate::token::Jwks::default();
        let (n, e) = self.key.public_components();
        jwks.insert(self.kid.clone(), n, e);
        crate::token::SigningKeys::new(jwks)
    }

    /// The claims of a valid token for `app_id` in `tenant_id`, valid from a minute ago for an
    /// hour.
    pub fn claims(
        &self,
        version: crate::token::TokenVersion,
        app_id: &str,
        tenant_id: &str,
    ) -> Value {
        let now = crate::token::now_unix();
        let mut claims = serde_json::json!({
            "aud": app_id,
            "iss": version.issuer(tenant_id),
            "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
            "tid": tenant_id,
            "ver": version.as_str(),
            "idp": version.issuer(tenant_id),
            "oid": "5a2c1d0e-1234-4c8e-9f00-0123456789ab",
            "sub": "5a2c1d0e-1234-4c8e-9f00-0123456789ab",
        });
        claims[version.publisher_claim()] =
            Value::String(crate::token::GRAPH_CHANGE_TRACKING_APP_ID.into());
        claims
    }

    /// Signs `claims` with RS256 under the issuer's `kid`.
    ///
    /// # Panics
    ///
    /// If the crypto backend fails to sign (a failing system RNG), here and in
    /// [`TokenIssuer::token`] and [`TokenIssuer::flawed_token`]: a test kit must not hand back a
    /// token that is broken in a way the test did not ask for.
    pub fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        self.sign_with(&self.key, &header, claims)
    }

    fn sign_with(&self, key: &crate::PrivateKey, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        // A test kit: a token with a broken signature would make a test pass or fail for the
        // wrong reason, so a backend failure (only a failing system RNG causes one) stops it.
        #[allow(clippy::expect_used)]
        let sig = key
            .sign_pkcs1_sha256(input.as_bytes())
            .expect("the crypto backend failed to sign a test token");
        format!("{input}.{}", b64url(&sig))
    }

    /// A valid token for `app_id` in `tenant_id`.
    pub fn token(
        &self,
        version: crate::token::TokenVersion,
        app_id: &str,
        tenant_id: &str,
    ) -> String {
        self.sign(&self.claims(version, app_id, tenant_id))
    }

    /// A valid token issued at `issued` (valid from a minute before it for an hour): a token as
    /// Graph sent it with a body received at that time.
    pub fn token_at(
        &self,
        version: crate::token::TokenVersion,
        app_id: &str,
        tenant_id: &str,
        issued: std::time::SystemTime,
    ) -> String {
        let at = issued
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = self.claims(version, app_id, tenant_id);
        claims["iat"] = at.saturating_sub(60).into();
        claims["nbf"] = at.saturating_sub(60).into();
        claims["exp"] = (at + 3600).into();
        self.sign(&claims)
    }

    /// A token that is wrong in exactly one way.
    pub fn flawed_token(
        &self,
        version: crate::token::TokenVersion,
        app_id: &str,
        tenant_id: &str,
        flaw: TokenFlaw,
    ) -> String {
        use crate::token::TokenVersion;
        let mut claims = self.claims(version, app_id, tenant_id);
        let now = crate::token::now_unix();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        match flaw {
            TokenFlaw::Expired => {
                claims["exp"] = (now - 3600).into();
                claims["nbf"] = (now - 7200).into();
            }
            TokenFlaw::NotYetValid => claims["nbf"] = (now + 3600).into(),
            TokenFlaw::WrongAudience => {
                claims["aud"] = "00000000-0000-0000-0000-000000000bad".into()
            }
            TokenFlaw::WrongPublisher => {
                claims[version.publisher_claim()] = "11111111-2222-3333-4444-555555555555".into();
            }
            TokenFlaw::PublisherInOtherVersionsClaim => {
                let other = match version {
                    TokenVersion::V1 => TokenVersion::V2,
                    TokenVersion::V2 => TokenVersion::V1,
                };
                if let Some(map) = claims.as_object_mut() {
                    map.remove(version.publisher_claim());
                }
                claims[other.publisher_claim()] = crate::token::GRAPH_CHANGE_TRACKING_APP_ID.into();
            }
            TokenFlaw::IssuerContainingTenant => {
                claims["iss"] =
                    format!("https://evil.example/{}", version.issuer(tenant_id)).into();
            }
            TokenFlaw::OtherTenantsIssuer => {
                claims["iss"] = version
                    .issuer("99999999-9999-9999-9999-999999999999")
                    .into();
            }
            TokenFlaw::AlgNone => {
                let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": self.kid});
                return format!(
                    "{}.{}.",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
            }
            TokenFlaw::Hs256WithPublicKey => {
                let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": self.kid});
                let input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let mac = crypto::hmac_sha256(&self.key.public_key_pkcs1_der(), input.as_bytes());
                return format!("{input}.{}", b64url(&mac));
            }
            TokenFlaw::UnknownKid => {
                let header =
                    serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "unknown-kid"});
                return self.sign_with(&self.key, &header, &claims);
            }
            TokenFlaw::ForeignSignature => {
                // Never the issuer's own key: that would make this token valid.
                #[allow(clippy::expect_used)]
                let other = self.other.get_or_init(|| {
                    crate::PrivateKey::generate(2048)
                        .expect("the crypto backend failed to generate a test key")
                });
                return self.sign_with(other, &header, &claims);
            }
            TokenFlaw::UnknownVersion => claims["ver"] = "3.0".into(),
        }
        self.sign_with(&self.key, &header, &claims)
    }
}

fn b64url(bytes: &[u8]) -> String {
    crate::crypto::b64url_encode(bytes)
}
