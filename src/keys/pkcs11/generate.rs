//! Generating a key pair in the token, with its self-signed certificate stored beside it.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::super::{Certificate, rsa_public_key_der, strip_zeros};
use super::uri::hex;
use super::*;
use crate::error::{Error, Result};
impl Pkcs11Key {
    /// Generates an RSA key pair of `bits` (2048, 3072 or 4096) inside the token the URI names,
    /// with the URI's `object` as label and its `id` (or 16 random bytes) as `CKA_ID`. The private
    /// key is created sensitive and non-extractable: it can decrypt and sign, never be read out.
    /// A self-signed certificate (`CN=common_name`, valid for `days` days, signed by the token)
    /// is stored on the token beside it, with the same label and id.
    ///
    /// Refuses to run when a private key with that label or id exists. Errors as
    /// [`Pkcs11Key::open`], and [`Error::Key`] when the token cannot generate or store.
    pub fn generate(uri: &str, bits: usize, common_name: &str, days: u32) -> Result<Self> {
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(Error::Key(format!(
                "unsupported RSA key size {bits} (use 2048, 3072 or 4096)"
            )));
        }
        let mut uri = Pkcs11Uri::parse(uri)?;
        let module_path = uri.module()?;
        let pin = uri.pin()?;
        let ctx = module(&module_path)?;
        let slot = find_slot(&ctx, &uri, &module_path)?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| Error::Key(format!("cannot open a read-write session: {e}")))?;
        if pin.is_none() {
            return Err(Error::Key(
                "generating a key on a token needs the user PIN: pin-source=file:PATH".into(),
            ));
        }
        login(&session, pin.as_ref(), &uri.describe())?;
        let mut existing = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => crate::crypto::random_bytes(16)?.to_vec(),
        };
        for attr in [
            uri.object
                .as_ref()
                .map(|l| Attribute::Label(l.as_bytes().to_vec())),
            Some(Attribute::Id(id.clone())),
        ]
        .into_iter()
        .flatten()
        {
            existing.truncate(1);
            existing.push(attr);
            if !session
                .find_objects(&existing)
                .map_err(|e| Error::Key(format!("cannot search the token: {e}")))?
                .is_empty()
            {
                return Err(Error::Key(format!(
                    "a private key with this label or id exists on the token ({}): choose \
                     another object= or id=",
                    uri.describe()
                )));
            }
        }
        let label = uri.object.clone().unwrap_or_else(|| hex(&id)).into_bytes();
        let bits_ulong = u64::try_from(bits).map_err(|_| Error::Key("key size".into()))?;
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Encrypt(true),
            Attribute::Verify(true),
            Attribute::ModulusBits(bits_ulong.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
            Attribute::Sign(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let (_public, private) = session
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(|e| Error::Key(format!("the token could not generate the key: {e}")))?;
        let modulus = bytes_attribute(&session, private, AttributeType::Modulus)?
            .map(|m| strip_zeros(&m).to_vec())
            .ok_or_else(|| Error::Key("the token does not show the new key's modulus".into()))?;
        let cert = self_signed(&session, private, &modulus, common_name, days)?;
        let subject = {
            use x509_parser::prelude::FromDer;
            let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.der())
                .map_err(|e| Error::Certificate(e.to_string()))?;
            parsed.subject().as_raw().to_vec()
        };
        session
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Label(label),
                Attribute::Id(id.clone()),
                Attribute::Subject(subject),
                Attribute::Value(cert.der().to_vec()),
            ])
            .map_err(|e| Error::Key(format!("the token could not store the certificate: {e}")))?;
        drop(session);
        uri.id = Some(id);
        Self::open_uri(uri)
    }
}

/// A self-signed certificate for the key in the token, signed there (SHA-256 with RSA).
pub(super) fn self_signed(
    session: &Session,
    private: ObjectHandle,
    modulus: &[u8],
    common_name: &str,
    days: u32,
) -> Result<Certificate> {
    super::super::certificate::self_signed_by(
        || rsa_public_key_der(modulus, &[0x01, 0x00, 0x01]),
        |msg| session.sign(&Mechanism::Sha256RsaPkcs, private, msg).ok(),
        common_name,
        days,
        "the token could not sign the certificate",
    )
}
