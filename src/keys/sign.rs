//! The signing seam: the private-key operation behind a client assertion, the JWT with which an
//! application proves to Entra ID that it holds its certificate's key (the client-credentials
//! grant with a certificate). RSASSA-PSS with SHA-256 (JWS `PS256`), as Entra ID documents for
//! `x5t#S256` assertions. In process ([`PrivateKey`]), in a PKCS#11 token, or a user's own vault.

use std::sync::Arc;

use super::PrivateKey;
use crate::error::Result;

/// Signs with an RSA private key: RSASSA-PSS, SHA-256, MGF1-SHA-256, a 32-byte salt (JWS
/// `PS256`, RFC 7518 §3.5).
///
/// Errors an implementation returns: [`Error::KeyUnavailable`](crate::Error::KeyUnavailable)
/// when the key cannot be reached for now (a token removed, a vault unreachable), with a
/// message that names the cause; [`Error::Key`](crate::Error::Key) when it can never sign.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::keys::{PrivateKey, Sign};
/// let key = PrivateKey::generate(2048)?;
/// let signature = key.sign_pss_sha256(b"header.claims")?;
/// assert_eq!(signature.len(), 256); // as long as the modulus
/// // PSS is randomised: two signatures of one message differ.
/// assert_ne!(signature, key.sign_pss_sha256(b"header.claims")?);
/// # Ok(()) }
/// ```
pub trait Sign: Send + Sync {
    /// The PS256 signature of `message`, as many bytes as the key's modulus.
    fn sign_pss_sha256(&self, message: &[u8]) -> Result<Vec<u8>>;

    /// A short description for logs and errors (never a secret). Default: `"external signer"`.
    fn describe(&self) -> String {
        "external signer".to_owned()
    }
}

impl Sign for PrivateKey {
    fn sign_pss_sha256(&self, message: &[u8]) -> Result<Vec<u8>> {
        PrivateKey::sign_pss_sha256(self, message)
    }

    fn describe(&self) -> String {
        format!(
            "in-process RSA-{} key ({})",
            self.bits(),
            crate::crypto::RSA_BACKEND
        )
    }
}

impl<T: Sign + ?Sized> Sign for Arc<T> {
    fn sign_pss_sha256(&self, message: &[u8]) -> Result<Vec<u8>> {
        (**self).sign_pss_sha256(message)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

impl<T: Sign + ?Sized> Sign for Box<T> {
    fn sign_pss_sha256(&self, message: &[u8]) -> Result<Vec<u8>> {
        (**self).sign_pss_sha256(message)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}
