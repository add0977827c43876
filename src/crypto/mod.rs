//! The three primitives of a Graph notification: RSA-OAEP unwrap (by backend), HMAC-SHA256 verify
//! and AES-CBC decrypt (RustCrypto, whichever backend), plus strict base64.
//!
//! The RSA backend is chosen by feature: `aws-lc` (default, aws-lc-rs) or `rust-crypto` (the `rsa`
//! crate, blinded). With both enabled, `aws-lc` is used. Both implement one private contract,
//! `RsaBackend`, each with its `jsonwebtoken` crypto provider, and the crate calls the one
//! chosen through `Backend`.

#[cfg(not(any(feature = "aws-lc", feature = "rust-crypto")))]
compile_error!(
    "msgraph-notify needs an RSA backend: enable the `aws-lc` or the `rust-crypto` feature"
);

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc")))]
mod rust_crypto;

/// The RSA backend compiled in.
#[cfg(feature = "aws-lc")]
pub(crate) type Backend = aws_lc::AwsLc;
/// The RSA backend compiled in.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc")))]
pub(crate) type Backend = rust_crypto::RustCrypto;

/// A parsed RSA private key of the backend compiled in, ready to unwrap.
pub(crate) type RsaKey = <Backend as RsaBackend>::Key;

/// The RSA backend contract: what each backend (`aws_lc.rs`, `rust_crypto.rs`) provides. Written
/// once, so the two cannot drift apart; the crate names only [`Backend`].
pub(crate) trait RsaBackend {
    /// The backend's name, as [`RSA_BACKEND`] reports it.
    const NAME: &'static str;
    /// A parsed RSA private key, ready to unwrap.
    type Key: Send + Sync;
    /// Parses a PKCS#8 DER RSA private key.
    fn key_from_pkcs8_der(der: &[u8]) -> Result<Self::Key, String>;
    /// RSAES-OAEP-Decrypt with SHA-1 and MGF1-SHA-1, empty label. `None` on any failure.
    fn oaep_sha1_unwrap(key: &Self::Key, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
    /// RSASSA-PKCS1-v1_5 with SHA-256 (for certificates and the test kit's tokens).
    fn sign_pkcs1_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String>;
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (JWS `PS256`, RFC 7518 §3.5): the
    /// client assertion Entra ID accepts for the client-credentials grant.
    fn sign_pss_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String>;
    /// A new RSA key of `bits` (2048, 3072 or 4096), as PKCS#8 DER.
    fn generate_pkcs8(bits: usize) -> Result<Zeroizing<Vec<u8>>, String>;
    /// Wraps `msg` for the public key `spki_der` (a SubjectPublicKeyInfo).
    #[cfg(feature = "testing")]
    fn public_encrypt(spki_der: &[u8], wrap: Wrap, msg: &[u8]) -> Result<Vec<u8>, String>;
    /// Installs the backend's process-wide `jsonwebtoken` crypto provider. If the application
    /// installed one already, that one stays: it verifies RS256 just as well.
    fn install_jwt_provider();
}

/// Installs the backend's `jsonwebtoken` provider, once per process.
pub(crate) fn install_jwt_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(Backend::install_jwt_provider);
}

/// The error of an unsupported RSA key size, the same from every backend.
/// The RSA private-key sizes the crate loads, in bits.
pub(crate) const PRIVATE_KEY_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// The bit length of a big-endian RSA modulus (leading zero bytes and bits ignored).
pub(crate) fn modulus_bits(modulus: &[u8]) -> usize {
    match modulus.iter().position(|&b| b != 0) {
        Some(i) => (modulus.len() - i) * 8 - modulus[i].leading_zeros() as usize,
        None => 0,
    }
}

/// A PKCS#1 `RSAPrivateKey` (DER) wrapped in a PKCS#8 `PrivateKeyInfo`: both backends load
/// PKCS#8. The result holds the key, so it is wiped on drop.
pub(crate) fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, pkcs8::der::Error> {
    let octets = pkcs8::der::asn1::OctetStringRef::new(der)?;
    let info = pkcs8::PrivateKeyInfoRef::new(pkcs1::ALGORITHM_ID, octets);
    Ok(Zeroizing::new(pkcs8::der::Encode::to_der(&info)?))
}

fn unsupported_bits(bits: usize) -> String {
    format!("unsupported RSA key size {bits} (use 2048, 3072 or 4096)")
}

#[cfg(feature = "testing")]
use aes::cipher::BlockModeEncrypt;
use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

/// Name of the RSA backend compiled in: `"aws-lc-rs"` or `"rsa"`.
pub const RSA_BACKEND: &str = <Backend as RsaBackend>::NAME;

/// Standard alphabet, padding required, canonical trailing bits; SIMD where the CPU has it.
pub(crate) static BASE64: std::sync::LazyLock<base64::engine::Simd> =
    std::sync::LazyLock::new(|| {
        base64::engine::Simd::standard(base64::engine::general_purpose::PAD)
    });

/// Strict base64 decode of the named field.
pub(crate) fn b64_decode(field: &'static str, text: &str) -> crate::Result<Vec<u8>> {
    BASE64
        .decode(text.as_bytes())
        .map_err(|e| crate::Error::malformed(field, format!("invalid base64: {e}")))
}

/// Standard padded base64.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// base64url without padding (JWS, RFC 7515 §2).
#[cfg(any(feature = "testing", feature = "manage"))]
pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url, padded or not. `None` when it is not base64url.
#[cfg(feature = "manage")]
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(text).ok()
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// HMAC-SHA256 of `data` under all of `key` (test kit).
#[cfg(feature = "testing")]
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Constant-time check of an HMAC-SHA256 tag. A tag of the wrong length is a mismatch.
pub(crate) fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

/// AES-CBC decryption in place with IV = the key's first 16 bytes and PKCS#7 padding; AES-128,
/// -192 or -256 by the key's length. Returns the plaintext length, or `None` for any failure
/// (unusable key length, a ciphertext that is not a multiple of 16, bad padding).
pub(crate) fn aes_cbc_decrypt_in_place(key: &[u8], buf: &mut [u8]) -> Option<usize> {
    let iv = key.get(..16)?;
    fn run<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Option<usize>
    where
        cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
        C: aes::cipher::BlockCipherDecrypt,
    {
        let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
        dec.decrypt_padded::<Pkcs7>(buf).ok().map(<[u8]>::len)
    }
    match key.len() {
        16 => run::<aes::Aes128>(key, iv, buf),
        24 => run::<aes::Aes192>(key, iv, buf),
        32 => run::<aes::Aes256>(key, iv, buf),
        _ => None,
    }
}

/// AES-CBC encryption as Graph does it (IV = the key's first 16 bytes, PKCS#7).
#[cfg(feature = "testing")]
pub(crate) fn aes_cbc_encrypt(key: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
    aes_cbc_encrypt_with::<Pkcs7>(key, plaintext)
}

/// AES-CBC encryption of whole blocks with no padding (test kit: builds bad padding).
#[cfg(feature = "testing")]
pub(crate) fn aes_cbc_encrypt_unpadded(key: &[u8], blocks: &[u8]) -> Option<Vec<u8>> {
    if !blocks.len().is_multiple_of(16) {
        return None;
    }
    aes_cbc_encrypt_with::<aes::cipher::block_padding::NoPadding>(key, blocks)
}

#[cfg(feature = "testing")]
fn aes_cbc_encrypt_with<P: aes::cipher::block_padding::Padding>(
    key: &[u8],
    plaintext: &[u8],
) -> Option<Vec<u8>> {
    let iv = key.get(..16)?;
    fn run<C, P: aes::cipher::block_padding::Padding>(
        key: &[u8],
        iv: &[u8],
        pt: &[u8],
    ) -> Option<Vec<u8>>
    where
        cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
        C: aes::cipher::BlockCipherEncrypt,
    {
        let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
        Some(enc.encrypt_padded_vec::<P>(pt))
    }
    match key.len() {
        16 => run::<aes::Aes128, P>(key, iv, plaintext),
        24 => run::<aes::Aes192, P>(key, iv, plaintext),
        32 => run::<aes::Aes256, P>(key, iv, plaintext),
        _ => None,
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn random_bytes(len: usize) -> crate::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut buf).map_err(|e| crate::Error::Backend(e.to_string()))?;
    Ok(buf)
}

/// How a symmetric key is wrapped with RSA. Graph uses [`Wrap::OaepSha1`]; the others exist so the
/// test kit can prove they are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) enum Wrap {
    OaepSha1,
    OaepSha256,
    Pkcs1v15,
}
