//! Private keys, certificates, thumbprints, and the key ring that picks a key per notification.
//!
//! Keys load from PEM (PKCS#1, PKCS#8, encrypted PKCS#8), DER and PKCS#12 (legacy RC2/3DES and
//! modern PBES2/AES). Each key is parsed once, when it is loaded; key material is zeroized on drop
//! and never appears in `Debug` output.

use std::fmt;
use std::sync::Arc;

use pkcs8::der::Encode;
use sha1::Digest;
use zeroize::Zeroizing;

use crate::crypto::backend;
use crate::error::{Error, Result};
use crate::model::EncryptedContent;

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
    rsa: backend::RsaKey,
    pkcs8: Zeroizing<Vec<u8>>,
    modulus: Vec<u8>,
    /// Read by the test kit only (its JWKS).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    public_exponent: Vec<u8>,
    /// The public key as PKCS#1 `RSAPublicKey` DER, encoded once when the key is loaded.
    public_der: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

const PEM_PKCS8: &str = "PRIVATE KEY";
const PEM_PKCS1: &str = "RSA PRIVATE KEY";
const PEM_PKCS8_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
const PEM_CERTIFICATE: &str = "CERTIFICATE";

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
        let der = backend::generate_pkcs8(bits).map_err(Error::Key)?;
        Self::from_pkcs8_der(&der)
    }

    fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        // Wrap PKCS#1 in a PKCS#8 PrivateKeyInfo: both backends load PKCS#8.
        let octets = pkcs8::der::asn1::OctetStringRef::new(der)
            .map_err(|e| Error::Key(format!("bad PKCS#1 key: {e}")))?;
        let info = pkcs8::PrivateKeyInfoRef::new(pkcs1::ALGORITHM_ID, octets);
        let pkcs8 = Zeroizing::new(
            info.to_der()
                .map_err(|e| Error::Key(format!("bad PKCS#1 key: {e}")))?,
        );
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
        if !(2048..=4096).contains(&bits) {
            return Err(Error::Key(format!(
                "RSA keys of 2048 to 4096 bits are supported; this one has {bits}"
            )));
        }
        let public_der = rsa_public_key_der(&modulus, &public_exponent)?;
        let key = backend::RsaKey::from_pkcs8_der(der).map_err(Error::Key)?;
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
        self.rsa.oaep_sha1_unwrap(wrapped)
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 signature.
    pub(crate) fn sign_pkcs1_sha256(&self, msg: &[u8]) -> Result<Vec<u8>> {
        backend::sign_pkcs1_sha256(&self.pkcs8, msg).map_err(Error::Backend)
    }
}

/// Refuses key-derivation parameters that would take minutes or gigabytes: a key file's own
/// parameters decide the cost of opening it.
fn check_kdf_cost(scheme: &pkcs8::pkcs5::EncryptionScheme) -> Result<()> {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
    // scrypt needs 128 * r * N bytes: at most 1 GiB.
    const MAX_SCRYPT_N_TIMES_R: u64 = 1 << 23;
    if let EncryptionScheme::Pbes2(params) = scheme {
        match &params.kdf {
            Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => {
                return Err(Error::Key(format!(
                    "the key's PBKDF2 iteration count {} exceeds {MAX_PBKDF2_ITERATIONS}",
                    p.iteration_count
                )));
            }
            Kdf::Scrypt(p)
                if p.cost_parameter.saturating_mul(u64::from(p.block_size))
                    > MAX_SCRYPT_N_TIMES_R
                    || p.parallelization > 16 =>
            {
                return Err(Error::Key(
                    "the key's scrypt parameters need more than 1 GiB or 16 lanes".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn modulus_bits(modulus: &[u8]) -> usize {
    match modulus.iter().position(|&b| b != 0) {
        Some(i) => (modulus.len() - i) * 8 - modulus[i].leading_zeros() as usize,
        None => 0,
    }
}

fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>> {
    let bad = |e: pkcs1::der::Error| Error::Key(format!("bad RSA public key: {e}"));
    pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(n).map_err(bad)?,
        public_exponent: pkcs1::UintRef::new(e).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// What [`PrivateKey::load`] says when it is given a certificate.
const CERTIFICATE_NOT_KEY: &str = "this is a certificate, not a private key: give the private key \
     of the certificate (a PEM or DER key file, or a PKCS#12 file that holds key and certificate)";

/// What [`Certificate::load`] says when it is given a private key.
const KEY_NOT_CERTIFICATE: &str = "this is a private key, not a certificate: give the certificate \
     (PEM `BEGIN CERTIFICATE` or DER)";

/// A key or certificate file's bytes, by content.
enum Input<'a> {
    /// Text with a `-----BEGIN ` line somewhere (after an optional byte-order mark).
    Pem(&'a str),
    /// Base64 text of DER (a `.pfx` as Key Vault exports it).
    Base64(Zeroizing<Vec<u8>>),
    /// Anything else: taken as DER.
    Der(&'a [u8]),
}

impl<'a> Input<'a> {
    fn detect(bytes: &'a [u8], error: fn(String) -> Error) -> Result<Self> {
        if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
            // What Windows PowerShell 5's `>` and `Out-File` write.
            return Err(error(
                "the file is UTF-16 text: save it as UTF-8 or ASCII (PowerShell: \
                 `Out-File -Encoding ascii`)"
                    .into(),
            ));
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if contains(bytes, b"-----BEGIN ") {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| error("the file has a PEM BEGIN line but is not UTF-8 text".into()))?;
            return Ok(Input::Pem(text));
        }
        if let Some(der) = base64_text(bytes) {
            return Ok(Input::Base64(der));
        }
        Ok(Input::Der(bytes))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The DER inside base64 text (standard alphabet, padded, line breaks allowed), when the whole
/// input is such text and decodes to a DER SEQUENCE.
fn base64_text(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use base64::Engine;
    if bytes.len() < 16
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b) || b.is_ascii_whitespace())
    {
        return None;
    }
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        bytes
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    let der = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_slice())
            .ok()?,
    );
    (der.first() == Some(&0x30)).then_some(der)
}

/// What opening bytes as PKCS#12 gave.
enum Pkcs12 {
    Opened(p12_keystore::KeyStore),
    /// A PKCS#12 file that could not be opened: the error says why (the password, mostly).
    Failed(Error),
    /// Not a PKCS#12 file at all.
    NotOne,
}

fn open_pkcs12(der: &[u8], password: Option<&str>) -> Pkcs12 {
    use p12_keystore::error::Error as P12;
    let given = password.unwrap_or("");
    match p12_keystore::KeyStore::from_pkcs12(der, given, p12_keystore::Pkcs12ImportPolicy::Relaxed)
    {
        Ok(store) => Pkcs12::Opened(store),
        Err(P12::DerError(_) | P12::InvalidVersion) => Pkcs12::NotOne,
        Err(P12::MacError(_)) if given.is_empty() => Pkcs12::Failed(Error::Key(
            "this looks like a PKCS#12 file (.pfx, .p12): a password is needed".into(),
        )),
        Err(P12::MacError(_)) => {
            Pkcs12::Failed(Error::Key("wrong password for the PKCS#12 file".into()))
        }
        Err(e) if given.is_empty() => Pkcs12::Failed(Error::Key(format!(
            "this looks like a PKCS#12 file (.pfx, .p12) that cannot be opened without a password: {e}"
        ))),
        Err(e) => Pkcs12::Failed(Error::Key(format!(
            "cannot open the PKCS#12 file (wrong password, or an unsupported cipher): {e}"
        ))),
    }
}

/// The error for an OpenSSL legacy encrypted PEM block (`Proc-Type: 4,ENCRYPTED`), naming its
/// cipher and the one command that converts it to encrypted PKCS#8.
fn legacy_encrypted_pem(label: &str, block: &str) -> Error {
    let cipher = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("DEK-Info:"))
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or("unknown cipher");
    Error::Key(format!(
        "this is an OpenSSL legacy encrypted PEM key ({label}, Proc-Type: 4,ENCRYPTED, \
         DEK-Info: {cipher}), which is not supported: convert it once to encrypted PKCS#8 with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key-pkcs8.pem` (it asks for the \
         old and a new password) and load key-pkcs8.pem with the new password"
    ))
}

/// Splits PEM text into (label, DER) blocks.
fn pem_blocks(text: &str) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let Some(label_end) = block["-----BEGIN ".len()..].find("-----") else {
            break;
        };
        let label = &block["-----BEGIN ".len().."-----BEGIN ".len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            return Err(Error::Key(format!("PEM block {label:?} has no END line")));
        };
        let whole = &block[..end + end_marker.len()];
        if whole.contains("Proc-Type:") {
            return Err(legacy_encrypted_pem(label, whole));
        }
        let (_, der) = pkcs8::der::pem::decode_vec(whole.as_bytes())
            .map_err(|e| Error::Key(format!("bad PEM block {label:?}: {e}")))?;
        blocks.push((label.to_owned(), Zeroizing::new(der)));
        rest = &block[end + end_marker.len()..];
    }
    Ok(blocks)
}

/// PEM (RFC 7468, lines of 64, LF). The encoder fails only for a label that is not valid PEM or
/// a length past `usize`; callers pass this module's constant labels and key- or
/// certificate-sized DER, so neither can happen.
fn pem_encode(label: &'static str, der: &[u8]) -> String {
    pkcs8::der::pem::encode_string(label, pkcs8::der::pem::LineEnding::LF, der)
        .unwrap_or_else(|e| unreachable!("PEM encoding with label {label:?}: {e}"))
}

/// An X.509 certificate: its DER, SHA-1 thumbprint and RSA public key.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::keys::{Certificate, PrivateKey};
/// let key = PrivateKey::generate(2048)?;
/// let cert = Certificate::self_signed(&key, "receiver.example", 365)?;
/// assert!(cert.matches(&key));
/// assert_eq!(cert.thumbprint().len(), 40);
/// // The value of `encryptionCertificate` in a subscription request:
/// let value = cert.encryption_certificate();
/// assert_eq!(Certificate::from_der(&cert.der().to_vec())?.thumbprint(), cert.thumbprint());
/// # let _ = value; Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    thumbprint: [u8; 20],
    modulus: Vec<u8>,
    spki: Vec<u8>,
    subject: String,
    not_after: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("thumbprint", &self.thumbprint())
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl Certificate {
    /// Parses a DER certificate. Validity dates are not checked: Graph does not check them either.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        use x509_parser::prelude::*;
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| Error::Certificate(format!("not a DER X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::Certificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        let spki = cert.public_key();
        let modulus = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => strip_zeros(rsa.modulus).to_vec(),
            _ => {
                return Err(Error::Certificate(
                    "the certificate's key is not RSA".into(),
                ));
            }
        };
        let thumbprint: [u8; 20] = sha1::Sha1::digest(der).into();
        Ok(Certificate {
            der: der.to_vec(),
            thumbprint,
            modulus,
            spki: spki.raw.to_vec(),
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.to_string(),
        })
    }

    /// Parses the first `CERTIFICATE` block of PEM text. Text around the blocks is skipped.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let blocks = pem_blocks(pem).map_err(|e| match e {
            Error::Key(reason) => Error::Certificate(reason),
            other => other,
        })?;
        match blocks.iter().find(|(label, _)| label == PEM_CERTIFICATE) {
            Some((_, der)) => Self::from_der(der),
            None if blocks.iter().any(|(label, _)| {
                matches!(label.as_str(), PEM_PKCS8 | PEM_PKCS1 | PEM_PKCS8_ENCRYPTED)
            }) =>
            {
                Err(Error::Certificate(KEY_NOT_CERTIFICATE.into()))
            }
            None => Err(Error::Certificate("no PEM CERTIFICATE block found".into())),
        }
    }

    /// Loads a certificate from PEM or DER bytes (or base64 text of the DER, as in a
    /// subscription's `encryptionCertificate`). The format is read from the content: PEM may
    /// start with a byte-order mark, have CRLF line ends and text around its blocks.
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::keys::{Certificate, PrivateKey};
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// let pem = format!("\u{feff}subject=CN = receiver\r\n{}", cert.to_pem().replace('\n', "\r\n"));
    /// assert_eq!(Certificate::load(pem.as_bytes())?, cert);
    /// // A key where a certificate is expected says so:
    /// let err = Certificate::load(key.to_pkcs8_pem().as_bytes()).unwrap_err();
    /// assert!(err.to_string().contains("this is a private key, not a certificate"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Certificate`], saying what the file is when it is a private key or a PKCS#12
    /// file rather than a certificate.
    pub fn load(bytes: &[u8]) -> Result<Self> {
        let der = match Input::detect(bytes, Error::Certificate)? {
            Input::Pem(text) => return Self::from_pem(text),
            Input::Base64(der) => der,
            Input::Der(der) => Zeroizing::new(der.to_vec()),
        };
        Self::from_der(&der).map_err(|e| {
            if pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).is_ok()
                || pkcs1::RsaPrivateKeyRef::try_from(der.as_slice()).is_ok()
            {
                Error::Certificate(KEY_NOT_CERTIFICATE.into())
            } else if !matches!(open_pkcs12(&der, None), Pkcs12::NotOne) {
                Error::Certificate(
                    "this is a PKCS#12 (.pfx) file, not a certificate: load it as the key; it \
                     carries its certificate"
                        .into(),
                )
            } else {
                e
            }
        })
    }

    /// Makes a self-signed certificate for `key` (SHA-256 with RSA), valid from now for `days`
    /// days, with the subject `CN=common_name`.
    pub fn self_signed(key: &PrivateKey, common_name: &str, days: u32) -> Result<Self> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Error::Certificate(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now
            .checked_add(time::Duration::days(i64::from(days)))
            .filter(|t| t.year() <= 9999)
            .ok_or_else(|| {
                Error::Certificate(format!("{days} days from now is past the year 9999"))
            })?;
        let mut serial = crate::crypto::random_bytes(16)?;
        serial[0] &= 0x7f; // a positive INTEGER
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let signer = RcgenSigner {
            key,
            public: key.public_key_pkcs1_der(),
        };
        let cert = params
            .self_signed(&signer)
            .map_err(|e| Error::Certificate(format!("cannot sign the certificate: {e}")))?;
        Self::from_der(cert.der())
    }

    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        pem_encode(PEM_CERTIFICATE, &self.der)
    }

    /// The SubjectPublicKeyInfo DER of the certificate's key.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The SHA-1 thumbprint, 40 upper-case hex digits, as Graph sends it in
    /// `encryptionCertificateThumbprint`.
    pub fn thumbprint(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut hex = String::with_capacity(2 * self.thumbprint.len());
        for b in &self.thumbprint {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        hex
    }

    /// Whether `thumbprint` (hex, any case) names this certificate. Compared digit by digit,
    /// with no allocation: it runs for every notification.
    pub fn has_thumbprint(&self, thumbprint: &str) -> bool {
        fn nibble(c: u8) -> Option<u8> {
            char::from(c)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        }
        let digits = thumbprint.as_bytes();
        digits.len() == 2 * self.thumbprint.len()
            && self
                .thumbprint
                .iter()
                .zip(digits.chunks_exact(2))
                .all(|(&b, pair)| match pair {
                    [hi, lo] => nibble(*hi) == Some(b >> 4) && nibble(*lo) == Some(b & 0x0f),
                    _ => false,
                })
    }

    /// The value a subscription's `encryptionCertificate` needs: base64 of the DER.
    pub fn encryption_certificate(&self) -> String {
        crate::crypto::b64_encode(&self.der)
    }

    /// The subject, e.g. `CN=receiver.example`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The end of the validity period, as text (informational: never enforced).
    pub fn not_after(&self) -> &str {
        &self.not_after
    }

    /// Whether `key` is the private key of this certificate.
    pub fn matches(&self, key: &PrivateKey) -> bool {
        self.modulus == key.modulus
    }

    fn check_matches(&self, key: &PrivateKey) -> Result<()> {
        if self.matches(key) {
            Ok(())
        } else {
            Err(Error::Certificate(format!(
                "the certificate {} does not belong to the private key",
                self.thumbprint()
            )))
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

struct RcgenSigner<'a> {
    key: &'a PrivateKey,
    public: Vec<u8>,
}

impl rcgen::PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.key
            .sign_pkcs1_sha256(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The one private-key operation of a Graph receiver: RSA-OAEP decryption (SHA-1, MGF1-SHA-1,
/// empty label) of a notification's `dataKey`, giving the 16-, 24- or 32-byte symmetric key.
///
/// [`PrivateKey`] implements it in process (on aws-lc-rs or the `rsa` crate, whichever backend is
/// built); `pkcs11::Pkcs11Key` (feature `pkcs11`) on a hardware token; a cloud vault's
/// `unwrapKey` can implement it too (see `examples/key_vault_unwrap.rs`). A [`KeyRing`] holds
/// unwrappers and never needs to know which kind it has: key choice by id and thumbprint,
/// verify-before-decrypt and the uniform [`Error::Verification`] are the same for all.
///
/// `unwrap_key` is called only after every check that costs no private-key operation (token,
/// clientState, replay, field shapes): a flood of forged items makes no call.
///
/// Errors an implementation returns:
/// - [`Error::Verification`] for every failure that could depend on `wrapped` (a bad OAEP
///   decoding, a length the key refuses): one error, with no detail, as for in-process keys.
/// - [`Error::KeyUnavailable`] for its own failures (token removed, session lost, PIN locked,
///   vault unreachable), with a message that names the cause and never anything of `wrapped`.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::keys::{Certificate, KeyRing, PrivateKey, Unwrap};
/// use msgraph_notify::{Decryptor, Error, testing::GraphEncryptor};
/// use zeroize::Zeroizing;
///
/// /// An unwrapper that delegates to another one and counts the calls.
/// struct Counting(PrivateKey, std::sync::atomic::AtomicUsize);
/// impl Unwrap for Counting {
///     fn unwrap_key(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.unwrap_key(wrapped)
///     }
/// }
///
/// let key = PrivateKey::generate(2048)?;
/// let cert = Certificate::self_signed(&key, "receiver", 30)?;
/// let content = GraphEncryptor::new(&cert, "cert-1").encrypt(br#"{"a":1}"#)?;
/// let mut ring = KeyRing::new();
/// ring.add_unwrapper("cert-1", Counting(key, 0.into()), Some(cert))?;
/// assert_eq!(Decryptor::new(ring).decrypt(&content)?.as_str(), r#"{"a":1}"#);
/// # Ok(()) }
/// ```
pub trait Unwrap: Send + Sync {
    /// RSA-OAEP (SHA-1, MGF1-SHA-1, empty label) decryption of `wrapped`, the decoded `dataKey`
    /// (as many bytes as the key's modulus). The result is zeroized on drop.
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>>;

    /// The key's RSA modulus, big-endian, when the unwrapper can tell it: a certificate paired
    /// with the key is then checked to belong to it. `None` (the default) pairs the certificate
    /// as given, and a wrong pairing shows only as [`Error::Verification`] on every item.
    fn rsa_modulus(&self) -> Option<Vec<u8>> {
        None
    }

    /// A short description for `Debug` output and error messages (never a secret). Default:
    /// `"external unwrapper"`.
    fn describe(&self) -> String {
        "external unwrapper".to_owned()
    }
}

impl Unwrap for PrivateKey {
    /// In process, on the backend built (aws-lc-rs or the `rsa` crate, blinded): any failure is
    /// [`Error::Verification`].
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        PrivateKey::unwrap_key(self, wrapped).ok_or(Error::Verification)
    }

    fn rsa_modulus(&self) -> Option<Vec<u8>> {
        Some(strip_zeros(&self.modulus).to_vec())
    }

    fn describe(&self) -> String {
        format!("in-process RSA-{} key ({})", self.bits(), backend::NAME)
    }
}

impl<T: Unwrap + ?Sized> Unwrap for Arc<T> {
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        (**self).unwrap_key(wrapped)
    }

    fn rsa_modulus(&self) -> Option<Vec<u8>> {
        (**self).rsa_modulus()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

impl Certificate {
    /// Whether `key`, in process or not, is the private key of this certificate: compares the
    /// moduli when the unwrapper tells its own ([`Unwrap::rsa_modulus`]); `false` when it does
    /// not.
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::keys::{Certificate, PrivateKey};
    /// let key = PrivateKey::generate(2048)?;
    /// let cert = Certificate::self_signed(&key, "receiver", 30)?;
    /// assert!(cert.belongs_to(&key));
    /// # Ok(()) }
    /// ```
    pub fn belongs_to(&self, key: &(impl Unwrap + ?Sized)) -> bool {
        key.rsa_modulus()
            .is_some_and(|m| strip_zeros(&m) == strip_zeros(&self.modulus))
    }
}

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

#[cfg(feature = "pkcs11")]
pub mod pkcs11;
