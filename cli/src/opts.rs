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
    /// A private key: a file (PEM PKCS#1, PKCS#8, encrypted PKCS#8, DER or PKCS#12) or a key in
    /// a PKCS#11 token (`pkcs11:token=T;object=LABEL?module-path=LIB&pin-source=file:PIN`, RFC
    /// 7512; the module may come from MSGRAPH_NOTIFY_PKCS11_MODULE, the PIN from
    /// MSGRAPH_NOTIFY_PKCS11_PIN). `ID=...` registers it under that encryptionCertificateId (an
    /// ID may contain `=`: it ends at the first `=pkcs11:`, or at the last `=` followed by an
    /// existing file); a bare key serves when it is the only key or when its certificate's
    /// thumbprint matches. Repeat during certificate rotation, also with one ID twice when the
    /// certificates tell the keys apart; files and tokens mix.
    #[arg(
        long = "key",
        value_name = "[ID=]PATH|pkcs11:URI",
        env = "MSGRAPH_NOTIFY_KEY",
        hide_env_values = true
    )]
    pub keys: Vec<String>,

    /// Password of encrypted PEM and PKCS#12 keys.
    #[arg(
        long,
        value_name = "P",
        env = "MSGRAPH_NOTIFY_KEY_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// Read the password of encrypted keys from this file (its first line), e.g. a systemd
    /// credential, so that it is neither in argv nor in the environment.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "password",
        env = "MSGRAPH_NOTIFY_KEY_PASSWORD_FILE"
    )]
    pub password_file: Option<String>,

    /// A certificate (PEM or DER) to pair with a key that does not carry its own, so that the
    /// notification's thumbprint is checked. Repeatable; matched to keys by public key.
    #[arg(long = "cert", value_name = "FILE", env = "MSGRAPH_NOTIFY_CERT")]
    pub certs: Vec<String>,

    /// Check validation tokens against the signing keys in this JWKS file.
    #[arg(
        long,
        value_name = "FILE",
        group = "signing",
        env = "MSGRAPH_NOTIFY_JWKS"
    )]
    pub jwks: Option<String>,

    /// Fetch the token signing keys from this JWKS URL (refetched on an unknown `kid`,
    /// rate-limited).
    #[arg(
        long,
        value_name = "URL",
        group = "signing",
        env = "MSGRAPH_NOTIFY_JWKS_URL"
    )]
    pub jwks_url: Option<String>,

    /// Fetch the signing keys through this OpenID metadata URL (national clouds). Default:
    /// Microsoft's public-cloud metadata, used when neither --jwks nor --jwks-url is given.
    #[arg(
        long,
        value_name = "URL",
        group = "signing",
        env = "MSGRAPH_NOTIFY_METADATA_URL"
    )]
    pub metadata_url: Option<String>,

    /// A receiving application id: a token's `aud` must be one of them. Repeatable; required
    /// unless --insecure-skip-tokens.
    #[arg(
        long = "app-id",
        value_name = "ID",
        env = "MSGRAPH_NOTIFY_APP_ID",
        value_delimiter = ','
    )]
    pub app_ids: Vec<String>,

    /// Accept tokens only from this tenant. Repeatable. Default: any tenant.
    #[arg(
        long = "tenant",
        value_name = "ID",
        env = "MSGRAPH_NOTIFY_TENANT",
        value_delimiter = ','
    )]
    pub tenants: Vec<String>,

    /// Bind a subscription to the app that created it: its encrypted items then need a valid
    /// token issued to that app, not just one for their tenant. Repeatable; the app must be
    /// one of --app-id.
    #[arg(
        long = "subscription-app",
        value_name = "SUBSCRIPTION=APP",
        env = "MSGRAPH_NOTIFY_SUBSCRIPTION_APP",
        value_delimiter = ','
    )]
    pub subscription_apps: Vec<String>,

    /// Reject encrypted items of subscriptions not bound with --subscription-app.
    #[arg(
        long,
        requires = "subscription_apps",
        env = "MSGRAPH_NOTIFY_ONLY_BOUND_SUBSCRIPTIONS"
    )]
    pub only_bound_subscriptions: bool,

    /// The subscription's clientState secret: every item must carry one of them. Repeatable
    /// (rotation). Visible to other users in the process list: prefer --client-state-file or
    /// the environment variable MSGRAPH_NOTIFY_CLIENT_STATE (several secrets separated by
    /// commas). All three sources add up.
    #[arg(long = "client-state", value_name = "S")]
    pub client_states: Vec<Secret>,

    /// A file of clientState secrets, one per line (blank lines ignored). Repeatable.
    #[arg(
        long = "client-state-file",
        value_name = "FILE",
        env = "MSGRAPH_NOTIFY_CLIENT_STATE_FILE"
    )]
    pub client_state_files: Vec<String>,

    /// The most items (`value` elements) one body may carry; a body with more is refused whole.
    /// Raise it to open a large trusted capture.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ITEMS as u32, value_parser = clap::value_parser!(u32).range(1..=100_000_000), env = "MSGRAPH_NOTIFY_MAX_ITEMS")]
    pub max_items: u32,

    /// Allow --jwks-url and --metadata-url over plain http:// to a host that is not the loopback
    /// interface. Anyone on the path could then substitute signing keys and forge tokens.
    #[arg(long, env = "MSGRAPH_NOTIFY_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// Do not check validation tokens (prints a warning). Only for opening a captured payload
    /// offline: anyone holding your certificate can forge notifications that decrypt.
    #[arg(long, env = "MSGRAPH_NOTIFY_INSECURE_SKIP_TOKENS")]
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
    /// Whether this process decrypts (false for `serve --forward`, which hands bodies on: no key
    /// is needed, and none is warned about).
    pub decrypts: bool,
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
    #[arg(
        long = "replay",
        value_name = "STORE",
        default_value = "memory",
        env = "MSGRAPH_NOTIFY_REPLAY",
        hide_env_values = true
    )]
    pub replay: String,

    /// What to do while the Redis replay store cannot be reached: `closed` (answer POSTs 503 so
    /// Graph retries later; items already queued are rejected, never processed unchecked) or
    /// `open` (process items without the duplicate check, with a warning).
    #[arg(long, value_name = "MODE", default_value = "closed", value_parser = ["closed", "open"], env = "MSGRAPH_NOTIFY_REPLAY_UNAVAILABLE")]
    pub replay_unavailable: String,

    /// Milliseconds one Redis command may take.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000), env = "MSGRAPH_NOTIFY_REPLAY_TIMEOUT_MS")]
    pub replay_timeout_ms: u64,

    /// How many accepted items the in-process replay memory holds (about 130 bytes each); past
    /// it the oldest are forgotten first.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000), env = "MSGRAPH_NOTIFY_REPLAY_CAPACITY")]
    pub replay_capacity: u32,

    /// How long an accepted item is remembered, in seconds. At least 86400 (24 hours, the
    /// longest validation-token lifetime), so that no replay a valid token allows gets through.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_REPLAY_TTL.as_secs(), value_parser = clap::value_parser!(u64).range(86_400..=30 * 86_400), env = "MSGRAPH_NOTIFY_REPLAY_TTL")]
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
    /// When fail-open: counts the items let through unchecked while Redis was unavailable.
    pub unchecked: Option<prometheus_client::metrics::counter::Counter>,
}

/// A Redis store that lets items through, with a warning, while Redis cannot be reached.
#[derive(Debug)]
struct FailOpen {
    inner: Arc<RedisReplayStore>,
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
    unchecked: prometheus_client::metrics::counter::Counter,
}

impl FailOpen {
    /// An item let through unchecked: counted, and warned about at most once a second.
    fn let_through(&self, e: &ReplayStoreError) {
        self.unchecked.inc();
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            crate::log::warn(&format!(
                "{e}; --replay-unavailable open: processing items without the duplicate check"
            ));
        }
    }
}

impl ReplayStore for FailOpen {
    fn insert_if_absent(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        self.inner.insert_if_absent(fingerprint).or_else(|e| {
            self.let_through(&e);
            Ok(true)
        })
    }

    fn remove(&self, fingerprint: &Fingerprint) {
        self.inner.remove(fingerprint);
    }

    fn insert_all(&self, fingerprints: &[Fingerprint]) -> Result<(), ReplayStoreError> {
        // As insert_if_absent: an unreachable Redis does not stop the flow (these items were
        // already counted when they were checked).
        if let Err(e) = self.inner.insert_all(fingerprints) {
            crate::log::warn(&format!(
                "{e}; --replay-unavailable open: {} printed items are not recorded",
                fingerprints.len()
            ));
        }
        Ok(())
    }

    fn contains(&self, fingerprint: &Fingerprint) -> Result<bool, ReplayStoreError> {
        // Unreachable Redis: treated as "not seen", as insert_if_absent does; counted.
        self.inner.contains(fingerprint).or_else(|e| {
            self.let_through(&e);
            Ok(false)
        })
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
                unchecked: None,
            }),
            "off" => {
                crate::log::warn(
                    "--replay off: a captured POST can be replayed and is processed again \
                     each time, for as long as its validation token lives",
                );
                Ok(Replay {
                    store: None,
                    fail_closed: None,
                    unchecked: None,
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
                    crate::log::warn(&format!("the replay store is not reachable yet: {e}"));
                }
                Ok(if self.replay_unavailable == "open" {
                    let unchecked = prometheus_client::metrics::counter::Counter::default();
                    Replay {
                        store: Some(Arc::new(FailOpen {
                            inner: store,
                            last_warning: std::sync::Mutex::new(None),
                            unchecked: unchecked.clone(),
                        })),
                        fail_closed: None,
                        unchecked: Some(unchecked),
                    }
                } else {
                    Replay {
                        store: Some(Arc::clone(&store) as Arc<dyn ReplayStore>),
                        fail_closed: Some(store),
                        unchecked: None,
                    }
                })
            }
            // Not echoed: it may be a URL with a password in it.
            _ => Err(fail!(
                "--replay: expected `memory`, `off` or a redis:// (rediss://) URL"
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
    if !lower.starts_with("http://") {
        return Err(fail!("{option} {url:?}: expected an https:// URL"));
    }
    if insecure_http {
        return Ok(());
    }
    // The host as the HTTP client will see it (WHATWG parsing, as reqwest's `url`: `\` is a path
    // separator, userinfo is dropped), not as a string split would.
    let parsed = url::Url::parse(url).map_err(|e| fail!("{option} {url:?}: not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
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
pub const SKIP_TOKENS_WARNING: &str = "--insecure-skip-tokens: validation tokens are NOT checked; \
anyone holding your certificate can forge notifications that decrypt. Use this only to open a captured payload offline.";

/// What one `--key` names: a key file or a PKCS#11 URI, with or without an id.
#[derive(Debug, PartialEq, Eq)]
enum KeySpec<'a> {
    File { id: Option<&'a str>, path: &'a str },
    Pkcs11 { id: Option<&'a str>, uri: &'a str },
}

/// The PKCS#11 URI scheme, as `--key` recognises it.
const PKCS11_SCHEME: &str = "pkcs11:";

/// Reads one `--key` value. The rule, in order:
///
/// 1. a value that exists as a file path is that path, whole (even with `=` in it), no id;
/// 2. a value that starts with `pkcs11:` is a PKCS#11 URI, no id;
/// 3. `ID=pkcs11:URI`: the id ends at the first `=pkcs11:`, so an id may contain `=` (and the
///    URI its own `=`s): `a=b=pkcs11:token=t;object=k` is id `a=b`;
/// 4. `ID=PATH`: split at the last `=` that is followed by an existing path, so an id may
///    contain `=`: `a=b=/keys/k.pem` is id `a=b`; a path with `=` is found whole first
///    (`id=/keys/x=y.pem` is id `id` when `y.pem` is no file of the working directory);
/// 5. anything else is an error that says no file was found.
fn split_key_spec(spec: &str) -> Result<KeySpec<'_>, String> {
    if std::path::Path::new(spec).exists() {
        return Ok(KeySpec::File {
            id: None,
            path: spec,
        });
    }
    if spec
        .get(..PKCS11_SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(PKCS11_SCHEME))
    {
        return Ok(KeySpec::Pkcs11 {
            id: None,
            uri: spec,
        });
    }
    if let Some(at) = spec.find("=pkcs11:").filter(|&at| at > 0)
        && let (Some(id), Some(uri)) = (spec.get(..at), spec.get(at + 1..))
    {
        return Ok(KeySpec::Pkcs11 { id: Some(id), uri });
    }
    let mut ends = spec.rmatch_indices('=').map(|(at, _)| at);
    if let Some((id, path)) = ends.find_map(|at| {
        let (id, path) = (spec.get(..at)?, spec.get(at + 1..)?);
        (!id.is_empty() && !path.is_empty() && std::path::Path::new(path).exists())
            .then_some((id, path))
    }) {
        return Ok(KeySpec::File { id: Some(id), path });
    }
    Err(format!(
        "--key {spec:?}: no such key file (neither the value nor the part after any \"=\" is \
         an existing file; expected [ID=]PATH or [ID=]pkcs11:URI)"
    ))
}

impl ReceiverOpts {
    /// No key, no token option: the base for commands that fill in only the key options
    /// (`consume` reads a trusted transport, with no tokens to check).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub fn for_transport() -> Self {
        ReceiverOpts {
            keys: Vec::new(),
            password: None,
            password_file: None,
            certs: Vec::new(),
            jwks: None,
            jwks_url: None,
            metadata_url: None,
            app_ids: Vec::new(),
            tenants: Vec::new(),
            subscription_apps: Vec::new(),
            only_bound_subscriptions: false,
            client_states: Vec::new(),
            client_state_files: Vec::new(),
            max_items: DEFAULT_MAX_ITEMS as u32,
            insecure_http: false,
            insecure_skip_tokens: false,
        }
    }

    /// The key ring from `--key` and `--cert`: key files and PKCS#11 keys, mixed as given.
    pub fn key_ring(&self) -> Result<KeyRing, Fail> {
        let mut certs = Vec::new();
        for path in &self.certs {
            let bytes =
                std::fs::read(path).map_err(|e| fail!("cannot read certificate {path}: {e}"))?;
            let cert = Certificate::load(&bytes)
                .map_err(|e| fail!("certificate {path} does not load: {e}"))?;
            certs.push((path, cert, false));
        }
        // A key's own certificate, else the --cert that belongs to it.
        let mut pair = |key: &dyn msgraph_notify::keys::Unwrap, own: Option<Certificate>| {
            own.or_else(|| {
                let entry = certs.iter_mut().find(|(_, c, _)| c.belongs_to(key))?;
                entry.2 = true;
                Some(entry.1.clone())
            })
        };
        let password = self.key_password()?;
        let mut ring = KeyRing::new();
        for spec in &self.keys {
            match split_key_spec(spec).map_err(|e| fail!("{e}"))? {
                KeySpec::File { id, path } => {
                    let bytes = zeroize::Zeroizing::new(
                        std::fs::read(path).map_err(|e| fail!("cannot read key {path}: {e}"))?,
                    );
                    let (key, cert) =
                        PrivateKey::load(&bytes, password.as_ref().map(Secret::expose))
                            .map_err(|e| fail!("key {path} does not load: {e}"))?;
                    let cert = pair(&key, cert);
                    match id {
                        Some(id) => ring.add(id, key, cert),
                        None => ring.add_without_id(key, cert),
                    }
                    .map_err(|e| fail!("key {path}: {e}"))?;
                }
                KeySpec::Pkcs11 { id, uri } => add_pkcs11(&mut ring, id, uri, &mut pair)?,
            }
        }
        if let Some((path, _, _)) = certs.iter().find(|(_, _, used)| !used) {
            return Err(fail!(
                "certificate {path} belongs to none of the --key keys"
            ));
        }
        Ok(ring)
    }

    /// The key password: --password (or its variable), or the first line of --password-file.
    fn key_password(&self) -> Result<Option<Secret>, Fail> {
        let Some(path) = &self.password_file else {
            return Ok(self.password.clone());
        };
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| fail!("cannot read --password-file {path}: {e}"))?,
        );
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            return Err(fail!(
                "--password-file {path} holds no password on its first line"
            ));
        }
        Ok(Some(Secret::new(line)))
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
        if ring.is_empty() && limits.decrypts {
            crate::log::warn("no --key given: items with encrypted content will be rejected");
        }
        if client_states.is_empty() {
            crate::log::warn(&format!(
                "no clientState secret is configured (--client-state-file, \
                 {CLIENT_STATE_ENV} or --client-state): items are accepted whatever clientState they carry"
            ));
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
            crate::log::warn(SKIP_TOKENS_WARNING);
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

/// Opens a PKCS#11 key and adds it to the ring; the URI (which may carry a PIN) is never
/// printed, only the key's description.
#[cfg(feature = "pkcs11")]
fn add_pkcs11(
    ring: &mut KeyRing,
    id: Option<&str>,
    uri: &str,
    pair: &mut impl FnMut(&dyn msgraph_notify::keys::Unwrap, Option<Certificate>) -> Option<Certificate>,
) -> Result<(), Fail> {
    use msgraph_notify::keys::Unwrap;
    use msgraph_notify::keys::pkcs11::Pkcs11Key;
    let key = Pkcs11Key::open(uri).map_err(|e| fail!("--key pkcs11: {e}"))?;
    let cert = pair(&key, key.certificate().cloned());
    let name = key.describe();
    match id {
        Some(id) => ring.add_unwrapper(id, key, cert),
        None => ring.add_unwrapper_without_id(key, cert),
    }
    .map_err(|e| fail!("{name}: {e}"))
}

#[cfg(not(feature = "pkcs11"))]
fn add_pkcs11(
    _: &mut KeyRing,
    _: Option<&str>,
    _: &str,
    _: &mut impl FnMut(&dyn msgraph_notify::keys::Unwrap, Option<Certificate>) -> Option<Certificate>,
) -> Result<(), Fail> {
    Err(fail!(
        "--key pkcs11:...: this msgraph-notify was built without the `pkcs11` feature"
    ))
}

#[cfg(test)]
mod tests {
    use super::{KeySpec, check_key_url, split_key_spec};

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
            "http://evil.example\\@127.0.0.1/keys",
            "http://evil.example%5C@127.0.0.1.evil/keys",
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
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("k.pem");
        let with_eq = dir.path().join("x=y.pem");
        std::fs::write(&plain, "").unwrap();
        std::fs::write(&with_eq, "").unwrap();
        let plain = plain.to_str().unwrap();
        let with_eq = with_eq.to_str().unwrap();
        let file = |id, path| Ok(KeySpec::File { id, path });

        assert_eq!(split_key_spec(plain), file(None, plain));
        assert_eq!(split_key_spec(with_eq), file(None, with_eq));
        let spec = format!("cert-1={plain}");
        assert_eq!(split_key_spec(&spec), file(Some("cert-1"), plain));
        // An id with `=` in it: split at the last `=` followed by an existing path.
        let spec = format!("a=b=={plain}");
        assert_eq!(split_key_spec(&spec), file(Some("a=b="), plain));
        // A path with `=` in it keeps it.
        let spec = format!("id={with_eq}");
        assert_eq!(split_key_spec(&spec), file(Some("id"), with_eq));
        let spec = format!("k=v={with_eq}");
        assert_eq!(split_key_spec(&spec), file(Some("k=v"), with_eq));
        // No file anywhere: an error that says so, not a guess.
        assert!(
            split_key_spec("cert-1=/tmp/none/k.pem")
                .unwrap_err()
                .contains("no such key file")
        );
        assert!(split_key_spec("=x").is_err());
        assert!(split_key_spec("").is_err());
    }

    #[test]
    fn pkcs11_specs() {
        let uri = "pkcs11:token=graph;object=k?module-path=/m.so&pin-source=file:/p";
        assert_eq!(split_key_spec(uri), Ok(KeySpec::Pkcs11 { id: None, uri }));
        let spec = format!("receiver-2026={uri}");
        assert_eq!(
            split_key_spec(&spec),
            Ok(KeySpec::Pkcs11 {
                id: Some("receiver-2026"),
                uri
            })
        );
        let spec = format!("a=b={uri}");
        assert_eq!(
            split_key_spec(&spec),
            Ok(KeySpec::Pkcs11 {
                id: Some("a=b"),
                uri
            })
        );
        // `=pkcs11:` at the very start has no id: not a URI, not a file.
        assert!(split_key_spec("=pkcs11:object=k").is_err());
        assert_eq!(
            split_key_spec("PKCS11:object=k"),
            Ok(KeySpec::Pkcs11 {
                id: None,
                uri: "PKCS11:object=k"
            })
        );
    }
}
