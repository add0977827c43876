//! `KeyRing` (the decryption keys) and `SigningKeys` (Microsoft's token signing keys).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use msgraph_notify::keys::Unwrap;
use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
use msgraph_notify::token::{Jwks, SigningKeys as CrateSigningKeys};
use msgraph_notify::{Certificate, PrivateKey};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use zeroize::Zeroizing;

use crate::errors::{FetchError, error, to_py};

/// One registered key: its id (or none), the unwrapper, its certificate when known.
#[derive(Clone)]
struct Entry {
    id: Option<String>,
    key: Arc<dyn Unwrap>,
    cert: Option<Certificate>,
}

/// The private keys of the certificates you gave Graph, each under its
/// `encryptionCertificateId`.
///
/// Several keys may be live at once (certificate rotation): the notification's
/// `encryptionCertificateId` and thumbprint choose. A ring is copied into each `Receiver` built
/// from it; keys added later do not change receivers built before.
#[pyclass(module = "msgraph_notify._native")]
pub struct KeyRing {
    entries: Vec<Entry>,
    /// The same keys in the crate's ring: `add` checks each key against the others here.
    ring: msgraph_notify::KeyRing,
}

/// Bytes, or the contents of the file at a path (`str` or `os.PathLike`).
fn read_source(source: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = source.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if source.is_instance_of::<PyString>() || source.hasattr("__fspath__")? {
        let path: PathBuf = source.extract()?;
        return std::fs::read(&path).map_err(|e| {
            error(format!(
                "cannot read the {what} file {}: {e}",
                path.display()
            ))
        });
    }
    source.extract::<Vec<u8>>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the {what} is given as bytes (PEM, DER or PKCS#12) or as a path"
        ))
    })
}

impl KeyRing {
    /// A fresh crate ring holding these keys (the keys themselves are shared, not copied).
    pub fn build(&self) -> PyResult<msgraph_notify::KeyRing> {
        let mut ring = msgraph_notify::KeyRing::new();
        for e in &self.entries {
            let result = match &e.id {
                Some(id) => ring.add_unwrapper(id.clone(), Arc::clone(&e.key), e.cert.clone()),
                None => ring.add_unwrapper_without_id(Arc::clone(&e.key), e.cert.clone()),
            };
            result.map_err(to_py)?;
        }
        Ok(ring)
    }

    fn push(&mut self, entry: Entry) -> PyResult<()> {
        let result = match &entry.id {
            Some(id) => {
                self.ring
                    .add_unwrapper(id.clone(), Arc::clone(&entry.key), entry.cert.clone())
            }
            None => self
                .ring
                .add_unwrapper_without_id(Arc::clone(&entry.key), entry.cert.clone()),
        };
        result.map_err(to_py)?;
        self.entries.push(entry);
        Ok(())
    }
}

#[pymethods]
impl KeyRing {
    #[new]
    fn new() -> Self {
        KeyRing {
            entries: Vec::new(),
            ring: msgraph_notify::KeyRing::new(),
        }
    }

    /// Adds a private key under `certificate_id` (the `encryptionCertificateId` you gave Graph;
    /// `None`: a key serving notifications whose thumbprint matches its certificate, or every
    /// notification when it is the only key).
    ///
    /// `source`: the bytes of a PEM (PKCS#8, PKCS#1, encrypted PKCS#8), DER or PKCS#12 file, or a
    /// path to one. `password`: of an encrypted PEM or a PKCS#12 file. `certificate`: the
    /// certificate's PEM or DER bytes or path, when `source` does not hold it (a PKCS#12 file
    /// does); it is checked to belong to the key and against each notification's thumbprint.
    /// Raises KeyLoadError or CertificateError.
    #[pyo3(signature = (certificate_id, source, password=None, certificate=None))]
    fn add(
        &mut self,
        certificate_id: Option<String>,
        source: &Bound<'_, PyAny>,
        password: Option<String>,
        certificate: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let bytes = zeroize_on_drop(read_source(source, "key")?);
        let (key, bundled) = PrivateKey::load(&bytes, password.as_deref()).map_err(to_py)?;
        let cert = match certificate {
            Some(c) => Some(Certificate::load(&read_source(c, "certificate")?).map_err(to_py)?),
            None => bundled,
        };
        self.push(Entry {
            id: certificate_id,
            key: Arc::new(key),
            cert,
        })
    }

    /// Adds a key held in a PKCS#11 token (an HSM, SoftHSM) under `certificate_id`, addressed by
    /// an RFC 7512 URI (`pkcs11:token=...;object=...?module-path=...`). `pin`: the user PIN,
    /// when the URI has neither `pin-source` nor `pin-value` (else the environment variable the
    /// crate names is read). The key never leaves the token. Raises KeyLoadError when the token
    /// or the key cannot be opened.
    #[pyo3(signature = (certificate_id, uri, pin=None))]
    fn add_pkcs11(
        &mut self,
        py: Python<'_>,
        certificate_id: Option<String>,
        uri: String,
        pin: Option<String>,
    ) -> PyResult<()> {
        #[cfg(feature = "pkcs11")]
        {
            let uri = match pin {
                Some(pin) => {
                    let pin = percent_encoding::utf8_percent_encode(
                        &pin,
                        percent_encoding::NON_ALPHANUMERIC,
                    );
                    let sep = if uri.contains('?') { '&' } else { '?' };
                    zeroize_on_drop(format!("{uri}{sep}pin-value={pin}").into_bytes())
                }
                None => zeroize_on_drop(uri.into_bytes()),
            };
            let text = Zeroizing::new(String::from_utf8_lossy(&uri).into_owned());
            let key = py
                .detach(|| msgraph_notify::keys::pkcs11::Pkcs11Key::open(&text))
                .map_err(to_py)?;
            let cert = key.certificate().cloned();
            self.push(Entry {
                id: certificate_id,
                key: Arc::new(key),
                cert,
            })
        }
        #[cfg(not(feature = "pkcs11"))]
        {
            let _ = (py, certificate_id, uri, pin);
            Err(error(
                "this build of msgraph_notify has no PKCS#11 support (the pkcs11 feature)",
            ))
        }
    }

    /// Removes every key registered under `certificate_id`; returns whether one was.
    fn remove(&mut self, certificate_id: &str) -> PyResult<bool> {
        let before = self.entries.len();
        self.entries
            .retain(|e| e.id.as_deref() != Some(certificate_id));
        self.ring.remove(certificate_id);
        Ok(before != self.entries.len())
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __repr__(&self) -> String {
        let ids: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{:?}", e.id.as_deref().unwrap_or("<no id>")))
            .collect();
        format!("KeyRing([{}])", ids.join(", "))
    }
}

fn zeroize_on_drop(bytes: Vec<u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(bytes)
}

/// The tokio runtime that fetches and refreshes signing keys in the background.
pub fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("msgraph-keys")
        .enable_all()
        .build()
        .map_err(|e| error(format!("cannot start the key-fetching runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// A fetcher and its background refresh, stopped when the last holder goes.
pub struct Refresher {
    pub fetcher: Arc<KeyFetcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Microsoft identity platform's token signing keys, which the validation tokens of each
/// notification body are checked against.
///
/// `SigningKeys.fetch()` reads Microsoft's (cached, refreshed before they expire and when a
/// token names an unknown key); `SigningKeys.from_jwks(...)` takes a fixed JWKS document
/// (tests, offline use).
#[pyclass(module = "msgraph_notify._native", frozen, from_py_object)]
#[derive(Clone)]
pub struct SigningKeys {
    pub keys: CrateSigningKeys,
    pub refresher: Option<Arc<Refresher>>,
}

impl SigningKeys {
    /// Microsoft's keys with the default settings (`SigningKeys.fetch()`).
    pub fn fetch_default(py: Python<'_>) -> PyResult<Self> {
        Self::fetch(py, None, None, 10.0, 43_200.0, 300.0)
    }
}

#[pymethods]
impl SigningKeys {
    /// Keys from a JWKS document: `str`, `bytes`, or a `dict` as parsed from JSON.
    /// Raises MalformedError.
    #[staticmethod]
    fn from_jwks(py: Python<'_>, jwks: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bytes: Vec<u8> = if let Ok(s) = jwks.cast::<PyString>() {
            s.extract::<String>()?.into_bytes()
        } else if let Ok(b) = jwks.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            let text = py.import("json")?.call_method1("dumps", (jwks,))?;
            text.extract::<String>()?.into_bytes()
        };
        let jwks = Jwks::from_json(&bytes).map_err(to_py)?;
        Ok(SigningKeys {
            keys: CrateSigningKeys::new(jwks),
            refresher: None,
        })
    }

    /// Microsoft's signing keys, fetched now (blocking, the GIL released) from the OpenID
    /// metadata at `metadata_url` (default: the public cloud's,
    /// https://login.microsoftonline.com/common/.well-known/openid-configuration) or directly
    /// from `jwks_url`, then refreshed in the background before `ttl` seconds pass, and at once
    /// (at most every `min_refresh_interval` seconds) when a token names an unknown key.
    /// Raises FetchError when the first fetch fails.
    #[staticmethod]
    #[pyo3(signature = (metadata_url=None, jwks_url=None, timeout=10.0, ttl=43200.0, min_refresh_interval=300.0))]
    fn fetch(
        py: Python<'_>,
        metadata_url: Option<String>,
        jwks_url: Option<String>,
        timeout: f64,
        ttl: f64,
        min_refresh_interval: f64,
    ) -> PyResult<Self> {
        let seconds = |s: f64, name: &str| {
            std::time::Duration::try_from_secs_f64(s)
                .map_err(|_| pyo3::exceptions::PyValueError::new_err(format!("{name}: {s}")))
        };
        let mut config = FetchConfig::default()
            .timeout(seconds(timeout, "timeout")?)
            .ttl(seconds(ttl, "ttl")?)
            .min_refresh_interval(seconds(min_refresh_interval, "min_refresh_interval")?);
        if let Some(url) = metadata_url {
            config = config.metadata_url(url);
        }
        if let Some(url) = jwks_url {
            config = config.jwks_url(url);
        }
        let rt = runtime()?;
        let fetcher = {
            let _guard = rt.enter();
            Arc::new(KeyFetcher::new(config).map_err(|e| FetchError::new_err(e.to_string()))?)
        };
        py.detach(|| rt.block_on(fetcher.refresh()))
            .map_err(|e| FetchError::new_err(e.to_string()))?;
        let task = {
            let _guard = rt.enter();
            Arc::clone(&fetcher).spawn_refresher()
        };
        Ok(SigningKeys {
            keys: fetcher.signing_keys(),
            refresher: Some(Arc::new(Refresher { fetcher, task })),
        })
    }

    /// The key ids (`kid`) held now.
    fn kids(&self) -> Vec<String> {
        self.keys.snapshot().kids()
    }

    fn __contains__(&self, kid: &str) -> bool {
        self.keys.contains(kid)
    }

    fn __len__(&self) -> usize {
        self.keys.snapshot().len()
    }

    fn __repr__(&self) -> String {
        format!(
            "SigningKeys({} keys{})",
            self.__len__(),
            if self.refresher.is_some() {
                ", fetched"
            } else {
                ""
            }
        )
    }
}
