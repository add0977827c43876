//! Key and certificate files by content: PEM, base64 text, DER and PKCS#12; encrypted keys.

use pkcs8::der::Encode;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub(super) const PEM_PKCS8: &str = "PRIVATE KEY";
pub(super) const PEM_PKCS1: &str = "RSA PRIVATE KEY";
pub(super) const PEM_PKCS8_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";
pub(super) const PEM_CERTIFICATE: &str = "CERTIFICATE";

/// Refuses key-derivation parameters that would take minutes or gigabytes: a key file's own
/// parameters decide the cost of opening it.
pub(super) fn check_kdf_cost(scheme: &pkcs8::pkcs5::EncryptionScheme) -> Result<()> {
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

pub(super) fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>> {
    let bad = |e: pkcs1::der::Error| Error::Key(format!("bad RSA public key: {e}"));
    pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(n).map_err(bad)?,
        public_exponent: pkcs1::UintRef::new(e).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// What [`PrivateKey::load`] says when it is given a certificate.
pub(super) const CERTIFICATE_NOT_KEY: &str = "this is a certificate, not a private key: give the private key \
     of the certificate (a PEM or DER key file, or a PKCS#12 file that holds key and certificate)";

/// What [`Certificate::load`] says when it is given a private key.
pub(super) const KEY_NOT_CERTIFICATE: &str = "this is a private key, not a certificate: give the certificate \
     (PEM `BEGIN CERTIFICATE` or DER)";

/// A key or certificate file's bytes, by content.
pub(super) enum Input<'a> {
    /// Text with a `-----BEGIN ` line somewhere (after an optional byte-order mark).
    Pem(&'a str),
    /// Base64 text of DER (a `.pfx` as Key Vault exports it).
    Base64(Zeroizing<Vec<u8>>),
    /// Anything else: taken as DER.
    Der(&'a [u8]),
}

impl<'a> Input<'a> {
    pub(super) fn detect(bytes: &'a [u8], error: fn(String) -> Error) -> Result<Self> {
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

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The DER inside base64 text (standard alphabet, padded, line breaks allowed), when the whole
/// input is such text and decodes to a DER SEQUENCE.
pub(super) fn base64_text(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
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
pub(super) enum Pkcs12 {
    Opened(p12_keystore::KeyStore),
    /// A PKCS#12 file that could not be opened: the error says why (the password, mostly).
    Failed(Error),
    /// Not a PKCS#12 file at all.
    NotOne,
}

pub(super) fn open_pkcs12(der: &[u8], password: Option<&str>) -> Pkcs12 {
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
pub(super) fn legacy_encrypted_pem(label: &str, block: &str) -> Error {
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
pub(super) fn pem_blocks(text: &str) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
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
pub(super) fn pem_encode(label: &'static str, der: &[u8]) -> String {
    pkcs8::der::pem::encode_string(label, pkcs8::der::pem::LineEnding::LF, der)
        .unwrap_or_else(|e| unreachable!("PEM encoding with label {label:?}: {e}"))
}

pub(super) fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}
