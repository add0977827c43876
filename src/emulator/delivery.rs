//! Deliveries as Graph makes them: each matching subscription gets its items POSTed to its
//! notification URL in batches, retried with backoff on a 5xx, a 429, a timeout or no answer
//! within 3 seconds, and dropped after the retry window.
//!
//! Documented (cited where the constants live, in [`crate::subscription`]): the 3-second answer
//! ([`DELIVERY_ANSWER_TIMEOUT`]) and the 4-hour retry window ([`DELIVERY_RETRY_WINDOW`]) with
//! "exponential backoff". Chosen, as Graph does not document them, and configurable in
//! [`DeliveryPolicy`]: the batch size (100 items), the first retry delay (10 s), the factor (2)
//! and the longest delay (10 minutes). Other 4xx answers are not retried: the items are dropped.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::state::{Shared, Subscription, random_id};
use super::{Change, items};
use crate::subscription::{DELIVERY_ANSWER_TIMEOUT, DELIVERY_RETRY_WINDOW, format_date_time};

/// How deliveries are batched and retried.
///
/// ```
/// use std::time::Duration;
/// use msgraph_notify::emulator::DeliveryPolicy;
/// // A test that wants retries in milliseconds rather than Graph-like seconds:
/// let policy = DeliveryPolicy::default()
///     .batch_size(10)
///     .retry_delays(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(policy.batch_size, 10);
/// assert_eq!(DeliveryPolicy::default().answer_timeout, Duration::from_secs(3));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryPolicy {
    /// The most items in one POST (chosen: 100; Graph documents no number).
    pub batch_size: usize,
    /// How long a receiver has to answer (Graph: 3 seconds, documented).
    pub answer_timeout: Duration,
    /// The delay before the first retry (chosen: 10 seconds).
    pub first_retry: Duration,
    /// The longest delay between retries (chosen: 10 minutes).
    pub max_retry_delay: Duration,
    /// How long after the first attempt a batch is retried before it is dropped, measured on the
    /// emulator's clock (Graph: 4 hours, documented).
    pub retry_window: Duration,
    /// How many delivery records [`super::Emulator::deliveries`] keeps (the oldest are
    /// forgotten; chosen: 10,000). This bounds the emulator's memory for records.
    pub record_limit: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            batch_size: 100,
            answer_timeout: DELIVERY_ANSWER_TIMEOUT,
            first_retry: Duration::from_secs(10),
            max_retry_delay: Duration::from_secs(600),
            retry_window: DELIVERY_RETRY_WINDOW,
            record_limit: 10_000,
        }
    }
}

impl DeliveryPolicy {
    /// Sets the batch size (at least 1).
    pub fn batch_size(mut self, items: usize) -> Self {
        self.batch_size = items.max(1);
        self
    }

    /// Sets the first retry delay; each next one doubles, up to `max`.
    pub fn retry_delays(mut self, first: Duration, max: Duration) -> Self {
        self.first_retry = first;
        self.max_retry_delay = max.max(first);
        self
    }

    /// Sets the retry window.
    pub fn retry_window(mut self, window: Duration) -> Self {
        self.retry_window = window;
        self
    }

    /// Sets how long a receiver has to answer.
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }
}

/// One POST the emulator made: a delivery attempt, a lifecycle notification or a handshake.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// `notification`, `lifecycle` or `validation`.
    pub kind: &'static str,
    /// The subscription (none for a handshake).
    pub subscription_id: Option<String>,
    /// The URL posted to.
    pub url: String,
    /// 1 for the first attempt, then 2, 3...
    pub attempt: u32,
    /// The receiver's status, or none (no answer in time, or no connection).
    pub status: Option<u16>,
    /// How long the receiver took, in milliseconds.
    pub latency_ms: u64,
    /// How many items the POST carried.
    pub items: usize,
    /// Whether it was accepted (2xx; for a handshake, the token echoed).
    pub delivered: bool,
    /// When it was sent, on the emulator's clock.
    pub sent: String,
}

impl DeliveryRecord {
    pub(crate) fn validation(url: &str, status: Option<u16>, latency: Duration, ok: bool) -> Self {
        DeliveryRecord {
            kind: "validation",
            subscription_id: None,
            url: url.to_owned(),
            attempt: 1,
            status,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            items: 0,
            delivered: ok,
            sent: format_date_time(SystemTime::now()),
        }
    }
}

/// Whether `change`'s resource falls under `subscription`.
fn matches(subscription: &Subscription, resource: &str, change_type: &str) -> bool {
    use crate::resource::PathKind;
    let kind = PathKind::of(resource);
    if kind == PathKind::Other
        || PathKind::of(&subscription.resource) != kind
        || !subscription
            .change_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(change_type))
    {
        return false;
    }
    let sub = subscription.resource.to_ascii_lowercase();
    let changed = super::subscriptions::normalise(resource);
    if kind == PathKind::Presence {
        // `/communications/presences/{id}` or `…?$filter=id in ('a','b')`.
        let id = changed.rsplit('/').next().unwrap_or("");
        return super::subscriptions::normalise(&sub) == changed
            || sub.contains(&format!("'{id}'"));
    }
    sub.contains("getall") || changed.starts_with(&super::subscriptions::normalise(&sub))
}

/// Builds the items of `change` and starts delivering them to each matching subscription.
pub(crate) fn trigger(shared: &Arc<Shared>, change: &Change) -> Result<Vec<String>, String> {
    let change_type = change.change_type.as_deref().unwrap_or("updated");
    if !["created", "updated", "deleted"].contains(&change_type) {
        return Err(format!(
            "changeType {change_type:?}: created, updated or deleted"
        ));
    }
    let resources = items::resources(change)?;
    let now = shared.clock.now();
    let targets: Vec<Subscription> = shared.with_state(|s| {
        s.subscriptions
            .iter()
            .filter(|x| x.expiration > now && matches(x, &change.resource, change_type))
            .cloned()
            .collect()
    });
    for subscription in &targets {
        let mut built = Vec::with_capacity(resources.len());
        for resource in &resources {
            let item = items::notification(
                shared,
                subscription,
                &change.resource,
                change_type,
                resource,
            )
            .map_err(|e| e.to_string())?;
            built.push(item);
        }
        for batch in built.chunks(shared.config.delivery.batch_size.max(1)) {
            let shared = shared.clone();
            let subscription = subscription.clone();
            let batch = batch.to_vec();
            tokio::spawn(async move {
                deliver(&shared, &subscription, batch, "notification").await;
            });
        }
    }
    Ok(targets.into_iter().map(|s| s.id).collect())
}

/// The body of a POST of `items` to `subscription`: with validation tokens when it includes
/// resource data.
fn body(shared: &Shared, subscription: &Subscription, items: Vec<Value>) -> Value {
    let mut body = json!({ "value": items });
    if subscription.include_resource_data {
        // Only a failing RNG or backend fails to sign; the body then goes without tokens, which
        // a receiver rejects: the failure shows there, not as a silent success.
        if let Ok(token) = super::entra::validation_token(shared, &subscription.application_id) {
            body["validationTokens"] = json!([token]);
        }
    }
    body
}

/// POSTs `items` to the subscription's URL (the lifecycle URL for `lifecycle`), retrying as the
/// policy says until delivered, refused, past the window or the subscription is gone.
pub(crate) async fn deliver(
    shared: &Arc<Shared>,
    subscription: &Subscription,
    items: Vec<Value>,
    kind: &'static str,
) {
    let policy = &shared.config.delivery;
    let url = match kind {
        "lifecycle" => match &subscription.lifecycle_notification_url {
            Some(u) => u.clone(),
            None => return,
        },
        _ => subscription.notification_url.clone(),
    };
    let count = items.len();
    let payload = body(shared, subscription, items).to_string();
    let first = shared.clock.now();
    let mut delay = policy.first_retry;
    for attempt in 1u32.. {
        // A subscription deleted or expired meanwhile gets nothing more (lifecycle notices of a
        // removal still go out).
        let live = shared
            .subscription(&subscription.id)
            .is_some_and(|s| s.expiration > shared.clock.now());
        if !live && kind != "lifecycle" {
            return;
        }
        let waited = shared.clock.now().duration_since(first).unwrap_or_default();
        if waited > policy.retry_window {
            return;
        }
        let started = Instant::now();
        let answer = shared
            .http
            .post(&url)
            .header("content-type", "application/json; charset=utf-8")
            .header("client-request-id", random_id())
            .timeout(policy.answer_timeout)
            .body(payload.clone())
            .send()
            .await;
        let status = answer.as_ref().ok().map(|a| a.status().as_u16());
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        shared.record(DeliveryRecord {
            kind,
            subscription_id: Some(subscription.id.clone()),
            url: url.clone(),
            attempt,
            status,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            items: count,
            delivered,
            sent: format_date_time(shared.clock.now()),
        });
        let retry = match status {
            None => true,
            Some(s) => s >= 500 || s == 429,
        };
        if delivered || !retry {
            return;
        }
        let elapsed = shared.clock.now().duration_since(first).unwrap_or_default();
        if elapsed.saturating_add(delay) > policy.retry_window {
            return;
        }
        tokio::select! {
            () = shared.stopped() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = delay.saturating_mul(2).min(policy.max_retry_delay);
    }
}
