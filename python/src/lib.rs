//! `msgraph_notify._native`: the Python bindings (PyO3) of the msgraph-notify crate, a thin
//! layer over its public API. The Python package `msgraph_notify` (python/msgraph_notify)
//! re-exports these names; `msgraph_notify.testing` those of the test kit.

use pyo3::prelude::*;

mod errors;
mod keys;
mod receiver;
mod testing;

/// Verify and decrypt Microsoft Graph change notifications with resource data.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<keys::KeyRing>()?;
    m.add_class::<keys::SigningKeys>()?;
    m.add_class::<receiver::Receiver>()?;
    m.add_class::<receiver::Reply>()?;
    m.add_class::<receiver::Item>()?;
    m.add_class::<testing::GraphEncryptor>()?;
    m.add_class::<testing::TokenIssuer>()?;
    m.add_function(wrap_pyfunction!(testing::self_signed_certificate, m)?)?;
    Ok(())
}
