//! Access tokens for Microsoft Graph (feature `manage`): one small trait, [`TokenSource`], with
//! three sources, and [`CachedToken`], which keeps a token until shortly before it expires and
//! drops it when Graph answers 401.
//!
//! - [`ClientCredentials::with_certificate`](super::ClientCredentials::with_certificate): the client-credentials grant with a certificate
//!   assertion, a JWT signed `PS256` with the `x5t#S256` thumbprint of the registered certificate
//!   (Microsoft identity platform, "Certificate credentials": `aud` the token endpoint, `iss` =
//!   `sub` = the client id, a `jti` never used before, `exp` at most 10 minutes on). The key can
//!   be anything that [`Sign`](crate::keys::Sign)s: a key file or a key in a PKCS#11 token.
//! - [`ClientCredentials::with_secret`](super::ClientCredentials::with_secret): the same grant with a client secret.
//! - [`TokenCommand`](super::TokenCommand): a command that prints an access token (`az account get-access-token …`),
//!   for delegated tokens: presence subscriptions accept only delegated `Presence.Read.All`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::GraphError;

/// Entra ID in the public cloud. National clouds: `https://login.microsoftonline.us` (US
/// Government), `https://login.partner.microsoftonline.cn` (operated by 21Vianet).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The scope of an application token for Microsoft Graph (all the application's granted
/// permissions).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// An access token and when it stops being usable. The token is zeroized on drop and never shown
/// by `Debug`.
#[derive(Clone)]
pub struct AccessToken {
    pub(super) secret: Zeroizing<String>,
    pub(super) expires_at: Instant,
}

impl AccessToken {
    /// A token valid for `lifetime` from now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use msgraph_notify::subscription::AccessToken;
    /// let token = AccessToken::new("eyJ0eXAi…", Duration::from_secs(3599));
    /// assert_eq!(token.secret(), "eyJ0eXAi…");
    /// assert!(!format!("{token:?}").contains("eyJ"));
    /// ```
    pub fn new(secret: impl Into<String>, lifetime: Duration) -> Self {
        AccessToken {
            secret: Zeroizing::new(secret.into()),
            expires_at: Instant::now() + lifetime,
        }
    }

    /// The bearer token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What [`TokenSource::fetch`] returns.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, GraphError>> + Send + 'a>>;

/// Where access tokens come from. Each call fetches a new one; [`CachedToken`] keeps it.
///
/// ```
/// use std::time::Duration;
/// use msgraph_notify::GraphError;
/// use msgraph_notify::subscription::{AccessToken, CachedToken, TokenFuture, TokenSource};
///
/// /// A token handed over by the application (from its own sign-in flow).
/// struct Fixed(String);
/// impl TokenSource for Fixed {
///     fn fetch(&self) -> TokenFuture<'_> {
///         let token = AccessToken::new(self.0.clone(), Duration::from_secs(3600));
///         Box::pin(async move { Ok::<_, GraphError>(token) })
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = CachedToken::new(Fixed("token-1".into()));
/// assert_eq!(cache.get().await?.secret(), "token-1");
/// # Ok::<(), GraphError>(()) }).unwrap();
/// ```
pub trait TokenSource: Send + Sync {
    /// Fetches a new access token.
    fn fetch(&self) -> TokenFuture<'_>;

    /// A short description for logs (never a secret). Default: `"access-token source"`.
    fn describe(&self) -> String {
        "access-token source".to_owned()
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn fetch(&self) -> TokenFuture<'_> {
        (**self).fetch()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    fn fetch(&self) -> TokenFuture<'_> {
        (**self).fetch()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Keeps the last token until `margin` (default 5 minutes) before it expires, and fetches a new
/// one after [`CachedToken::invalidate`] (Graph answered 401). One fetch at a time: callers that
/// find no token wait for the same fetch.
pub struct CachedToken<S> {
    source: S,
    margin: Duration,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
}

impl<S: TokenSource> CachedToken<S> {
    /// A cache in front of `source`.
    pub fn new(source: S) -> Self {
        CachedToken {
            source,
            margin: Duration::from_secs(5 * 60),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// How long before its expiry a token is replaced (default 5 minutes). A token whose whole
    /// lifetime is shorter than the margin is used once and fetched again.
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// A token valid for at least the margin, fetched if needed.
    pub async fn get(&self) -> Result<AccessToken, GraphError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires_at > Instant::now() + self.margin
        {
            return Ok(token.clone());
        }
        let token = self.source.fetch().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Drops the cached token if it is still `token` (Graph refused it with 401).
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.secret == token.secret) {
            *cached = None;
        }
    }

    /// The source's description.
    pub fn describe(&self) -> String {
        self.source.describe()
    }
}
