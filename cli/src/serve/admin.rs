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

use msgraph_notify::KeyRing;

use super::accept::{CONN_BUFFER, Table};
use super::health::Health;
use crate::{Fail, fail};

/// The most connections the admin listener keeps open at once: taken out of the file
/// descriptors the public listener leaves free ([`RESERVED_FDS`](super::RESERVED_FDS)).
pub(crate) const ADMIN_CONNECTIONS: usize = 16;
/// How long an admin connection may take to send a request head, or stay idle between two.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admin connection stays open at most.
const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

type Labels = Vec<(&'static str, String)>;

/// The series of item outcomes, the same in `serve` and `consume`: items by status, rejected
/// items by reason, private-key operations. Every known label value is there from the start,
/// at 0.
#[derive(Clone)]
pub(crate) struct ItemMetrics {
    items: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    private_key_operations: Counter,
}

/// Every `status` an item line can have.
const STATUSES: [&str; 6] = [
    "decrypted",
    "basic",
    "lifecycle",
    "rejected",
    "validation",
    "offloaded",
];
/// Every reason `Error::label` gives a rejection.
const REASONS: [&str; 9] = [
    "token",
    "client_state",
    "signature",
    "duplicate",
    "malformed",
    "key",
    "replay_store",
    "payload",
    "other",
];
/// Every status code the public listener answers with.
const CODES: [u16; 7] = [200, 202, 400, 405, 408, 413, 503];

/// `name="value"` labels, for a family's known series.
fn label(name: &'static str, value: impl ToString) -> Labels {
    vec![(name, value.to_string())]
}

impl ItemMetrics {
    /// Registers the families in `registry`, each known series at 0.
    pub fn register(registry: &mut Registry) -> Self {
        let items = Family::<Labels, Counter>::default();
        registry.register(
            "items",
            "Notification items processed, by status (decrypted, basic, lifecycle, rejected, validation, offloaded)",
            items.clone(),
        );
        let rejected = Family::<Labels, Counter>::default();
        registry.register(
            "rejected_items",
            "Rejected items, by reason (token, client_state, signature, duplicate, malformed, key, replay_store, payload, other)",
            rejected.clone(),
        );
        let private_key_operations = Counter::default();
        registry.register(
            "private_key_operations",
            "RSA-OAEP unwraps of dataKey (items that reached the private key)",
            private_key_operations.clone(),
        );
        for status in STATUSES {
            let _ = items.get_or_create(&label("status", status));
        }
        for reason in REASONS {
            let _ = rejected.get_or_create(&label("reason", reason));
        }
        ItemMetrics {
            items,
            rejected,
            private_key_operations,
        }
    }

    /// Counts one item's outcome.
    pub fn record(&self, item: &Item) {
        self.items
            .get_or_create(&label("status", item.outcome.status()))
            .inc();
        let reached_private_key = match &item.outcome {
            Outcome::Decrypted(_) => true,
            Outcome::Rejected(r) => {
                self.rejected
                    .get_or_create(&label("reason", r.error.label()))
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

/// `msgraph_notify_certificate_expiry_timestamp_seconds{key_id, thumbprint}`: the notAfter of
/// each key's certificate (keys without a certificate have none).
pub(crate) fn register_certificates(registry: &mut Registry, ring: &KeyRing) {
    let expiry = Family::<Labels, Gauge>::default();
    registry.register(
        "certificate_expiry_timestamp_seconds",
        "The end of the validity (notAfter) of each key's certificate, in seconds since the Unix epoch",
        expiry.clone(),
    );
    for (id, cert) in ring.entries() {
        if let Some(cert) = cert {
            expiry
                .get_or_create(&vec![
                    ("key_id", id.unwrap_or_default().to_owned()),
                    ("thumbprint", cert.thumbprint()),
                ])
                .set(cert.not_after_timestamp());
        }
    }
}

/// Every metric `serve` exports. Names follow Prometheus' conventions (`_total` for counters,
/// base units: seconds). Every series with known labels exists from the start, at 0.
pub struct Metrics {
    registry: Registry,
    items: ItemMetrics,
    requests: Family<Labels, Counter>,
    /// Bodies queued for the workers.
    pub queue_depth: Gauge,
    answer_seconds: Histogram,
    item_seconds: Histogram,
    tls_reloads: Family<Labels, Counter>,
}

impl Metrics {
    pub fn new(health: &Health, ring: &KeyRing) -> Self {
        let mut registry = Registry::with_prefix("msgraph_notify");
        health.register(&mut registry);
        let items = ItemMetrics::register(&mut registry);
        register_certificates(&mut registry, ring);
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered on the public listener, by status code",
            requests.clone(),
        );
        for code in CODES {
            let _ = requests.get_or_create(&label("code", code));
        }
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
        let tls_reloads = Family::<Labels, Counter>::default();
        registry.register(
            "tls_certificate_reloads",
            "TLS certificate reloads on SIGHUP, by result (ok, error)",
            tls_reloads.clone(),
        );
        for result in ["ok", "error"] {
            let _ = tls_reloads.get_or_create(&label("result", result));
        }
        Metrics {
            registry,
            items,
            requests,
            queue_depth,
            answer_seconds,
            item_seconds,
            tls_reloads,
        }
    }

    /// The registry, for a room's own metrics (the subscription keeper's).
    #[cfg(feature = "manage")]
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Exports the count of items a fail-open replay store let through unchecked
    /// (`--replay-unavailable open`).
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
            .get_or_create(&label("result", result))
            .inc();
    }

    /// A POST or handshake answered with `code` after `elapsed`.
    pub fn answered(&self, code: StatusCode, elapsed: Duration) {
        self.requests
            .get_or_create(&label("code", code.as_u16()))
            .inc();
        if code != StatusCode::OK {
            self.answer_seconds.observe(elapsed.as_secs_f64());
        }
    }

    /// The outcomes of one body, output `since_arrival` after it arrived.
    pub fn items(&self, items: &[Item], since_arrival: Duration) {
        for item in items {
            self.items.record(item);
            self.item_seconds.observe(since_arrival.as_secs_f64());
        }
    }

    fn render(&self) -> String {
        render(&self.registry)
    }
}

/// A registry in Prometheus' text format.
pub(crate) fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut text, registry);
    text
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

/// What the admin listener answers: `/healthz` is 200 while the process serves it; these give
/// `/readyz` and `/metrics`.
pub(crate) trait Endpoints: Send + Sync + 'static {
    /// `Ok(body)`: ready (200); `Err(body)`: not ready (503), the body naming what is missing.
    fn readiness(&self) -> Result<String, String>;
    /// The metrics in Prometheus' text format.
    fn metrics(&self) -> String;
}

/// `serve`'s endpoints.
struct Serve {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

impl Endpoints for Serve {
    fn readiness(&self) -> Result<String, String> {
        let readiness = &self.readiness;
        // Each answer names what is missing: `unavailable: signing_keys` and the like.
        if readiness.draining.load(Ordering::Acquire) {
            Err("draining\n".into())
        } else if let Some(missing) = readiness.health.missing() {
            Err(match (missing, readiness.health.replay_fault()) {
                (super::health::Dependency::ReplayStore, Some(fault)) => {
                    format!("unavailable: {} ({fault})\n", missing.label())
                }
                _ => format!("unavailable: {}\n", missing.label()),
            })
        } else if !readiness.started.load(Ordering::Acquire) {
            Err("starting\n".into())
        } else {
            readiness
                .subscriptions()
                .map(|dead| format!("ready\n{dead}"))
                .map_err(|why| format!("unavailable: subscriptions ({why})\n"))
        }
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

/// Binds `--admin-listen` (which must differ from the public listener, `public`: its bound and
/// its given address) and serves the admin endpoints there until the process ends.
pub fn start(
    admin: SocketAddr,
    public: [SocketAddr; 2],
    metrics: &Arc<Metrics>,
    readiness: &Arc<Readiness>,
) -> Result<(), Fail> {
    if admin.port() != 0 && public.contains(&admin) {
        return Err(fail!("--admin-listen must differ from --listen"));
    }
    let endpoints = Serve {
        metrics: Arc::clone(metrics),
        readiness: Arc::clone(readiness),
    };
    listen_on_own_thread(admin, "serve", Arc::new(endpoints))
}

/// Binds `address` now (an error ends the start-up) and serves the endpoints on a thread and
/// runtime of their own (`{command}-admin`): a liveness probe is answered while the
/// connections' threads are busy (a flood of TLS handshakes, a stalled stdout).
pub(crate) fn listen_on_own_thread(
    address: SocketAddr,
    command: &'static str,
    endpoints: Arc<dyn Endpoints>,
) -> Result<(), Fail> {
    let listener = std::net::TcpListener::bind(address)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| fail!("cannot listen on --admin-listen {address}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(format!("{command}-admin"))
        .build()
        .map_err(|e| fail!("cannot start the admin listener's runtime: {e}"))?;
    let (told, said) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{command}-admin"))
        .spawn(move || {
            runtime.block_on(async move {
                let started = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| fail!("cannot use the admin listener: {e}"))
                    .and_then(|l| listen(l, command, endpoints));
                let failed = started.is_err();
                let _ = told.send(started);
                if !failed {
                    std::future::pending::<()>().await;
                }
            });
        })
        .map_err(|e| fail!("cannot start the admin listener's thread: {e}"))?;
    said.recv()
        .map_err(|_| fail!("the admin listener's thread ended at start"))?
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until the process ends (`command`
/// names the process in the log line that gives the address).
///
/// At most [`ADMIN_CONNECTIONS`] connections are open at once, taken out of the file
/// descriptors the public listener leaves free ([`RESERVED_FDS`](super::RESERVED_FDS)): when
/// full, the oldest connection not inside a request is closed (the public listener's rule,
/// [`Table`]). A connection has [`ADMIN_HEADER_TIMEOUT`] to send each request head (also the
/// idle time allowed between requests) and lives at most [`ADMIN_CONNECTION_LIFETIME`]. A
/// flood of half-open connections here can therefore never take the descriptors the public
/// listener needs.
fn listen(
    listener: tokio::net::TcpListener,
    command: &str,
    endpoints: Arc<dyn Endpoints>,
) -> Result<(), Fail> {
    let at = listener
        .local_addr()
        .map_err(|e| fail!("cannot read the admin address: {e}"))?;
    tokio::spawn(serve_admin(listener, endpoints));
    crate::log::info(&format!(
        "msgraph-notify {command}: admin on http://{at} (/healthz, /readyz, /metrics)"
    ));
    Ok(())
}

/// Serves the admin endpoints on `listener` until the process ends.
async fn serve_admin(listener: tokio::net::TcpListener, endpoints: Arc<dyn Endpoints>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(ADMIN_HEADER_TIMEOUT)
        .max_buf_size(CONN_BUFFER);
    let table = Table::new(ADMIN_CONNECTIONS);
    let warn_accept = crate::log::RateLimited::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn_accept.warn(&format!("admin listener: cannot accept a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = table.admit();
        let (endpoints, http) = (Arc::clone(&endpoints), http.clone());
        tokio::spawn(async move {
            // Answers are made at once (no body is read), so no admin connection is ever marked
            // inside a request: when the table is full the oldest one goes.
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let answer = admin_answer(&request, &*endpoints);
                    async move { Ok::<_, Infallible>(answer) }
                });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, connection) => {}
                () = admitted.close.notified() => {}
            }
        });
    }
}

fn admin_answer<B>(request: &Request<B>, endpoints: &dyn Endpoints) -> Response<Full<Bytes>> {
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
        "/readyz" => match endpoints.readiness() {
            Ok(body) => text(StatusCode::OK, body, PLAIN),
            Err(body) => text(StatusCode::SERVICE_UNAVAILABLE, body, PLAIN),
        },
        "/metrics" => text(
            StatusCode::OK,
            endpoints.metrics(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}
