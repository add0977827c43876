//! One request on the public listener: the validation handshake (no body, no budget), then a
//! notification POST read within `--max-body` and the shared byte budget, and queued for the
//! workers (or forwarded); answered 202, or 413/408/400/503 with a short text.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use msgraph_notify::receiver::Receiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Stats;
use super::admin::Metrics;
use super::health::Health;
use super::spool::Spool;

/// How long a POST waits for room in the queue before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// How long a request body may take to arrive, once its head is complete.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// One queued POST body, with the share of the byte budget it holds until it is processed.
pub struct Job {
    /// The POST's number since start (`request_id` in the logs).
    pub id: u64,
    pub arrived: Instant,
    /// When the body was accepted (answered 202), by this process's clock, or read back from the
    /// spool: its tokens' lifetimes are judged as of then when it is processed late.
    pub accepted_at: std::time::SystemTime,
    pub path: String,
    pub body: Arc<[u8]>,
    /// The body's id in `--spool`, when spooled.
    pub spool_id: Option<u64>,
    _budget: OwnedSemaphorePermit,
}

impl Job {
    /// A body read back from the spool at start.
    pub fn spooled(
        id: u64,
        request: u64,
        body: Vec<u8>,
        accepted_at: std::time::SystemTime,
        budget: OwnedSemaphorePermit,
    ) -> Job {
        Job {
            id: request,
            arrived: Instant::now(),
            accepted_at,
            path: "(spool)".to_owned(),
            body: body.into(),
            spool_id: Some(id),
            _budget: budget,
        }
    }
}

/// What every request handler shares.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub next_request: Arc<AtomicU64>,
    /// What a POST needs (signing keys, replay store, keys, payload store): while one is
    /// missing, POSTs are answered 503.
    pub health: Arc<Health>,
    /// `--spool`: each body is synced there before its 202.
    pub spool: Option<Arc<Spool>>,
    pub queue: mpsc::Sender<Job>,
    pub budget: Arc<Semaphore>,
    pub max_body: usize,
    pub stats: Arc<Stats>,
    pub warn_busy: crate::log::RateLimited,
    /// `--forward`: POSTs are screened and produced to a topic instead of queued.
    #[cfg(feature = "kafka")]
    pub forward: Option<Arc<super::forward::Forward>>,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, text: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn busy() -> Answer {
    let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, "busy\n");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

pub async fn handle_request(shared: &Shared, request: Request<Incoming>) -> Answer {
    if request.method() != Method::POST {
        let mut response = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "Graph notifications are POSTed\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    // The handshake needs no body and no budget: it is answered whatever else is going on.
    if let Some(token) = request.uri().query().and_then(Receiver::handshake_token) {
        let mut response = Response::new(Full::new(Bytes::from(token)));
        let headers = response.headers_mut();
        // The token is reflected: never let a browser render it as anything but text.
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return response;
    }
    shared.stats.posts.fetch_add(1, Ordering::Relaxed);
    let arrived = Instant::now();
    // Acknowledge only what can be finished: a POST that needs something missing is kept by
    // Graph (503, retried later), never accepted and then dropped.
    if let Some(missing) = shared.health.missing() {
        shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
        shared.health.refused(missing);
        shared.warn_busy.warn(&format!(
            "{}: answered 503 (Graph retries later)",
            shared.health.describe(missing)
        ));
        return busy();
    }
    let path = request.uri().path().to_owned();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > shared.max_body as u64) {
        shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
    }
    let read = tokio::time::timeout(
        BODY_TIMEOUT,
        read_body(
            request.into_body(),
            declared.and_then(|n| usize::try_from(n).ok()),
            shared.max_body,
            &shared.budget,
        ),
    )
    .await;
    let (body, budget) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(refusal)) => return refused(shared, refusal),
        Err(_) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            return answer(StatusCode::REQUEST_TIMEOUT, "too slow\n");
        }
    };
    #[cfg(feature = "kafka")]
    if let Some(forward) = &shared.forward {
        return forwarded(shared, forward.forward(body, arrived).await);
    }
    // A place in the queue first, then the spool: a body is never spooled and then refused.
    let Ok(Ok(place)) = tokio::time::timeout(QUEUE_WAIT, shared.queue.reserve()).await else {
        shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
        shared
            .warn_busy
            .warn("the queue is full: answered 503 (Graph retries later)");
        return busy();
    };
    let body: Arc<[u8]> = body.into();
    let spool_id = match &shared.spool {
        None => None,
        Some(spool) => match spool.append(&body).await {
            Ok(id) => Some(id),
            Err(e) => {
                shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
                shared
                    .warn_busy
                    .warn(&format!("{e}: answered 503 (Graph retries later)"));
                return busy();
            }
        },
    };
    shared.metrics.queue_depth.inc();
    place.send(Job {
        id: shared.next_request.fetch_add(1, Ordering::Relaxed),
        arrived,
        accepted_at: std::time::SystemTime::now(),
        path,
        body,
        spool_id,
        _budget: budget,
    });
    answer(StatusCode::ACCEPTED, "")
}

/// The answer to a forwarded POST (`--forward`).
#[cfg(feature = "kafka")]
fn forwarded(shared: &Shared, outcome: super::forward::Forwarded) -> Answer {
    use super::forward::Forwarded;
    match outcome {
        Forwarded::Accepted => answer(StatusCode::ACCEPTED, ""),
        Forwarded::Refused(e) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            shared.warn_busy.warn(&format!("body refused: {e}"));
            answer(
                StatusCode::BAD_REQUEST,
                "not a usable notification collection\n",
            )
        }
        Forwarded::Unavailable(why) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            shared.warn_busy.warn(&format!(
                "--forward: {why}: answered 503 (Graph retries later)"
            ));
            busy()
        }
    }
}

/// The answer to a body that could not be read whole.
fn refused(shared: &Shared, refusal: Refusal) -> Answer {
    shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
    match refusal {
        Refusal::TooLarge => answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
        Refusal::Budget => {
            shared
                .warn_busy
                .warn("the body budget (--max-buffered) is spent: answered 503");
            busy()
        }
        Refusal::Broken => answer(StatusCode::BAD_REQUEST, "incomplete body\n"),
    }
}

/// Why a body was not read whole.
enum Refusal {
    TooLarge,
    Budget,
    Broken,
}

/// Reads a body, holding budget permits for its buffer's capacity as bytes arrive: what a sender
/// has not sent costs nothing. The buffer grows by doubling, never past the declared length (at
/// most `limit`, checked before), so a body with a `Content-Length` ends holding exactly that.
async fn read_body(
    mut body: Incoming,
    declared: Option<usize>,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), Refusal> {
    let mut held = Arc::clone(budget)
        .try_acquire_many_owned(0)
        .map_err(|_| Refusal::Budget)?;
    // The declared length caps the growth (no doubling past it), but nothing is reserved before
    // the bytes arrive: a thousand heads declaring 1 MiB reserve nothing.
    let cap = declared.unwrap_or(limit).min(limit);
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Refusal::Broken);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = buf.len().saturating_add(data.len());
        if needed > limit {
            return Err(Refusal::TooLarge);
        }
        let capacity = if needed > buf.capacity() {
            needed.max(buf.capacity().saturating_mul(2).max(4096).min(cap))
        } else {
            buf.capacity()
        };
        let more = capacity.saturating_sub(held.num_permits());
        if more > 0 {
            let permits = u32::try_from(more).map_err(|_| Refusal::TooLarge)?;
            let extra = Arc::clone(budget)
                .try_acquire_many_owned(permits)
                .map_err(|_| Refusal::Budget)?;
            held.merge(extra);
        }
        buf.reserve_exact(capacity - buf.len());
        buf.extend_from_slice(&data);
    }
    Ok((buf, held))
}
