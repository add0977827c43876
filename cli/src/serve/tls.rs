//! `serve --tls-cert FILE --tls-key FILE`: HTTPS with rustls on aws-lc-rs (the crypto provider
//! of the default build), TLS 1.2 and 1.3 (Graph requires TLS 1.2 or later of a
//! `notificationUrl`), HTTP/1.1 only (ALPN `http/1.1`).
//!
//! The certificate chain and key are read again on SIGHUP ([`Tls::reload`]): handshakes that
//! start afterwards present the new certificate; connections already open keep theirs and are
//! not dropped. A reload that fails (missing file, unparsable PEM, a key that does not match the
//! certificate) keeps the certificate in use and says why.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::admin::Metrics;
use crate::signal::Hangup;

/// The TLS side of `serve`: an acceptor whose certificate can be replaced while it runs.
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

/// The certificate handed to new handshakes.
struct Current(RwLock<Arc<CertifiedKey>>);

// Never the key: only that there is one.
impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current(<certificate and key>)")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }
}

impl Tls {
    /// Loads the chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certified = load(cert_path, key_path, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(certified))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; on success new handshakes present the new certificate. On
    /// failure the one in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let certified = load(&self.cert_path, &self.key_path, &self.provider)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        Ok(())
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// On each SIGHUP, reloads the certificate (off the async threads), counts the result and says
/// it; without TLS, says there is nothing to reload.
pub fn reload_on_hangup(hangup: Hangup, tls: Option<Arc<Tls>>, metrics: Arc<Metrics>) {
    #[cfg(unix)]
    if let Some(mut hangup) = hangup {
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let Some(tls) = &tls else {
                    crate::log::info("SIGHUP: nothing to reload (no --tls-cert)");
                    continue;
                };
                let tls = Arc::clone(tls);
                match tokio::task::spawn_blocking(move || tls.reload()).await {
                    Ok(Ok(())) => {
                        metrics.tls_reloaded(true);
                        crate::log::info(
                            "SIGHUP: the TLS certificate was reloaded; new connections use it",
                        );
                    }
                    Ok(Err(e)) => {
                        metrics.tls_reloaded(false);
                        crate::log::warn(&format!(
                            "SIGHUP: the TLS certificate was not reloaded, the previous one stays: {e}"
                        ));
                    }
                    Err(_) => metrics.tls_reloaded(false),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (hangup, tls, metrics);
}

fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("--tls-cert {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no CERTIFICATE block in the file",
            cert_path.display()
        ));
    }
    // Read into a buffer that is wiped when dropped; the parsed key lives in the provider.
    let pem = zeroize::Zeroizing::new(
        std::fs::read(key_path).map_err(|e| format!("--tls-key {}: {e}", key_path.display()))?,
    );
    crate::opts::warn_if_world_readable("--tls-key", &key_path.display().to_string());
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let key = key_path.display();
        if is_encrypted_pem(&pem) {
            format!(
                "--tls-key {key} is an encrypted private key, and serve needs it unencrypted \
                 (it is read again on SIGHUP, with no one to type a password): write a \
                 decrypted copy only its owner can read, e.g. `umask 077; openssl pkey -in {key} \
                 -out key.pem`, and give that"
            )
        } else {
            format!("--tls-key {key}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")
        }
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let (key, cert) = (key_path.display(), cert_path.display());
        match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                "--tls-key {key} does not match --tls-cert {cert}: the key is not the one the \
                 certificate (the first CERTIFICATE block, the leaf) was issued for. Give the \
                 key of that certificate, or put the leaf certificate first in the chain"
            ),
            e => format!("--tls-key {key} with --tls-cert {cert}: {e}"),
        }
    })
}

/// Whether a PEM file holds an encrypted private key: PKCS#8 `ENCRYPTED PRIVATE KEY`, or a
/// traditional OpenSSL key with `Proc-Type: 4,ENCRYPTED`.
fn is_encrypted_pem(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}
