//! Graph's subscription API: create, list, read, update, delete, reauthorize, with the rules the
//! documentation gives (from [`crate::subscription`], where each cites its source) and Graph's
//! error format.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::handshake;
use super::state::{Shared, Subscription, graph_error, random_id};
use crate::resource::PathKind;
use crate::subscription::{
    MAX_CERTIFICATE_ID_CHARS, MAX_CLIENT_STATE_CHARS, MIN_LIFETIME, ResourceLimits,
    SubscriptionError, parse_date_time,
};
use crate::subscription::{check_change_types, check_length, check_resource, check_url};

/// Teams subscriptions per organisation (source:
/// learn.microsoft.com/graph/teams-changenotifications-chatmessage, "Subscription quotas": "10,000
/// subscriptions per organization"... applied here to every Teams kind).
const TEAMS_PER_ORGANISATION: usize = 10_000;
/// Copilot `aiInteraction` subscriptions per app and tenant (source:
/// learn.microsoft.com/graph/aiinteraction-changenotifications: "one subscription per
/// application per tenant").
const AI_INTERACTIONS_PER_APP: usize = 1;

fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn refuse(e: &SubscriptionError) -> Response {
    bad_request(&e.to_string())
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The object was not found: subscription '{id}' does not exist or has expired."),
    )
}

/// The app of the request's bearer token and its `exp`, or Graph's 401.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(String, u64), Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .and(v.get(7..))
        })
        .map(str::trim)
        .unwrap_or("");
    if token.is_empty() {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    }
    super::entra::check_access_token(shared, token)
        .map_err(|m| graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", &m))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_request("The request body must be a JSON object.")),
        Err(e) => Err(bad_request(&format!(
            "Invalid JSON in the request body: {e}."
        ))),
    }
}

fn string_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Option<&'a str>, Response> {
    match body.get(name) {
        None | Some(Value::Null) if required => Err(bad_request(&format!(
            "The property '{name}' is required to create a subscription."
        ))),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(&format!(
            "The property '{name}' must be a string."
        ))),
    }
}

/// `notificationUrl` and `lifecycleNotificationUrl`: HTTPS, or `http://` to the loopback when the
/// emulator allows it.
fn check_notification_url(shared: &Shared, field: &'static str, url: &str) -> Result<(), Response> {
    let loopback_http = shared.config.allow_http
        && ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| url.starts_with(p));
    if loopback_http {
        return Ok(());
    }
    check_url(field, url).map_err(|e| {
        bad_request(&format!(
            "{e} (Graph delivers only over HTTPS; the emulator allows http:// to the loopback with --allow-http)"
        ))
    })
}

/// The lifetime granted for `expiration` asked at `now`, or Graph's refusal.
fn grant(
    shared: &Shared,
    limits: &ResourceLimits,
    expiration: &str,
    now: SystemTime,
) -> Result<(SystemTime, Duration), Response> {
    let asked = parse_date_time(expiration).ok_or_else(|| {
        bad_request(&format!(
            "expirationDateTime '{expiration}' is not an ISO 8601 UTC date-time (2026-11-29T23:00:00.0000000Z)."
        ))
    })?;
    let lifetime = asked.duration_since(now).map_err(|_| {
        bad_request(&format!(
            "Subscription expiration date '{expiration}' is in the past."
        ))
    })?;
    if lifetime > limits.max_lifetime {
        return Err(bad_request(&format!(
            "Subscription expiration can only be {} minutes in the future for {} resources.",
            limits.max_lifetime.as_secs() / 60,
            limits.kind.as_str()
        )));
    }
    // Graph raises a lifetime under the floor to the floor; --max-lifetime may cut below it.
    let mut granted = lifetime.max(MIN_LIFETIME);
    if let Some(max) = shared.config.max_lifetime {
        granted = granted.min(max);
    }
    Ok((now + granted, lifetime))
}

fn check_lifecycle_url(
    limits: &ResourceLimits,
    lifetime: Duration,
    lifecycle: Option<&str>,
) -> Result<(), Response> {
    if lifecycle.is_none() && limits.lifecycle_url_required(lifetime) {
        return Err(refuse(&SubscriptionError::LifecycleUrlRequired {
            kind: limits.kind.as_str(),
            minutes: lifetime.as_secs() / 60,
        }));
    }
    Ok(())
}

/// `encryptionCertificate` (base64 DER, RSA of 2,048 to 4,096 bits) and its id.
fn check_certificate(
    body: &Map<String, Value>,
) -> Result<Option<(crate::keys::Certificate, String, String)>, Response> {
    let include = body
        .get("includeResourceData")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !include {
        return Ok(None);
    }
    let (Some(cert), Some(id)) = (
        string_field(body, "encryptionCertificate", false)?,
        string_field(body, "encryptionCertificateId", false)?,
    ) else {
        return Err(bad_request(
            "When includeResourceData is true, encryptionCertificate and encryptionCertificateId are required.",
        ));
    };
    check_length("encryptionCertificateId", id, MAX_CERTIFICATE_ID_CHARS)
        .map_err(|e| refuse(&e))?;
    let der = crate::crypto::b64_decode("encryptionCertificate", cert)
        .map_err(|_| bad_request("encryptionCertificate is not base64 (standard, padded)."))?;
    let parsed = crate::keys::Certificate::from_der(&der).map_err(|e| {
        bad_request(&format!(
            "encryptionCertificate is not a usable RSA certificate of 2,048 to 4,096 bits: {e}"
        ))
    })?;
    Ok(Some((parsed, cert.to_owned(), id.to_owned())))
}

/// The 403 of a quota, if `app_id` creating on `resource` would exceed one.
fn check_quotas(
    shared: &Shared,
    app_id: &str,
    limits: &ResourceLimits,
    resource: &str,
) -> Result<(), Response> {
    let teams = limits.lifecycle_url_required_over_one_hour && limits.kind != PathKind::Presence;
    let normal = normalise(resource);
    let quota = |message: String| graph_error(StatusCode::FORBIDDEN, "ExtensionError", &message);
    shared.with_state(|s| {
        let same_kind = || s.subscriptions.iter().filter(|x| PathKind::of(&x.resource) == limits.kind);
        if limits.kind == PathKind::AiInteraction && same_kind().filter(|x| x.application_id == app_id).count() >= AI_INTERACTIONS_PER_APP {
            return Err(quota("Operation: Create; Exception: [Status Code: Forbidden; Reason: only one aiInteraction subscription per application per tenant.]".into()));
        }
        if teams && same_kind().filter(|x| x.application_id == app_id).any(|x| normalise(&x.resource) == normal) {
            return Err(quota(format!("Operation: Create; Exception: [Status Code: Forbidden; Reason: The app already has a subscription to '{resource}' (one per app per chat or channel).]")));
        }
        if s.subscriptions.len() >= super::state::MAX_SUBSCRIPTIONS {
            return Err(quota(format!("Operation: Create; Exception: [Status Code: Forbidden; Reason: the emulator holds at most {} subscriptions.]", super::state::MAX_SUBSCRIPTIONS)));
        }
        let teams_total = s.subscriptions.iter().filter(|x| ResourceLimits::of(&x.resource).is_some_and(|l| l.lifecycle_url_required_over_one_hour && l.kind != PathKind::Presence)).count();
        if teams && teams_total >= TEAMS_PER_ORGANISATION {
            return Err(quota(format!("Operation: Create; Exception: [Status Code: Forbidden; Reason: the organisation has reached {TEAMS_PER_ORGANISATION} Teams subscriptions.]")));
        }
        Ok(())
    })
}

/// A resource path compared without case, leading `/` or query.
pub(crate) fn normalise(resource: &str) -> String {
    let path = resource.split('?').next().unwrap_or(resource);
    path.trim_start_matches('/').to_ascii_lowercase()
}

/// `POST /{version}/subscriptions`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match create_inner(&shared, &version, &headers, &body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn create_inner(
    shared: &Arc<Shared>,
    version: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let (app_id, token_exp) = authorize(shared, headers)?;
    let body = parse_object(body)?;
    let change_type = string_field(&body, "changeType", true)?.unwrap_or_default();
    let notification_url = string_field(&body, "notificationUrl", true)?.unwrap_or_default();
    let resource = string_field(&body, "resource", true)?.unwrap_or_default();
    let expiration = string_field(&body, "expirationDateTime", true)?.unwrap_or_default();
    let lifecycle = string_field(&body, "lifecycleNotificationUrl", false)?;
    let client_state = string_field(&body, "clientState", false)?;
    let limits = check_resource(resource).map_err(|e| refuse(&e))?;
    if limits.kind == PathKind::Presence && shared.config.app_only_presence_refused {
        return Err(graph_error(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: presence subscriptions support only delegated permissions (Presence.Read.All); application permissions are not supported.]",
        ));
    }
    let types: Vec<&str> = change_type.split(',').collect();
    let change_types = check_change_types(limits, &types).map_err(|e| refuse(&e))?;
    check_notification_url(shared, "notificationUrl", notification_url)?;
    if let Some(url) = lifecycle {
        check_notification_url(shared, "lifecycleNotificationUrl", url)?;
    }
    let certificate = check_certificate(&body)?;
    if let Some(secret) = client_state {
        check_length("clientState", secret, MAX_CLIENT_STATE_CHARS).map_err(|e| refuse(&e))?;
    }
    let now = shared.clock.now();
    let (granted, asked) = grant(shared, limits, expiration, now)?;
    check_lifecycle_url(limits, asked, lifecycle)?;
    check_quotas(shared, &app_id, limits, resource)?;
    handshake::validate(shared, notification_url).await?;
    if let Some(url) = lifecycle {
        handshake::validate(shared, url).await?;
    }
    let (certificate, encryption_certificate, certificate_id) = match certificate {
        Some((c, b, i)) => (Some(c), Some(b), Some(i)),
        None => (None, None, None),
    };
    let subscription = Subscription {
        id: random_id(),
        resource: resource.to_owned(),
        change_types,
        notification_url: notification_url.to_owned(),
        lifecycle_notification_url: lifecycle.map(str::to_owned),
        include_resource_data: certificate.is_some(),
        encryption_certificate_id: certificate_id,
        expiration: granted,
        application_id: app_id,
        client_state: client_state.map(|s| zeroize::Zeroizing::new(s.to_owned())),
        certificate,
        encryption_certificate,
        token_expires: SystemTime::UNIX_EPOCH + Duration::from_secs(token_exp),
        reauthorization_sent: false,
        version: if version == "beta" { "beta" } else { "v1.0" },
    };
    let answer = subscription.to_json(&shared.base_url);
    shared.with_state(|s| s.subscriptions.push(subscription));
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// The subscription `id` when the caller's app owns it.
fn owned(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Subscription, String, u64), Response> {
    let (app_id, exp) = authorize(shared, headers)?;
    match shared.subscription(id) {
        Some(s) if crate::token::ids_equal(&s.application_id, &app_id) => Ok((s, app_id, exp)),
        _ => Err(not_found(id)),
    }
}

/// `GET /{version}/subscriptions`: the caller's app's subscriptions.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (app_id, _) = match authorize(&shared, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let value: Vec<Value> = shared.with_state(|s| {
        s.subscriptions
            .iter()
            .filter(|x| x.application_id == app_id)
            .map(|x| {
                let mut v = x.to_json(&shared.base_url);
                if let Some(m) = v.as_object_mut() {
                    m.remove("@odata.context");
                }
                v
            })
            .collect()
    });
    axum::Json(json!({
        "@odata.context": format!("{}/{version}/$metadata#subscriptions", shared.base_url),
        "value": value,
    }))
    .into_response()
}

/// `GET /{version}/subscriptions/{id}`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match owned(&shared, &headers, &id) {
        Ok((s, _, _)) => axum::Json(s.to_json(&shared.base_url)).into_response(),
        Err(r) => r,
    }
}

/// `DELETE /{version}/subscriptions/{id}`.
pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match owned(&shared, &headers, &id) {
        Ok(_) => {
            shared.with_state(|s| s.subscriptions.retain(|x| x.id != id));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

/// `POST /{version}/subscriptions/{id}/reauthorize`: the subscription lives on under the new
/// token; no new expiry.
pub(crate) async fn reauthorize(
    State(shared): State<Arc<Shared>>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match owned(&shared, &headers, &id) {
        Ok((_, _, exp)) => {
            update(&shared, &id, |x| {
                x.token_expires = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
                x.reauthorization_sent = false;
            });
            StatusCode::OK.into_response()
        }
        Err(r) => r,
    }
}

fn update(shared: &Shared, id: &str, f: impl FnOnce(&mut Subscription)) -> Option<Subscription> {
    shared.with_state(|s| {
        let x = s.subscriptions.iter_mut().find(|x| x.id == id)?;
        f(x);
        Some(x.clone())
    })
}

/// `PATCH /{version}/subscriptions/{id}`: renew (`expirationDateTime`, which also reauthorizes),
/// move (`notificationUrl`, handshaken again), rotate keys (`encryptionCertificate` and its id).
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match patch_inner(&shared, &id, &headers, &body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn patch_inner(
    shared: &Arc<Shared>,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Response> {
    let (current, _, token_exp) = owned(shared, headers, id)?;
    let body = parse_object(body)?;
    if body.contains_key("lifecycleNotificationUrl") && current.lifecycle_notification_url.is_none()
    {
        return Err(bad_request(
            "lifecycleNotificationUrl cannot be added to an existing subscription: delete it and create it again with one.",
        ));
    }
    for fixed in ["resource", "changeType", "includeResourceData"] {
        if body.contains_key(fixed) {
            return Err(bad_request(&format!(
                "The property '{fixed}' cannot be updated."
            )));
        }
    }
    let limits = check_resource(&current.resource).map_err(|e| refuse(&e))?;
    let now = shared.clock.now();
    let renewal = match string_field(&body, "expirationDateTime", false)? {
        Some(expiration) => {
            let (granted, asked) = grant(shared, limits, expiration, now)?;
            check_lifecycle_url(limits, asked, current.lifecycle_notification_url.as_deref())?;
            Some(granted)
        }
        None => None,
    };
    let url = string_field(&body, "notificationUrl", false)?;
    if let Some(url) = url {
        check_notification_url(shared, "notificationUrl", url)?;
    }
    let certificate = if body.contains_key("encryptionCertificate")
        || body.contains_key("encryptionCertificateId")
    {
        let mut with_flag = body.clone();
        with_flag.insert("includeResourceData".into(), true.into());
        check_certificate(&with_flag)?
    } else {
        None
    };
    if let Some(url) = url {
        handshake::validate(shared, url).await?;
    }
    let updated = update(shared, id, |x| {
        if let Some(granted) = renewal {
            x.expiration = granted;
            x.token_expires = SystemTime::UNIX_EPOCH + Duration::from_secs(token_exp);
            x.reauthorization_sent = false;
        }
        if let Some(url) = url {
            x.notification_url = url.to_owned();
        }
        if let Some((cert, b64, cert_id)) = certificate {
            x.certificate = Some(cert);
            x.encryption_certificate = Some(b64);
            x.encryption_certificate_id = Some(cert_id);
        }
    })
    .ok_or_else(|| not_found(id))?;
    Ok(axum::Json(updated.to_json(&shared.base_url)).into_response())
}
