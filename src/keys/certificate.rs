//! X.509 certificates: parsing, thumbprints, and the one self-signed certificate maker.

use std::fmt;

use sha1::Digest;
use zeroize::Zeroizing;

use super::formats::*;
use super::{PrivateKey, Unwrap};
use crate::error::{Error, Result};

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
    pub(super) der: Vec<u8>,
    pub(super) thumbprint: [u8; 20],
    pub(super) modulus: Vec<u8>,
    pub(super) spki: Vec<u8>,
    pub(super) subject: String,
    pub(super) not_after: String,
    pub(super) not_after_unix: i64,
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
            not_after_unix: cert.validity().not_after.timestamp(),
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
        self_signed_by(
            || Ok(key.public_key_pkcs1_der()),
            |msg| key.sign_pkcs1_sha256(msg).ok(),
            common_name,
            days,
            "cannot sign the certificate",
        )
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

    /// The end of the validity period, in seconds since the Unix epoch (informational: never
    /// enforced).
    ///
    /// ```
    /// # fn main() -> Result<(), msgraph_notify::Error> {
    /// use msgraph_notify::keys::{Certificate, PrivateKey};
    /// let cert = Certificate::self_signed(&PrivateKey::generate(2048)?, "r", 30)?;
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    /// let left = cert.not_after_timestamp() - now.as_secs() as i64;
    /// assert!(left > 29 * 86_400 && left <= 31 * 86_400);
    /// # Ok(()) }
    /// ```
    pub fn not_after_timestamp(&self) -> i64 {
        self.not_after_unix
    }

    /// Whether `key` is the private key of this certificate.
    pub fn matches(&self, key: &PrivateKey) -> bool {
        self.modulus == key.modulus
    }

    pub(super) fn check_matches(&self, key: &PrivateKey) -> Result<()> {
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

/// The one self-signed-certificate maker, for a key in process ([`Certificate::self_signed`]) or in
/// a PKCS#11 token: subject `CN=common_name`, valid from five minutes ago for `days` days, a random
/// positive serial, signed SHA-256 with RSA (PKCS#1 v1.5) by `sign`. `public` gives the key's
/// PKCS#1 `RSAPublicKey` DER; a refused signature is reported as `"{refused}: {rcgen's error}"`.
pub(crate) fn self_signed_by(
    public: impl FnOnce() -> Result<Vec<u8>>,
    sign: impl Fn(&[u8]) -> Option<Vec<u8>>,
    common_name: &str,
    days: u32,
    refused: &str,
) -> Result<Certificate> {
    struct Signer<F> {
        public: Vec<u8>,
        sign: F,
    }
    impl<F> rcgen::PublicKeyData for Signer<F> {
        fn der_bytes(&self) -> &[u8] {
            &self.public
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_RSA_SHA256
        }
    }
    impl<F: Fn(&[u8]) -> Option<Vec<u8>>> rcgen::SigningKey for Signer<F> {
        fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
            (self.sign)(msg).ok_or(rcgen::Error::RemoteKeyError)
        }
    }
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
        .ok_or_else(|| Error::Certificate(format!("{days} days from now is past the year 9999")))?;
    let mut serial = crate::crypto::random_bytes(16)?;
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let signer = Signer {
        public: public()?,
        sign,
    };
    let cert = params
        .self_signed(&signer)
        .map_err(|e| Error::Certificate(format!("{refused}: {e}")))?;
    Certificate::from_der(cert.der())
}
