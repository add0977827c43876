//! Opt-in replay and duplicate detection, end to end through the `Receiver` with valid validation
//! tokens: a replayed POST's items are duplicates, distinct items are not, the memory forgets after
//! its TTL and stays within its capacity, and items without encrypted content are never tracked.

use std::time::Duration;

use msgraph_notify::model::LifecycleEvent;
use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use msgraph_notify::token::{TokenVersion, Validation};
use msgraph_notify::{ChangeNotification, Decryptor, Error};
use serde_json::{Value, json};
use test_support::issuer;

const APP: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const TENANT: &str = "22222222-aaaa-4bbb-8ccc-000000000002";
const SECRET: &str = "client-state-secret";

fn receiver(guard: ReplayGuard) -> Receiver {
    test_support::webhook(test_support::decryptor(), &[APP], SECRET)
        .replay_guard(guard)
        .build()
        .unwrap()
}

/// A fresh encrypted presence item (its own symmetric key, so its own dataSignature).
fn item(n: usize) -> ChangeNotification {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(TENANT, &format!("communications/presences/u{n}"));
    spec.client_state = Some(SECRET.into());
    let presence = json!({
        "@odata.type": "#microsoft.graph.presence",
        "id": format!("u{n}"),
        "availability": "Busy",
        "activity": "InACall",
    });
    GraphEncryptor::new(cert, "cert-1")
        .notification(&presence, &spec)
        .unwrap()
}

fn body(items: &[ChangeNotification]) -> Vec<u8> {
    body_of_values(items.iter().map(|n| serde_json::to_value(n).unwrap()))
}

fn body_of_values(values: impl IntoIterator<Item = Value>) -> Vec<u8> {
    json!({
        "value": values.into_iter().collect::<Vec<_>>(),
        "validationTokens": [issuer().token(TokenVersion::V2, APP, TENANT)],
    })
    .to_string()
    .into_bytes()
}

fn receive(receiver: &Receiver, body: &[u8]) -> Vec<Item> {
    match receiver.receive(None, body).expect("a well-formed body") {
        Reply::Notifications(items) => items,
        other => panic!("expected notifications, got {other:?}"),
    }
}

fn statuses(items: &[Item]) -> Vec<&'static str> {
    items
        .iter()
        .map(|i| match &i.outcome {
            Outcome::Rejected(r) if matches!(r.error, Error::Duplicate) => "duplicate",
            other => other.status(),
        })
        .collect()
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[test]
fn a_replayed_post_is_reported_item_by_item_as_duplicates() {
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    let post = body(&[item(1), item(2), item(3)]);
    assert_eq!(
        statuses(&receive(&receiver, &post)),
        ["decrypted", "decrypted", "decrypted"]
    );
    assert_eq!(
        statuses(&receive(&receiver, &post)),
        ["duplicate", "duplicate", "duplicate"]
    );
    // And again: a duplicate stays a duplicate for the whole TTL.
    assert_eq!(
        statuses(&receive(&receiver, &post)),
        ["duplicate", "duplicate", "duplicate"]
    );
}

#[test]
fn a_replayed_item_inside_a_new_post_is_a_duplicate_and_its_neighbours_are_not() {
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    let old = item(1);
    receive(&receiver, &body(std::slice::from_ref(&old)));
    // A new POST (as Graph's retry or an attacker would build it) mixing the old item with new ones.
    let items = receive(&receiver, &body(&[item(2), old, item(3)]));
    assert_eq!(statuses(&items), ["decrypted", "duplicate", "decrypted"]);
}

#[test]
fn the_same_item_twice_in_one_post_is_accepted_once() {
    for parallel in [false, true] {
        let (key, cert) = test_support::keypair(2048);
        let receiver = Receiver::builder(
            Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap(),
        )
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .replay_guard(ReplayGuard::new(1000, DAY))
        .parallel(parallel)
        .build()
        .unwrap();
        let twice = item(1);
        let items = receive(&receiver, &body(&[twice.clone(), item(2), twice]));
        let mut s = statuses(&items);
        assert_eq!(s[1], "decrypted");
        s.sort_unstable();
        assert_eq!(
            s,
            ["decrypted", "decrypted", "duplicate"],
            "parallel {parallel}"
        );
    }
}

#[test]
fn distinct_items_are_never_duplicates() {
    let guard = ReplayGuard::new(1000, DAY);
    let receiver = receiver(guard);
    for round in 0..6 {
        let items = receive(&receiver, &body(&[item(round), item(round)]));
        // Same resource, same subscription, but each item has its own key and signature.
        assert_eq!(
            statuses(&items),
            ["decrypted", "decrypted"],
            "round {round}"
        );
    }
}

#[test]
fn after_the_ttl_a_replayed_item_is_accepted_again() {
    let ttl = Duration::from_millis(300);
    let receiver = receiver(ReplayGuard::new(1000, ttl));
    let post = body(&[item(1)]);
    assert_eq!(statuses(&receive(&receiver, &post)), ["decrypted"]);
    assert_eq!(statuses(&receive(&receiver, &post)), ["duplicate"]);
    std::thread::sleep(ttl + Duration::from_millis(100));
    assert_eq!(statuses(&receive(&receiver, &post)), ["decrypted"]);
    // Accepted again means remembered again.
    assert_eq!(statuses(&receive(&receiver, &post)), ["duplicate"]);
}

#[test]
fn the_ttl_expires_entries_directly_too() {
    let guard = ReplayGuard::new(10, Duration::from_millis(100));
    let n = item(1);
    assert!(guard.insert(&n));
    assert!(guard.contains(&n));
    assert!(!guard.insert(&n));
    std::thread::sleep(Duration::from_millis(150));
    assert!(!guard.contains(&n));
    assert!(guard.insert(&n));
}

#[test]
fn memory_stays_within_capacity_under_many_distinct_items() {
    const CAPACITY: usize = 8;
    let receiver = receiver(ReplayGuard::new(CAPACITY, DAY));
    let first = item(0);
    receive(&receiver, &body(std::slice::from_ref(&first)));
    let mut newest = Vec::new();
    for round in 0..6 {
        newest = (0..6).map(|i| item(100 * round + i + 1)).collect();
        let items = receive(&receiver, &body(&newest));
        assert!(statuses(&items).iter().all(|s| *s == "decrypted"));
        // Inside a receiver the bound shows in behaviour (the guard's own `len` bound is checked
        // in `a_guard_never_holds_more_than_its_capacity`): the newest are remembered...
        assert_eq!(
            statuses(&receive(&receiver, &body(&newest[5..]))),
            ["duplicate"]
        );
    }
    // ...and the oldest was forgotten to make room (the bound wins over completeness).
    assert_eq!(
        statuses(&receive(&receiver, &body(&[first]))),
        ["decrypted"]
    );
    assert_eq!(
        statuses(&receive(&receiver, &body(&newest[4..]))),
        ["duplicate", "duplicate"]
    );
}

#[test]
fn a_guard_never_holds_more_than_its_capacity() {
    // Fingerprints are cheap to make without RSA: only encryptedContent.dataSignature and the
    // subscription id are read. This is the guard's own bound, under 20 000 distinct items.
    for capacity in [1, 7, 100] {
        let guard = ReplayGuard::new(capacity, DAY);
        let mut n = item(0);
        for i in 0..20_000u32 {
            let content = n.encrypted_content.as_mut().unwrap();
            let mut sig = [0u8; 32];
            sig[..4].copy_from_slice(&i.to_be_bytes());
            content.data_signature = Some(b64(&sig));
            assert!(guard.insert(&n), "item {i} is new");
            assert!(guard.len() <= capacity, "{} > {capacity}", guard.len());
        }
        assert_eq!(guard.len(), capacity);
        assert_eq!(guard.capacity(), capacity);
    }
    // A capacity of zero is taken as one.
    assert_eq!(ReplayGuard::new(0, DAY).capacity(), 1);
}

#[test]
fn rejected_items_are_not_remembered() {
    // What failed verification must not fill the memory (a forger could otherwise evict genuine
    // entries) nor poison it (a later genuine delivery would be refused).
    let guard = ReplayGuard::new(1000, DAY);
    let receiver = receiver(guard);
    let genuine = item(1);

    // The genuine item without a token: rejected for the token, not remembered.
    let no_token = json!({"value": [genuine.clone()]}).to_string();
    let items = receive(&receiver, no_token.as_bytes());
    assert!(
        matches!(&items[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::Token(_)))
    );

    // The same signature over altered data: rejected by the MAC, not remembered.
    let mut forged = genuine.clone();
    let content = forged.encrypted_content.as_mut().unwrap();
    let mut data = b64_decode(content.data.as_deref().unwrap());
    data[0] ^= 1;
    content.data = Some(b64(&data));
    let items = receive(&receiver, &body(&[forged]));
    assert!(
        matches!(&items[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::Verification))
    );

    // Wrong clientState: rejected, not remembered.
    let mut wrong_state = genuine.clone();
    wrong_state.client_state = Some("not-the-secret".into());
    let items = receive(&receiver, &body(&[wrong_state]));
    assert!(
        matches!(&items[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::ClientState))
    );

    // The genuine delivery still goes through, once.
    assert_eq!(
        statuses(&receive(&receiver, &body(std::slice::from_ref(&genuine)))),
        ["decrypted"]
    );
    assert_eq!(
        statuses(&receive(&receiver, &body(&[genuine]))),
        ["duplicate"]
    );
}

#[test]
fn items_without_encrypted_content_are_never_duplicates() {
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    let basic = json!({
        "subscriptionId": "9f9c5ad9-1c0c-4d5c-9d4c-8b0c1f4e2a01",
        "tenantId": TENANT,
        "changeType": "updated",
        "clientState": SECRET,
        "resource": "communications/presences/u1",
    });
    let lifecycle = json!({
        "subscriptionId": "9f9c5ad9-1c0c-4d5c-9d4c-8b0c1f4e2a01",
        "tenantId": TENANT,
        "lifecycleEvent": "reauthorizationRequired",
        "clientState": SECRET,
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00.0000000Z",
    });
    let post = body_of_values([basic.clone(), lifecycle.clone(), basic, lifecycle]);
    for _ in 0..3 {
        let items = receive(&receiver, &post);
        assert_eq!(
            statuses(&items),
            ["basic", "lifecycle", "basic", "lifecycle"]
        );
        assert!(matches!(
            &items[1].outcome,
            Outcome::Lifecycle(l) if l.event == LifecycleEvent::ReauthorizationRequired
        ));
    }
    // The guard itself neither reports nor records them.
    let guard = ReplayGuard::new(10, DAY);
    let n: ChangeNotification = serde_json::from_value(json!({"subscriptionId": "s"})).unwrap();
    assert!(!guard.contains(&n));
    assert!(guard.insert(&n));
    assert!(guard.insert(&n));
    assert!(guard.is_empty());
}

#[test]
fn concurrent_replays_of_one_post_are_accepted_exactly_once() {
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    for round in 0..3 {
        let post = body(&[item(round)]);
        let decrypted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| receive(&receiver, &post)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    let items = h.join().unwrap();
                    usize::from(statuses(&items) == ["decrypted"])
                })
                .sum()
        });
        assert_eq!(decrypted, 1, "round {round}");
    }
}

#[test]
fn a_replay_with_a_reencoded_signature_is_not_new() {
    // base64 has one canonical spelling per value here: padding required, unused trailing bits
    // zero. A replay that re-spells dataSignature (32 bytes: 44 chars, 2 unused bits in the last
    // data character) must not slip past the memory as a new item.
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    let genuine = item(1);
    receive(&receiver, &body(std::slice::from_ref(&genuine)));
    let sig = genuine
        .encrypted_content
        .as_ref()
        .unwrap()
        .data_signature
        .clone()
        .unwrap();
    let respelled = [
        with_trailing_bits(&sig, 1),
        with_trailing_bits(&sig, 2),
        with_trailing_bits(&sig, 3),
        sig.trim_end_matches('=').to_owned(),
        format!("{sig}="),
        format!(" {sig}"),
    ];
    for variant in respelled {
        let mut replay = genuine.clone();
        replay.encrypted_content.as_mut().unwrap().data_signature = Some(variant.clone());
        let items = receive(&receiver, &body(&[replay]));
        assert!(items[0].outcome.is_rejected(), "{variant:?} was accepted");
    }
}

/// A replay that changes only `subscriptionId`. That field is not authenticated by anything (the
/// HMAC covers the ciphertext only, the token names app and tenant), so the memory must not depend
/// on it: the fingerprint is the signature alone (`src/replay/mod.rs`).
#[test]
fn a_replay_with_another_subscription_id_is_a_duplicate() {
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    let genuine = item(1);
    receive(&receiver, &body(std::slice::from_ref(&genuine)));
    for sub in [
        "00000000-0000-0000-0000-000000000000",
        "9F9C5AD9-1C0C-4D5C-9D4C-8B0C1F4E2A01",
        "",
    ] {
        let mut replay = genuine.clone();
        replay.subscription_id = Some(sub.into());
        assert_eq!(
            statuses(&receive(&receiver, &body(&[replay]))),
            ["duplicate"],
            "subscriptionId {sub:?}"
        );
    }
    let mut replay = genuine;
    replay.subscription_id = None;
    assert_eq!(
        statuses(&receive(&receiver, &body(&[replay]))),
        ["duplicate"]
    );
}

/// Replays that change unauthenticated metadata other than the subscription id (tenant spelling
/// aside, which the token binds) are still duplicates: the fingerprint reads the signature.
#[test]
fn a_replay_with_altered_metadata_is_still_a_duplicate() {
    let receiver = receiver(ReplayGuard::new(1000, DAY));
    let genuine = item(1);
    receive(&receiver, &body(std::slice::from_ref(&genuine)));
    let mut replay = serde_json::to_value(&genuine).unwrap();
    replay["resource"] = "communications/presences/someone-else".into();
    replay["changeType"] = "created".into();
    replay["id"] = "fresh-id".into();
    replay["resourceData"] = json!({"id": "other"});
    replay["extra"] = json!({"nonce": 42});
    // The capitalised alias some doc pages use.
    let content = replay
        .as_object_mut()
        .unwrap()
        .remove("encryptedContent")
        .unwrap();
    replay["EncryptedContent"] = content;
    let items = receive(&receiver, &body_of_values([replay]));
    assert_eq!(statuses(&items), ["duplicate"]);
}

fn with_trailing_bits(sig: &str, bits: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut chars: Vec<u8> = sig.bytes().collect();
    let at = chars.iter().rposition(|&c| c != b'=').unwrap();
    let value = ALPHABET.iter().position(|&c| c == chars[at]).unwrap() as u8;
    chars[at] = ALPHABET[usize::from((value & !0b11) | (bits & 0b11))];
    String::from_utf8(chars).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
