//! Graph's side of the encryption: `encryptedContent` and whole notifications for a certificate.

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
        let wrapped = <crypto::Backend as crypto::RsaBackend>::public_encrypt(
            self.cert.public_key_der(),
            wrap,
            &key,
        )
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
