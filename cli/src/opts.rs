//! The key and token options shared by `decrypt` and `serve`, and the receiver they build.

use std::sync::Arc;

use msgraph_notify::receiver::{Receiver, dangerous};
use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
use msgraph_notify::token::{Jwks, SigningKeys, Validation};
use msgraph_notify::{Certificate, Decryptor, KeyRing, PrivateKey};

use crate::{Fail, Secret, fail};

/// Keys, signing keys and checks.
#[derive(clap::Args, Debug, Clone)]
pub struct ReceiverOpts {
    /// A private key: PEM (PKCS#1, PKCS#8, encrypted PKCS#8), DER or PKCS#12. `ID=PATH`
    /// registers it under that encryptionCertificateId; a bare PATH serves when it is the only
    /// key or when its certificate's thumbprint matches. Repeat during certificate rotation.
    #[arg(long = "key", value_name = "[ID=]PATH")]
    pub keys: Vec<String>,

    /// Password of encrypted PEM and PKCS#12 keys.
    #[arg(
        long,
        value_name = "P",
        env = "MSGRAPH_NOTIFY_KEY_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// A certificate (PEM or DER) to pair with a key that does not carry its own, so that the
    /// notification's thumbprint is checked. Repeatable; matched to keys by public key.
    #[arg(long = "cert", value_name = "FILE")]
    pub certs: Vec<String>,

    /// Check validation tokens against the signing keys in this JWKS file.
    #[arg(long, value_name = "FILE", group = "signing")]
    pub jwks: Option<String>,

    /// Fetch the token signing keys from this JWKS URL (refetched on an unknown `kid`,
    /// rate-limited).
    #[arg(long, value_name = "URL", group = "signing")]
    pub jwks_url: Option<String>,

    /// Fetch the signing keys through this OpenID metadata URL (national clouds). Default:
    /// Microsoft's public-cloud metadata, used when neither --jwks nor --jwks-url is given.
    #[arg(long, value_name = "URL", group = "signing")]
    pub metadata_url: Option<String>,

    /// A receiving application id: a token's `aud` must be one of them. Repeatable; required
    /// unless --insecure-skip-tokens.
    #[arg(long = "app-id", value_name = "ID")]
    pub app_ids: Vec<String>,

    /// Accept tokens only from this tenant. Repeatable. Default: any tenant.
    #[arg(long = "tenant", value_name = "ID")]
    pub tenants: Vec<String>,

    /// Bind a subscription to the app that created it: its encrypted items then need a valid
    /// token issued to that app, not just one for their tenant. Repeatable; the app must be
    /// one of --app-id.
    #[arg(long = "subscription-app", value_name = "SUBSCRIPTION=APP")]
    pub subscription_apps: Vec<String>,

    /// Reject encrypted items of subscriptions not bound with --subscription-app.
    #[arg(long, requires = "subscription_apps")]
    pub only_bound_subscriptions: bool,

    /// The subscription's clientState secret: every item must carry one of them. Repeatable
    /// (rotation).
    #[arg(long = "client-state", value_name = "S", hide_env_values = true)]
    pub client_states: Vec<Secret>,

    /// Do not check validation tokens (prints a warning). Only for opening a captured payload
    /// offline: anyone holding your certificate can forge notifications that decrypt.
    #[arg(long)]
    pub insecure_skip_tokens: bool,
}

/// A receiver and, when the signing keys are fetched, the fetcher that keeps them.
pub struct Built {
    pub receiver: Receiver,
    pub fetcher: Option<Arc<KeyFetcher>>,
}

/// The warning printed for --insecure-skip-tokens.
pub const SKIP_TOKENS_WARNING: &str = "warning: --insecure-skip-tokens: validation tokens are NOT checked; \
anyone holding your certificate can forge notifications that decrypt. Use this only to open a captured payload offline.";

/// Splits `ID=PATH` (a path that exists as given is taken whole, even with a `=` in it).
fn split_key_spec(spec: &str) -> (Option<&str>, &str) {
    if std::path::Path::new(spec).exists() {
        return (None, spec);
    }
    match spec.split_once('=') {
        Some((id, path)) if !id.is_empty() => (Some(id), path),
        _ => (None, spec),
    }
}

impl ReceiverOpts {
    /// The key ring from `--key` and `--cert`.
    pub fn key_ring(&self) -> Result<KeyRing, Fail> {
        let mut certs = Vec::new();
        for path in &self.certs {
            let bytes =
                std::fs::read(path).map_err(|e| fail!("cannot read certificate {path}: {e}"))?;
            let cert = Certificate::load(&bytes)
                .map_err(|e| fail!("certificate {path} does not load: {e}"))?;
            certs.push((path, cert, false));
        }
        let mut ring = KeyRing::new();
        for spec in &self.keys {
            let (id, path) = split_key_spec(spec);
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(path).map_err(|e| fail!("cannot read key {path}: {e}"))?,
            );
            let (key, mut cert) =
                PrivateKey::load(&bytes, self.password.as_ref().map(Secret::expose))
                    .map_err(|e| fail!("key {path} does not load: {e}"))?;
            if cert.is_none()
                && let Some(entry) = certs.iter_mut().find(|(_, c, _)| c.matches(&key))
            {
                entry.2 = true;
                cert = Some(entry.1.clone());
            }
            match id {
                Some(id) => ring.add(id, key, cert),
                None => ring.add_without_id(key, cert),
            }
            .map_err(|e| fail!("key {path}: {e}"))?;
        }
        if let Some((path, _, _)) = certs.iter().find(|(_, _, used)| !used) {
            return Err(fail!(
                "certificate {path} belongs to none of the --key keys"
            ));
        }
        Ok(ring)
    }

    /// Builds the receiver. `max_body` is the body limit in bytes.
    pub fn build(&self, max_body: usize, parallel: bool) -> Result<Built, Fail> {
        let ring = self.key_ring()?;
        if ring.is_empty() {
            errln!("warning: no --key given: items with encrypted content will be rejected");
        }
        let mut builder = Receiver::builder(Decryptor::new(ring))
            .max_body_bytes(max_body)
            .parallel(parallel);
        for secret in &self.client_states {
            builder = builder.client_state(secret.expose());
        }
        for spec in &self.subscription_apps {
            let Some((subscription, app)) = spec
                .split_once('=')
                .filter(|(s, a)| !s.trim().is_empty() && !a.trim().is_empty())
            else {
                return Err(fail!(
                    "--subscription-app {spec:?}: expected SUBSCRIPTION=APP"
                ));
            };
            builder = builder.subscription_app(subscription, app);
        }
        if self.only_bound_subscriptions {
            builder = builder.only_bound_subscriptions();
        }
        let mut fetcher = None;
        if self.insecure_skip_tokens {
            errln!("{SKIP_TOKENS_WARNING}");
            builder = dangerous::skip_token_validation(builder);
        } else {
            if self.app_ids.is_empty() {
                return Err(fail!(
                    "--app-id is required to check validation tokens (the id of the app that created the \
                     subscription); --insecure-skip-tokens skips the checks for offline use"
                ));
            }
            let mut validation = Validation::new(&self.app_ids);
            if !self.tenants.is_empty() {
                validation = validation.allow_tenants(&self.tenants);
            }
            builder = builder.validation(validation);
            let keys = if let Some(path) = &self.jwks {
                let jwks =
                    Jwks::from_file(path).map_err(|e| fail!("JWKS {path} does not load: {e}"))?;
                if jwks.is_empty() {
                    return Err(fail!("JWKS {path} holds no RSA signing key"));
                }
                SigningKeys::new(jwks)
            } else {
                let config = match (&self.jwks_url, &self.metadata_url) {
                    (Some(url), _) => FetchConfig::with_jwks_url(url),
                    (None, Some(url)) => FetchConfig::with_metadata_url(url),
                    (None, None) => FetchConfig::default(),
                };
                let f = KeyFetcher::with_keys(config, SigningKeys::default())
                    .map_err(|e| fail!("cannot set up fetching the signing keys: {e}"))?;
                let keys = f.signing_keys();
                fetcher = Some(Arc::new(f));
                keys
            };
            builder = builder.signing_keys(keys);
        }
        let receiver = builder.build().map_err(|e| fail!("{e}"))?;
        Ok(Built { receiver, fetcher })
    }
}

#[cfg(test)]
mod tests {
    use super::split_key_spec;

    #[test]
    fn key_specs() {
        assert_eq!(
            split_key_spec("cert-1=/tmp/none/k.pem"),
            (Some("cert-1"), "/tmp/none/k.pem")
        );
        assert_eq!(split_key_spec("/tmp/none/k.pem"), (None, "/tmp/none/k.pem"));
        assert_eq!(split_key_spec("=x"), (None, "=x"));
    }
}
