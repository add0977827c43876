//! The `jsonwebtoken` crypto provider: aws-lc-rs's with the default backend; with `rust-crypto`
//! alone, RS256 on the crate's own `rsa` backend (jsonwebtoken's `rust_crypto` feature would pull
//! `rsa` 0.9 and RUSTSEC-2023-0071).

use std::sync::Once;

/// Installs the process-wide provider once. If the application installed one already, that one
/// stays: it verifies RS256 just as well.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "aws-lc")]
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        #[cfg(not(feature = "aws-lc"))]
        let _ = rust::PROVIDER.install_default();
    });
}

#[cfg(not(feature = "aws-lc"))]
mod rust {
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
            if crate::crypto::backend::verify_pkcs1_sha256(&self.n, &self.e, msg, sig) {
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
            let key =
                crate::PrivateKey::from_der(&self.pkcs1).map_err(|_| signature::Error::new())?;
            key.sign_pkcs1_sha256(msg)
                .map_err(|_| signature::Error::new())
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
