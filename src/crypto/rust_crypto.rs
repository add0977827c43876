//! RSA on the pure-Rust `rsa` crate (constant-time arithmetic, blinded with the OS RNG).

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, PrivateKey, PublicKey};
use zeroize::Zeroizing;

pub(crate) const NAME: &str = "rsa";

/// A parsed RSA private key, ready to unwrap.
pub(crate) struct RsaKey {
    key: PrivateKey,
}

impl RsaKey {
    pub(crate) fn from_pkcs8_der(der: &[u8]) -> Result<Self, String> {
        let key = PrivateKey::from_pkcs8_der(der).map_err(|e| e.to_string())?;
        Ok(RsaKey { key })
    }

    /// RSAES-OAEP-Decrypt with SHA-1 and MGF1-SHA-1, empty label, blinded. `None` on any failure.
    pub(crate) fn oaep_sha1_unwrap(&self, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.key
            .oaep_decrypt::<sha1::Sha1>(wrapped)
            .ok()
            .map(Zeroizing::new)
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (for certificates and the test kit's tokens).
pub(crate) fn sign_pkcs1_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
    let key = PrivateKey::from_pkcs8_der(pkcs8).map_err(|e| e.to_string())?;
    key.pkcs1v15_sign::<sha2::Sha256>(msg)
        .map_err(|e| e.to_string())
}

/// A new RSA key of `bits` (2048, 3072 or 4096), as PKCS#8 DER.
pub(crate) fn generate_pkcs8(bits: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    if !matches!(bits, 2048 | 3072 | 4096) {
        return Err(format!(
            "unsupported RSA key size {bits} (use 2048, 3072 or 4096)"
        ));
    }
    let key = PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| e.to_string())?;
    let doc = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// Verifies RSASSA-PKCS1-v1_5 SHA-256 with a public key given as big-endian `n` and `e`.
pub(crate) fn verify_pkcs1_sha256(n: &[u8], e: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let n = BoxedUint::from_be_slice_vartime(n);
    let e = BoxedUint::from_be_slice_vartime(e);
    let Ok(public) = PublicKey::new(n, e) else {
        return false;
    };
    if !(2048..=8192).contains(&(public.size() * 8)) {
        return false;
    }
    public.pkcs1v15_verify::<sha2::Sha256>(msg, sig).is_ok()
}

/// Wraps `msg` for the public key `spki_der` (a SubjectPublicKeyInfo).
#[cfg(feature = "testing")]
pub(crate) fn public_encrypt(
    spki_der: &[u8],
    wrap: super::Wrap,
    msg: &[u8],
) -> Result<Vec<u8>, String> {
    use rsa::pkcs8::DecodePublicKey;
    let public = PublicKey::from_public_key_der(spki_der).map_err(|e| e.to_string())?;
    let out = match wrap {
        super::Wrap::OaepSha1 => public.oaep_encrypt::<sha1::Sha1>(msg),
        super::Wrap::OaepSha256 => public.oaep_encrypt::<sha2::Sha256>(msg),
        super::Wrap::Pkcs1v15 => public.pkcs1v15_encrypt(msg),
    };
    out.map_err(|e| e.to_string())
}
