//! Lifecycle: expiry (a subscription past its `expirationDateTime` on the emulator's clock stops
//! receiving and is deleted), `reauthorizationRequired` before the access token behind a
//! subscription expires, and lifecycle notifications on demand (source:
//! learn.microsoft.com/graph/change-notifications-lifecycle-events: `reauthorizationRequired` for
//! all resources, `subscriptionRemoved` for Outlook and Teams chatMessage, `missed` for Outlook;
//! sent to `lifecycleNotificationUrl`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::delivery::deliver;
use super::items;
use super::state::Shared;

/// How often the emulator looks for expired subscriptions and tokens about to expire (chosen).
const TICK: Duration = Duration::from_millis(100);

/// The lifecycle events Graph sends.
pub(crate) const EVENTS: [&str; 3] = ["reauthorizationRequired", "subscriptionRemoved", "missed"];

/// Until `stop`: deletes expired subscriptions, sends due `reauthorizationRequired`s.
pub(crate) async fn tick(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.stopped() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let now = shared.clock.now();
        let real_now = SystemTime::now();
        let lead = shared.config.reauthorization_lead;
        let due = shared.with_state(|s| {
            s.subscriptions.retain(|x| x.expiration > now);
            let mut due = Vec::new();
            for x in &mut s.subscriptions {
                if !x.reauthorization_sent
                    && x.lifecycle_notification_url.is_some()
                    && x.token_expires <= real_now + lead
                {
                    x.reauthorization_sent = true;
                    due.push(x.clone());
                }
            }
            due
        });
        for subscription in due {
            let item = items::lifecycle(&shared, &subscription, "reauthorizationRequired");
            let shared = shared.clone();
            tokio::spawn(async move {
                deliver(&shared, &subscription, vec![item], "lifecycle").await;
            });
        }
    }
}

/// Sends `event` for subscription `id` now; `subscriptionRemoved` also removes it, as Graph has.
pub(crate) fn send_event(shared: &Arc<Shared>, id: &str, event: &str) -> Result<(), String> {
    let Some(event) = EVENTS.iter().find(|e| e.eq_ignore_ascii_case(event)) else {
        return Err(format!("event {event:?}: one of {}", EVENTS.join(", ")));
    };
    let subscription = shared
        .subscription(id)
        .ok_or_else(|| format!("no subscription {id:?}"))?;
    if subscription.lifecycle_notification_url.is_none() {
        return Err(format!(
            "subscription {id:?} has no lifecycleNotificationUrl: Graph sends lifecycle notifications only there"
        ));
    }
    if *event == "subscriptionRemoved" {
        shared.with_state(|s| s.subscriptions.retain(|x| x.id != id));
    }
    let item = items::lifecycle(shared, &subscription, event);
    let shared = shared.clone();
    tokio::spawn(async move {
        deliver(&shared, &subscription, vec![item], "lifecycle").await;
    });
    Ok(())
}
