//! RSA on the pure-Rust `rsa` crate (constant-time arithmetic, blinded with the OS RNG), and the
//! `jsonwebtoken` provider on it: RS256 on this backend (jsonwebtoken's `rust_crypto` feature
//! would pull `rsa` 0.9 and RUSTSEC-2023-0071).

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::{RsaBackend, unsupported_bits};

/// The `rsa` crate backend.
pub(crate) struct RustCrypto;

impl RsaBackend for RustCrypto {
    const NAME: &'static str = "rsa";
    type Key = PrivateKey;

    fn key_from_pkcs8_der(der: &[u8]) -> Result<Self::Key, String> {
        PrivateKey::from_pkcs8_der(der).map_err(|e| e.to_string())
    }

    /// Blinded.
    fn oaep_sha1_unwrap(key: &Self::Key, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        key.oaep_decrypt::<sha1::Sha1>(wrapped)
            .ok()
            .map(Zeroizing::new)
    }

    fn sign_pkcs1_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
        let key = PrivateKey::from_pkcs8_der(pkcs8).map_err(|e| e.to_string())?;
        key.pkcs1v15_sign::<sha2::Sha256>(msg)
            .map_err(|e| e.to_string())
    }

    /// Blinded (the `rsa` crate's PSS signer blinds), with a random salt as long as the digest.
    fn sign_pss_sha256(pkcs8: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let key = PrivateKey::from_pkcs8_der(pkcs8).map_err(|e| e.to_string())?;
        let signer = rsa::pss::SigningKey::<sha2::Sha256>::new(key);
        let signature = signer
            .try_sign_with_rng(&mut getrandom::SysRng, msg)
            .map_err(|e| e.to_string())?;
        Ok(signature.to_vec())
    }

    fn generate_pkcs8(bits: usize) -> Result<Zeroizing<Vec<u8>>, String> {
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(unsupported_bits(bits));
        }
        let key = PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| e.to_string())?;
        let doc = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    #[cfg(feature = "testing")]
    fn public_encrypt(spki_der: &[u8], wrap: super::Wrap, msg: &[u8]) -> Result<Vec<u8>, String> {
        use rsa::pkcs8::DecodePublicKey;
        let public = PublicKey::from_public_key_der(spki_der).map_err(|e| e.to_string())?;
        let out = match wrap {
            super::Wrap::OaepSha1 => public.oaep_encrypt::<sha1::Sha1>(msg),
            super::Wrap::OaepSha256 => public.oaep_encrypt::<sha2::Sha256>(msg),
            super::Wrap::Pkcs1v15 => public.pkcs1v15_encrypt(msg),
        };
        out.map_err(|e| e.to_string())
    }

    fn install_jwt_provider() {
        let _ = jwt::PROVIDER.install_default();
    }
}

/// Verifies RSASSA-PKCS1-v1_5 SHA-256 with a public key given as big-endian `n` and `e`.
fn verify_pkcs1_sha256(n: &[u8], e: &[u8], msg: &[u8], sig: &[u8]) -> bool {
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

/// RS256 with a private key in DER as `jsonwebtoken` holds it: PKCS#8, or PKCS#1 (wrapped in
/// PKCS#8); an RSA key of 2048 to 4096 bits, as `PrivateKey::from_der` takes it. `None` on any
/// failure.
fn sign_with_der(der: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    let pkcs8 = if pkcs8::PrivateKeyInfoRef::try_from(der).is_ok() {
        Zeroizing::new(der.to_vec())
    } else {
        super::pkcs1_to_pkcs8(der).ok()?
    };
    let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8.as_slice()).ok()?;
    if info.algorithm.oid != pkcs1::ALGORITHM_OID {
        return None;
    }
    let rsa = pkcs1::RsaPrivateKeyRef::try_from(info.private_key).ok()?;
    if !super::PRIVATE_KEY_BITS.contains(&super::modulus_bits(rsa.modulus.as_bytes())) {
        return None;
    }
    RustCrypto::sign_pkcs1_sha256(&pkcs8, msg).ok()
}

mod jwt {
    use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
    use jsonwebtoken::errors::{ErrorKind, Result};
    use jsonwebtoken::jwk::ThumbprintHash;
    use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};

    pub(super) static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory,
        verifier_factory,
        // jsonwebtoken's own placeholder panics; these answer or return an error.
        key_utils: KeyUtils {
            rsa_pub_components_from_private_key,
            rsa_pub_components_from_public_key,
            ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidEcdsaKey.into()),
            ed_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidEddsaKey.into()),
            compute_digest,
        },
    };

    fn rsa_error(e: impl std::fmt::Display) -> jsonwebtoken::errors::Error {
        ErrorKind::InvalidRsaKey(e.to_string()).into()
    }

    /// (n, e) of a PKCS#1 (or PKCS#8) RSA private key in DER.
    fn rsa_pub_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = match pkcs1::RsaPrivateKeyRef::try_from(der) {
            Ok(key) => key,
            Err(_) => {
                let info = pkcs8::PrivateKeyInfoRef::try_from(der).map_err(rsa_error)?;
                pkcs1::RsaPrivateKeyRef::try_from(info.private_key).map_err(rsa_error)?
            }
        };
        Ok((
            key.modulus.as_bytes().to_vec(),
            key.public_exponent.as_bytes().to_vec(),
        ))
    }

    /// (n, e) of a PKCS#1 `RSAPublicKey` in DER.
    fn rsa_pub_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = pkcs1::RsaPublicKey::<pkcs1::UintRef<'_>>::try_from(der).map_err(rsa_error)?;
        Ok((
            key.modulus.as_bytes().to_vec(),
            key.public_exponent.as_bytes().to_vec(),
        ))
    }

    fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
        use sha2::Digest;
        Ok(match hash {
            ThumbprintHash::SHA256 => sha2::Sha256::digest(data).to_vec(),
            ThumbprintHash::SHA384 => sha2::Sha384::digest(data).to_vec(),
            ThumbprintHash::SHA512 => sha2::Sha512::digest(data).to_vec(),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        })
    }

    struct Rs256Verifier {
        n: Vec<u8>,
        e: Vec<u8>,
    }

    impl signature::Verifier<Vec<u8>> for Rs256Verifier {
        fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
            if super::verify_pkcs1_sha256(&self.n, &self.e, msg, sig) {
                Ok(())
            } else {
                Err(signature::Error::new())
            }
        }
    }

    impl JwtVerifier for Rs256Verifier {
        fn algorithm(&self) -> Algorithm {
            Algorithm::RS256
        }
    }

    fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
        if *alg != Algorithm::RS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => Ok(Box::new(Rs256Verifier {
                n: n.clone(),
                e: e.clone(),
            })),
            DecodingKeyKind::SecretOrDer(_) => Err(ErrorKind::InvalidKeyFormat.into()),
        }
    }

    struct Rs256Signer {
        pkcs1: Vec<u8>,
    }

    impl signature::Signer<Vec<u8>> for Rs256Signer {
        fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
            super::sign_with_der(&self.pkcs1, msg).ok_or_else(signature::Error::new)
        }
    }

    impl JwtSigner for Rs256Signer {
        fn algorithm(&self) -> Algorithm {
            Algorithm::RS256
        }
    }

    fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
        if *alg != Algorithm::RS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Ok(Box::new(Rs256Signer {
            pkcs1: key.as_bytes().to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PS256 signature verifies under the public key with the `rsa` crate's PSS verifier, and
    /// not for another message.
    #[test]
    fn pss_sha256_signatures_verify() {
        use rsa::signature::Verifier;
        let pkcs8 = RustCrypto::generate_pkcs8(2048).unwrap();
        let signature = RustCrypto::sign_pss_sha256(&pkcs8, b"header.claims").unwrap();
        let key = PrivateKey::from_pkcs8_der(&pkcs8).unwrap();
        let verifier = rsa::pss::VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
        let signature = rsa::pss::Signature::try_from(signature.as_slice()).unwrap();
        assert!(verifier.verify(b"header.claims", &signature).is_ok());
        assert!(verifier.verify(b"header.claimz", &signature).is_err());
    }
}
