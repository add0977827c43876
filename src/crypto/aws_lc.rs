//! RSA on aws-lc-rs, and aws-lc-rs's `jsonwebtoken` provider.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use zeroize::Zeroizing;

use super::{RsaBackend, unsupported_bits};

/// The aws-lc-rs backend.
pub(crate) struct AwsLc;

impl RsaBackend for AwsLc {
    const NAME: &'static str = "aws-lc-rs";
    type Key = OaepPrivateDecryptingKey;

    fn key_from_pkcs8_der(der: &[u8]) -> Result<Self::Key, String> {
        let key = PrivateDecryptingKey::from_pkcs8(der).map_err(|e| e.to_string())?;
        OaepPrivateDecryptingKey::new(key).map_err(|e| e.to_string())
    }

    fn oaep_sha1_unwrap(key: &Self::Key, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let len = key
            .decrypt(&OAEP_SHA1_MGF1SHA1, wrapped, &mut out, None)
            .ok()?
            .len();
        out.truncate(len);
        Some(out)
    }

    fn sign_pkcs1_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
        sign(pkcs8, &aws_lc_rs::signature::RSA_PKCS1_SHA256, msg)
    }

    fn sign_pss_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
        sign(pkcs8, &aws_lc_rs::signature::RSA_PSS_SHA256, msg)
    }

    fn generate_pkcs8(bits: usize) -> Result<Zeroizing<Vec<u8>>, String> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => return Err(unsupported_bits(other)),
        };
        let key = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| e.to_string())?;
        let der = key.as_der().map_err(|e| e.to_string())?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    #[cfg(feature = "testing")]
    fn public_encrypt(spki_der: &[u8], wrap: super::Wrap, msg: &[u8]) -> Result<Vec<u8>, String> {
        use aws_lc_rs::rsa::{
            OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey,
            PublicEncryptingKey,
        };
        let public = PublicEncryptingKey::from_der(spki_der).map_err(|e| e.to_string())?;
        match wrap {
            super::Wrap::OaepSha1 | super::Wrap::OaepSha256 => {
                let alg = if wrap == super::Wrap::OaepSha1 {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                let key = OaepPublicEncryptingKey::new(public).map_err(|e| e.to_string())?;
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key
                    .encrypt(alg, msg, &mut out, None)
                    .map_err(|e| e.to_string())?
                    .len();
                out.truncate(len);
                Ok(out)
            }
            super::Wrap::Pkcs1v15 => {
                let key = Pkcs1PublicEncryptingKey::new(public).map_err(|e| e.to_string())?;
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key.encrypt(msg, &mut out).map_err(|e| e.to_string())?.len();
                out.truncate(len);
                Ok(out)
            }
        }
    }

    fn install_jwt_provider() {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }
}

/// A signature with the PKCS#8 key `pkcs8` under `encoding` (PKCS#1 v1.5 or PSS, SHA-256).
fn sign(
    pkcs8: &[u8],
    encoding: &'static dyn aws_lc_rs::signature::RsaEncoding,
    msg: &[u8],
) -> Result<Vec<u8>, String> {
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(|e| e.to_string())?;
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        encoding,
        &aws_lc_rs::rand::SystemRandom::new(),
        msg,
        &mut sig,
    )
    .map_err(|e| e.to_string())?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PS256 signature verifies under the public key with aws-lc-rs's own PSS verifier, and
    /// not for another message.
    #[test]
    fn pss_sha256_signatures_verify() {
        use aws_lc_rs::signature::{KeyPair, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
        let pkcs8 = AwsLc::generate_pkcs8(2048).unwrap();
        let signature = AwsLc::sign_pss_sha256(&pkcs8, b"header.claims").unwrap();
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, pair.public_key().as_ref());
        assert!(public.verify(b"header.claims", &signature).is_ok());
        assert!(public.verify(b"header.claimz", &signature).is_err());
    }
}
