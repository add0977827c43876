//! The exceptions: one class per kind of the crate's `Error`, all deriving from
//! `msgraph_notify.Error`, each carrying the crate's message unchanged.

use msgraph_notify::Error as Crate;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;

pyo3::create_exception!(
    msgraph_notify,
    Error,
    PyException,
    "The base of every msgraph_notify exception; str(e) is the crate's message."
);
pyo3::create_exception!(
    msgraph_notify,
    MalformedError,
    Error,
    "A body, field or file is malformed (not JSON, `value` missing, bad base64...)."
);
pyo3::create_exception!(
    msgraph_notify,
    BodyTooLargeError,
    Error,
    "The body is larger than the receiver's max_body_bytes."
);
pyo3::create_exception!(
    msgraph_notify,
    TooManyError,
    Error,
    "The body holds more items or validation tokens than the receiver accepts."
);
pyo3::create_exception!(
    msgraph_notify,
    KeySelectionError,
    Error,
    "No registered key serves the item (unknown encryptionCertificateId, thumbprint mismatch)."
);
pyo3::create_exception!(
    msgraph_notify,
    VerificationError,
    Error,
    "The encrypted content failed verification (one uniform error for every crypto failure)."
);
pyo3::create_exception!(
    msgraph_notify,
    KeyLoadError,
    Error,
    "A private key could not be loaded (format, password)."
);
pyo3::create_exception!(
    msgraph_notify,
    CertificateError,
    Error,
    "A certificate could not be loaded or does not belong to its key."
);
pyo3::create_exception!(
    msgraph_notify,
    TokenError,
    Error,
    "A validation token was rejected, or none covers the item."
);
pyo3::create_exception!(
    msgraph_notify,
    ClientStateError,
    Error,
    "The item's clientState is missing or matches no configured secret."
);
pyo3::create_exception!(
    msgraph_notify,
    DuplicateError,
    Error,
    "The item was already accepted (a replay, or Graph retrying)."
);
pyo3::create_exception!(
    msgraph_notify,
    KeyUnavailableError,
    Error,
    "The decryption key could not be used now (transient: retry later)."
);
pyo3::create_exception!(
    msgraph_notify,
    ReplayStoreError,
    Error,
    "The replay store could not answer (transient: retry later)."
);
pyo3::create_exception!(
    msgraph_notify,
    PayloadError,
    Error,
    "An offloaded payload could not be read."
);
pyo3::create_exception!(
    msgraph_notify,
    FetchError,
    Error,
    "Microsoft's token signing keys could not be fetched."
);
pyo3::create_exception!(
    msgraph_notify,
    BackendError,
    Error,
    "A failure of the cryptographic backend, or another error of the crate."
);

/// The exception class for `e`.
pub fn class_of<'py>(py: Python<'py>, e: &Crate) -> Bound<'py, PyType> {
    match e {
        Crate::Malformed { .. } | Crate::Plaintext(_) => py.get_type::<MalformedError>(),
        Crate::BodyTooLarge { .. } => py.get_type::<BodyTooLargeError>(),
        Crate::TooMany { .. } => py.get_type::<TooManyError>(),
        Crate::UnknownCertificateId(_)
        | Crate::NoMatchingKey
        | Crate::ThumbprintMismatch { .. } => py.get_type::<KeySelectionError>(),
        Crate::Verification => py.get_type::<VerificationError>(),
        Crate::Key(_) => py.get_type::<KeyLoadError>(),
        Crate::Certificate(_) => py.get_type::<CertificateError>(),
        Crate::Token(_) => py.get_type::<TokenError>(),
        Crate::ClientState => py.get_type::<ClientStateError>(),
        Crate::Duplicate => py.get_type::<DuplicateError>(),
        Crate::KeyUnavailable(_) => py.get_type::<KeyUnavailableError>(),
        Crate::ReplayStore(_) => py.get_type::<ReplayStoreError>(),
        Crate::Payload(_) => py.get_type::<PayloadError>(),
        _ => py.get_type::<BackendError>(),
    }
}

/// The crate's error as the matching Python exception, with the crate's message.
pub fn to_py(e: Crate) -> PyErr {
    let message = e.to_string();
    Python::attach(|py| PyErr::from_type(class_of(py, &e), message))
}

/// A plain `msgraph_notify.Error` with `message`.
pub fn error(message: impl Into<String>) -> PyErr {
    Error::new_err(message.into())
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("MalformedError", py.get_type::<MalformedError>())?;
    m.add("BodyTooLargeError", py.get_type::<BodyTooLargeError>())?;
    m.add("TooManyError", py.get_type::<TooManyError>())?;
    m.add("KeySelectionError", py.get_type::<KeySelectionError>())?;
    m.add("VerificationError", py.get_type::<VerificationError>())?;
    m.add("KeyLoadError", py.get_type::<KeyLoadError>())?;
    m.add("CertificateError", py.get_type::<CertificateError>())?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("ClientStateError", py.get_type::<ClientStateError>())?;
    m.add("DuplicateError", py.get_type::<DuplicateError>())?;
    m.add("KeyUnavailableError", py.get_type::<KeyUnavailableError>())?;
    m.add("ReplayStoreError", py.get_type::<ReplayStoreError>())?;
    m.add("PayloadError", py.get_type::<PayloadError>())?;
    m.add("FetchError", py.get_type::<FetchError>())?;
    m.add("BackendError", py.get_type::<BackendError>())?;
    Ok(())
}
