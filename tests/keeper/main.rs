//! The subscription keeper (feature `manage`) against the Graph emulator (feature `emulator`)
//! over real sockets: the keeper and the emulator share one manual clock, so 48 hours pass in
//! seconds; the receiver is a real HTTP endpoint on 127.0.0.1 that echoes Graph's handshakes.

use std::time::Duration;

use msgraph_notify::clock::{Clock, ManualClock};
use msgraph_notify::emulator::{Change, Emulator};
use msgraph_notify::model::ChangeNotificationCollection;
use msgraph_notify::subscription::{
    ClientCredentials, DesiredSubscription, FileState, GraphClient, Keeper, KeeperEvent,
    MemoryState, RetryPolicy, StateStore,
};
use msgraph_notify::{Certificate, Decryptor, KeyRing, PrivateKey};
use serde_json::{Value, json};
use test_support::emulator::Endpoint;

#[cfg(feature = "redis")]
mod replicas;

const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
const CERT_ID: &str = "keeper-cert";
const CLIENT_STATE: &str = "keeper client state";
const PRESENCE: &str = "/communications/presences/4f3e8b2a-9c1d-4e5f-8a6b-7c8d9e0f1a2b";
const CHATS: &str = "/chats/getAllMessages";

fn app_keys() -> &'static (PrivateKey, Certificate) {
    test_support::other_keypair()
}

fn receiver_keys() -> &'static (PrivateKey, Certificate) {
    test_support::keypair(2048)
}

struct World {
    emulator: Emulator,
    clock: ManualClock,
    endpoint: Endpoint,
}

async fn world() -> World {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let clock = ManualClock::new();
    let emulator = Emulator::builder()
        .app_with_certificate(APP_ID, app_keys().1.clone())
        .allow_http(true)
        .clock(clock.clone())
        .start()
        .await
        .expect("emulator");
    World {
        emulator,
        clock,
        endpoint: Endpoint::echoing(),
    }
}

impl World {
    /// A Graph client authenticated with a PS256 certificate assertion, retrying fast.
    fn graph(&self) -> GraphClient {
        let (key, cert) = app_keys();
        let tokens = ClientCredentials::with_certificate(
            self.emulator.base_url(),
            self.emulator.tenant_id(),
            APP_ID,
            test_support::copy_key(key),
            cert,
        )
        .expect("credentials");
        GraphClient::new(self.emulator.graph_url(), tokens)
            .expect("client")
            .retry_policy(
                RetryPolicy::default()
                    .max_attempts(4)
                    .base_delay(Duration::from_millis(20))
                    .max_delay(Duration::from_secs(3)),
            )
    }

    /// A presence subscription (60-minute maximum) and a chat-message one with a lifecycle URL
    /// and a 2-hour lifetime.
    fn desired(&self) -> Vec<DesiredSubscription> {
        DesiredSubscription::from_json(
            &json!([
                {"resource": PRESENCE, "notificationUrl": self.endpoint.url("/notify"),
                 "encryptionCertificateId": CERT_ID},
                {"resource": CHATS, "changeType": "created,updated",
                 "notificationUrl": self.endpoint.url("/notify"),
                 "lifecycleNotificationUrl": self.endpoint.url("/lifecycle"),
                 "encryptionCertificateId": CERT_ID, "expirationMinutes": 120}
            ])
            .to_string(),
        )
        .expect("desired")
    }

    fn keeper(&self, store: impl StateStore + 'static) -> Keeper {
        Keeper::new(self.graph(), self.desired(), store)
            .clock(self.clock.clone())
            .certificate(CERT_ID, receiver_keys().1.clone())
            .client_state(CLIENT_STATE)
    }

    /// The lifecycle notifications the endpoint received at /lifecycle, oldest first.
    fn lifecycle_notifications(&self) -> Vec<msgraph_notify::ChangeNotification> {
        self.endpoint
            .requests()
            .into_iter()
            .filter(|r| r.target.starts_with("/lifecycle") && r.validation_token().is_none())
            .flat_map(|r| {
                serde_json::from_str::<ChangeNotificationCollection>(&r.body)
                    .expect("a collection")
                    .value
            })
            .collect()
    }
}

fn names(events: &[KeeperEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let json = e.to_json();
            json["keeper"]
                .as_str()
                .or(json["status"].as_str())
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

fn created_id(events: &[KeeperEvent], resource: &str) -> String {
    events
        .iter()
        .find_map(|e| match e {
            KeeperEvent::Created { key, id, .. } if key.contains(resource) => Some(id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no subscription created for {resource}: {events:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscriptions_live_through_48_simulated_hours_with_renewals_in_the_last_quarter() {
    let w = world().await;
    let keeper = w.keeper(MemoryState::default());
    assert!(keeper.start().await.is_empty());
    let events = keeper.reconcile().await;
    assert_eq!(names(&events), ["created", "created"], "{events:?}");
    let presence = created_id(&events, PRESENCE);
    let chats = created_id(&events, CHATS);

    let step = Duration::from_secs(5 * 60);
    let mut renewals = Vec::new();
    for _ in 0..(48 * 12) {
        w.clock.advance(step);
        let now = w.clock.now();
        // Before the keeper acts: what was renewed last time must still be alive now.
        let live = w.emulator.subscriptions();
        for id in [&presence, &chats] {
            let sub = live
                .iter()
                .find(|s| &s.id == id)
                .unwrap_or_else(|| panic!("{id} expired or was removed at {now:?}"));
            assert!(sub.expiration > now, "{id} past its expiry");
        }
        let kept_before = keeper.kept().await;
        for event in keeper.reconcile().await {
            match event {
                KeeperEvent::Renewed { id, .. } => {
                    let before = kept_before.iter().find(|k| k.id == id).unwrap();
                    let expiry =
                        msgraph_notify::subscription::parse_date_time(&before.expiration_date_time)
                            .unwrap();
                    let remaining = expiry.duration_since(now).unwrap();
                    assert!(
                        remaining <= Duration::from_secs(before.lifetime_seconds / 4),
                        "{id} renewed with {remaining:?} of {}s left",
                        before.lifetime_seconds
                    );
                    // And not later than the first step after that (the manual clock runs on
                    // top of real time, so a renewal due "now" may fall to the next step).
                    assert!(
                        remaining + step + Duration::from_secs(1)
                            > Duration::from_secs(before.lifetime_seconds / 4),
                        "{id} renewed late, with {remaining:?} left"
                    );
                    renewals.push(id);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        w.emulator.subscriptions().len(),
        2,
        "no duplicate, none lost"
    );
    let count = |id: &str| renewals.iter().filter(|r| *r == id).count();
    // 60 minutes renewed 45 to 50 minutes in: 48 h / 50 min = 57 to 48 h / 45 min = 64; 120
    // minutes renewed 90 to 95 minutes in: 30 to 32.
    assert!(
        (57..=64).contains(&count(&presence)),
        "{}",
        count(&presence)
    );
    assert!((30..=32).contains(&count(&chats)), "{}", count(&chats));
    w.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_answered_reauthorize_recreate_and_resync() {
    let w = world().await;
    let keeper = w.keeper(MemoryState::default());
    let events = keeper.reconcile().await;
    let chats = created_id(&events, CHATS);

    // reauthorizationRequired within 10 minutes of the create: the create authorised it.
    w.emulator
        .lifecycle(&chats, "reauthorizationRequired")
        .unwrap();
    let lifecycle = wait_for(|| w.lifecycle_notifications(), 1).await;
    assert!(keeper.on_lifecycle(&lifecycle[0]).await.is_empty());

    // Later, it is reauthorized (and the next renewal waits 10 minutes).
    w.clock.advance(Duration::from_secs(11 * 60));
    w.emulator
        .lifecycle(&chats, "reauthorizationRequired")
        .unwrap();
    let lifecycle = wait_for(|| w.lifecycle_notifications(), 2).await;
    let events = keeper.on_lifecycle(&lifecycle[1]).await;
    assert_eq!(names(&events), ["reauthorized"], "{events:?}");

    // missed: a resync line for the application's delta query.
    w.emulator.lifecycle(&chats, "missed").unwrap();
    let lifecycle = wait_for(|| w.lifecycle_notifications(), 3).await;
    let events = keeper.on_lifecycle(&lifecycle[2]).await;
    assert_eq!(
        events.iter().map(KeeperEvent::to_json).collect::<Vec<_>>(),
        [json!({"status": "resync", "subscriptionId": chats, "resource": CHATS})]
    );

    // subscriptionRemoved: created again, one subscription per desired entry.
    w.emulator.lifecycle(&chats, "subscriptionRemoved").unwrap();
    let lifecycle = wait_for(|| w.lifecycle_notifications(), 4).await;
    let events = keeper.on_lifecycle(&lifecycle[3]).await;
    let new_id = match events.as_slice() {
        [
            KeeperEvent::Recreated {
                old_id, id, reason, ..
            },
        ] => {
            assert_eq!(old_id, &chats);
            assert_eq!(*reason, "subscriptionRemoved");
            id.clone()
        }
        other => panic!("{other:?}"),
    };
    let live: Vec<String> = w
        .emulator
        .subscriptions()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(live.contains(&new_id) && !live.contains(&chats), "{live:?}");
    assert_eq!(live.len(), 2);
    w.emulator.shutdown().await;
}

async fn wait_for<T>(get: impl Fn() -> Vec<T>, count: usize) -> Vec<T> {
    for _ in 0..200 {
        let got = get();
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} after 10 s");
}

async fn fault(emulator: &Emulator, fault: Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/faults", emulator.base_url()))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_and_an_outage_is_retried_later_without_duplicates() {
    let w = world().await;
    let keeper = w.keeper(MemoryState::default());
    // Two 429s with Retry-After: 1 s: the client waits and the creates succeed.
    fault(
        &w.emulator,
        json!({"status": 429, "retryAfterSeconds": 1, "count": 2, "path": "/subscriptions"}),
    )
    .await;
    let started = std::time::Instant::now();
    let events = keeper.reconcile().await;
    assert_eq!(names(&events), ["created", "created"], "{events:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );

    // An outage (503 for every request, longer than the client's attempts) at renewal time.
    fault(
        &w.emulator,
        json!({"status": 503, "count": 1000, "path": "/subscriptions"}),
    )
    .await;
    w.clock.advance(Duration::from_secs(46 * 60));
    let events = keeper.reconcile().await;
    assert!(
        events.iter().all(|e| matches!(e, KeeperEvent::Failed { action: "renew", error, .. } if error.is_transient())),
        "{events:?}"
    );
    assert!(!events.is_empty());
    // Graph is back; the presence subscription is renewed at the next pass after the wait.
    clear_faults(&w.emulator).await;
    w.clock.advance(Duration::from_secs(31));
    let events = keeper.reconcile().await;
    assert_eq!(names(&events), ["renewed"], "{events:?}");
    assert_eq!(w.emulator.subscriptions().len(), 2);
    w.emulator.shutdown().await;
}

/// Uses up the remaining injected faults with requests of the control's own.
async fn clear_faults(emulator: &Emulator) {
    let client = reqwest::Client::new();
    for _ in 0..1000 {
        let answer = client
            .get(format!("{}/subscriptions", emulator.graph_url()))
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() != 503 {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_adopts_the_same_subscriptions_from_the_state_file() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let state = FileState::new(dir.path().join("subscriptions.json"));
    let first = w.keeper(state.clone());
    let created = first.reconcile().await;
    let mut ids: Vec<String> = created
        .iter()
        .filter_map(|e| match e {
            KeeperEvent::Created { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.sort();
    drop(first); // as a kill -9 would: the state file was written at each change

    let second = w.keeper(state.clone());
    let adopted = second.start().await;
    let mut again: Vec<String> = adopted
        .iter()
        .filter_map(|e| match e {
            KeeperEvent::Adopted { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    again.sort();
    assert_eq!(again, ids);
    assert!(second.reconcile().await.is_empty(), "nothing created twice");
    assert_eq!(w.emulator.subscriptions().len(), 2);

    // A subscription deleted behind the keeper's back is created again at its renewal (404).
    let presence = w
        .emulator
        .subscriptions()
        .into_iter()
        .find(|s| s.resource == PRESENCE)
        .unwrap();
    let token = second_token(&w).await;
    let gone = reqwest::Client::new()
        .delete(format!(
            "{}/subscriptions/{}",
            w.emulator.graph_url(),
            presence.id
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 204);
    w.clock.advance(Duration::from_secs(46 * 60));
    let events = second.reconcile().await;
    assert!(
        events.iter().any(|e| matches!(e, KeeperEvent::Recreated { reason: "not found", old_id, .. } if *old_id == presence.id)),
        "{events:?}"
    );
    assert_eq!(w.emulator.subscriptions().len(), 2);
    w.emulator.shutdown().await;
}

async fn second_token(w: &World) -> String {
    use msgraph_notify::subscription::TokenSource;
    let (key, cert) = app_keys();
    ClientCredentials::with_certificate(
        w.emulator.base_url(),
        w.emulator.tenant_id(),
        APP_ID,
        test_support::copy_key(key),
        cert,
    )
    .unwrap()
    .fetch()
    .await
    .unwrap()
    .secret()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_patched_and_no_item_is_undecryptable() {
    let w = world().await;
    let keeper = w.keeper(MemoryState::default());
    keeper.reconcile().await;
    let (old_key, old_cert) = receiver_keys();
    let (new_key, new_cert) = test_support::keypair(3072);
    let mut ring = KeyRing::new();
    // The old key stays for items in flight; the notification's thumbprint picks the key.
    ring.add(
        CERT_ID,
        test_support::copy_key(old_key),
        Some(old_cert.clone()),
    )
    .unwrap();
    ring.add(
        CERT_ID,
        test_support::copy_key(new_key),
        Some(new_cert.clone()),
    )
    .unwrap();
    let decryptor = Decryptor::new(ring);

    // One change before the rotation, encrypted for the old certificate.
    w.emulator
        .trigger(&Change::generated(CHATS, 1))
        .expect("trigger");
    keeper.set_certificate(CERT_ID, new_cert.clone());
    let events = keeper.reconcile().await;
    assert_eq!(
        names(&events),
        ["certificateRotated", "certificateRotated"],
        "{events:?}"
    );
    w.emulator
        .trigger(&Change::generated(CHATS, 1))
        .expect("trigger");
    let bodies = w.endpoint.wait_notifications(Duration::from_secs(20), |b| {
        b.iter()
            .filter(|b| b["value"][0]["encryptedContent"].is_object())
            .count()
            >= 2
    });
    let mut thumbprints = Vec::new();
    for body in &bodies {
        for item in body["value"].as_array().unwrap() {
            let content = serde_json::from_value(item["encryptedContent"].clone()).unwrap();
            let plaintext = decryptor.decrypt(&content).expect("decryptable");
            assert!(
                plaintext.as_str().contains("@odata"),
                "{}",
                plaintext.as_str()
            );
            thumbprints.push(item["encryptedContent"]["encryptionCertificateThumbprint"].clone());
        }
    }
    assert!(thumbprints.contains(&json!(old_cert.thumbprint())));
    assert!(thumbprints.contains(&json!(new_cert.thumbprint())));
    w.emulator.shutdown().await;
}

/// A state the keeper cannot read the first time (a Redis timeout, an unreadable file).
#[derive(Default)]
struct Flaky {
    reads: std::sync::atomic::AtomicUsize,
    saved: std::sync::Mutex<Vec<msgraph_notify::subscription::KeptSubscription>>,
}

impl StateStore for Flaky {
    fn load(
        &self,
    ) -> Result<Vec<msgraph_notify::subscription::KeptSubscription>, msgraph_notify::KeeperError>
    {
        if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Err(msgraph_notify::KeeperError::State("read timed out".into()));
        }
        Ok(self.saved.lock().unwrap().clone())
    }

    fn save(
        &self,
        kept: &[msgraph_notify::subscription::KeptSubscription],
    ) -> Result<(), msgraph_notify::KeeperError> {
        *self.saved.lock().unwrap() = kept.to_vec();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_cannot_be_read_is_not_taken_for_an_empty_one() {
    let w = world().await;
    let keeper = w.keeper(Flaky::default());
    let events = keeper.start().await;
    assert!(
        matches!(
            events.as_slice(),
            [KeeperEvent::Failed {
                action: "adopt",
                ..
            }]
        ),
        "{events:?}"
    );
    // The next pass reads the state first (now it can), then creates what is missing.
    let events = keeper.reconcile().await;
    assert_eq!(names(&events), ["created", "created"], "{events:?}");
    assert_eq!(w.emulator.subscriptions().len(), 2);
    w.emulator.shutdown().await;
}
