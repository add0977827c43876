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

/// One decrypted resource as Graph's documentation shows it, with the resource path of the
/// notification that carries it (see [`doc_samples`]).
#[derive(Debug, Clone)]
pub struct DocSample {
    /// The kind it is: [`crate::Resource::kind`]'s name, e.g. `callTranscript`.
    pub kind: &'static str,
    /// The notification's `resource`, in the spelling the docs show for that kind.
    pub resource: &'static str,
    /// The `@odata.type` Graph names the entity with (`#microsoft.graph.callTranscript`...).
    pub odata_type: &'static str,
    /// The decrypted JSON, without `@odata.type` (as Graph sends most of these).
    pub json: Value,
}

impl DocSample {
    /// [`DocSample::json`] with `@odata.type` set to [`DocSample::odata_type`].
    pub fn typed_json(&self) -> Value {
        let mut json = self.json.clone();
        if let Some(object) = json.as_object_mut() {
            object.insert("@odata.type".into(), Value::String(self.odata_type.into()));
        }
        json
    }
}

/// The decrypted resource of each kind this crate types, shaped as in Graph's documentation of
/// change notifications with resource data (`teams-changenotifications-*`,
/// `outlook-change-notifications-overview`, `aiinteraction-changenotifications`), with the
/// resource paths the docs' notifications carry.
///
/// ```
/// let samples = msgraph_notify::testing::doc_samples();
/// assert!(samples.iter().any(|s| s.kind == "callTranscript"));
/// ```
pub fn doc_samples() -> Vec<DocSample> {
    use serde_json::json;
    let organizer = json!({"application": null, "device": null,
        "user": {"id": "ba321e0d-79ee-478d-8e28-85a19507f456", "displayName": null,
                 "userIdentityType": "aadUser", "tenantId": "cd2e8cb9-b4a4-4a4e-94d3-8b2ba4a6de2b"}});
    vec![
        DocSample {
            kind: "presence",
            resource: "communications/presences/4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3",
            odata_type: "#microsoft.graph.presence",
            json: json!({"id": "4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3", "availability": "Busy",
                         "activity": "InACall", "sequenceNumber": "C1jM3v",
                         "statusMessage": null}),
        },
        DocSample {
            kind: "chatMessage",
            resource: "chats('19:8b081ef6-4792-4def-b2c9-c363a1bf41d5_877192bd-9183-47d3-a74c-8aa0426716cf@unq.gbl.spaces')/messages('1612289765949')",
            odata_type: "#microsoft.graph.chatMessage",
            json: json!({"id": "1612289765949", "replyToId": null, "etag": "1612289765949",
                "messageType": "message", "createdDateTime": "2021-02-02T18:16:05.949Z",
                "chatId": "19:8b081ef6-4792-4def-b2c9-c363a1bf41d5_877192bd-9183-47d3-a74c-8aa0426716cf@unq.gbl.spaces",
                "importance": "normal", "locale": "en-us",
                "from": {"user": {"id": "8ea0e38b-efb3-4757-924a-5f94061cf8c2", "displayName": "Robin Kline",
                                  "userIdentityType": "aadUser"}},
                "body": {"contentType": "text", "content": "Hello World"},
                "attachments": [], "mentions": [], "reactions": []}),
        },
        DocSample {
            kind: "callEvent",
            resource: "communications/onlineMeetings(joinWebUrl='https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_ZmYwZTEy%2540thread.v2%2F0')/meetingCallEvents",
            odata_type: "#microsoft.graph.callEvent",
            json: json!({"id": "2b3f0d6e-0c34-4b5b-9a1f-1b2c3d4e5f60", "eventType": "rosterUpdated",
                "eventDateTime": "2023-09-18T22:15:30.1234567Z",
                "participants@delta": [{"id": "3a4b5c6d", "isInLobby": false,
                    "info": {"identity": {"user": {"id": "8ea0e38b", "displayName": "Robin Kline"}}},
                    "removedState": {"reason": "Participant left the call"}}]}),
        },
        DocSample {
            kind: "callRecording",
            resource: "communications/onlineMeetings('MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ')/recordings('VjIjIzFhNTk3YmE1LTFmMzAtNDg5Yy1hOWU2LWE3ZDAwMjM2NjA1Nw')",
            odata_type: "#microsoft.graph.callRecording",
            json: json!({"id": "VjIjIzFhNTk3YmE1LTFmMzAtNDg5Yy1hOWU2LWE3ZDAwMjM2NjA1Nw",
                "meetingId": "MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ",
                "createdDateTime": "2023-03-07T22:49:14.4425327Z",
                "recordingContentUrl": "https://graph.microsoft.com/v1.0/users/ba321e0d-79ee-478d-8e28-85a19507f456/onlineMeetings/MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ/recordings/VjIjIzFhNTk3YmE1LTFmMzAtNDg5Yy1hOWU2LWE3ZDAwMjM2NjA1Nw/content",
                "meetingOrganizer": organizer.clone()}),
        },
        DocSample {
            kind: "callTranscript",
            resource: "communications/onlineMeetings('MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ')/transcripts('MSMjMCMjZDAwYWU3NjUtNmM2Yi00NjQxLTgwMWQtMTkzMmFmMjEzNzdh')",
            odata_type: "#microsoft.graph.callTranscript",
            json: json!({"id": "MSMjMCMjZDAwYWU3NjUtNmM2Yi00NjQxLTgwMWQtMTkzMmFmMjEzNzdh",
                "meetingId": "MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ",
                "createdDateTime": "2023-03-07T22:49:14.4425327Z",
                "transcriptContentUrl": "https://graph.microsoft.com/v1.0/users/ba321e0d-79ee-478d-8e28-85a19507f456/onlineMeetings/MSo1N2Y5ZGFjYy03MWJmLTQ3NDMtYjQxMy01M2EdFGkdRWHJlQ/transcripts/MSMjMCMjZDAwYWU3NjUtNmM2Yi00NjQxLTgwMWQtMTkzMmFmMjEzNzdh/content",
                "meetingOrganizer": organizer}),
        },
        DocSample {
            kind: "chat",
            resource: "chats('19:2da4c29f6d7041eca70b638b43d45437@thread.v2')",
            odata_type: "#microsoft.graph.chat",
            json: json!({"id": "19:2da4c29f6d7041eca70b638b43d45437@thread.v2", "topic": "Meeting chat sample",
                "createdDateTime": "2021-03-08T22:17:50.581Z", "lastUpdatedDateTime": "2021-03-08T22:17:50.581Z",
                "chatType": "group", "isHiddenForAllMembers": false,
                "webUrl": "https://teams.microsoft.com/l/chat/19%3A2da4c29f6d7041eca70b638b43d45437%40thread.v2/0",
                "tenantId": "b33cbe9f-8ebe-4f2a-912b-7e2a427f477f", "onlineMeetingInfo": null}),
        },
        DocSample {
            kind: "team",
            resource: "teams('b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a')",
            odata_type: "#microsoft.graph.team",
            json: json!({"id": "b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a", "displayName": "Contoso Team",
                "description": "This is a Contoso team.", "createdDateTime": "2021-02-02T18:16:05.949Z",
                "visibility": "public", "isArchived": false, "classification": null,
                "webUrl": "https://teams.microsoft.com/l/team/19:09fc54a3141a45d0bc769cf506d2e079%40thread.skype/conversations?groupId=b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a&tenantId=b33cbe9f-8ebe-4f2a-912b-7e2a427f477f"}),
        },
        DocSample {
            kind: "channel",
            resource: "teams('b5bfb4f5-c1f0-4c4e-8c8f-2a1d4e5c6b7a')/channels('19:4b6bed8d24574f6a9e436813cb2617d8@thread.tacv2')",
            odata_type: "#microsoft.graph.channel",
            json: json!({"id": "19:4b6bed8d24574f6a9e436813cb2617d8@thread.tacv2",
                "createdDateTime": "2020-05-27T19:22:25.692Z", "displayName": "General",
                "description": "AutoTestTeam_20210311_150740.2550_fim3udfdjen9",
                "membershipType": "standard", "email": "someperson@microsoft.com",
                "tenantId": "b33cbe9f-8ebe-4f2a-912b-7e2a427f477f",
                "webUrl": "https://teams.microsoft.com/l/channel/19%3A4b6bed8d24574f6a9e436813cb2617d8%40thread.tacv2/General"}),
        },
        DocSample {
            kind: "conversationMember",
            resource: "chats('19:2da4c29f6d7041eca70b638b43d45437@thread.v2')/members('MCMjMSMjY2Q2NjQ5NGEtYmJmOC00NDk4LWI2MDctOGU5ZmY1YjQyNmY4')",
            odata_type: "#microsoft.graph.aadUserConversationMember",
            json: json!({"id": "MCMjMSMjY2Q2NjQ5NGEtYmJmOC00NDk4LWI2MDctOGU5ZmY1YjQyNmY4", "roles": ["owner"],
                "displayName": "Adele Vance", "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
                "userId": "73761f06-2ac9-469c-9f10-279a8cc267f9", "email": "AdeleV@contoso.com",
                "tenantId": "b33cbe9f-8ebe-4f2a-912b-7e2a427f477f"}),
        },
        DocSample {
            kind: "aiInteraction",
            resource: "copilot/interactionHistory/interactions('1731701801008')",
            odata_type: "#microsoft.graph.aiInteraction",
            json: json!({"id": "1731701801008", "sessionId": "19:2da4c29f6d7041eca70b638b43d45437@thread.v2",
                "requestId": "GTbr3lIdyQNYnagwg0Ji9", "appClass": "IPM.SkypeTeams.Message.Copilot.BizChat",
                "interactionType": "userPrompt", "conversationType": "bizchat", "etag": "1731701801008",
                "createdDateTime": "2024-11-15T20:16:41.008Z", "locale": "en-us",
                "from": {"user": {"id": "73761f06-2ac9-469c-9f10-279a8cc267f9", "displayName": "Adele Vance"}},
                "body": {"contentType": "text", "content": "What should be on my radar from emails last week?"},
                "attachments": [], "links": [], "mentions": [], "contexts": []}),
        },
        DocSample {
            kind: "message",
            resource: "Users('722effaf-0433-4272-9ac4-d5ec11c3cd77')/messages('AAMkAGUwNjQ4ZjIxLTQ3Y2Y8AAA=')",
            odata_type: "#microsoft.graph.message",
            json: json!({"receivedDateTime@odata.type": "#DateTimeOffset",
                "receivedDateTime": "2021-12-30T10:53:35Z",
                "subject": "TEST MESSAGE FOR RICH NOTIFICATIONS",
                "bodyPreview": "Hello,\r\n\r\nWhat\u{2019}s up?\r\n\r\nThanks\r\nMegan",
                "importance@odata.type": "#microsoft.graph.importance", "importance": "normal",
                "from": {"@odata.type": "#microsoft.graph.recipient",
                         "emailAddress": {"@odata.type": "#microsoft.graph.emailAddress",
                                          "name": "Megan Brown", "address": "Megan.Brown@microsoft.com"}}}),
        },
        DocSample {
            kind: "event",
            resource: "Users/722effaf-0433-4272-9ac4-d5ec11c3cd77/Events/AAMkAGUwNjQ4ZjIxLTQ3Y2YAAA=",
            odata_type: "#microsoft.graph.event",
            json: json!({"subject": "Plan summer company picnic",
                "start": {"dateTime": "2026-12-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"},
                "end": {"dateTime": "2026-12-15T14:00:00.0000000", "timeZone": "Pacific Standard Time"},
                "organizer": {"emailAddress": {"name": "Megan Brown", "address": "Megan.Brown@microsoft.com"}},
                "isOnlineMeeting": false, "importance": "normal", "type": "singleInstance"}),
        },
        DocSample {
            kind: "contact",
            resource: "users/722effaf-0433-4272-9ac4-d5ec11c3cd77/contactFolders/AAMkAGI2=/contacts/AAMkAGI2THk0AAA=",
            odata_type: "#microsoft.graph.contact",
            json: json!({"displayName": "Pavel Bansky", "givenName": "Pavel", "surname": "Bansky",
                "emailAddresses": [{"name": "Pavel Bansky", "address": "pavelb@contoso.com"}],
                "businessPhones": ["+1 732 555 0102"], "mobilePhone": null}),
        },
    ]
}
