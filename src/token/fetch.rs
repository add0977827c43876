//! Fetching Microsoft's token signing keys (feature `fetch`): OpenID metadata, then its
//! `jwks_uri`, cached with a TTL and refetched, rate-limited, when a token names an unknown `kid`.
//! A failed fetch keeps the last good keys and is reported.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Jwks, SigningKeys};

/// The OpenID metadata of the Microsoft identity platform (public cloud).
pub const DEFAULT_METADATA_URL: &str =
    "https://login.microsoftonline.com/common/.well-known/openid-configuration";

/// Where and how often to fetch the signing keys.
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
    /// flood of tokens with invented `kid`s costs at most one fetch per interval.
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
}

/// Why fetching the signing keys failed. The previous keys stay in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed (connection, timeout, TLS).
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server answered with a non-success status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer was not the expected JSON.
    #[error("{url} did not return {what}: {reason}")]
    Parse {
        /// The URL.
        url: String,
        /// What was expected.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A refresh was skipped: the last one was less than `min_refresh_interval` ago.
    #[error("refresh skipped: the last fetch was less than the minimum interval ago")]
    RateLimited,
}

#[derive(Debug, Default)]
struct State {
    last_attempt: Option<Instant>,
    last_kid_refresh: Option<Instant>,
    last_success: Option<Instant>,
    last_error: Option<FetchError>,
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
                reason: e.to_string(),
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
        let recent = state
            .last_kid_refresh
            .is_some_and(|t| t.elapsed() < self.config.min_refresh_interval);
        if recent {
            state.last_error.get_or_insert(FetchError::RateLimited);
            return false;
        }
        state.last_kid_refresh = Some(Instant::now());
        let _ = self.fetch_locked(&mut state).await;
        self.keys.contains(kid)
    }

    /// Keeps the keys fresh in the background: refreshes whenever they are older than the TTL, and
    /// after a failed fetch retries every `min_refresh_interval` (the last good keys stay in use
    /// meanwhile). Runs until the returned task is aborted or the runtime shuts down.
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
                    Err(_) => self.config.min_refresh_interval.max(Duration::from_secs(1)),
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
                self.keys.replace(jwks);
                state.last_success = Some(Instant::now());
                state.last_error = None;
                Ok(n)
            }
            Err(e) => {
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let http = |e: reqwest::Error| FetchError::Http {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let response = self.client.get(url).send().await.map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Ok(response.bytes().await.map_err(http)?.to_vec())
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
