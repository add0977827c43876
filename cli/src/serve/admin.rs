//! `serve --admin-listen`: `/healthz`, `/readyz` and `/metrics` (Prometheus text, through
//! `prometheus-client`) on their own listener, never on the public one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use msgraph_notify::Error;
use msgraph_notify::receiver::{Item, Outcome};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::health::Health;
use crate::{Fail, fail};

type Labels = Vec<(&'static str, String)>;

/// Every metric `serve` exports. Names follow Prometheus' conventions (`_total` for counters,
/// base units: seconds).
pub struct Metrics {
    registry: Registry,
    items: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    /// Bodies queued for the workers.
    pub queue_depth: Gauge,
    answer_seconds: Histogram,
    item_seconds: Histogram,
    private_key_operations: Counter,
    tls_reloads: Family<Labels, Counter>,
}

impl Metrics {
    pub fn new(health: &Health) -> Self {
        let mut registry = Registry::with_prefix("msgraph_notify");
        health.register(&mut registry);
        let items = Family::<Labels, Counter>::default();
        registry.register(
            "items",
            "Notification items processed, by outcome (decrypted, basic, lifecycle, rejected)",
            items.clone(),
        );
        let rejected = Family::<Labels, Counter>::default();
        registry.register(
            "rejected_items",
            "Rejected items, by reason (token, client_state, signature, duplicate, malformed, key, replay_store, payload, other)",
            rejected.clone(),
        );
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered on the public listener, by status code",
            requests.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "POST bodies waiting for a worker",
            queue_depth.clone(),
        );
        let answer_seconds = Histogram::new(exponential_buckets(0.0001, 2.5, 14));
        registry.register(
            "request_duration_seconds",
            "Time from a POST's head to its answer",
            answer_seconds.clone(),
        );
        let item_seconds = Histogram::new(exponential_buckets(0.0001, 2.5, 16));
        registry.register(
            "item_latency_seconds",
            "Time from a POST's arrival to its items' output",
            item_seconds.clone(),
        );
        let private_key_operations = Counter::default();
        registry.register(
            "private_key_operations",
            "RSA-OAEP unwraps of dataKey (items that reached the private key)",
            private_key_operations.clone(),
        );
        let tls_reloads = Family::<Labels, Counter>::default();
        registry.register(
            "tls_certificate_reloads",
            "TLS certificate reloads on SIGHUP, by result (ok, error)",
            tls_reloads.clone(),
        );
        Metrics {
            registry,
            items,
            rejected,
            requests,
            queue_depth,
            answer_seconds,
            item_seconds,
            private_key_operations,
            tls_reloads,
        }
    }

    /// Exports the count of items a fail-open replay store let through unchecked
    /// (`--replay-unavailable open`).
    /// The registry, for a room's own metrics (the subscription keeper's).
    #[cfg(feature = "manage")]
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn with_replay_unchecked(mut self, counter: Counter) -> Self {
        self.registry.register(
            "replay_unchecked_items",
            "Items processed without the duplicate check while the replay store was unavailable (--replay-unavailable open)",
            counter,
        );
        self
    }

    /// A SIGHUP reload of the TLS certificate, done or failed.
    pub fn tls_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.tls_reloads
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// A POST or handshake answered with `code` after `elapsed`.
    pub fn answered(&self, code: StatusCode, elapsed: Duration) {
        self.requests
            .get_or_create(&vec![("code", code.as_u16().to_string())])
            .inc();
        if code != StatusCode::OK {
            self.answer_seconds.observe(elapsed.as_secs_f64());
        }
    }

    /// The outcomes of one body, output `since_arrival` after it arrived.
    pub fn items(&self, items: &[Item], since_arrival: Duration) {
        for item in items {
            self.items
                .get_or_create(&vec![("status", item.outcome.status().to_owned())])
                .inc();
            self.item_seconds.observe(since_arrival.as_secs_f64());
            let reached_private_key = match &item.outcome {
                Outcome::Decrypted(_) => true,
                Outcome::Rejected(r) => {
                    self.rejected
                        .get_or_create(&vec![("reason", r.error.label().to_owned())])
                        .inc();
                    matches!(r.error, Error::Verification | Error::Plaintext(_))
                }
                _ => false,
            };
            if reached_private_key {
                self.private_key_operations.inc();
            }
        }
    }

    fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// What `/readyz` reports.
pub struct Readiness {
    /// The listener is bound and the workers run.
    pub started: AtomicBool,
    /// A shutdown signal arrived: draining.
    pub draining: AtomicBool,
    /// What POSTs need: ready only while nothing is missing.
    health: Arc<Health>,
    /// The kept subscriptions (`--subscriptions`): ready while one is alive.
    #[cfg(feature = "manage")]
    subscriptions: Option<Arc<super::keeper::Kept>>,
}

impl Readiness {
    pub fn new(health: Arc<Health>) -> Self {
        Readiness {
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            health,
            #[cfg(feature = "manage")]
            subscriptions: None,
        }
    }

    /// Ready only while one of the kept subscriptions is alive; `ready` names those that are not.
    #[cfg(feature = "manage")]
    pub fn with_subscriptions(mut self, kept: Arc<super::keeper::Kept>) -> Self {
        self.subscriptions = Some(kept);
        self
    }

    /// The subscriptions' word on readiness: `Err(why)` when none is alive, else the lines
    /// naming those that are not.
    fn subscriptions(&self) -> Result<String, String> {
        #[cfg(feature = "manage")]
        if let Some(kept) = &self.subscriptions {
            return kept
                .readiness()
                .map(|dead| dead.iter().map(|k| format!("not alive: {k}\n")).collect());
        }
        Ok(String::new())
    }
}

/// Binds `--admin-listen` (which must differ from the public listener, `public`: its bound and
/// its given address) and serves the admin endpoints there until the process ends.
pub async fn start(
    admin: SocketAddr,
    public: [SocketAddr; 2],
    metrics: &Arc<Metrics>,
    readiness: &Arc<Readiness>,
) -> Result<(), Fail> {
    if admin.port() != 0 && public.contains(&admin) {
        return Err(fail!("--admin-listen must differ from --listen"));
    }
    let admin = tokio::net::TcpListener::bind(admin)
        .await
        .map_err(|e| fail!("cannot listen on --admin-listen {admin}: {e}"))?;
    let at = admin
        .local_addr()
        .map_err(|e| fail!("cannot read the admin address: {e}"))?;
    tokio::spawn(serve_admin(
        admin,
        Arc::clone(metrics),
        Arc::clone(readiness),
    ));
    crate::log::info(&format!(
        "msgraph-notify serve: admin on http://{at} (/healthz, /readyz, /metrics)"
    ));
    Ok(())
}

/// Serves the admin endpoints on `listener` until the process ends.
async fn serve_admin(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, readiness, http) =
            (Arc::clone(&metrics), Arc::clone(&readiness), http.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let answer = admin_answer(&request, &metrics, &readiness);
                    async move { Ok::<_, Infallible>(answer) }
                });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn admin_answer<B>(
    request: &Request<B>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), PLAIN);
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => {
            // Each answer names what is missing: `unavailable: signing_keys` and the like.
            if readiness.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into(), PLAIN)
            } else if let Some(missing) = readiness.health.missing() {
                let body = match (missing, readiness.health.replay_fault()) {
                    (super::health::Dependency::ReplayStore, Some(fault)) => {
                        format!("unavailable: {} ({fault})\n", missing.label())
                    }
                    _ => format!("unavailable: {}\n", missing.label()),
                };
                text(StatusCode::SERVICE_UNAVAILABLE, body, PLAIN)
            } else if !readiness.started.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into(), PLAIN)
            } else {
                match readiness.subscriptions() {
                    Ok(dead) => text(StatusCode::OK, format!("ready\n{dead}"), PLAIN),
                    Err(why) => text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("unavailable: subscriptions ({why})\n"),
                        PLAIN,
                    ),
                }
            }
        }
        "/metrics" => text(
            StatusCode::OK,
            metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}
