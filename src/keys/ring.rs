//! The key ring: which key serves which notification.

use std::fmt;
use std::sync::Arc;

use super::formats::strip_zeros;
use super::{Certificate, PrivateKey, Unwrap};
use crate::error::{Error, Result};
use crate::model::EncryptedContent;

/// One key in a [`KeyRing`]: an id (or none), an unwrapper and, when known, its certificate.
struct Entry {
    id: Option<String>,
    key: Arc<dyn Unwrap>,
    cert: Option<Certificate>,
    /// Which private key this entry unwraps with, the same in every process holding that key:
    /// SHA-256 over the key's RSA modulus (from the unwrapper, else from the certificate); only
    /// for an external unwrapper that tells no modulus and has no certificate, over the id.
    /// Bound into the replay fingerprint: a copy rewritten to choose *another key* is another
    /// item (it fails its unwrap), while one rewritten to reach the *same key* through another
    /// entry (one key under two ids, or with and without an id) is still a duplicate.
    tag: [u8; 32],
}

impl Entry {
    fn tag(key: &dyn Unwrap, id: Option<&str>, cert: Option<&Certificate>) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        match key
            .rsa_modulus()
            .or_else(|| cert.map(|c| c.modulus.clone()))
        {
            Some(modulus) => {
                hash.update(b"rsa-modulus");
                hash.update(strip_zeros(&modulus));
            }
            None => {
                hash.update(b"certificate-id");
                hash.update(id.unwrap_or("").as_bytes());
            }
        }
        hash.finalize().into()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("key", &self.key.describe())
            .field("cert", &self.cert)
            .finish()
    }
}

/// The keys a receiver decrypts with, each under its `encryptionCertificateId`.
///
/// During certificate rotation several keys are live at once: Graph may keep using the old
/// certificate for some time, and the new certificate may keep the old id. A key is chosen per
/// notification:
///
/// 1. among the keys registered under the notification's `encryptionCertificateId`: the one whose
///    certificate has the notification's thumbprint, else the one registered without a
///    certificate (at most one per id), else none: [`Error::ThumbprintMismatch`];
/// 2. else a key registered without an id whose certificate has the notification's thumbprint;
/// 3. else a key registered without an id, when it is the only key in the ring.
///
/// When the notification carries a thumbprint and the chosen key's certificate is known, they must
/// match. An unknown id with no key to serve it is [`Error::UnknownCertificateId`]; another key is
/// never tried in its place, so each item costs at most one private-key operation.
///
/// A key is an in-process [`PrivateKey`] or any [`Unwrap`] implementation (a PKCS#11 token, a
/// cloud vault): [`KeyRing::add_unwrapper`].
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::keys::{Certificate, KeyRing, PrivateKey};
/// let old = PrivateKey::generate(2048)?;
/// let old_cert = Certificate::self_signed(&old, "receiver", 30)?;
/// let new = PrivateKey::generate(2048)?;
/// let new_cert = Certificate::self_signed(&new, "receiver", 30)?;
/// let mut ring = KeyRing::new();
/// // The renewed certificate keeps the id: the thumbprint tells the two apart.
/// ring.add("receiver", old, Some(old_cert))?;
/// ring.add("receiver", new, Some(new_cert))?;
/// assert_eq!(ring.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring of one key that serves every notification (its certificate, when given, is checked
    /// against the notifications' thumbprints).
    pub fn single(key: PrivateKey, cert: Option<Certificate>) -> Result<Self> {
        let mut ring = Self::new();
        ring.add_without_id(key, cert)?;
        Ok(ring)
    }

    /// Registers `key` under `encryption_certificate_id` (1 to 128 characters). The certificate,
    /// when given, must belong to the key.
    ///
    /// Several keys may share an id (a certificate renewed under the same id): the notification's
    /// thumbprint chooses among them. Refused with [`Error::Key`]: a second key for an id when
    /// neither has a certificate (nothing could tell them apart), and the same certificate twice
    /// under one id.
    pub fn add(
        &mut self,
        encryption_certificate_id: impl Into<String>,
        key: PrivateKey,
        cert: Option<Certificate>,
    ) -> Result<()> {
        self.add_unwrapper(encryption_certificate_id, key, cert)
    }

    /// Registers `key` without an id: it serves notifications whose thumbprint matches its
    /// certificate, or every notification when it is the only key.
    pub fn add_without_id(&mut self, key: PrivateKey, cert: Option<Certificate>) -> Result<()> {
        self.insert(None, Arc::new(key), cert)
    }

    /// [`KeyRing::add`] for any [`Unwrap`] implementation: a key held in a PKCS#11 token or a
    /// cloud vault. The same rules apply; the certificate is checked against the key when the
    /// unwrapper reports its modulus ([`Unwrap::rsa_modulus`]).
    pub fn add_unwrapper(
        &mut self,
        encryption_certificate_id: impl Into<String>,
        unwrapper: impl Unwrap + 'static,
        cert: Option<Certificate>,
    ) -> Result<()> {
        let id = encryption_certificate_id.into();
        if id.is_empty() || id.chars().count() > 128 {
            return Err(Error::Key(
                "an encryptionCertificateId has 1 to 128 characters".into(),
            ));
        }
        self.insert(Some(id), Arc::new(unwrapper), cert)
    }

    /// [`KeyRing::add_without_id`] for any [`Unwrap`] implementation.
    pub fn add_unwrapper_without_id(
        &mut self,
        unwrapper: impl Unwrap + 'static,
        cert: Option<Certificate>,
    ) -> Result<()> {
        self.insert(None, Arc::new(unwrapper), cert)
    }

    fn insert(
        &mut self,
        id: Option<String>,
        key: Arc<dyn Unwrap>,
        cert: Option<Certificate>,
    ) -> Result<()> {
        if let Some(cert) = &cert
            && key.rsa_modulus().is_some()
            && !cert.belongs_to(&*key)
        {
            return Err(Error::Certificate(format!(
                "the certificate {} does not belong to the private key ({})",
                cert.thumbprint(),
                key.describe()
            )));
        }
        if let Some(id) = &id {
            for other in self.entries.iter().filter(|e| e.id.as_ref() == Some(id)) {
                match (&other.cert, &cert) {
                    (None, None) => {
                        return Err(Error::Key(format!(
                            "a second key for encryptionCertificateId {id:?}, and neither has a \
                             certificate: the notification's thumbprint could not choose between \
                             them; give the certificate of at least one (--cert)"
                        )));
                    }
                    (Some(a), Some(b)) if a.thumbprint == b.thumbprint => {
                        return Err(Error::Key(format!(
                            "the certificate {} is already registered under \
                             encryptionCertificateId {id:?}",
                            b.thumbprint()
                        )));
                    }
                    _ => {}
                }
            }
        }
        let tag = Entry::tag(&*key, id.as_deref(), cert.as_ref());
        self.entries.push(Entry { id, key, cert, tag });
        Ok(())
    }

    /// Removes every key registered under `encryption_certificate_id`; returns whether one was.
    pub fn remove(&mut self, encryption_certificate_id: &str) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|e| e.id.as_deref() != Some(encryption_certificate_id));
        before != self.entries.len()
    }

    /// The certificate to subscribe with under `encryption_certificate_id`: of the keys under
    /// the id that have a certificate, the one added last (a renewed certificate is added after
    /// the one it replaces, whose key stays for items in flight).
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::{Certificate, KeyRing, PrivateKey};
    /// let (old, new) = (PrivateKey::generate(2048)?, PrivateKey::generate(2048)?);
    /// let (old_cert, new_cert) =
    ///     (Certificate::self_signed(&old, "r", 30)?, Certificate::self_signed(&new, "r", 30)?);
    /// let mut ring = KeyRing::new();
    /// ring.add("receiver", old, Some(old_cert))?;
    /// ring.add("receiver", new, Some(new_cert.clone()))?;
    /// assert_eq!(ring.certificate("receiver"), Some(&new_cert));
    /// assert_eq!(ring.certificate("other"), None);
    /// # Ok(()) }
    /// ```
    pub fn certificate(&self, encryption_certificate_id: &str) -> Option<&Certificate> {
        self.entries
            .iter()
            .rev()
            .filter(|e| e.id.as_deref() == Some(encryption_certificate_id))
            .find_map(|e| e.cert.as_ref())
    }

    /// The keys registered, in the order they were added: each one's `encryptionCertificateId`
    /// (none for a key added without one) and certificate (when known).
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::{Certificate, KeyRing, PrivateKey};
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "r", 30)?;
    /// let mut ring = KeyRing::new();
    /// ring.add("receiver", key, Some(cert.clone()))?;
    /// let listed: Vec<_> = ring.entries().collect();
    /// assert_eq!(listed, [(Some("receiver"), Some(&cert))]);
    /// # Ok(()) }
    /// ```
    pub fn entries(&self) -> impl Iterator<Item = (Option<&str>, Option<&Certificate>)> {
        self.entries
            .iter()
            .map(|e| (e.id.as_deref(), e.cert.as_ref()))
    }

    /// How many keys are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Picks the key for `content` by the rules above, with the chosen entry's tag (see
    /// `Entry::tag`). Costs no private-key operation.
    pub(crate) fn select_tagged(
        &self,
        content: &EncryptedContent,
    ) -> Result<(&dyn Unwrap, &[u8; 32])> {
        let id = content
            .encryption_certificate_id
            .as_deref()
            .filter(|s| !s.is_empty());
        let thumbprint = content
            .encryption_certificate_thumbprint
            .as_deref()
            .filter(|s| !s.is_empty());
        if let Some(id) = id
            && self.entries.iter().any(|e| e.id.as_deref() == Some(id))
        {
            return self.select_among(id, thumbprint).map(|e| (&*e.key, &e.tag));
        }
        let chosen = thumbprint
            .and_then(|t| {
                self.entries.iter().find(|e| {
                    e.id.is_none() && e.cert.as_ref().is_some_and(|c| c.has_thumbprint(t))
                })
            })
            .or_else(|| match self.entries.as_slice() {
                [only] if only.id.is_none() => Some(only),
                _ => None,
            });
        let Some(entry) = chosen else {
            return Err(match id {
                Some(id) => Error::UnknownCertificateId(id.to_owned()),
                None => Error::NoMatchingKey,
            });
        };
        if let (Some(t), Some(cert)) = (thumbprint, &entry.cert)
            && !cert.has_thumbprint(t)
        {
            return Err(Error::ThumbprintMismatch {
                certificate_id: entry.id.clone().unwrap_or_default(),
                notification: t.to_owned(),
                registered: cert.thumbprint(),
            });
        }
        Ok((&*entry.key, &entry.tag))
    }

    /// Rule 1: the keys registered under `id` (at least one), chosen by the thumbprint.
    fn select_among(&self, id: &str, thumbprint: Option<&str>) -> Result<&Entry> {
        let candidates = || {
            self.entries
                .iter()
                .filter(move |e| e.id.as_deref() == Some(id))
        };
        let Some(t) = thumbprint else {
            // No thumbprint: only an id with a single key can serve.
            let mut all = candidates();
            return match (all.next(), all.next()) {
                (Some(only), None) => Ok(only),
                _ => Err(Error::malformed(
                    "encryptionCertificateThumbprint",
                    format!(
                        "missing, and several keys are registered under encryptionCertificateId \
                         {id:?}: only the thumbprint tells them apart"
                    ),
                )),
            };
        };
        if let Some(e) = candidates().find(|e| e.cert.as_ref().is_some_and(|c| c.has_thumbprint(t)))
        {
            return Ok(e);
        }
        // At most one key per id has no certificate (checked when it was added).
        if let Some(e) = candidates().find(|e| e.cert.is_none()) {
            return Ok(e);
        }
        Err(Error::ThumbprintMismatch {
            certificate_id: id.to_owned(),
            notification: t.to_owned(),
            registered: candidates()
                .filter_map(|e| e.cert.as_ref().map(Certificate::thumbprint))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}
