//! `msgraph_notify.testing`: the crate's test kit, to test receivers on notifications encrypted
//! and signed as Graph does.

use msgraph_notify::model::ChangeType;
use msgraph_notify::testing::{
    GraphEncryptor as CrateEncryptor, NotificationSpec, TokenFlaw, TokenIssuer as CrateIssuer,
};
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{Certificate, PrivateKey};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde_json::Value;

use crate::errors::to_py;
use crate::keys::SigningKeys;

/// Encrypts resources for a certificate exactly as Graph does (RSA-OAEP-wrapped AES key,
/// HMAC-SHA256 signature, AES-CBC), and builds whole notifications around them.
///
/// `certificate`: the receiver's certificate, PEM or DER bytes. `certificate_id`: the
/// `encryptionCertificateId` the notifications name.
#[pyclass(module = "msgraph_notify._native", frozen)]
pub struct GraphEncryptor {
    cert: Certificate,
    certificate_id: String,
}

#[pymethods]
impl GraphEncryptor {
    #[new]
    fn new(certificate: &[u8], certificate_id: String) -> PyResult<Self> {
        Ok(GraphEncryptor {
            cert: Certificate::load(certificate).map_err(to_py)?,
            certificate_id,
        })
    }

    /// The `encryptedContent` object (a dict) of `plaintext`.
    fn encrypt<'py>(&self, py: Python<'py>, plaintext: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let content = CrateEncryptor::new(&self.cert, &self.certificate_id)
            .encrypt(plaintext)
            .map_err(to_py)?;
        Ok(pythonize::pythonize(py, &content)?)
    }

    /// One notification (a dict, an element of a body's `value`) carrying `resource` (a dict,
    /// the resource's JSON) encrypted, for `tenant_id`, about `resource_path`.
    #[pyo3(signature = (resource, tenant_id, resource_path="communications/presences/u1", *, subscription_id=None, change_type="updated", client_state=None))]
    fn notification<'py>(
        &self,
        resource: &Bound<'py, PyAny>,
        tenant_id: &str,
        resource_path: &str,
        subscription_id: Option<String>,
        change_type: &str,
        client_state: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = resource.py();
        let resource: Value = pythonize::depythonize(resource)?;
        let mut spec = NotificationSpec::new(tenant_id, resource_path);
        if let Some(id) = subscription_id {
            spec.subscription_id = id;
        }
        spec.change_type = ChangeType::from(change_type);
        spec.client_state = client_state;
        let item = CrateEncryptor::new(&self.cert, &self.certificate_id)
            .notification(&resource, &spec)
            .map_err(to_py)?;
        Ok(pythonize::pythonize(py, &item)?)
    }
}

fn version(v: &str) -> PyResult<TokenVersion> {
    match v {
        "1.0" | "v1" | "1" => Ok(TokenVersion::V1),
        "2.0" | "v2" | "2" => Ok(TokenVersion::V2),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "token version {other:?}: \"1.0\" or \"2.0\""
        ))),
    }
}

/// The flaws `TokenIssuer.flawed_token` knows.
const FLAWS: &[(&str, TokenFlaw)] = &[
    ("expired", TokenFlaw::Expired),
    ("not_yet_valid", TokenFlaw::NotYetValid),
    ("wrong_audience", TokenFlaw::WrongAudience),
    ("wrong_publisher", TokenFlaw::WrongPublisher),
    (
        "publisher_in_other_versions_claim",
        TokenFlaw::PublisherInOtherVersionsClaim,
    ),
    (
        "issuer_containing_tenant",
        TokenFlaw::IssuerContainingTenant,
    ),
    ("other_tenants_issuer", TokenFlaw::OtherTenantsIssuer),
    ("alg_none", TokenFlaw::AlgNone),
    ("hs256_with_public_key", TokenFlaw::Hs256WithPublicKey),
    ("unknown_kid", TokenFlaw::UnknownKid),
    ("foreign_signature", TokenFlaw::ForeignSignature),
    ("unknown_version", TokenFlaw::UnknownVersion),
];

/// Signs validation tokens as the Microsoft identity platform does, with its own key: give the
/// receiver `issuer.signing_keys()` in place of Microsoft's.
#[pyclass(module = "msgraph_notify._native", frozen)]
pub struct TokenIssuer {
    inner: CrateIssuer,
}

#[pymethods]
impl TokenIssuer {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(TokenIssuer {
            inner: CrateIssuer::new().map_err(to_py)?,
        })
    }

    /// The `kid` of the issuer's key.
    #[getter]
    fn kid(&self) -> &str {
        self.inner.kid()
    }

    /// The issuer's public key as a JWKS document (JSON text), as Microsoft publishes its keys.
    fn jwks(&self) -> String {
        self.inner.jwks_json()
    }

    /// The issuer's public key as `SigningKeys`, for `Receiver(signing_keys=...)`.
    fn signing_keys(&self) -> SigningKeys {
        SigningKeys {
            keys: self.inner.signing_keys(),
            refresher: None,
        }
    }

    /// A valid token for `app_id` (`aud`) in `tenant_id`, valid for an hour; `version`: "1.0"
    /// or "2.0".
    #[pyo3(signature = (app_id, tenant_id, version="2.0"))]
    fn token(&self, app_id: &str, tenant_id: &str, version: &str) -> PyResult<String> {
        Ok(self.inner.token(self::version(version)?, app_id, tenant_id))
    }

    /// A token wrong in exactly one way: `flaw` is one of `expired`, `not_yet_valid`,
    /// `wrong_audience`, `wrong_publisher`, `publisher_in_other_versions_claim`,
    /// `issuer_containing_tenant`, `other_tenants_issuer`, `alg_none`, `hs256_with_public_key`,
    /// `unknown_kid`, `foreign_signature` (forged: the right kid, another key),
    /// `unknown_version`.
    #[pyo3(signature = (app_id, tenant_id, flaw, version="2.0"))]
    fn flawed_token(
        &self,
        app_id: &str,
        tenant_id: &str,
        flaw: &str,
        version: &str,
    ) -> PyResult<String> {
        let Some((_, flaw)) = FLAWS.iter().find(|(name, _)| *name == flaw) else {
            let names: Vec<&str> = FLAWS.iter().map(|(n, _)| *n).collect();
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown flaw {flaw:?}: one of {}",
                names.join(", ")
            )));
        };
        Ok(self
            .inner
            .flawed_token(self::version(version)?, app_id, tenant_id, *flaw))
    }
}

/// A new RSA key and a self-signed certificate for it: `(key_pem, certificate_pem)`, the key
/// as unencrypted PKCS#8 PEM. For tests only.
#[pyfunction]
#[pyo3(signature = (common_name="receiver.example", bits=2048, days=30))]
pub fn self_signed_certificate<'py>(
    py: Python<'py>,
    common_name: &str,
    bits: usize,
    days: u32,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let key = py.detach(|| PrivateKey::generate(bits)).map_err(to_py)?;
    let cert = Certificate::self_signed(&key, common_name, days).map_err(to_py)?;
    Ok((
        PyBytes::new(py, key.to_pkcs8_pem().as_bytes()),
        PyBytes::new(py, cert.to_pem().as_bytes()),
    ))
}
