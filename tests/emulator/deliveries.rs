//! Deliveries: encrypted items verified against the emulator's published keys, retries of the
//! same items after a 503, expiry on the emulator's clock, and lifecycle notifications.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgraph_notify::Decryptor;
use msgraph_notify::emulator::{DeliveryPolicy, Emulator};
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::token::{Jwks, SigningKeys, Validation};
use serde_json::{Value, json};
use test_support::emulator::Endpoint;

use crate::*;

const PATIENCE: Duration = Duration::from_secs(20);

/// A receiver trusting the emulator's published signing keys (fetched from its JWKS URL).
async fn receiver(emulator: &Emulator) -> Receiver {
    let jwks = reqwest::get(emulator.jwks_url())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (key, cert) = receiver_keys();
    let decryptor = Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap();
    Receiver::builder(decryptor)
        .validation(Validation::new([APP_ID]).allow_tenants([emulator.tenant_id()]))
        .signing_keys(SigningKeys::new(Jwks::from_json(&jwks).unwrap()))
        .client_state("emulator-client-state")
        .build()
        .unwrap()
}

async fn subscribe(emulator: &Emulator, token: &str, body: &Value) -> String {
    let (status, created) = graph(emulator, "POST", "/subscriptions", token, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn control(emulator: &Emulator, path: &str, body: &Value) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/{path}", emulator.base_url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

fn items(bodies: &[Value]) -> Vec<Value> {
    bodies
        .iter()
        .flat_map(|b| b["value"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_chat_message_and_call_event_changes_decrypt_with_tokens_from_the_published_keys()
{
    let emulator = builder().start().await.unwrap();
    let token = access_token(&emulator).await;
    let sink = Endpoint::echoing();
    let url = sink.url("/notify");
    let lifecycle = sink.url("/lifecycle");
    let meeting = "communications/onlineMeetings(joinWebUrl='https://teams.example/l/meetup-join/1')/meetingCallEvents";
    subscribe(
        &emulator,
        &token,
        &create_body(
            &emulator,
            "/communications/presences/u1",
            "updated",
            &url,
            None,
            50,
        ),
    )
    .await;
    subscribe(
        &emulator,
        &token,
        &create_body(
            &emulator,
            "/chats/getAllMessages",
            "created,updated",
            &url,
            Some(&lifecycle),
            600,
        ),
    )
    .await;
    subscribe(
        &emulator,
        &token,
        &create_body(&emulator, meeting, "updated", &url, Some(&lifecycle), 600),
    )
    .await;

    let presence = json!({"id": "u1", "availability": "Busy", "activity": "InACall"});
    let (status, answer) = control(&emulator, "changes", &json!({"resource": "communications/presences/u1", "changeType": "updated", "data": presence})).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["subscriptionIds"].as_array().unwrap().len(), 1);
    let (status, _) = control(
        &emulator,
        "changes",
        &json!({"resource": "chats('19:abc')/messages('1')", "changeType": "created", "count": 3}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = control(
        &emulator,
        "changes",
        &json!({"resource": meeting, "count": 1}),
    )
    .await;
    assert_eq!(status, 202);
    // Another user's presence and a deleted message match no subscription.
    let (_, none) = control(
        &emulator,
        "changes",
        &json!({"resource": "communications/presences/u2", "count": 1}),
    )
    .await;
    assert_eq!(none["subscriptionIds"], json!([]));
    let (_, none) = control(
        &emulator,
        "changes",
        &json!({"resource": "chats('19:abc')/messages('1')", "changeType": "deleted", "count": 1}),
    )
    .await;
    assert_eq!(none["subscriptionIds"], json!([]));

    let bodies = sink.wait_notifications(PATIENCE, |b| items(b).len() >= 5);
    assert_eq!(items(&bodies).len(), 5, "{bodies:?}");
    let receiver = receiver(&emulator).await;
    let mut kinds = Vec::new();
    for body in &bodies {
        assert_eq!(body["validationTokens"].as_array().unwrap().len(), 1);
        let Reply::Notifications(outcomes) =
            receiver.receive(None, body.to_string().as_bytes()).unwrap()
        else {
            panic!("not notifications");
        };
        for item in outcomes {
            let Outcome::Decrypted(d) = item.outcome else {
                panic!("not decrypted: {:?}", item.outcome);
            };
            let plain: Value = serde_json::from_slice(d.plaintext.as_bytes()).unwrap();
            kinds.push(plain["@odata.type"].as_str().unwrap().to_owned());
            if plain["@odata.type"] == "#microsoft.graph.presence" {
                assert_eq!(plain["availability"], "Busy");
                assert_eq!(
                    d.notification.resource.as_deref(),
                    Some("communications/presences/u1")
                );
            }
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "#microsoft.graph.callEvent",
            "#microsoft.graph.chatMessage",
            "#microsoft.graph.chatMessage",
            "#microsoft.graph.chatMessage",
            "#microsoft.graph.presence"
        ]
    );
    // The deliveries log names each attempt.
    let (_, log) = {
        let answer = reqwest::get(format!("{}/_emulator/deliveries", emulator.base_url()))
            .await
            .unwrap();
        (
            answer.status().as_u16(),
            answer.json::<Value>().await.unwrap(),
        )
    };
    let notifications: Vec<_> = log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "notification")
        .collect();
    assert_eq!(notifications.len(), 3);
    assert!(
        notifications
            .iter()
            .all(|d| d["status"] == 202 && d["attempt"] == 1 && d["url"] == url.as_str())
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_503_gets_the_same_items_again_and_none_is_lost() {
    let policy = DeliveryPolicy::default()
        .batch_size(2)
        .retry_delays(Duration::from_millis(100), Duration::from_millis(400));
    let emulator = builder().delivery(policy).start().await.unwrap();
    let token = access_token(&emulator).await;
    let refused = Arc::new(Mutex::new(Vec::<Value>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (log, n) = (refused.clone(), count.clone());
    let sink = Endpoint::start(move |r| {
        if let Some(token) = r.validation_token() {
            return (200, "text/plain", token);
        }
        if n.fetch_add(1, Ordering::SeqCst) < 3 {
            log.lock()
                .unwrap()
                .push(serde_json::from_str(&r.body).unwrap());
            return (503, "text/plain", String::new());
        }
        (202, "text/plain", String::new())
    });
    subscribe(
        &emulator,
        &token,
        &create_body(
            &emulator,
            "/chats/c9/messages",
            "created",
            &sink.url("/n"),
            None,
            50,
        ),
    )
    .await;
    let (status, _) = control(
        &emulator,
        "changes",
        &json!({"resource": "chats/c9/messages/1", "changeType": "created", "count": 5}),
    )
    .await;
    assert_eq!(status, 202);
    let id = |i: &Value| i["id"].as_str().unwrap().to_owned();
    // 3 batches (2, 2, 1) delivered, plus the 3 refused attempts.
    let bodies = sink.wait_notifications(PATIENCE, |b| b.len() >= 6);
    assert_eq!(bodies.len(), 6);
    let refused = items(&refused.lock().unwrap());
    let mut accepted: Vec<Value> = items(&bodies);
    for r in &refused {
        let pos = accepted
            .iter()
            .position(|a| a == r)
            .expect("a refused item was sent again, byte for byte");
        accepted.remove(pos);
    }
    let mut ids: Vec<String> = accepted.iter().map(id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every item delivered once accepted: {ids:?}");
    let log = emulator.deliveries();
    let retried: Vec<_> = log
        .iter()
        .filter(|d| d.kind == "notification" && d.attempt > 1)
        .collect();
    assert_eq!(retried.len(), 3, "{log:?}");
    assert!(
        log.iter()
            .filter(|d| d.status == Some(503))
            .all(|d| !d.delivered)
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_2xx_is_dropped_after_the_retry_window() {
    let policy = DeliveryPolicy::default()
        .retry_delays(Duration::from_millis(50), Duration::from_millis(50))
        .answer_timeout(Duration::from_millis(500));
    let emulator = builder().delivery(policy).start().await.unwrap();
    let token = access_token(&emulator).await;
    let sink = Endpoint::start(|r| match r.validation_token() {
        Some(t) => (200, "text/plain", t),
        None => (500, "text/plain", String::new()),
    });
    // 600 minutes: the subscription outlives the 4-hour window.
    let body = create_body(
        &emulator,
        "/chats/c9/messages",
        "created",
        &sink.url("/n"),
        Some(&sink.url("/l")),
        600,
    );
    subscribe(&emulator, &token, &body).await;
    control(
        &emulator,
        "changes",
        &json!({"resource": "chats/c9/messages/1", "changeType": "created", "count": 1}),
    )
    .await;
    sink.wait_notifications(PATIENCE, |b| b.len() >= 3);
    // Four hours pass on the emulator's clock.
    let (status, _) = control(
        &emulator,
        "clock",
        &json!({"advanceSeconds": 4 * 3600 + 60}),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = sink.notifications().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.notifications().len(),
        settled,
        "retries stopped after the window"
    );
    assert_eq!(
        emulator.subscriptions().len(),
        1,
        "the subscription itself lives on"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_past_expiry_stops_deliveries_and_deletes_the_subscription() {
    let emulator = builder().start().await.unwrap();
    let token = access_token(&emulator).await;
    let sink = Endpoint::echoing();
    let id = subscribe(
        &emulator,
        &token,
        &create_body(
            &emulator,
            "/communications/presences/u1",
            "updated",
            &sink.url("/n"),
            None,
            50,
        ),
    )
    .await;
    let change = json!({"resource": "communications/presences/u1", "count": 1});
    control(&emulator, "changes", &change).await;
    assert_eq!(
        sink.wait_notifications(PATIENCE, |b| !b.is_empty()).len(),
        1
    );
    let (status, now) = control(&emulator, "clock", &json!({"advanceSeconds": 3600})).await;
    assert_eq!(status, 200, "{now}");
    let (_, answer) = control(&emulator, "changes", &change).await;
    assert_eq!(answer["subscriptionIds"], json!([]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(emulator.subscriptions().is_empty());
    let (status, _) = graph(
        &emulator,
        "GET",
        &format!("/subscriptions/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(sink.notifications().len(), 1);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lifecycle_event_arrives_at_the_lifecycle_url() {
    let emulator = builder()
        .access_token_lifetime(Duration::from_secs(4))
        .reauthorization_lead(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let token = access_token(&emulator).await;
    let notifications = Endpoint::echoing();
    let lifecycle = Endpoint::echoing();
    let body = create_body(
        &emulator,
        "/chats/getAllMessages",
        "created",
        &notifications.url("/n"),
        Some(&lifecycle.url("/l")),
        120,
    );
    let id = subscribe(&emulator, &token, &body).await;
    // reauthorizationRequired comes by itself before the token that created it expires.
    let got = lifecycle.wait_notifications(PATIENCE, |b| !b.is_empty());
    assert_eq!(items(&got)[0]["lifecycleEvent"], "reauthorizationRequired");
    for event in ["missed", "subscriptionRemoved"] {
        let (status, answer) = control(
            &emulator,
            "lifecycle",
            &json!({"subscriptionId": id, "event": event}),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
    }
    let got = lifecycle.wait_notifications(PATIENCE, |b| b.len() >= 3);
    let receiver = receiver(&emulator).await;
    let mut events = Vec::new();
    for body in &got {
        let Reply::Notifications(outcomes) =
            receiver.receive(None, body.to_string().as_bytes()).unwrap()
        else {
            panic!("not notifications");
        };
        for item in outcomes {
            let Outcome::Lifecycle(notice) = item.outcome else {
                panic!("not lifecycle: {:?}", item.outcome);
            };
            events.push(notice.event.as_str().to_owned());
        }
    }
    assert_eq!(
        events,
        ["reauthorizationRequired", "missed", "subscriptionRemoved"]
    );
    assert!(
        items(&got)
            .iter()
            .all(|i| i["subscriptionId"] == id.as_str())
    );
    assert!(notifications.notifications().is_empty());
    // subscriptionRemoved removed it; an unknown event is refused.
    assert!(emulator.subscriptions().is_empty());
    let (status, _) = control(
        &emulator,
        "lifecycle",
        &json!({"subscriptionId": id, "event": "missed"}),
    )
    .await;
    assert_eq!(status, 400);
    emulator.shutdown().await;
}
