//! A client of Microsoft Graph's subscription API (feature `manage`): create, get, list, renew,
//! reauthorize, delete, and rotate the encryption certificate, with Graph's errors typed, 429 and
//! 503 retried after `Retry-After` (else exponential backoff with jitter), and a 401 answered by
//! fetching a new access token once.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::access_token::{CachedToken, TokenSource};
use super::format_date_time;
use super::http::{Answer, HttpClient, service_error};
use crate::error::GraphError;
use crate::keys::Certificate;

/// Microsoft Graph v1.0 in the public cloud. National clouds: `https://graph.microsoft.us/v1.0`
/// (US Government L4), `https://microsoftgraph.chinacloudapi.cn/v1.0` (21Vianet).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// A subscription as Graph answers it (`POST`, `GET`, `PATCH /subscriptions`), with Graph's
/// property names. Properties this crate does not name are kept in `other`. `clientState` is not
/// kept: Graph answers it as sent, and it is a secret.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Subscription {
    /// The subscription's id (a GUID).
    pub id: String,
    /// The resource path, as created.
    pub resource: String,
    /// `created`, `updated`, `deleted`, comma-separated.
    pub change_type: String,
    /// Where notifications go.
    pub notification_url: String,
    /// Where lifecycle notifications go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_notification_url: Option<String>,
    /// When Graph stops delivering, as Graph wrote it (`2026-12-05T10:00:00.0000000Z`).
    pub expiration_date_time: String,
    /// Whether notifications carry the encrypted resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_resource_data: Option<bool>,
    /// The id of the encryption certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_id: Option<String>,
    /// Every other property Graph answered (`applicationId`, `creatorId`, …).
    #[serde(flatten, skip_serializing_if = "Map::is_empty")]
    pub other: Map<String, Value>,
    /// `clientState`, read and dropped: a secret, never kept, printed or logged.
    #[serde(rename = "clientState", default, skip_serializing)]
    client_state: Option<serde::de::IgnoredAny>,
}

impl Subscription {
    /// `expirationDateTime` as a time; `None` if Graph wrote something unreadable.
    pub fn expires_at(&self) -> Option<SystemTime> {
        super::parse_date_time(&self.expiration_date_time)
    }
}

/// How requests that meet a passing failure are retried.
///
/// ```
/// use std::time::Duration;
/// use msgraph_notify::subscription::RetryPolicy;
/// let policy = RetryPolicy::default().max_attempts(3).max_delay(Duration::from_secs(10));
/// assert_eq!(policy.attempts, 3);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default: 5.
    pub attempts: u32,
    /// The first backoff (doubled at each attempt, with up to 50 % random jitter). Default: 1 s.
    pub base_delay: Duration,
    /// The longest wait, whatever `Retry-After` asks. Default: 60 s.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Sets the number of attempts (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Sets the first backoff.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets the longest wait.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The wait before attempt `attempt + 1`: `Retry-After` when the service sent one, else the
    /// exponential backoff with jitter; never over `max_delay`.
    fn delay(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        let delay = match retry_after {
            Some(seconds) => Duration::from_secs(seconds),
            None => {
                let exponential = self
                    .base_delay
                    .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
                let mut random = [0u8; 2];
                let _ = getrandom::fill(&mut random);
                let jitter = f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * 0.5;
                exponential.mul_f64(1.0 + jitter)
            }
        };
        delay.min(self.max_delay)
    }
}

/// A client of Graph's `/subscriptions` API.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use msgraph_notify::{Certificate, PrivateKey};
/// use msgraph_notify::subscription::{
///     ClientCredentials, DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL, GraphClient, SubscriptionRequest};
/// // The application's credential: its key and the certificate registered in Entra ID.
/// let (key, app_certificate) = PrivateKey::load(&std::fs::read("app-credential.pem")?, None)?;
/// let app_certificate = app_certificate.ok_or("app-credential.pem holds no certificate")?;
/// let tokens = ClientCredentials::with_certificate(
///     DEFAULT_AUTHORITY, "contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555",
///     key, &app_certificate)?;
/// let graph = GraphClient::new(DEFAULT_GRAPH_URL, tokens)?;
/// # let encryption_certificate = app_certificate.clone();
/// let body = SubscriptionRequest::new("/chats/getAllMessages", "https://receiver.example/notify",
///         &encryption_certificate, "cert-2026")?
///     .lifecycle_url("https://receiver.example/lifecycle")?
///     .create_body(std::time::SystemTime::now())?;
/// let subscription = graph.create(&body).await?;
/// println!("{} until {}", subscription.id, subscription.expiration_date_time);
/// # Ok(()) }
/// ```
pub struct GraphClient {
    http: HttpClient,
    base: String,
    tokens: CachedToken<Box<dyn TokenSource>>,
    retry: RetryPolicy,
}

impl GraphClient {
    /// A client of the Graph at `graph_url` (e.g. [`DEFAULT_GRAPH_URL`], or an emulator's
    /// `http://127.0.0.1:PORT/v1.0`), authenticated by `tokens`.
    pub fn new(
        graph_url: impl Into<String>,
        tokens: impl TokenSource + 'static,
    ) -> Result<Self, GraphError> {
        let base = graph_url.into().trim_end_matches('/').to_owned();
        Ok(GraphClient {
            http: HttpClient::new()?,
            base,
            tokens: CachedToken::new(Box::new(tokens) as Box<dyn TokenSource>),
            retry: RetryPolicy::default(),
        })
    }

    /// Another retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// `POST /subscriptions` with `body` (see
    /// [`SubscriptionRequest::create_body`](super::SubscriptionRequest::create_body)). Graph
    /// answers 201 only after the receiver echoed its validation token.
    ///
    /// A create is retried only when Graph says it did not process it (429, 503, or no
    /// connection at all): after a timeout or another server error Graph may have made the
    /// subscription, and a second POST would make a duplicate. The error says so
    /// ([`GraphError::is_transient`] stays true); look before creating again.
    pub async fn create(&self, body: &Value) -> Result<Subscription, GraphError> {
        let answer = self
            .send(reqwest::Method::POST, "/subscriptions", Some(body), false)
            .await?;
        self.parse(answer, "/subscriptions")
    }

    /// `GET /subscriptions/{id}`.
    pub async fn get(&self, id: &str) -> Result<Subscription, GraphError> {
        let path = subscription_path(id)?;
        let answer = self.request(reqwest::Method::GET, &path, None).await?;
        self.parse(answer, &path)
    }

    /// `GET /subscriptions`, following `@odata.nextLink` (at most 100 pages). Graph lets a tenant
    /// list about 40 times per 20 s: keep ids rather than list to find them.
    pub async fn list(&self) -> Result<Vec<Subscription>, GraphError> {
        #[derive(Deserialize)]
        struct Page {
            value: Vec<Subscription>,
            #[serde(rename = "@odata.nextLink")]
            next: Option<String>,
        }
        let mut all = Vec::new();
        let mut path = "/subscriptions".to_owned();
        for _ in 0..100 {
            let answer = self.request(reqwest::Method::GET, &path, None).await?;
            let page: Page = self.parse(answer, &path)?;
            all.extend(page.value);
            match page
                .next
                .as_deref()
                .and_then(|n| n.strip_prefix(&self.base))
            {
                Some(next) => path = next.to_owned(),
                None => break,
            }
        }
        Ok(all)
    }

    /// `PATCH /subscriptions/{id}` with `{"expirationDateTime": expiration}`: renews (and
    /// reauthorizes) the subscription. Graph answers the subscription with the expiry it granted.
    pub async fn renew(
        &self,
        id: &str,
        expiration: SystemTime,
    ) -> Result<Subscription, GraphError> {
        let body = json!({ "expirationDateTime": format_date_time(expiration) });
        self.patch(id, &body).await
    }

    /// `PATCH /subscriptions/{id}` with a new `encryptionCertificate` and
    /// `encryptionCertificateId`. Keep the old key until notifications stop naming its id.
    pub async fn rotate_certificate(
        &self,
        id: &str,
        certificate: &Certificate,
        certificate_id: &str,
    ) -> Result<Subscription, GraphError> {
        let body = json!({
            "encryptionCertificate": certificate.encryption_certificate(),
            "encryptionCertificateId": certificate_id,
        });
        self.patch(id, &body).await
    }

    /// `PATCH /subscriptions/{id}` with any body Graph accepts.
    pub async fn patch(&self, id: &str, body: &Value) -> Result<Subscription, GraphError> {
        let path = subscription_path(id)?;
        let answer = self
            .request(reqwest::Method::PATCH, &path, Some(body))
            .await?;
        self.parse(answer, &path)
    }

    /// `POST /subscriptions/{id}/reauthorize`: answers a `reauthorizationRequired` without a new
    /// expiry. Graph's rule: never a reauthorize and a `PATCH` of the same subscription within 10
    /// minutes.
    pub async fn reauthorize(&self, id: &str) -> Result<(), GraphError> {
        let path = format!("{}/reauthorize", subscription_path(id)?);
        self.request(reqwest::Method::POST, &path, None)
            .await
            .map(drop)
    }

    /// `DELETE /subscriptions/{id}`.
    pub async fn delete(&self, id: &str) -> Result<(), GraphError> {
        let path = subscription_path(id)?;
        self.request(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        answer: Answer,
        path: &str,
    ) -> Result<T, GraphError> {
        serde_json::from_slice(&answer.body).map_err(|e| GraphError::Response {
            url: format!("{}{path}", self.base),
            status: answer.status,
            reason: format!("not the documented subscription JSON: {e}"),
        })
    }

    /// Sends one request with an access token, retrying as the policy says; a 2xx answer is
    /// returned, every other becomes a [`GraphError`].
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, GraphError> {
        self.send(method, path, body, true).await
    }

    /// `idempotent`: the request may be sent again after any passing failure; otherwise only
    /// after one that proves it was not processed.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Answer, GraphError> {
        let url = format!("{}{path}", self.base);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = match self.tokens.get().await {
                Ok(token) => token,
                // Entra ID unreachable or throttling: retried as Graph's own failures are.
                Err(error) if error.is_transient() && attempt < self.retry.attempts => {
                    tokio::time::sleep(self.retry.delay(attempt, retry_after(&error))).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let mut request = self
                .http
                .inner()
                .request(method.clone(), &url)
                .bearer_auth(token.secret());
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(body).unwrap_or_default());
            }
            let error = match self.http.send(request, &url).await {
                Ok(answer) if (200..300).contains(&answer.status) => return Ok(answer),
                Ok(answer) if answer.status == 401 && !refreshed => {
                    // An expired or revoked token: one more try with a new one.
                    self.tokens.invalidate(&token).await;
                    refreshed = true;
                    attempt -= 1;
                    continue;
                }
                Ok(answer) => service_error("Microsoft Graph", &url, &answer),
                Err(e) => e,
            };
            let unprocessed = match &error {
                GraphError::Api { status, .. } => matches!(status, 429 | 503),
                GraphError::Http { cause, .. } => matches!(
                    cause,
                    crate::error::HttpFailure::ConnectionRefused
                        | crate::error::HttpFailure::NameResolution
                ),
                _ => false,
            };
            if !error.is_transient()
                || attempt >= self.retry.attempts
                || !(idempotent || unprocessed)
            {
                return Err(error);
            }
            tokio::time::sleep(self.retry.delay(attempt, retry_after(&error))).await;
        }
    }
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .field("tokens", &self.tokens.describe())
            .field("retry", &self.retry)
            .finish()
    }
}

/// The `Retry-After` a failure carries.
fn retry_after(error: &GraphError) -> Option<u64> {
    match error {
        GraphError::Api { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// `/subscriptions/{id}`, refusing an id that is not one path segment of a GUID's characters.
fn subscription_path(id: &str) -> Result<String, GraphError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(GraphError::Response {
            url: "/subscriptions/{id}".to_owned(),
            status: 0,
            reason: format!(
                "{:?} is not a subscription id (a GUID: letters, digits and '-')",
                id.chars().take(70).collect::<String>()
            ),
        });
    }
    Ok(format!("/subscriptions/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_honour_retry_after() {
        let policy = RetryPolicy::default();
        let first = policy.delay(1, None);
        assert!(first >= Duration::from_secs(2) && first <= Duration::from_secs(3));
        assert_eq!(policy.delay(1, Some(7)), Duration::from_secs(7));
        assert_eq!(policy.delay(30, None), Duration::from_secs(60));
        assert_eq!(policy.delay(1, Some(3600)), Duration::from_secs(60));
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(
            subscription_path("7f105c7d-2dc5-4530-97cd-4e7ae6534c07").unwrap(),
            "/subscriptions/7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
        );
        for bad in ["", "../me", "a/b", "x?y", "a b"] {
            assert!(subscription_path(bad).is_err(), "{bad}");
        }
    }
}
