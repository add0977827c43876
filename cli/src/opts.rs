//! The key and token options shared by `decrypt` and `serve`, and the receiver they build.

use std::sync::Arc;

use msgraph_notify::receiver::{DEFAULT_MAX_ITEMS, Receiver, dangerous};
use msgraph_notify::replay::{
    DEFAULT_REPLAY_TTL, Fingerprint, RedisReplayStore, ReplayGuard, ReplayStore, ReplayStoreError,
};
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
    /// (rotation). Visible to other users in the process list: prefer --client-state-file or
    /// the environment variable MSGRAPH_NOTIFY_CLIENT_STATE (several secrets separated by
    /// commas). All three sources add up.
    #[arg(long = "client-state", value_name = "S")]
    pub client_states: Vec<Secret>,

    /// A file of clientState secrets, one per line (blank lines ignored). Repeatable.
    #[arg(long = "client-state-file", value_name = "FILE")]
    pub client_state_files: Vec<String>,

    /// The most items (`value` elements) one body may carry; a body with more is refused whole.
    /// Raise it to open a large trusted capture.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ITEMS as u32, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub max_items: u32,

    /// Allow --jwks-url and --metadata-url over plain http:// to a host that is not the loopback
    /// interface. Anyone on the path could then substitute signing keys and forge tokens.
    #[arg(long)]
    pub insecure_http: bool,

    /// Do not check validation tokens (prints a warning). Only for opening a captured payload
    /// offline: anyone holding your certificate can forge notifications that decrypt.
    #[arg(long)]
    pub insecure_skip_tokens: bool,
}

/// The environment variable holding clientState secrets, separated by commas.
pub const CLIENT_STATE_ENV: &str = "MSGRAPH_NOTIFY_CLIENT_STATE";

/// How a command's receiver is sized.
pub struct Limits {
    /// The largest body, in bytes.
    pub max_body: usize,
    /// The most items per body.
    pub max_items: usize,
    /// Decrypt the items of one body in parallel.
    pub parallel: bool,
    /// Where accepted items are remembered (None: replays are not detected).
    pub replay: Option<Arc<dyn ReplayStore>>,
}

/// Replay detection (`serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayOpts {
    /// Where accepted items are remembered, so that a replayed or retried item is reported as a
    /// duplicate instead of being decrypted again: `memory` (this process), a Redis URL
    /// (`redis://HOST:PORT/DB` or `rediss://` for TLS: shared by every replica using it; the
    /// password from MSGRAPH_NOTIFY_REDIS_PASSWORD), or `off`. `off` is unsafe: whoever captured
    /// one genuine POST can have it processed again for as long as its token lives (up to 24
    /// hours), with its changeType or subscription rewritten.
    #[arg(long = "replay", value_name = "STORE", default_value = "memory")]
    pub replay: String,

    /// What to do while the Redis replay store cannot be reached: `closed` (answer POSTs 503 so
    /// Graph retries later; items already queued are rejected, never processed unchecked) or
    /// `open` (process items without the duplicate check, with a warning).
    #[arg(long, value_name = "MODE", default_value = "closed", value_parser = ["closed", "open"])]
    pub replay_unavailable: String,

    /// Milliseconds one Redis command may take.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub replay_timeout_ms: u64,

    /// How many accepted items the in-process replay memory holds (about 130 bytes each); past
    /// it the oldest are forgotten first.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub replay_capacity: u32,

    /// How long an accepted item is remembered, in seconds. At least 86400 (24 hours, the
    /// longest validation-token lifetime), so that no replay a valid token allows gets through.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_REPLAY_TTL.as_secs(), value_parser = clap::value_parser!(u64).range(86_400..=30 * 86_400))]
    pub replay_ttl: u64,
}

/// The environment variable holding the Redis password.
pub const REDIS_PASSWORD_ENV: &str = "MSGRAPH_NOTIFY_REDIS_PASSWORD";

/// The replay store `serve` uses, and what it knows of Redis.
pub struct Replay {
    /// For the receiver (None: off).
    pub store: Option<Arc<dyn ReplayStore>>,
    /// The Redis store, when fail-closed: POSTs get 503 while it is unavailable.
    pub fail_closed: Option<Arc<RedisReplayStore>>,
}

/// A Redis store that lets items through, with a warning, while Redis cannot be reached.
#[derive(Debug)]
struct FailOpen {
    inner: Arc<RedisReplayStore>,
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
}

impl ReplayStore for FailOpen {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        self.inner.insert_if_absent(fingerprint).or_else(|e| {
            let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
                *last = Some(std::time::Instant::now());
                errln!(
                    "warning: {e}; --replay-unavailable open: processing items without the duplicate check"
                );
            }
            Ok(true)
        })
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        self.inner.remove(fingerprint);
    }
}

impl ReplayOpts {
    /// The replay store chosen.
    pub fn store(&self) -> Result<Replay, Fail> {
        let ttl = std::time::Duration::from_secs(self.replay_ttl);
        match self.replay.as_str() {
            "memory" => Ok(Replay {
                store: Some(Arc::new(ReplayGuard::new(
                    self.replay_capacity as usize,
                    ttl,
                ))),
                fail_closed: None,
            }),
            "off" => {
                errln!(
                    "warning: --replay off: a captured POST can be replayed and is processed again \
                     each time, for as long as its validation token lives"
                );
                Ok(Replay {
                    store: None,
                    fail_closed: None,
                })
            }
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let password = std::env::var(REDIS_PASSWORD_ENV)
                    .ok()
                    .map(zeroize::Zeroizing::new);
                let store = match &password {
                    Some(p) => RedisReplayStore::open_with_password(url, p, ttl),
                    None => RedisReplayStore::open(url, ttl),
                }
                .map_err(|e| fail!("--replay: {e}"))?
                .with_timeout(std::time::Duration::from_millis(self.replay_timeout_ms));
                let store = Arc::new(store);
                if let Err(e) = store.ping() {
                    errln!("warning: the replay store is not reachable yet: {e}");
                }
                Ok(if self.replay_unavailable == "open" {
                    Replay {
                        store: Some(Arc::new(FailOpen {
                            inner: store,
                            last_warning: std::sync::Mutex::new(None),
                        })),
                        fail_closed: None,
                    }
                } else {
                    Replay {
                        store: Some(Arc::clone(&store) as Arc<dyn ReplayStore>),
                        fail_closed: Some(store),
                    }
                })
            }
            other => Err(fail!(
                "--replay {other:?}: expected `memory`, `off` or a redis:// (rediss://) URL"
            )),
        }
    }
}

/// Whether `url` may carry signing keys: https, or http to the loopback interface.
fn check_key_url(option: &str, url: &str, insecure_http: bool) -> Result<(), Fail> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(fail!("{option} {url:?}: expected an https:// URL"));
    };
    if insecure_http {
        return Ok(());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(fail!(
            "{option} {url:?}: plain http to another host lets anyone on the path substitute the \
             signing keys and forge validation tokens; use https, or --insecure-http to allow it"
        ))
    }
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

    /// Every clientState secret: --client-state, --client-state-file and the environment.
    pub fn client_state_secrets(&self) -> Result<Vec<Secret>, Fail> {
        let mut secrets = self.client_states.clone();
        for path in &self.client_state_files {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| fail!("cannot read --client-state-file {path}: {e}"))?,
            );
            let before = secrets.len();
            secrets.extend(
                text.lines()
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| !l.trim().is_empty())
                    .map(Secret::new),
            );
            if secrets.len() == before {
                return Err(fail!("--client-state-file {path} holds no secret"));
            }
        }
        if let Some(value) = std::env::var_os(CLIENT_STATE_ENV) {
            let value = zeroize::Zeroizing::new(
                value
                    .into_string()
                    .map_err(|_| fail!("{CLIENT_STATE_ENV} is not UTF-8"))?,
            );
            secrets.extend(
                value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(Secret::new),
            );
        }
        if secrets.iter().any(|s| s.expose().trim().is_empty()) {
            return Err(fail!(
                "an empty clientState secret would accept items that carry none"
            ));
        }
        Ok(secrets)
    }

    /// Builds the receiver.
    pub fn build(&self, limits: Limits) -> Result<Built, Fail> {
        if let Some(empty) = self.app_ids.iter().find(|a| a.trim().is_empty()) {
            return Err(fail!(
                "--app-id {empty:?}: an empty app id would accept tokens without an audience"
            ));
        }
        if let Some(empty) = self.tenants.iter().find(|t| t.trim().is_empty()) {
            return Err(fail!("--tenant {empty:?}: a tenant id may not be empty"));
        }
        for (option, url) in [
            ("--jwks-url", &self.jwks_url),
            ("--metadata-url", &self.metadata_url),
        ] {
            if let Some(url) = url {
                check_key_url(option, url, self.insecure_http)?;
            }
        }
        let client_states = self.client_state_secrets()?;
        let ring = self.key_ring()?;
        if ring.is_empty() {
            errln!("warning: no --key given: items with encrypted content will be rejected");
        }
        if client_states.is_empty() {
            errln!(
                "warning: no clientState secret is configured (--client-state-file, \
                 {CLIENT_STATE_ENV} or --client-state): items are accepted whatever clientState they carry"
            );
        }
        let mut builder = Receiver::builder(Decryptor::new(ring))
            .max_body_bytes(limits.max_body)
            .max_items(limits.max_items)
            .parallel(limits.parallel);
        if let Some(store) = limits.replay {
            builder = builder.replay_store(store);
        }
        for secret in &client_states {
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
    use super::{check_key_url, split_key_spec};

    #[test]
    fn key_urls() {
        for ok in [
            "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
            "http://[::1]:9/keys",
            "HTTP://127.0.0.2/keys",
        ] {
            assert!(check_key_url("--jwks-url", ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://keys.example/keys",
            "http://127.0.0.1.evil.example/keys",
            "http://localhost.evil.example/",
            "http://10.0.0.1/keys",
            "ftp://x/keys",
        ] {
            assert!(check_key_url("--jwks-url", bad, false).is_err(), "{bad}");
            assert_eq!(
                check_key_url("--jwks-url", bad, true).is_ok(),
                bad.starts_with("http:"),
                "{bad}"
            );
        }
    }

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
