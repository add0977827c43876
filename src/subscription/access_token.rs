//! Access tokens for Microsoft Graph (feature `manage`): one small trait, [`TokenSource`], with
//! three sources, and [`CachedToken`], which keeps a token until shortly before it expires and
//! drops it when Graph answers 401.
//!
//! - [`ClientCredentials::with_certificate`]: the client-credentials grant with a certificate
//!   assertion, a JWT signed `PS256` with the `x5t#S256` thumbprint of the registered certificate
//!   (Microsoft identity platform, "Certificate credentials": `aud` the token endpoint, `iss` =
//!   `sub` = the client id, a `jti` never used before, `exp` at most 10 minutes on). The key can
//!   be anything that [`Sign`]s: a key file or a key in a PKCS#11 token.
//! - [`ClientCredentials::with_secret`]: the same grant with a client secret.
//! - [`TokenCommand`]: a command that prints an access token (`az account get-access-token …`),
//!   for delegated tokens: presence subscriptions accept only delegated `Presence.Read.All`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::http::{HttpClient, service_error};
use crate::error::GraphError;
use crate::keys::{Certificate, Sign};

/// Entra ID in the public cloud. National clouds: `https://login.microsoftonline.us` (US
/// Government), `https://login.partner.microsoftonline.cn` (operated by 21Vianet).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The scope of an application token for Microsoft Graph (all the application's granted
/// permissions).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// How long a client assertion is valid: Entra ID accepts at most 10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// An access token and when it stops being usable. The token is zeroized on drop and never shown
/// by `Debug`.
#[derive(Clone)]
pub struct AccessToken {
    secret: Zeroizing<String>,
    expires_at: Instant,
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

enum Credential {
    Secret(Zeroizing<String>),
    Assertion {
        signer: Arc<dyn Sign>,
        x5t_s256: String,
    },
}

/// The OAuth 2.0 client-credentials grant at Entra ID's token endpoint,
/// `{authority}/{tenant}/oauth2/v2.0/token`, with a certificate assertion or a client secret.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use msgraph_notify::{Certificate, PrivateKey};
/// use msgraph_notify::subscription::{ClientCredentials, DEFAULT_AUTHORITY};
/// let key = PrivateKey::generate(2048)?;
/// let certificate = Certificate::self_signed(&key, "my-app", 365)?;
/// let credentials = ClientCredentials::with_certificate(
///     DEFAULT_AUTHORITY, "contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555",
///     key, &certificate)?;
/// assert_eq!(credentials.token_url(),
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
/// // The assertion: three base64url parts, header {"alg":"PS256","x5t#S256":…}.
/// let assertion = credentials.client_assertion(std::time::SystemTime::now())?;
/// assert_eq!(assertion.split('.').count(), 3);
/// # Ok(()) }
/// ```
pub struct ClientCredentials {
    http: HttpClient,
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
}

impl ClientCredentials {
    /// With a client secret.
    pub fn with_secret(
        authority: &str,
        tenant: &str,
        client_id: &str,
        secret: impl Into<String>,
    ) -> Result<Self, GraphError> {
        Self::new(
            authority,
            tenant,
            client_id,
            Credential::Secret(Zeroizing::new(secret.into())),
        )
    }

    /// With a certificate assertion signed by `key`, the private key of `certificate` (the
    /// certificate registered with the application).
    pub fn with_certificate(
        authority: &str,
        tenant: &str,
        client_id: &str,
        key: impl Sign + 'static,
        certificate: &Certificate,
    ) -> Result<Self, GraphError> {
        use sha2::Digest;
        let x5t_s256 = crate::crypto::b64url_encode(&sha2::Sha256::digest(certificate.der()));
        Self::new(
            authority,
            tenant,
            client_id,
            Credential::Assertion {
                signer: Arc::new(key),
                x5t_s256,
            },
        )
    }

    fn new(
        authority: &str,
        tenant: &str,
        client_id: &str,
        credential: Credential,
    ) -> Result<Self, GraphError> {
        let path_safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if !path_safe(tenant) {
            return Err(GraphError::Response {
                url: authority.to_owned(),
                status: 0,
                reason: format!(
                    "the tenant {tenant:?} is not a tenant id or domain name (letters, digits, '-', '.', '_')"
                ),
            });
        }
        Ok(ClientCredentials {
            http: HttpClient::new()?,
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
            client_id: client_id.to_owned(),
            scope: GRAPH_SCOPE.to_owned(),
            credential,
        })
    }

    /// Another scope than [`GRAPH_SCOPE`] (a national cloud's Graph, say).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The token endpoint's URL, which is also the assertion's `aud`.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The client assertion made at `now` (a certificate credential only): a JWT with header
    /// `{"alg":"PS256","typ":"JWT","x5t#S256":…}` and claims `aud`, `iss`, `sub`, `jti`, `nbf`,
    /// `iat`, `exp` (5 minutes on).
    pub fn client_assertion(&self, now: SystemTime) -> Result<String, GraphError> {
        let Credential::Assertion { signer, x5t_s256 } = &self.credential else {
            return Err(GraphError::Signing {
                reason: "these credentials are a client secret, not a certificate".to_owned(),
                transient: false,
            });
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(x5t_s256.clone());
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": random_id(),
            "nbf": iat,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        let message = format!("{}.{}", b64_json(&header)?, b64_json(&claims)?);
        let signature =
            signer
                .sign_pss_sha256(message.as_bytes())
                .map_err(|e| GraphError::Signing {
                    transient: e.is_transient(),
                    reason: e.to_string(),
                })?;
        Ok(format!(
            "{message}.{}",
            crate::crypto::b64url_encode(&signature)
        ))
    }

    async fn request_token(&self) -> Result<AccessToken, GraphError> {
        let assertion = match &self.credential {
            Credential::Secret(_) => None,
            Credential::Assertion { .. } => Some(self.client_assertion(SystemTime::now())?),
        };
        let body = Zeroizing::new({
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.client_id)
                .append_pair("scope", &self.scope);
            if let Credential::Secret(secret) = &self.credential {
                form.append_pair("client_secret", secret);
            }
            if let Some(assertion) = &assertion {
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", assertion);
            }
            form.finish()
        });
        let answer = self
            .http
            .send(
                self.http
                    .inner()
                    .post(&self.token_url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.as_bytes().to_vec()),
                &self.token_url,
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(service_error("Entra ID", &self.token_url, &answer));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: u64,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&answer.body).map_err(|e| GraphError::Response {
                url: self.token_url.clone(),
                status: answer.status,
                reason: format!("not Entra ID's token response: {e}"),
            })?;
        Ok(AccessToken {
            secret: Zeroizing::new(parsed.access_token),
            expires_at: Instant::now() + Duration::from_secs(parsed.expires_in),
        })
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.request_token())
    }

    fn describe(&self) -> String {
        let how = match &self.credential {
            Credential::Secret(_) => "a client secret".to_owned(),
            Credential::Assertion { signer, .. } => {
                format!("a certificate assertion signed by {}", signer.describe())
            }
        };
        format!(
            "client credentials of {} at {} with {how}",
            self.client_id, self.token_url
        )
    }
}

/// A command that prints an access token on its standard output: the token alone on a line (as
/// `az account get-access-token --resource https://graph.microsoft.com --query accessToken -o
/// tsv` prints it), or Azure CLI's JSON (`accessToken`, `expires_on`). Run by `sh -c`, so the
/// command line is written as in a shell. The token's lifetime is read from its own `exp` claim
/// when it is a JWT (not verified: only for caching; Graph verifies it), else from `expires_on`,
/// else 10 minutes are assumed.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msgraph_notify::subscription::{TokenCommand, TokenSource};
/// let token = TokenCommand::new("echo opaque-token").fetch().await?;
/// assert_eq!(token.secret(), "opaque-token");
/// # Ok::<(), msgraph_notify::GraphError>(()) }).unwrap();
/// ```
pub struct TokenCommand {
    command: String,
    timeout: Duration,
}

/// The largest output read from a token command: 64 KiB.
const MAX_COMMAND_OUTPUT: usize = 64 * 1024;

impl TokenCommand {
    /// The command, as a shell line. Default timeout: 60 seconds.
    pub fn new(command: impl Into<String>) -> Self {
        TokenCommand {
            command: command.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// How long the command may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn run(&self) -> Result<AccessToken, GraphError> {
        let fail = |reason: String| GraphError::TokenCommand(reason);
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start sh: {e}")))?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer within {} s", self.timeout.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        if !output.status.success() {
            // Its standard error says why (not logged in, no such command); it holds no token.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(fail(format!(
                "{} {}",
                output.status,
                first.chars().take(300).collect::<String>()
            )));
        }
        if output.stdout.len() > MAX_COMMAND_OUTPUT {
            return Err(fail(format!(
                "it printed more than {MAX_COMMAND_OUTPUT} bytes"
            )));
        }
        let stdout = Zeroizing::new(
            String::from_utf8(output.stdout)
                .map_err(|_| fail("it printed something that is not UTF-8".to_owned()))?,
        );
        parse_command_output(&stdout).ok_or_else(|| {
            fail(
                "it printed no token (expected the token on a line, or JSON with accessToken)"
                    .to_owned(),
            )
        })
    }
}

impl TokenSource for TokenCommand {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.run())
    }

    fn describe(&self) -> String {
        "the access-token command".to_owned()
    }
}

/// The token (and its lifetime) from a command's output.
fn parse_command_output(stdout: &str) -> Option<AccessToken> {
    let trimmed = stdout.trim();
    let (secret, expires_on) = if trimmed.starts_with('{') {
        #[derive(Deserialize)]
        struct AzureCli {
            #[serde(rename = "accessToken", alias = "access_token")]
            access_token: String,
            expires_on: Option<serde_json::Value>,
        }
        let parsed: AzureCli = serde_json::from_str(trimmed).ok()?;
        let expires_on = parsed.expires_on.and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        (Zeroizing::new(parsed.access_token), expires_on)
    } else {
        let line = trimmed.lines().next()?.trim();
        (Zeroizing::new(line.to_owned()), None)
    };
    if secret.is_empty() || secret.chars().any(char::is_whitespace) {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let expires = jwt_exp(&secret).or(expires_on);
    let lifetime = match expires {
        Some(exp) => Duration::from_secs(exp.saturating_sub(now)),
        None => Duration::from_secs(10 * 60),
    };
    Some(AccessToken {
        secret,
        expires_at: Instant::now() + lifetime,
    })
}

/// The `exp` claim of a JWT, read without verifying it.
fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = Zeroizing::new(crate::crypto::b64url_decode(payload)?);
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    serde_json::from_slice::<Exp>(&bytes).ok().map(|c| c.exp)
}

/// 128 random bits as 32 hex digits: a client assertion's `jti`.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only where the OS has no random source at all; a zero jti is then
    // refused by Entra ID as reused, which names the problem.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// base64url of a JSON part of the assertion.
fn b64_json<T: serde::Serialize>(value: &T) -> Result<String, GraphError> {
    let json = serde_json::to_vec(value).map_err(|e| GraphError::Signing {
        reason: format!("cannot serialise the assertion: {e}"),
        transient: false,
    })?;
    Ok(crate::crypto::b64url_encode(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_output_forms() {
        let token = parse_command_output("abc.def.ghi\n").unwrap();
        assert_eq!(token.secret(), "abc.def.ghi");
        let json = r#"{"accessToken":"tok","expires_on":4102444800,"tokenType":"Bearer"}"#;
        let token = parse_command_output(json).unwrap();
        assert_eq!(token.secret(), "tok");
        assert!(token.expires_at() > Instant::now() + Duration::from_secs(3600));
        assert!(parse_command_output("").is_none());
        assert!(parse_command_output("two words").is_none());
        assert!(parse_command_output(r#"{"nothing":1}"#).is_none());
    }

    /// The assertion verifies as PS256 under the certificate's key, names the certificate by
    /// its SHA-256 thumbprint and carries the claims Entra ID checks.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn client_assertion_is_a_ps256_jwt_entra_accepts() {
        use crate::{Certificate, PrivateKey};
        use sha2::Digest;
        crate::crypto::install_jwt_provider();
        let key = PrivateKey::generate(2048).unwrap();
        let public = key.public_key_pkcs1_der();
        let certificate = Certificate::self_signed(&key, "app", 30).unwrap();
        let credentials = ClientCredentials::with_certificate(
            DEFAULT_AUTHORITY,
            "contoso",
            "client-1",
            key,
            &certificate,
        )
        .unwrap();
        let now = SystemTime::now();
        let assertion = credentials.client_assertion(now).unwrap();
        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
        assert_eq!(
            header.x5t_s256.as_deref(),
            Some(crate::crypto::b64url_encode(&sha2::Sha256::digest(certificate.der())).as_str())
        );
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
        validation.set_audience(&[credentials.token_url()]);
        validation.set_issuer(&["client-1"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &assertion,
            &jsonwebtoken::DecodingKey::from_rsa_der(&public),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "client-1");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 600);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
        let other = credentials.client_assertion(now).unwrap();
        assert_ne!(
            jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&other)
                .unwrap()
                .claims["jti"],
            claims["jti"],
            "a jti is never reused"
        );
        // A tampered assertion does not verify.
        let mut forged = assertion.into_bytes();
        let at = forged.len() - 5;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                std::str::from_utf8(&forged).unwrap(),
                &jsonwebtoken::DecodingKey::from_rsa_der(&public),
                &validation,
            )
            .is_err()
        );
    }

    #[test]
    fn jwt_exp_is_read_from_the_payload() {
        let payload = crate::crypto::b64url_encode(br#"{"exp":4102444800,"aud":"x"}"#);
        assert_eq!(jwt_exp(&format!("e30.{payload}.sig")), Some(4_102_444_800));
        assert_eq!(jwt_exp("not-a-jwt"), None);
    }
}
