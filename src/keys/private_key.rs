//! The in-process RSA private key and how it loads from each file format.

use std::fmt;

use zeroize::Zeroizing;

use super::Certificate;
use super::formats::*;
use crate::crypto::{self, Backend, RsaBackend, modulus_bits};
use crate::error::{Error, Result};

/// An RSA private key that can unwrap Graph's symmetric keys.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::keys::PrivateKey;
/// let key = PrivateKey::generate(2048)?;
/// let pem = key.to_pkcs8_pem();
/// let again = PrivateKey::from_pem(&pem)?;
/// assert_eq!(again.bits(), 2048);
/// # Ok(()) }
/// ```
pub struct PrivateKey {
    pub(super) rsa: crypto::RsaKey,
    pub(super) pkcs8: Zeroizing<Vec<u8>>,
    pub(super) modulus: Vec<u8>,
    /// Read by the test kit only (its JWKS).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(super) public_exponent: Vec<u8>,
    /// The public key as PKCS#1 `RSAPublicKey` DER, encoded once when the key is loaded.
    pub(super) public_der: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Loads a key from PKCS#8 DER (`PrivateKeyInfo`) or PKCS#1 DER (`RSAPrivateKey`).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if let Ok(info) = pkcs8::PrivateKeyInfoRef::try_from(der) {
            if info.algorithm.oid != pkcs1::ALGORITHM_OID {
                return Err(Error::Key(format!(
                    "the PKCS#8 key is not an RSA key (algorithm {})",
                    info.algorithm.oid
                )));
            }
            return Self::from_pkcs8_der(der);
        }
        if pkcs1::RsaPrivateKeyRef::try_from(der).is_ok() {
            return Self::from_pkcs1_der(der);
        }
        Err(Error::Key(
            "not a DER-encoded PKCS#8 or PKCS#1 RSA private key".into(),
        ))
    }

    /// Loads a key from PEM: `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1). For
    /// `ENCRYPTED PRIVATE KEY` use [`PrivateKey::from_encrypted_pem`]. Other blocks in the text
    /// (a certificate, say) are skipped.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let mut saw_certificate = false;
        for (label, der) in pem_blocks(pem)? {
            match label.as_str() {
                PEM_PKCS8 => return Self::from_pkcs8_der(&der),
                PEM_PKCS1 => return Self::from_pkcs1_der(&der),
                PEM_PKCS8_ENCRYPTED => {
                    return Err(Error::Key(
                        "the key is encrypted: a password is needed".into(),
                    ));
                }
                PEM_CERTIFICATE => saw_certificate = true,
                _ => {}
            }
        }
        if saw_certificate {
            return Err(Error::Key(CERTIFICATE_NOT_KEY.into()));
        }
        Err(Error::Key("no PEM private key block found".into()))
    }

    /// Loads an `ENCRYPTED PRIVATE KEY` PEM (PKCS#8, PBES2) with its password. Unencrypted PEM is
    /// accepted too, and the password ignored.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::keys::PrivateKey;
    /// # let der = PrivateKey::generate(2048)?.to_pkcs8_der();
    /// # let pem = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice())?
    /// #     .encrypt("s3cret")?
    /// #     .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)?;
    /// // `pem` is a "-----BEGIN ENCRYPTED PRIVATE KEY-----" file, e.g. from
    /// // `openssl pkcs8 -topk8 -v2 aes-256-cbc`.
    /// let key = PrivateKey::from_encrypted_pem(&pem, "s3cret")?;
    /// assert_eq!(key.bits(), 2048);
    /// assert!(PrivateKey::from_encrypted_pem(&pem, "wrong").is_err());
    /// # Ok(()) }
    /// ```
    pub fn from_encrypted_pem(pem: &str, password: &str) -> Result<Self> {
        for (label, der) in pem_blocks(pem)? {
            if label == PEM_PKCS8_ENCRYPTED {
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| Error::Key(format!("bad encrypted PKCS#8: {e}")))?;
                check_kdf_cost(&info.encryption_algorithm)?;
                let doc = info.decrypt(password).map_err(|_| {
                    Error::Key(
                        "cannot decrypt the key: wrong password or unsupported cipher".into(),
                    )
                })?;
                return Self::from_pkcs8_der(doc.as_bytes());
            }
        }
        Self::from_pem(pem)
    }

    /// Loads the key (and its certificate, if the file has one) from a PKCS#12 file (`.pfx`,
    /// `.p12`), legacy (RC2-40, 3DES) or modern (PBES2 with AES).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use msgraph_notify::keys::{Certificate, PrivateKey};
    /// # let key = PrivateKey::generate(2048)?;
    /// # let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// # let chain = p12_keystore::PrivateKeyChain::new(
    /// #     vec![1u8; 20],
    /// #     p12_keystore::PrivateKey::from_der(&key.to_pkcs8_der())?,
    /// #     [p12_keystore::Certificate::from_der(cert.der())?],
    /// # );
    /// # let mut store = p12_keystore::KeyStore::new();
    /// # store.add_entry("receiver", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    /// # let pfx = store.writer("s3cret").write()?;
    /// // `pfx` is the bytes of a .pfx file, e.g. exported from Azure Key Vault.
    /// let (key, cert) = PrivateKey::from_pkcs12(&pfx, "s3cret")?;
    /// let cert = cert.expect("the file carries the certificate");
    /// assert!(cert.matches(&key));
    /// println!("encryptionCertificate thumbprint {}", cert.thumbprint());
    /// # Ok(()) }
    /// ```
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<(Self, Option<Certificate>)> {
        match open_pkcs12(der, Some(password)) {
            Pkcs12::Opened(store) => Self::from_keystore(&store),
            Pkcs12::Failed(e) => Err(e),
            Pkcs12::NotOne => Err(Error::Key(
                "not a PKCS#12 (.pfx, .p12) file: its outer DER structure does not parse".into(),
            )),
        }
    }

    fn from_keystore(store: &p12_keystore::KeyStore) -> Result<(Self, Option<Certificate>)> {
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| Error::Key("the PKCS#12 file holds no private key".into()))?;
        let key = Self::from_der(&Zeroizing::new(chain.key().as_der().to_vec()))?;
        let cert = match chain.certs().first() {
            Some(c) => Some(Certificate::from_der(c.as_der())?),
            None => None,
        };
        if let Some(cert) = &cert {
            cert.check_matches(&key)?;
        }
        Ok((key, cert))
    }

    /// Loads a key from a file's bytes, whatever its format: PEM (PKCS#1, PKCS#8, encrypted
    /// PKCS#8), DER, or PKCS#12 (binary, or as base64 text as Azure Key Vault exports it).
    /// Returns the certificate too when the file carries one: with several (a whole chain from
    /// `openssl pkcs12 -nodes`), the one that belongs to the key.
    ///
    /// The format is read from the content, not from the first bytes: PEM may start with a UTF-8
    /// byte-order mark, have CRLF line ends and carry text around its blocks (RFC 7468), such as
    /// the `Bag Attributes` lines `openssl pkcs12 -nodes` writes.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] saying what the file is when it is not a usable key: a PKCS#12 file without
    /// its password ("a password is needed") or with a wrong one ("wrong password for the PKCS#12
    /// file"), an encrypted PKCS#8 key without a password, an OpenSSL legacy encrypted PEM
    /// (`Proc-Type: 4,ENCRYPTED`; the message carries the `openssl pkcs8 -topk8` command that
    /// converts it), a certificate instead of a key; [`Error::Certificate`] when the file's
    /// certificate does not belong to its key.
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::keys::PrivateKey;
    /// let pem = PrivateKey::generate(2048)?.to_pkcs8_pem();
    /// let (key, cert) = PrivateKey::load(pem.as_bytes(), None)?;
    /// assert!(cert.is_none());
    /// # Ok(()) }
    /// ```
    pub fn load(bytes: &[u8], password: Option<&str>) -> Result<(Self, Option<Certificate>)> {
        match Input::detect(bytes, Error::Key)? {
            Input::Pem(text) => Self::load_pem(text, password),
            Input::Base64(der) => Self::load_der(&der, password).map_err(|e| match e {
                Error::Key(reason) => Error::Key(format!("the file is base64 text: {reason}")),
                other => other,
            }),
            Input::Der(der) => Self::load_der(der, password),
        }
    }

    fn load_pem(text: &str, password: Option<&str>) -> Result<(Self, Option<Certificate>)> {
        let blocks = pem_blocks(text)?;
        let has_key = blocks.iter().any(|(label, _)| {
            matches!(label.as_str(), PEM_PKCS8 | PEM_PKCS1 | PEM_PKCS8_ENCRYPTED)
        });
        let certs: Vec<&[u8]> = blocks
            .iter()
            .filter(|(label, _)| label == PEM_CERTIFICATE)
            .map(|(_, der)| der.as_slice())
            .collect();
        if !has_key && !certs.is_empty() {
            return Err(Error::Key(CERTIFICATE_NOT_KEY.into()));
        }
        let key = match password {
            Some(p) => Self::from_encrypted_pem(text, p)?,
            None => Self::from_pem(text)?,
        };
        // `openssl pkcs12 -nodes` writes the whole chain: pick the certificate of this key.
        let mut cert = None;
        for der in &certs {
            let c = Certificate::from_der(der)?;
            if c.matches(&key) {
                cert = Some(c);
                break;
            }
        }
        if cert.is_none()
            && let Some(first) = certs.first()
        {
            Certificate::from_der(first)?.check_matches(&key)?;
        }
        Ok((key, cert))
    }

    fn load_der(der: &[u8], password: Option<&str>) -> Result<(Self, Option<Certificate>)> {
        let der_err = match Self::from_der(der) {
            Ok(key) => return Ok((key, None)),
            Err(e) => e,
        };
        match open_pkcs12(der, password) {
            Pkcs12::Opened(store) => return Self::from_keystore(&store),
            Pkcs12::Failed(e) => return Err(e),
            Pkcs12::NotOne => {}
        }
        if Certificate::from_der(der).is_ok() {
            return Err(Error::Key(CERTIFICATE_NOT_KEY.into()));
        }
        match der_err {
            Error::Key(reason) => Err(Error::Key(format!(
                "{reason}, nor a PKCS#12 (.pfx) file, nor PEM text"
            ))),
            other => Err(other),
        }
    }

    /// Generates a new RSA key of 2048, 3072 or 4096 bits.
    pub fn generate(bits: usize) -> Result<Self> {
        let der = Backend::generate_pkcs8(bits).map_err(Error::Key)?;
        Self::from_pkcs8_der(&der)
    }

    fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        let pkcs8 =
            crypto::pkcs1_to_pkcs8(der).map_err(|e| Error::Key(format!("bad PKCS#1 key: {e}")))?;
        Self::from_pkcs8_der(&pkcs8)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfoRef::try_from(der)
            .map_err(|e| Error::Key(format!("bad PKCS#8 key: {e}")))?;
        if info.algorithm.oid != pkcs1::ALGORITHM_OID {
            return Err(Error::Key(format!(
                "the key is not an RSA key (algorithm {})",
                info.algorithm.oid
            )));
        }
        let rsa = pkcs1::RsaPrivateKeyRef::try_from(info.private_key)
            .map_err(|e| Error::Key(format!("bad RSA key: {e}")))?;
        let modulus = rsa.modulus.as_bytes().to_vec();
        let public_exponent = rsa.public_exponent.as_bytes().to_vec();
        let bits = modulus_bits(&modulus);
        if !crypto::PRIVATE_KEY_BITS.contains(&bits) {
            return Err(Error::Key(format!(
                "RSA keys of 2048 to 4096 bits are supported; this one has {bits}"
            )));
        }
        let public_der = rsa_public_key_der(&modulus, &public_exponent)?;
        let key = Backend::key_from_pkcs8_der(der).map_err(Error::Key)?;
        Ok(PrivateKey {
            rsa: key,
            pkcs8: Zeroizing::new(der.to_vec()),
            modulus,
            public_exponent,
            public_der,
        })
    }

    /// The key's size in bits.
    pub fn bits(&self) -> usize {
        modulus_bits(&self.modulus)
    }

    /// The key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem_encode(PEM_PKCS8, &self.pkcs8))
    }

    /// The key as PKCS#8 DER, zeroized on drop.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// The public key as PKCS#1 `RSAPublicKey` DER.
    pub fn public_key_pkcs1_der(&self) -> Vec<u8> {
        self.public_der.clone()
    }

    /// The public key's modulus and exponent, big-endian (test kit: JWKS).
    #[cfg(feature = "testing")]
    pub(crate) fn public_components(&self) -> (&[u8], &[u8]) {
        (&self.modulus, &self.public_exponent)
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1) unwrap. `None` for any failure.
    pub(crate) fn unwrap_key(&self, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        Backend::oaep_sha1_unwrap(&self.rsa, wrapped)
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 signature.
    pub(crate) fn sign_pkcs1_sha256(&self, msg: &[u8]) -> Result<Vec<u8>> {
        Backend::sign_pkcs1_sha256(&self.pkcs8, msg).map_err(Error::Backend)
    }

    /// RSASSA-PSS SHA-256 signature (JWS `PS256`).
    pub(crate) fn sign_pss_sha256(&self, msg: &[u8]) -> Result<Vec<u8>> {
        Backend::sign_pss_sha256(&self.pkcs8, msg).map_err(Error::Backend)
    }
}
