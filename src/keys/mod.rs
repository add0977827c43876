//! Private keys, certificates, thumbprints, and the key ring that picks a key per notification.
//!
//! Keys load from PEM (PKCS#1, PKCS#8, encrypted PKCS#8), DER and PKCS#12 (legacy RC2/3DES and
//! modern PBES2/AES). Each key is parsed once, when it is loaded; key material is zeroized on drop
//! and never appears in `Debug` output.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod certificate;
mod formats;
mod private_key;
mod ring;
mod sign;

#[cfg(feature = "pkcs11")]
pub mod pkcs11;

pub use certificate::Certificate;
pub use private_key::PrivateKey;
pub use ring::KeyRing;
pub use sign::Sign;

use formats::strip_zeros;
#[cfg(feature = "pkcs11")]
use {crate::crypto::modulus_bits, formats::rsa_public_key_der};

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
/// - [`Error::KeyUnavailable`] for its own passing failures (token removed, session lost,
///   vault unreachable), with a message that names the cause and never anything of `wrapped`.
/// - [`Error::KeyRefused`] when its credentials are refused (a wrong, locked or expired PIN):
///   permanent, never retried.
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
        format!(
            "in-process RSA-{} key ({})",
            self.bits(),
            crate::crypto::RSA_BACKEND
        )
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
