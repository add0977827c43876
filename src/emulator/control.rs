//! The routes, the fault injection in front of Graph's and Entra's paths, and the control API for
//! tests under `/_emulator/` (never one of Graph's paths).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{Shared, graph_error};
use super::{entra, subscriptions};
use crate::subscription::format_date_time;

/// A change to deliver (`POST /_emulator/changes`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Change {
    /// The changed resource's path, e.g. `communications/presences/{id}`,
    /// `chats('{id}')/messages('{id}')`, `communications/onlineMeetings(joinWebUrl='…')/meetingCallEvents`.
    pub resource: String,
    /// `created`, `updated` (the default) or `deleted`.
    pub change_type: Option<String>,
    /// The changed resource itself (JSON object); its `@odata.type` is added when missing.
    pub data: Option<Value>,
    /// Instead of `data`: generate this many realistic resources of the path's kind.
    pub count: Option<usize>,
}

impl Change {
    /// A change of `resource` carrying `data`, change type `updated`.
    ///
    /// ```
    /// use msgraph_notify::emulator::Change;
    /// let change = Change::new("communications/presences/u1", serde_json::json!({"id": "u1"}));
    /// assert_eq!(change.resource, "communications/presences/u1");
    /// ```
    pub fn new(resource: &str, data: Value) -> Self {
        Change {
            resource: resource.to_owned(),
            data: Some(data),
            ..Change::default()
        }
    }

    /// `count` generated resources of `resource`'s kind, change type `updated`.
    pub fn generated(resource: &str, count: usize) -> Self {
        Change {
            resource: resource.to_owned(),
            count: Some(count),
            ..Change::default()
        }
    }

    /// Sets the change type.
    pub fn change_type(mut self, change_type: &str) -> Self {
        self.change_type = Some(change_type.to_owned());
        self
    }
}

/// A fault to inject (`POST /_emulator/faults`): the next `count` requests whose path (after
/// `/v1.0` or `/beta`) starts with `path` are answered `status` in Graph's error format.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Fault {
    /// The status to answer (429, 503...).
    pub status: u16,
    /// `Retry-After`, in seconds.
    pub retry_after_seconds: Option<u64>,
    /// How many requests fail (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// The path prefix the fault applies to (default: every path but `/_emulator/`).
    #[serde(default)]
    pub path: String,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// The next request (of any path but `/_emulator/`) answered `status`.
    ///
    /// ```
    /// use msgraph_notify::emulator::Fault;
    /// let fault = Fault::new(429).retry_after(2).count(3).path("/subscriptions");
    /// assert_eq!((fault.status, fault.retry_after_seconds, fault.count), (429, Some(2), 3));
    /// ```
    pub fn new(status: u16) -> Self {
        Fault {
            status,
            retry_after_seconds: None,
            count: 1,
            path: String::new(),
        }
    }

    /// Sends `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Fails this many requests (at least 1).
    pub fn count(mut self, count: u32) -> Self {
        self.count = count.max(1);
        self
    }

    /// Only requests whose path (after `/v1.0` or `/beta`) starts with `prefix`.
    pub fn path(mut self, prefix: &str) -> Self {
        self.path = prefix.to_owned();
        self
    }
}

/// Keeps `fault`, or says why not.
pub(crate) fn inject(shared: &Shared, fault: Fault) -> Result<(), String> {
    if !(400..600).contains(&fault.status) || fault.count == 0 {
        return Err("status must be 400 to 599 and count at least 1".into());
    }
    let kept = shared.with_state(|s| {
        let room = s.faults.len() < super::state::MAX_FAULTS;
        if room {
            s.faults.push(fault);
        }
        room
    });
    if kept {
        Ok(())
    } else {
        Err("too many pending faults (1,000): let some happen first".into())
    }
}

/// The whole router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let graph = Router::new()
        .route("/{root}/oauth2/v2.0/token", post(entra::token))
        .route(
            "/{root}/v2.0/.well-known/openid-configuration",
            get(entra::openid_configuration),
        )
        .route("/{root}/discovery/keys", get(entra::keys))
        .route("/{root}/discovery/v2.0/keys", get(entra::keys))
        .route(
            "/{root}/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/{root}/subscriptions/{id}",
            get(subscriptions::get)
                .patch(subscriptions::patch)
                .delete(subscriptions::delete),
        )
        .route(
            "/{root}/subscriptions/{id}/reauthorize",
            post(subscriptions::reauthorize),
        )
        .layer(middleware::from_fn_with_state(shared.clone(), gate));
    let control = Router::new()
        .route("/_emulator/changes", post(changes))
        .route("/_emulator/lifecycle", post(lifecycle))
        .route("/_emulator/clock", post(clock))
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/deliveries", get(deliveries));
    graph
        .merge(control)
        .fallback(|| async {
            graph_error(
                StatusCode::NOT_FOUND,
                "BadRequest",
                "Resource not found for the segment: the emulator serves /{tenant}/oauth2/v2.0/token, /v1.0|/beta/subscriptions and /_emulator/.",
            )
        })
        .with_state(shared)
}

/// Graph's versions for the subscription paths; an injected fault when one matches.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let api = path
        .strip_prefix("/v1.0")
        .or_else(|| path.strip_prefix("/beta"));
    if api.is_none() && path.contains("/subscriptions") {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid version: the subscription API is under /v1.0 and /beta.",
        );
    }
    let relative = api.unwrap_or(&path).to_owned();
    let fault = shared.with_state(|s| {
        let i = s
            .faults
            .iter()
            .position(|f| relative.starts_with(&f.path) || path.starts_with(&f.path))?;
        let fault = s.faults.get_mut(i)?;
        fault.count = fault.count.saturating_sub(1);
        let hit = fault.clone();
        if fault.count == 0 {
            s.faults.remove(i);
        }
        Some(hit)
    });
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let code = match fault.status {
        429 => "TooManyRequests",
        503 => "ServiceNotAvailable",
        401 => "InvalidAuthenticationToken",
        403 => "Forbidden",
        404 => "ResourceNotFound",
        s if s >= 500 => "InternalServerError",
        _ => "BadRequest",
    };
    let mut answer = graph_error(status, code, "Injected by POST /_emulator/faults.");
    if let Some(secs) = fault.retry_after_seconds
        && let Ok(value) = secs.to_string().parse()
    {
        answer.headers_mut().insert("retry-after", value);
    }
    answer
}

fn control_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message.into() })),
    )
        .into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| control_error(format!("unusable body: {e}")))
}

async fn changes(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let change: Change = match parse(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match super::delivery::trigger(&shared, &change) {
        Ok(ids) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "subscriptionIds": ids })),
        )
            .into_response(),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleRequest {
    subscription_id: String,
    event: String,
}

async fn lifecycle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: LifecycleRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match super::lifecycle::send_event(&shared, &request.subscription_id, &request.event) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => control_error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClockRequest {
    advance_seconds: u64,
}

async fn clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: ClockRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !shared
        .clock
        .advance(Duration::from_secs(request.advance_seconds))
    {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "this emulator runs on a clock that cannot be advanced"})),
        )
            .into_response();
    }
    axum::Json(json!({ "now": format_date_time(shared.clock.now()) })).into_response()
}

async fn faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match inject(&shared, fault) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => control_error(e),
    }
}

async fn deliveries(State(shared): State<Arc<Shared>>) -> Response {
    let list: Vec<_> = shared.with_state(|s| s.deliveries.iter().cloned().collect());
    axum::Json(json!({ "value": list })).into_response()
}
