//! `Decryptor`: one `encryptedContent` in, verified plaintext out.
//!
//! The order is fixed: cheap structural checks, then the RSA-OAEP unwrap, then the HMAC-SHA256
//! check in constant time, and only then AES-CBC decryption. Nothing is decrypted before the
//! signature holds.

use std::fmt;

use zeroize::Zeroize;

use crate::crypto;
use crate::error::{Error, Result};
use crate::keys::{Certificate, KeyRing, PrivateKey, Unwrap};
use crate::model::{ChangeNotification, EncryptedContent};
use crate::resource::Resource;

/// Length of an HMAC-SHA256 signature.
const SIGNATURE_LEN: usize = 32;

/// A heap buffer whose first `len` bytes are visible, wiped whole on drop. `Zeroizing<Vec<u8>>`
/// wipes a vector one volatile byte at a time (7 GiB/s here); a slice is wiped in bulk (57 GiB/s):
/// 7 µs saved on a 64 KiB plaintext (BENCHMARKS.md, `zeroize_drop`).
struct SecretBuf {
    buf: Vec<u8>,
    len: usize,
}

impl SecretBuf {
    fn new(buf: Vec<u8>) -> Self {
        let len = buf.len();
        SecretBuf { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.buf.as_mut_slice().zeroize();
    }
}

impl Clone for SecretBuf {
    fn clone(&self) -> Self {
        SecretBuf::new(self.bytes().to_vec())
    }
}

/// Verified, decrypted resource bytes: UTF-8 JSON, zeroized on drop.
#[derive(Clone)]
pub struct Plaintext(SecretBuf, ParsedAsJson);

/// Whether the plaintext was parsed whole as JSON when it was typed (not so for
/// [`Decryptor::decrypt`], which checks UTF-8 only).
#[derive(Clone, Copy)]
pub(crate) struct ParsedAsJson(pub(crate) bool);

impl Plaintext {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.bytes()
    }

    /// The text (checked to be UTF-8 when it was decrypted).
    pub fn as_str(&self) -> &str {
        // Checked in `Decryptor::decrypt`; a failure here would be a bug, and yields "".
        std::str::from_utf8(self.0.bytes()).unwrap_or_default()
    }

    /// Parses the JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.0.bytes()).map_err(|_| Error::Plaintext("JSON"))
    }

    /// Whether the bytes were parsed whole as JSON (they were typed as a resource).
    pub(crate) fn parsed_as_json(&self) -> bool {
        self.1.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext(<{} bytes>)", self.0.len)
    }
}

/// A decrypted resource: the typed value and the exact verified bytes it came from.
#[derive(Debug, Clone)]
pub struct Decrypted {
    /// The resource, typed by its `@odata.type` or the notification's resource path.
    pub resource: Resource,
    /// The verified plaintext, byte for byte as Graph sent it.
    pub plaintext: Plaintext,
}

/// Verifies and decrypts `encryptedContent` with the keys of a [`KeyRing`].
///
/// The front door of the crate. Keys are parsed once, when the `Decryptor` is built; a
/// `Decryptor` is `Send + Sync` and meant to be shared.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::{Decryptor, keys::{Certificate, PrivateKey}, testing::GraphEncryptor};
/// let key = PrivateKey::generate(2048)?;
/// let cert = Certificate::self_signed(&key, "receiver", 30)?;
/// // What Graph would send, made by the test kit:
/// let content = GraphEncryptor::new(&cert, "my-cert-id")
///     .encrypt(br##"{"@odata.type":"#microsoft.graph.presence","availability":"Busy"}"##)?;
///
/// let decryptor = Decryptor::with_key(key, Some(cert))?;
/// let plaintext = decryptor.decrypt(&content)?;
/// assert!(plaintext.as_str().contains("Busy"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Decryptor {
    keys: KeyRing,
}

impl Decryptor {
    /// A decryptor over a ring of keys (rotation: several certificates live at once).
    pub fn new(keys: KeyRing) -> Self {
        Decryptor { keys }
    }

    /// A decryptor with a single key that serves every notification; with its certificate, the
    /// notifications' thumbprints are checked against it.
    pub fn with_key(key: PrivateKey, cert: Option<Certificate>) -> Result<Self> {
        Ok(Decryptor {
            keys: KeyRing::single(key, cert)?,
        })
    }

    /// A decryptor with a single key held outside the process (a PKCS#11 token, a cloud
    /// vault), behind the [`Unwrap`] trait; it serves every notification, and with its
    /// certificate the notifications' thumbprints are checked against it.
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey, testing::GraphEncryptor};
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let content = GraphEncryptor::new(&cert, "id").encrypt(b"{}")?;
    /// // Any `Unwrap` will do; an in-process key is one.
    /// let decryptor = Decryptor::with_unwrapper(std::sync::Arc::new(key), Some(cert))?;
    /// assert_eq!(decryptor.decrypt(&content)?.as_str(), "{}");
    /// # Ok(()) }
    /// ```
    pub fn with_unwrapper(
        unwrapper: impl Unwrap + 'static,
        cert: Option<Certificate>,
    ) -> Result<Self> {
        let mut keys = KeyRing::new();
        keys.add_unwrapper_without_id(unwrapper, cert)?;
        Ok(Decryptor { keys })
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Verifies and decrypts one `encryptedContent` into its plaintext (UTF-8 checked).
    pub fn decrypt(&self, content: &EncryptedContent) -> Result<Plaintext> {
        self.prepare(content)?.finish()
    }

    /// Every check that costs no RSA operation: the key is chosen, the fields are present and
    /// decoded, the signature has its length, the ciphertext is a non-empty multiple of 16.
    pub(crate) fn prepare<'a>(&'a self, content: &EncryptedContent) -> Result<Prepared<'a>> {
        let (key, key_tag) = self.keys.select_tagged(content)?;
        let data = content
            .data
            .as_deref()
            .ok_or_else(|| Error::missing("encryptedContent.data"))?;
        let data_key = content
            .data_key
            .as_deref()
            .ok_or_else(|| Error::missing("encryptedContent.dataKey"))?;
        // Rule: a missing or wrong-length signature is a verification failure.
        let signature = match content.data_signature.as_deref() {
            Some(s) => crypto::b64_decode("encryptedContent.dataSignature", s)?,
            None => return Err(Error::Verification),
        };
        if signature.len() != SIGNATURE_LEN {
            return Err(Error::Verification);
        }
        let wrapped = crypto::b64_decode("encryptedContent.dataKey", data_key)?;
        let data = SecretBuf::new(crypto::b64_decode("encryptedContent.data", data)?);
        if data.len == 0 || !data.len.is_multiple_of(16) {
            return Err(Error::malformed(
                "encryptedContent.data",
                format!(
                    "the ciphertext is {} bytes, not a non-empty multiple of 16",
                    data.len
                ),
            ));
        }
        Ok(Prepared {
            key,
            key_tag,
            wrapped,
            data,
            signature,
        })
    }

    /// Verifies, decrypts and types the resource of one notification.
    ///
    /// The type comes from the plaintext's `@odata.type`, or else from the notification's
    /// resource path; anything else is [`Resource::Other`] with the raw JSON. This checks no
    /// validation token: a [`Receiver`](crate::receiver::Receiver) does, and should be what
    /// handles POSTs.
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    /// use msgraph_notify::{Certificate, Decryptor, PrivateKey, Resource};
    ///
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let message = serde_json::json!({"id": "1", "body": {"contentType": "text", "content": "hi"}});
    /// let spec = NotificationSpec::new("tenant-1", "chats('19:abc')/messages('1')");
    /// let notification = GraphEncryptor::new(&cert, "cert-1").notification(&message, &spec)?;
    ///
    /// let decrypted = Decryptor::with_key(key, Some(cert))?.decrypt_notification(&notification)?;
    /// // No @odata.type in a chatMessage payload: the resource path types it.
    /// let Resource::ChatMessage(m) = &decrypted.resource else { panic!("{:?}", decrypted.resource) };
    /// assert_eq!(m.body.as_ref().and_then(|b| b.content.as_deref()), Some("hi"));
    /// assert_eq!(decrypted.plaintext.json::<serde_json::Value>()?, message);
    /// # Ok(()) }
    /// ```
    pub fn decrypt_notification(&self, notification: &ChangeNotification) -> Result<Decrypted> {
        self.prepare(encrypted_content(notification)?)?
            .finish_typed(notification.resource.as_deref())
    }

    /// [`Decryptor::decrypt_notification`] with the symmetric key given instead of unwrapped:
    /// every step but the RSA operation, so that benchmarks can measure the rest of the
    /// library's own path. Not for production use: it trusts the caller's key.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn decrypt_notification_with_symmetric_key(
        &self,
        notification: &ChangeNotification,
        symmetric: &[u8],
    ) -> Result<Decrypted> {
        let data = self
            .prepare(encrypted_content(notification)?)?
            .open_with(symmetric)?;
        typed(data, notification.resource.as_deref())
    }
}

/// The notification's `encryptedContent`, or the error that names it missing.
pub(crate) fn encrypted_content(notification: &ChangeNotification) -> Result<&EncryptedContent> {
    notification
        .encrypted_content
        .as_ref()
        .ok_or_else(|| Error::missing("encryptedContent"))
}

/// An `encryptedContent` that passed every check short of cryptography.
pub(crate) struct Prepared<'a> {
    key: &'a dyn Unwrap,
    /// The chosen key ring entry's tag, for the replay fingerprint.
    key_tag: &'a [u8; 32],
    wrapped: Vec<u8>,
    data: SecretBuf,
    signature: Vec<u8>,
}

impl Prepared<'_> {
    /// Which key of the ring was chosen (stable across processes configured alike).
    pub(crate) fn key_tag(&self) -> &[u8; 32] {
        self.key_tag
    }

    /// RSA-OAEP unwrap, HMAC check in constant time, then AES-CBC in place and the UTF-8 check.
    pub(crate) fn finish(self) -> Result<Plaintext> {
        let data = self.open()?;
        if std::str::from_utf8(data.bytes()).is_err() {
            return Err(Error::Plaintext("UTF-8"));
        }
        Ok(Plaintext(data, ParsedAsJson(false)))
    }

    /// [`Prepared::finish`], then the resource typed (the UTF-8 check done once, for both).
    pub(crate) fn finish_typed(self, resource_path: Option<&str>) -> Result<Decrypted> {
        typed(self.open()?, resource_path)
    }

    /// RSA-OAEP unwrap (the one private-key operation, in process or by an external
    /// [`Unwrap`]), then [`Prepared::open_with`] the symmetric key. The unwrapper's own failure
    /// ([`Error::KeyUnavailable`], [`Error::KeyRefused`]) passes through; any other error becomes the uniform
    /// [`Error::Verification`], whatever an external unwrapper said.
    fn open(self) -> Result<SecretBuf> {
        let symmetric = match self.key.unwrap_key(&self.wrapped) {
            Ok(key) => key,
            Err(Error::KeyUnavailable(why)) => return Err(Error::KeyUnavailable(why)),
            Err(Error::KeyRefused(why)) => return Err(Error::KeyRefused(why)),
            Err(_) => return Err(Error::Verification),
        };
        self.open_with(&symmetric)
    }

    /// HMAC check in constant time, then AES-CBC in place: the plaintext bytes, not yet checked
    /// to be UTF-8.
    fn open_with(self, symmetric: &[u8]) -> Result<SecretBuf> {
        let Prepared {
            mut data,
            signature,
            ..
        } = self;
        if !matches!(symmetric.len(), 16 | 24 | 32) {
            return Err(Error::Verification);
        }
        if !crypto::hmac_sha256_verify(symmetric, data.bytes(), &signature) {
            return Err(Error::Verification);
        }
        // In place; on failure `data` is wiped on drop like the plaintext.
        data.len = crypto::aes_cbc_decrypt_in_place(symmetric, &mut data.buf)
            .ok_or(Error::Verification)?;
        Ok(data)
    }
}

/// Checks decrypted bytes to be UTF-8 and types them.
fn typed(data: SecretBuf, resource_path: Option<&str>) -> Result<Decrypted> {
    let Ok(text) = std::str::from_utf8(data.bytes()) else {
        return Err(Error::Plaintext("UTF-8"));
    };
    let resource = Resource::from_json_str(text, resource_path)?;
    Ok(Decrypted {
        resource,
        plaintext: Plaintext(data, ParsedAsJson(true)),
    })
}
