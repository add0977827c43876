//! Fetching Microsoft's token signing keys (feature `fetch`): OpenID metadata, then its
//! `jwks_uri`, cached with a TTL and refetched, rate-limited, when a token names an unknown `kid`.
//! A failed fetch keeps the last good keys and is reported.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Jwks, SigningKeys};
pub use crate::error::{FetchError, HttpFailure};

/// The OpenID metadata of the Microsoft identity platform (public cloud).
pub const DEFAULT_METADATA_URL: &str =
    "https://login.microsoftonline.com/common/.well-known/openid-configuration";

/// The largest OpenID metadata or JWKS document accepted: 1 MiB. Microsoft's are a few KiB; a
/// larger answer is refused ([`FetchError::TooLarge`]) rather than read into memory.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The longest pause between two attempts while fetching keeps failing: keys that cannot be
/// had hold every token up, so the fetcher retries far sooner than
/// [`FetchConfig::min_refresh_interval`] (1 s, doubling, up to this).
pub const FAILED_FETCH_RETRY_MAX: Duration = Duration::from_secs(30);

/// Where and how often to fetch the signing keys.
///
/// Build it from the defaults with the setters (the struct is `non_exhaustive`, so a struct
/// literal does not compile outside this crate):
///
/// ```
/// use std::time::Duration;
/// use msgraph_notify::token::fetch::FetchConfig;
/// let config = FetchConfig::default()
///     .metadata_url("https://login.microsoftonline.us/common/.well-known/openid-configuration")
///     .timeout(Duration::from_secs(3))
///     .ttl(Duration::from_secs(6 * 3600))
///     .min_refresh_interval(Duration::from_secs(60));
/// assert_eq!(config.timeout, Duration::from_secs(3));
/// assert!(config.jwks_url.is_none());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchConfig {
    /// OpenID metadata URL (its `jwks_uri` is followed). Default: [`DEFAULT_METADATA_URL`]; set the
    /// national cloud's host there.
    pub metadata_url: String,
    /// A JWKS URL to fetch directly, skipping the metadata. Default: none.
    pub jwks_url: Option<String>,
    /// How long fetched keys are trusted before a refresh. Default: 12 hours.
    pub ttl: Duration,
    /// The least time between two fetches triggered by unknown `kid`s (scheduled refreshes do not
    /// count). Default: 5 minutes, so a
    /// flood of tokens with invented `kid`s costs at most one fetch per interval. After a fetch
    /// that *failed* (the endpoint out of reach), fetches are retried sooner, with back-off:
    /// 1 s, 2 s, 4 s… up to [`FAILED_FETCH_RETRY_MAX`] (or this interval, if shorter).
    pub min_refresh_interval: Duration,
    /// Timeout of each HTTP request. Default: 10 seconds.
    pub timeout: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            metadata_url: DEFAULT_METADATA_URL.to_owned(),
            jwks_url: None,
            ttl: Duration::from_secs(12 * 3600),
            min_refresh_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

impl FetchConfig {
    /// The defaults, fetching the JWKS at `url` directly (no OpenID metadata).
    pub fn with_jwks_url(url: impl Into<String>) -> Self {
        FetchConfig {
            jwks_url: Some(url.into()),
            ..Self::default()
        }
    }

    /// The defaults with another metadata URL.
    pub fn with_metadata_url(url: impl Into<String>) -> Self {
        FetchConfig {
            metadata_url: url.into(),
            ..Self::default()
        }
    }

    /// Sets the OpenID metadata URL (a national cloud's host, say).
    pub fn metadata_url(mut self, url: impl Into<String>) -> Self {
        self.metadata_url = url.into();
        self
    }

    /// Fetches the JWKS at `url` directly, skipping the metadata.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Sets how long fetched keys are trusted before a refresh.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the least time between two fetches triggered by unknown `kid`s.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// Sets the timeout of each HTTP request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Classifies a request error by walking its chain of sources.
pub(crate) fn http_failure(error: &reqwest::Error) -> HttpFailure {
    if error.is_timeout() {
        return HttpFailure::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return HttpFailure::Tls;
        }
        // hyper-util's resolver error is a private type: its text is the only sign.
        let text = e.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            return HttpFailure::NameResolution;
        }
        source = match e.downcast_ref::<std::io::Error>() {
            Some(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return HttpFailure::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return HttpFailure::Timeout,
                // `io::Error::source` skips the error it wraps (TLS errors come as an
                // io::Error in an io::Error): descend into that one instead.
                _ => match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => None,
                },
            },
            None => e.source(),
        };
    }
    HttpFailure::Other
}

/// The innermost reasons of an error chain, joined: reqwest's own message names only the URL.
pub(crate) fn reasons(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

#[derive(Debug, Default)]
struct State {
    last_attempt: Option<Instant>,
    last_kid_refresh: Option<Instant>,
    last_success: Option<Instant>,
    last_error: Option<FetchError>,
    /// Fetches that failed in a row (0 after a success).
    failures: u32,
}

#[derive(Deserialize)]
struct Metadata {
    jwks_uri: String,
}

/// Fetches and refreshes [`SigningKeys`] from OpenID metadata.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // Stand-in for login.microsoftonline.com: metadata and keys on 127.0.0.1.
/// # let issuer = msgraph_notify::testing::TokenIssuer::new()?;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let base = format!("http://{}", listener.local_addr()?);
/// # let (metadata, jwks) = (format!(r#"{{"jwks_uri":"{base}/keys"}}"#), issuer.jwks_json());
/// # std::thread::spawn(move || {
/// #     use std::io::{Read, Write};
/// #     for stream in listener.incoming().take(2) {
/// #         let mut stream = stream.unwrap();
/// #         let mut request = [0u8; 4096];
/// #         let n = stream.read(&mut request).unwrap();
/// #         let body = if request[..n].starts_with(b"GET /keys") { &jwks } else { &metadata };
/// #         let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
/// #         stream.write_all(head.as_bytes()).unwrap();
/// #         stream.write_all(body.as_bytes()).unwrap();
/// #     }
/// # });
/// # let metadata_url = format!("{base}/.well-known/openid-configuration");
/// use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// // FetchConfig::default() reads Microsoft's public-cloud metadata; here, a local stand-in.
/// let fetcher = KeyFetcher::new(FetchConfig::with_metadata_url(metadata_url))?;
/// fetcher.refresh().await?;                 // at start-up
/// let keys = fetcher.signing_keys();        // give these to the receiver
/// assert!(keys.contains(issuer.kid()));
/// // Later, before validating a token whose kid is not known yet (rate-limited):
/// fetcher.ensure_kid(issuer.kid()).await;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KeyFetcher {
    client: reqwest::Client,
    config: FetchConfig,
    keys: SigningKeys,
    state: tokio::sync::Mutex<State>,
}

impl KeyFetcher {
    /// A fetcher with an empty key set.
    pub fn new(config: FetchConfig) -> Result<Self, FetchError> {
        Self::with_keys(config, SigningKeys::default())
    }

    /// A fetcher that refreshes `keys` (shared with validators).
    pub fn with_keys(config: FetchConfig, keys: SigningKeys) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| FetchError::Http {
                url: config.metadata_url.clone(),
                cause: HttpFailure::Other,
                reason: reasons(&e),
            })?;
        Ok(KeyFetcher {
            client,
            config,
            keys,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    /// The keys this fetcher refreshes.
    pub fn signing_keys(&self) -> SigningKeys {
        self.keys.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// The error of the last fetch, if it failed.
    pub async fn last_error(&self) -> Option<FetchError> {
        self.state.lock().await.last_error.clone()
    }

    /// Fetches now, whatever the interval. On success the keys are replaced and their count is
    /// returned; on failure the previous keys stay and the error is recorded and returned.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        let mut state = self.state.lock().await;
        self.fetch_locked(&mut state).await
    }

    /// Fetches when the keys were never fetched or are older than the TTL.
    pub async fn refresh_if_stale(&self) -> Result<(), FetchError> {
        let mut state = self.state.lock().await;
        let fresh = state
            .last_success
            .is_some_and(|t| t.elapsed() < self.config.ttl);
        if fresh {
            return Ok(());
        }
        self.fetch_locked(&mut state).await.map(|_| ())
    }

    /// Makes sure a key with `kid` is present if Microsoft publishes one: when it is unknown,
    /// refetches unless the last refetch for an unknown `kid` was within `min_refresh_interval`. Returns whether the
    /// key is present afterwards.
    pub async fn ensure_kid(&self, kid: &str) -> bool {
        if self.keys.contains(kid) {
            return true;
        }
        let mut state = self.state.lock().await;
        if self.keys.contains(kid) {
            return true; // another task fetched it meanwhile
        }
        // After failed fetches, the endpoint was out of reach: try again sooner (with back-off).
        let interval = if state.failures > 0 {
            self.retry_pause(state.failures)
        } else {
            self.config.min_refresh_interval
        };
        let recent = state
            .last_kid_refresh
            .is_some_and(|t| t.elapsed() < interval);
        if recent {
            state.last_error.get_or_insert(FetchError::RateLimited);
            return false;
        }
        state.last_kid_refresh = Some(Instant::now());
        let _ = self.fetch_locked(&mut state).await;
        self.keys.contains(kid)
    }

    /// The pause after `failures` failed fetches in a row: 1 s, doubling, at most
    /// [`FAILED_FETCH_RETRY_MAX`] or `min_refresh_interval`, whichever is shorter.
    fn retry_pause(&self, failures: u32) -> Duration {
        let ceiling = FAILED_FETCH_RETRY_MAX.min(self.config.min_refresh_interval);
        Duration::from_secs(1u64 << failures.saturating_sub(1).min(16))
            .min(ceiling)
            .max(Duration::from_millis(100))
    }

    /// Whether the last fetch failed: tokens whose `kid` is not known yet cannot be checked
    /// until a fetch succeeds.
    pub async fn failing(&self) -> bool {
        self.state.lock().await.failures > 0
    }

    /// Keeps the keys fresh in the background: refreshes whenever they are older than the TTL, and
    /// after a failed fetch retries with back-off (1 s, 2 s, 4 s… up to
    /// [`FAILED_FETCH_RETRY_MAX`]), so keys missing at start-up arrive within seconds of the
    /// endpoint coming back (the last good keys stay in use meanwhile). Runs until the returned
    /// task is aborted or the runtime shuts down.
    pub fn spawn_refresher(self: std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let wait = match self.refresh_if_stale().await {
                    Ok(()) => {
                        let state = self.state.lock().await;
                        let age = state.last_success.map_or(Duration::ZERO, |t| t.elapsed());
                        self.config
                            .ttl
                            .saturating_sub(age)
                            .max(Duration::from_secs(1))
                    }
                    Err(_) => {
                        let failures = self.state.lock().await.failures;
                        self.retry_pause(failures)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        })
    }

    async fn fetch_locked(&self, state: &mut State) -> Result<usize, FetchError> {
        state.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(jwks) => {
                let n = jwks.len();
                self.keys.replace(jwks); // also clears a recorded fetch failure
                state.last_success = Some(Instant::now());
                state.last_error = None;
                state.failures = 0;
                Ok(n)
            }
            Err(e) => {
                // Tokens whose kid is unknown are then rejected for this reason, not as forgeries.
                self.keys.set_fetch_failure(e.to_string());
                state.last_error = Some(e.clone());
                state.failures = state.failures.saturating_add(1);
                Err(e)
            }
        }
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let http = |e: reqwest::Error| FetchError::Http {
            url: url.to_owned(),
            cause: http_failure(&e),
            reason: reasons(&e),
        };
        let too_large = || FetchError::TooLarge {
            url: url.to_owned(),
            limit: MAX_DOCUMENT_BYTES,
        };
        let mut response = self.client.get(url).send().await.map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        // Counted as it arrives: a chunked answer, or one whose length header lies, stops at the
        // limit too.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if chunk.len() > MAX_DOCUMENT_BYTES.saturating_sub(body.len()) {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn fetch(&self) -> Result<Jwks, FetchError> {
        let jwks_uri = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = &self.config.metadata_url;
                let body = self.get(url).await?;
                let metadata: Metadata =
                    serde_json::from_slice(&body).map_err(|e| FetchError::Parse {
                        url: url.clone(),
                        what: "OpenID metadata with a jwks_uri",
                        reason: e.to_string(),
                    })?;
                metadata.jwks_uri
            }
        };
        let metadata = Metadata { jwks_uri };
        let body = self.get(&metadata.jwks_uri).await?;
        let jwks = Jwks::from_json(&body).map_err(|e| FetchError::Parse {
            url: metadata.jwks_uri.clone(),
            what: "a JWKS document",
            reason: e.to_string(),
        })?;
        if jwks.is_empty() {
            return Err(FetchError::Parse {
                url: metadata.jwks_uri,
                what: "a JWKS document",
                reason: "it holds no RSA signing key".into(),
            });
        }
        Ok(jwks)
    }
}
