//! The emulator's shared state: configuration, signing key, subscriptions, faults, deliveries.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppCredential, Clock, DeliveryPolicy, DeliveryRecord, EmulatorBuilder, Fault};
use crate::PrivateKey;
use crate::keys::Certificate;
use crate::subscription::format_date_time;
use crate::token::TokenVersion;

/// What the emulator was started with.
pub(crate) struct Config {
    pub(crate) tenant: String,
    pub(crate) apps: Vec<(String, AppCredential)>,
    pub(crate) allow_http: bool,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) delivery: DeliveryPolicy,
    pub(crate) access_token_lifetime: Duration,
    pub(crate) reauthorization_lead: Duration,
    pub(crate) token_version: TokenVersion,
    pub(crate) app_only_presence_refused: bool,
}

/// A subscription as the emulator holds it.
#[derive(Clone)]
#[non_exhaustive]
pub struct Subscription {
    /// `id`.
    pub id: String,
    /// `resource`, as given.
    pub resource: String,
    /// `changeType`, each one.
    pub change_types: Vec<&'static str>,
    /// `notificationUrl`.
    pub notification_url: String,
    /// `lifecycleNotificationUrl`.
    pub lifecycle_notification_url: Option<String>,
    /// `includeResourceData`.
    pub include_resource_data: bool,
    /// `encryptionCertificateId`.
    pub encryption_certificate_id: Option<String>,
    /// `expirationDateTime`, on the emulator's clock.
    pub expiration: SystemTime,
    /// `applicationId`: the app whose token created it.
    pub application_id: String,
    pub(crate) client_state: Option<zeroize::Zeroizing<String>>,
    pub(crate) certificate: Option<Certificate>,
    pub(crate) encryption_certificate: Option<String>,
    /// When the access token that created (or last renewed or reauthorized) it expires, real time.
    pub(crate) token_expires: SystemTime,
    pub(crate) reauthorization_sent: bool,
    pub(crate) version: &'static str,
}

/// `clientState` and the certificate stay out of `Debug`.
impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("resource", &self.resource)
            .field("change_types", &self.change_types)
            .field("notification_url", &self.notification_url)
            .field(
                "lifecycle_notification_url",
                &self.lifecycle_notification_url,
            )
            .field("expiration", &format_date_time(self.expiration))
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The subscription as Graph answers it.
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "@odata.context": format!("{base_url}/{}/$metadata#subscriptions/$entity", self.version),
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_types.join(","),
            "clientState": self.client_state.as_ref().map(|s| s.as_str()),
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": format_date_time(self.expiration),
            "creatorId": self.application_id,
            "includeResourceData": self.include_resource_data,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": self.encryption_certificate,
            "encryptionCertificateId": self.encryption_certificate_id,
            "notificationUrlAppId": null,
        })
    }

    /// The `clientState` secret.
    pub(crate) fn client_state(&self) -> Option<&str> {
        self.client_state.as_ref().map(|s| s.as_str())
    }
}

/// The most live subscriptions the emulator holds (chosen; bounds its memory). Graph's own
/// quotas (per kind) are checked before this.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 100_000;
/// The most pending injected faults (chosen; bounds memory).
pub(crate) const MAX_FAULTS: usize = 1_000;

/// What changes while the emulator runs.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) subscriptions: Vec<Subscription>,
    /// Client-assertion `jti`s seen, with when they may be forgotten (their `exp`).
    pub(crate) jtis: HashMap<String, u64>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) deliveries: VecDeque<DeliveryRecord>,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key: PrivateKey,
    pub(crate) kid: String,
    pub(crate) base_url: String,
    pub(crate) http: reqwest::Client,
    /// Set once when the emulator stops: the server, the ticker and pending retries end.
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(builder: EmulatorBuilder, addr: SocketAddr) -> Result<Arc<Self>, String> {
        let key = PrivateKey::generate(2048).map_err(|e| e.to_string())?;
        let kid = random_id().replace('-', "");
        // Redirects are not followed: Graph does not follow them for deliveries.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Shared {
            config: Config {
                tenant: builder.tenant,
                apps: builder.apps,
                allow_http: builder.allow_http,
                max_lifetime: builder.max_lifetime,
                delivery: builder.delivery,
                access_token_lifetime: builder.access_token_lifetime,
                reauthorization_lead: builder.reauthorization_lead,
                token_version: builder.token_version,
                app_only_presence_refused: builder.app_only_presence_refused,
            },
            clock: builder.clock,
            key,
            kid,
            base_url: format!("http://{addr}"),
            http,
            stop: tokio::sync::watch::channel(false).0,
            state: Mutex::new(State::default()),
        }))
    }

    /// Runs `f` on the state under its lock (never held across an await).
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// Resolves when the emulator stops.
    pub(crate) async fn stopped(&self) {
        let _ = self.stop.subscribe().wait_for(|s| *s).await;
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url, self.config.tenant)
    }

    /// The subscription `id`, if live.
    pub(crate) fn subscription(&self, id: &str) -> Option<Subscription> {
        self.with_state(|s| s.subscriptions.iter().find(|x| x.id == id).cloned())
    }

    /// Keeps `record`, forgetting the oldest beyond the policy's limit.
    pub(crate) fn record(&self, record: DeliveryRecord) {
        let limit = self.config.delivery.record_limit;
        self.with_state(|s| {
            s.deliveries.push_back(record);
            while s.deliveries.len() > limit {
                s.deliveries.pop_front();
            }
        });
    }
}

/// A random UUID (version 4) in Graph's lower-case form.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    // Only a failing system RNG fails; the id is then time-based, still unique enough for tests.
    if getrandom::fill(&mut b).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Graph's error answer: `{"error":{"code","message","innerError":{"date","request-id",
/// "client-request-id"}}}` (source: learn.microsoft.com/graph/errors, "Error resource type").
pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = random_id();
    let date = format_date_time(SystemTime::now());
    // Graph's innerError date has no fraction and no zone: "2021-12-15T01:31:15".
    let date = date.get(..19).unwrap_or(&date).to_owned();
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": date,
                "request-id": request_id,
                "client-request-id": request_id,
            }
        }
    });
    (
        status,
        [("request-id", request_id.clone())],
        axum::Json(body),
    )
        .into_response()
}

/// The seconds since the Unix epoch of `t` (0 before it).
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// URL-safe base64 with no padding (JWT segments).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
