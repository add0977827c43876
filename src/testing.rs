//! A Graph-like sender for tests (feature `testing`): encrypt any JSON exactly as Graph does for a
//! certificate, so receivers can be tested end to end with no network.
//!
//! Never use these in production code paths: they exist to build fixtures.

use std::fmt;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::crypto::{self, Wrap};
use crate::error::{Error, Result};
use crate::keys::Certificate;
use crate::model::{ChangeNotification, ChangeType, EncryptedContent};

/// How the test kit wraps the symmetric key. Graph uses [`KeyWrap::OaepSha1`]; the others exist to
/// prove a receiver refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyWrap {
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1: what Graph sends.
    #[default]
    OaepSha1,
    /// RSAES-OAEP with SHA-256 (not what Graph sends).
    OaepSha256,
    /// RSAES-PKCS1-v1_5 (not what Graph sends).
    Pkcs1v15,
}

/// Encrypts resources for a subscriber's certificate as Graph does: a fresh symmetric key per item,
/// wrapped with RSA-OAEP (SHA-1), AES-CBC with IV = the key's first 16 bytes, PKCS#7, and an
/// HMAC-SHA256 of the ciphertext under the whole key.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::{keys::{Certificate, PrivateKey}, testing::GraphEncryptor};
/// let key = PrivateKey::generate(2048)?;
/// let cert = Certificate::self_signed(&key, "receiver", 1)?;
/// let content = GraphEncryptor::new(&cert, "cert-1").encrypt(br#"{"id":"1"}"#)?;
/// assert_eq!(content.encryption_certificate_id.as_deref(), Some("cert-1"));
/// assert_eq!(content.encryption_certificate_thumbprint, Some(cert.thumbprint()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GraphEncryptor<'a> {
    cert: &'a Certificate,
    certificate_id: Option<String>,
    symmetric_key: Option<Zeroizing<Vec<u8>>>,
    aes_key_len: usize,
    wrap: KeyWrap,
    thumbprint: bool,
}

/// Shows no key material: a given symmetric key appears as its length only.
impl fmt::Debug for GraphEncryptor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphEncryptor")
            .field("certificate", &self.cert.thumbprint())
            .field("certificate_id", &self.certificate_id)
            .field(
                "symmetric_key",
                &self
                    .symmetric_key
                    .as_ref()
                    .map(|k| format!("<{} bytes>", k.len())),
            )
            .field("aes_key_len", &self.aes_key_len)
            .field("wrap", &self.wrap)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

impl<'a> GraphEncryptor<'a> {
    /// Encrypts for `cert`, naming it `encryption_certificate_id` in each item.
    pub fn new(cert: &'a Certificate, encryption_certificate_id: &str) -> Self {
        GraphEncryptor {
            cert,
            certificate_id: Some(encryption_certificate_id.to_owned()),
            symmetric_key: None,
            aes_key_len: 32,
            wrap: KeyWrap::OaepSha1,
            thumbprint: true,
        }
    }

    /// Leaves `encryptionCertificateId` out of the items.
    pub fn without_certificate_id(mut self) -> Self {
        self.certificate_id = None;
        self
    }

    /// Leaves `encryptionCertificateThumbprint` out of the items.
    pub fn without_thumbprint(mut self) -> Self {
        self.thumbprint = false;
        self
    }

    /// Uses this symmetric key instead of a random one. A key that is not 16, 24 or 32 bytes is
    /// still wrapped and used for the signature (the data is then encrypted under its SHA-256), to
    /// build items a receiver must refuse.
    pub fn symmetric_key(mut self, key: &[u8]) -> Self {
        self.symmetric_key = Some(Zeroizing::new(key.to_vec()));
        self
    }

    /// Random keys of this many bytes: 16 (AES-128), 24 (AES-192) or 32 (AES-256, Graph's choice).
    pub fn aes_key_len(mut self, len: usize) -> Self {
        self.aes_key_len = len;
        self
    }

    /// Wraps the symmetric key this way.
    pub fn key_wrap(mut self, wrap: KeyWrap) -> Self {
        self.wrap = wrap;
        self
    }

    /// Encrypts `plaintext` into an `encryptedContent`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<EncryptedContent> {
        self.seal(|aes_key| crypto::aes_cbc_encrypt(aes_key, plaintext))
    }

    /// Encrypts whole 16-byte blocks with no PKCS#7 padding, signed correctly: an item whose
    /// signature holds but whose padding is bad (unless the last byte happens to be valid).
    pub fn encrypt_without_padding(&self, blocks: &[u8]) -> Result<EncryptedContent> {
        self.seal(|aes_key| crypto::aes_cbc_encrypt_unpadded(aes_key, blocks))
    }

    /// Uses `ciphertext` as `data` as it is, with a valid signature under the wrapped key: for
    /// items whose signature holds but whose ciphertext is unusable.
    pub fn seal_ciphertext(&self, ciphertext: &[u8]) -> Result<EncryptedContent> {
        self.seal(|_| Some(ciphertext.to_vec()))
    }

    fn seal(&self, make_data: impl FnOnce(&[u8]) -> Option<Vec<u8>>) -> Result<EncryptedContent> {
        let key = match &self.symmetric_key {
            Some(k) => k.clone(),
            None => crypto::random_bytes(self.aes_key_len)?,
        };
        let aes_key: zeroize::Zeroizing<Vec<u8>> = if matches!(key.len(), 16 | 24 | 32) {
            key.clone()
        } else {
            use sha2::Digest;
            zeroize::Zeroizing::new(sha2::Sha256::digest(&key).to_vec())
        };
        let data = make_data(&aes_key)
            .ok_or_else(|| Error::Backend("unusable AES key length or block count".into()))?;
        let signature = crypto::hmac_sha256(&key, &data);
        let wrap = match self.wrap {
            KeyWrap::OaepSha1 => Wrap::OaepSha1,
            KeyWrap::OaepSha256 => Wrap::OaepSha256,
            KeyWrap::Pkcs1v15 => Wrap::Pkcs1v15,
        };
        let wrapped = crypto::backend::public_encrypt(self.cert.public_key_der(), wrap, &key)
            .map_err(Error::Backend)?;
        Ok(EncryptedContent {
            data: Some(crypto::b64_encode(&data)),
            data_key: Some(crypto::b64_encode(&wrapped)),
            data_signature: Some(crypto::b64_encode(&signature)),
            encryption_certificate_id: self.certificate_id.clone(),
            encryption_certificate_thumbprint: self.thumbprint.then(|| self.cert.thumbprint()),
            extra: Map::new(),
        })
    }

    /// Builds a whole rich notification around `resource` (JSON), as Graph would send it.
    pub fn notification(
        &self,
        resource: &Value,
        spec: &NotificationSpec,
    ) -> Result<ChangeNotification> {
        let json = serde_json::to_vec(resource)
            .map_err(|e| Error::malformed("resource", e.to_string()))?;
        let content = self.encrypt(&json)?;
        let odata_type = resource
            .get("@odata.type")
            .cloned()
            .unwrap_or_else(|| Value::String("#Microsoft.Graph.chatMessage".into()));
        let mut resource_data = Map::new();
        resource_data.insert("@odata.type".into(), odata_type);
        resource_data.insert("@odata.id".into(), Value::String(spec.resource.clone()));
        if let Some(id) = resource.get("id") {
            resource_data.insert("id".into(), id.clone());
        }
        Ok(ChangeNotification {
            subscription_id: Some(spec.subscription_id.clone()),
            subscription_expiration_date_time: Some("2030-01-01T00:00:00.0000000Z".into()),
            tenant_id: Some(spec.tenant_id.clone()),
            change_type: Some(spec.change_type.clone()),
            client_state: spec.client_state.clone(),
            resource: Some(spec.resource.clone()),
            resource_data: Some(Value::Object(resource_data)),
            encrypted_content: Some(content),
            ..ChangeNotification::default()
        })
    }
}

/// The metadata of a notification built by [`GraphEncryptor::notification`].
#[derive(Debug, Clone)]
pub struct NotificationSpec {
    /// `subscriptionId`.
    pub subscription_id: String,
    /// `tenantId`.
    pub tenant_id: String,
    /// `resource`.
    pub resource: String,
    /// `changeType`.
    pub change_type: ChangeType,
    /// `clientState`.
    pub client_state: Option<String>,
}

impl NotificationSpec {
    /// A spec for `resource` in `tenant_id`, change type `updated`, with a fixed subscription id
    /// and no clientState.
    pub fn new(tenant_id: &str, resource: &str) -> Self {
        NotificationSpec {
            subscription_id: "9f9c5ad9-1c0c-4d5c-9d4c-8b0c1f4e2a01".into(),
            tenant_id: tenant_id.into(),
            resource: resource.into(),
            change_type: ChangeType::Updated,
            client_state: None,
        }
    }
}

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
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
