//! The validation handshake: before a subscription is created (or moved), Graph POSTs
//! `?validationToken=…` to the notification URL and the lifecycle URL, and requires the token
//! echoed as `text/plain` with 200 within 10 seconds, else the request fails with 400 (source:
//! learn.microsoft.com/graph/change-notifications-delivery-webhooks, "Notification endpoint
//! validation"; the answers' codes and messages are Graph's, as its clients report them).

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;

use super::delivery::DeliveryRecord;
use super::state::{Shared, graph_error, random_id};
use crate::subscription::VALIDATION_TIMEOUT;

/// The longest echo read (chosen; the token is about a hundred bytes).
const MAX_ECHO_BYTES: usize = 4096;

/// Graph's validation token: an opaque text, here with the request id as Graph's has one.
fn validation_token() -> String {
    format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        random_id()
    )
}

/// `url` with `validationToken` added to its query (a query already there is kept).
fn with_token(url: &str, token: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}validationToken={encoded}")
}

/// Runs the handshake with `url`; Graph's 400 when it fails.
pub(crate) async fn validate(shared: &Shared, url: &str) -> Result<(), Response> {
    let token = validation_token();
    let started = Instant::now();
    let answer = shared
        .http
        .post(with_token(url, &token))
        .header("content-type", "text/plain; charset=utf-8")
        .timeout(VALIDATION_TIMEOUT)
        .send()
        .await;
    let failed = |status: Option<u16>, message: &str, code: &str| {
        shared.record(DeliveryRecord::validation(
            url,
            status,
            started.elapsed(),
            false,
        ));
        Err(graph_error(StatusCode::BAD_REQUEST, code, message))
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) if e.is_timeout() => {
            return failed(
                None,
                "Subscription validation request timed out.",
                "InvalidRequest",
            );
        }
        Err(_) => {
            return failed(
                None,
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
                "ValidationError",
            );
        }
    };
    let status = answer.status().as_u16();
    let text_plain = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        });
    // The echo is small: read at most a few kilobytes, a larger answer is not the token.
    let mut answer = answer;
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = answer.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ECHO_BYTES {
            body.clear();
            break;
        }
    }
    if status != 200 {
        return failed(
            Some(status),
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            "ValidationError",
        );
    }
    if !text_plain || body != token.as_bytes() {
        return failed(
            Some(status),
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
            "ValidationError",
        );
    }
    shared.record(DeliveryRecord::validation(
        url,
        Some(status),
        started.elapsed(),
        true,
    ));
    Ok(())
}
