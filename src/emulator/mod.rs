//! A Microsoft Graph change-notification emulator on 127.0.0.1 (feature `emulator`): Entra ID's
//! token endpoint and signing keys, Graph's subscription API with its validation handshake, and
//! deliveries made as Graph makes them (encrypted for the subscription's certificate, with
//! validation tokens signed by the emulator's keys, batched, retried, dropped after the retry
//! window), plus lifecycle notifications and a control API for tests under `/_emulator/`.
//!
//! Graph has no emulator of its own; this one follows Graph's documented contract. Every
//! documented limit it enforces comes from [`crate::subscription`] (one source for the library's
//! request builder and the emulator) and cites its source there; what the documentation does not
//! say (batch size, retry schedule) is chosen in [`DeliveryPolicy`] and configurable.
//!
//! | path | what |
//! |---|---|
//! | `POST /{tenant}/oauth2/v2.0/token` | client credentials: certificate assertion or secret |
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration` | OpenID metadata (`jwks_uri`, `issuer`) |
//! | `GET /common/discovery/keys`, `/common/discovery/v2.0/keys` | the signing keys (JWKS) |
//! | `POST\|GET /v1.0/subscriptions` (and `/beta`) | create, list |
//! | `GET\|PATCH\|DELETE /v1.0/subscriptions/{id}` | read, renew/update, delete |
//! | `POST /v1.0/subscriptions/{id}/reauthorize` | reauthorize |
//! | `POST /_emulator/changes` | `{"resource","changeType","data"}` or `"count": N`: deliver changes |
//! | `POST /_emulator/lifecycle` | `{"subscriptionId","event"}`: send a lifecycle notification |
//! | `POST /_emulator/clock` | `{"advanceSeconds": N}`: move the subscription clock ahead |
//! | `POST /_emulator/faults` | `{"status","retryAfterSeconds","count","path"}`: fail the next requests |
//! | `GET /_emulator/deliveries` | every delivery attempt: subscription, URL, attempt, status, latency |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use msgraph_notify::emulator::{Emulator, ManualClock};
//! let clock = ManualClock::new();
//! let emulator = Emulator::builder()
//!     .tenant("6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b")
//!     .app_with_secret("3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07", "app secret")
//!     .allow_http(true)
//!     .clock(clock.clone())
//!     .start()
//!     .await?;
//! assert!(emulator.base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(emulator.graph_url(), format!("{}/v1.0", emulator.base_url()));
//! assert!(emulator.subscriptions().is_empty());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

// The handlers' helpers return the finished refusal (an HTTP answer) as their error: a large
// `Err`, once per refused request, where clarity matters more than moving 128 bytes.
#![allow(clippy::result_large_err)]

mod control;
mod delivery;
mod entra;
mod handshake;
mod items;
mod lifecycle;
mod state;
mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use control::{Change, Fault};
pub use delivery::{DeliveryPolicy, DeliveryRecord};
pub use state::Subscription;

use crate::keys::Certificate;
use crate::token::TokenVersion;

/// The tenant id the emulator serves unless [`EmulatorBuilder::tenant`] names another.
pub const DEFAULT_TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";

/// How an application registered with the emulator proves itself at the token endpoint.
#[derive(Clone)]
pub(crate) enum AppCredential {
    Certificate(Box<Certificate>),
    Secret(zeroize::Zeroizing<String>),
}

/// What the emulator is started with. Built by [`Emulator::builder`].
#[derive(Clone)]
pub struct EmulatorBuilder {
    listen: SocketAddr,
    tenant: String,
    apps: Vec<(String, AppCredential)>,
    allow_http: bool,
    max_lifetime: Option<Duration>,
    clock: Arc<dyn Clock>,
    delivery: DeliveryPolicy,
    access_token_lifetime: Duration,
    reauthorization_lead: Duration,
    token_version: TokenVersion,
    app_only_presence_refused: bool,
}

impl std::fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("listen", &self.listen)
            .field("tenant", &self.tenant)
            .field(
                "apps",
                &self.apps.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("allow_http", &self.allow_http)
            .field("max_lifetime", &self.max_lifetime)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl EmulatorBuilder {
    /// Listens on `addr` (default `127.0.0.1:0`: a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The tenant id the token endpoint, the issuer and the notifications name (default
    /// [`DEFAULT_TENANT`]).
    pub fn tenant(mut self, tenant_id: &str) -> Self {
        self.tenant = tenant_id.to_owned();
        self
    }

    /// Registers `app_id` with a certificate: its client assertions must be signed by the
    /// certificate's key and name it by `x5t` (RS256) or `x5t#S256` (PS256).
    pub fn app_with_certificate(mut self, app_id: &str, certificate: Certificate) -> Self {
        self.apps.push((
            app_id.to_owned(),
            AppCredential::Certificate(Box::new(certificate)),
        ));
        self
    }

    /// Registers `app_id` with a client secret.
    pub fn app_with_secret(mut self, app_id: &str, secret: &str) -> Self {
        self.apps.push((
            app_id.to_owned(),
            AppCredential::Secret(zeroize::Zeroizing::new(secret.to_owned())),
        ));
        self
    }

    /// Accepts `http://` notification and lifecycle URLs to the loopback (Graph requires HTTPS).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Grants at most this lifetime, even below Graph's 45-minute floor, so a real-time test can
    /// watch a client renew many times in minutes. Requests over the resource's maximum are still
    /// refused as Graph refuses them.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// The clock of subscription lifetimes and expiry (default: a [`ManualClock`] the control
    /// API can advance). Share a clone with the code under test.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How deliveries are batched and retried.
    pub fn delivery(mut self, policy: DeliveryPolicy) -> Self {
        self.delivery = policy;
        self
    }

    /// The lifetime of the access tokens the token endpoint issues, on real time (default one
    /// hour, Entra's usual `expires_in`).
    pub fn access_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// How long before the access token behind a subscription expires its
    /// `reauthorizationRequired` is sent (chosen: 5 minutes; Graph documents only "before").
    pub fn reauthorization_lead(mut self, lead: Duration) -> Self {
        self.reauthorization_lead = lead;
        self
    }

    /// The version of the validation tokens in deliveries (default v1.0, as Graph's samples).
    pub fn token_version(mut self, version: TokenVersion) -> Self {
        self.token_version = version;
        self
    }

    /// Refuses presence subscriptions with 403 as Graph does for application tokens (presence
    /// supports only the delegated `Presence.Read.All`). Off by default: the emulator issues only
    /// application tokens, and tests need presence deliveries.
    pub fn refuse_app_only_presence(mut self, refuse: bool) -> Self {
        self.app_only_presence_refused = refuse;
        self
    }

    /// Binds the port, makes the signing key and starts serving in the background on the current
    /// Tokio runtime.
    ///
    /// # Errors
    ///
    /// The bind failure, or a key-generation failure of the crypto backend.
    pub async fn start(self) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        let shared = state::Shared::new(self, addr).map_err(std::io::Error::other)?;
        let router = control::router(shared.clone());
        let until_stopped = shared.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { until_stopped.stopped().await })
                .await;
        });
        let ticker = tokio::spawn(lifecycle::tick(shared.clone()));
        Ok(Emulator {
            shared,
            addr,
            tasks: vec![server, ticker],
        })
    }
}

/// A running emulator. Dropping it stops it; [`Emulator::shutdown`] also waits for the server.
///
/// Memory is bounded: at most 100,000 live subscriptions (Graph's per-kind quotas come first),
/// 1,000 pending faults, [`DeliveryPolicy::record_limit`] delivery records, 10,000 generated
/// items per change, request bodies of 2 MB (axum's default limit), and `jti`s kept only until
/// their assertion expires.
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<state::Shared>,
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// A builder with the defaults: `127.0.0.1:0`, [`DEFAULT_TENANT`], no apps, HTTPS only,
    /// a [`ManualClock`], [`DeliveryPolicy::default`].
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tenant: DEFAULT_TENANT.to_owned(),
            apps: Vec::new(),
            allow_http: false,
            max_lifetime: None,
            clock: Arc::new(ManualClock::new()),
            delivery: DeliveryPolicy::default(),
            access_token_lifetime: Duration::from_secs(3600),
            reauthorization_lead: Duration::from_secs(300),
            token_version: TokenVersion::V1,
            app_only_presence_refused: false,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the base of every path (give it to a Graph SDK as its base URL with
    /// [`Emulator::graph_url`], and to a token client as its authority).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `http://ADDR/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.shared.base_url)
    }

    /// `http://ADDR/{tenant}/oauth2/v2.0/token`: the `aud` of client assertions.
    pub fn token_url(&self) -> String {
        self.shared.token_url()
    }

    /// `http://ADDR/common/discovery/keys`: the signing keys of access and validation tokens.
    pub fn jwks_url(&self) -> String {
        format!("{}/common/discovery/keys", self.shared.base_url)
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.shared.config.tenant
    }

    /// The subscription clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    /// The live subscriptions, in creation order.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.shared.with_state(|s| s.subscriptions.clone())
    }

    /// Every delivery attempt so far (the most recent [`DeliveryPolicy::record_limit`]).
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.shared
            .with_state(|s| s.deliveries.iter().cloned().collect())
    }

    /// Delivers `change` to each matching subscription, as `POST /_emulator/changes` does;
    /// returns the ids of the subscriptions it goes to (deliveries continue in the background).
    ///
    /// # Errors
    ///
    /// A message when the change is unusable (no resource, an unknown change type).
    pub fn trigger(&self, change: &Change) -> Result<Vec<String>, String> {
        delivery::trigger(&self.shared, change)
    }

    /// Sends the lifecycle notification `event` for subscription `id`, as
    /// `POST /_emulator/lifecycle` does.
    ///
    /// # Errors
    ///
    /// A message for an unknown subscription or event.
    pub fn lifecycle(&self, id: &str, event: &str) -> Result<(), String> {
        lifecycle::send_event(&self.shared, id, event)
    }

    /// Makes the next matching requests fail, as `POST /_emulator/faults` does.
    ///
    /// # Errors
    ///
    /// A message for a status outside 400-599, or when 1,000 faults are pending.
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        control::inject(&self.shared, fault)
    }

    /// Stops serving (pending deliveries and retries end too) and waits for the server to
    /// finish.
    pub async fn shutdown(mut self) {
        self.shared.stop.send_replace(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}
