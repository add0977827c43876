//! Trusted transports (Event Hubs, the `serve --forward` topic): no validation tokens, every
//! other check kept; Event Hubs' validation message and offloaded payloads as their own outcomes;
//! the screening an ingress does before handing a body on. Real keys, real ciphertext.

use msgraph_notify::Error;
use msgraph_notify::model::ChangeNotification;
use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use msgraph_notify::token::{TokenError, TokenVersion};
use serde_json::{Value, json};
use test_support::{decryptor, issuer};

const APP: &str = "app-1";
const TENANT: &str = "tenant-a";
const SECRET: &str = "client-state-secret";

/// A webhook receiver (tokens required), with a replay guard.
fn receiver() -> Receiver {
    test_support::webhook(decryptor(), &[APP], SECRET)
        .replay_guard(ReplayGuard::default())
        .build()
        .unwrap()
}

fn presence(tag: &str, tenant: &str, client_state: &str) -> Value {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(tenant, &format!("communications/presences/{tag}"));
    spec.client_state = Some(client_state.into());
    let n: ChangeNotification = GraphEncryptor::new(cert, "cert-1")
        .notification(
            &json!({"@odata.type": "#microsoft.graph.presence", "id": tag, "availability": "Busy"}),
            &spec,
        )
        .unwrap();
    serde_json::to_value(n).unwrap()
}

fn validation_message() -> Value {
    // From the shared samples when present (the docs' text), else the same JSON written here.
    if let Some(dir) = test_support::shared_dir() {
        let path = dir.join("samples/collection/eventhubs-validation-message.json");
        if let Ok(bytes) = std::fs::read(&path) {
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            return body["value"][0].clone();
        }
    }
    json!({"subscriptionId": "NA", "subscriptionExpirationDateTime": "NA", "clientState": "NA",
           "changeType": "Validation: Testing client application reachability for subscription Request-Id: 522a8e7e-096a-494c-aaf1-ac0dcfca45b7",
           "resource": "NA", "resourceData": {"@odata.type": "NA", "@odata.id": "NA", "id": "NA"}})
}

fn offloaded(id: &str) -> Value {
    json!({"subscriptionId": "sub-9", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
           "changeType": "created", "tenantId": TENANT, "clientState": SECRET,
           "additionalPayloadStorageId": id})
}

fn record(items: Vec<Value>) -> Vec<u8> {
    json!({ "value": items }).to_string().into_bytes()
}

fn statuses(items: &[Item]) -> Vec<&'static str> {
    items.iter().map(|i| i.outcome.status()).collect()
}

#[test]
fn an_event_hubs_record_decrypts_without_tokens_and_names_the_other_kinds() {
    let r = receiver();
    let body = record(vec![
        presence("u1", TENANT, SECRET),
        validation_message(),
        offloaded("blob-123"),
    ]);
    let items = r.receive_trusted_transport(&body).unwrap();
    assert_eq!(statuses(&items), ["decrypted", "validation", "offloaded"]);
    let Outcome::Decrypted(d) = &items[0].outcome else {
        unreachable!()
    };
    let data: Value = serde_json::from_slice(d.plaintext.as_bytes()).unwrap();
    assert_eq!(data["id"], "u1");
    let Outcome::Validation(v) = &items[1].outcome else {
        unreachable!()
    };
    assert_eq!(
        v.request_id.as_deref(),
        Some("522a8e7e-096a-494c-aaf1-ac0dcfca45b7")
    );
    let Outcome::Offloaded(o) = &items[2].outcome else {
        unreachable!()
    };
    assert_eq!(o.storage_id, "blob-123");
    assert_eq!(o.notification.subscription_id.as_deref(), Some("sub-9"));
    let lines: Vec<Value> = items.iter().map(Item::to_json).collect();
    assert_eq!(lines[1]["status"], "validation");
    assert_eq!(
        lines[1]["requestId"],
        "522a8e7e-096a-494c-aaf1-ac0dcfca45b7"
    );
    assert_eq!(lines[2]["additionalPayloadStorageId"], "blob-123");
    assert_eq!(lines[2]["status"], "offloaded");
}

#[test]
fn the_webhook_keeps_no_token_no_trust() {
    let r = receiver();
    let body = record(vec![presence("u2", TENANT, SECRET)]);
    let Reply::Notifications(items) = r.receive(None, &body).unwrap() else {
        unreachable!()
    };
    let Outcome::Rejected(rej) = &items[0].outcome else {
        panic!("a tokenless POST was accepted")
    };
    assert!(matches!(rej.error, Error::Token(TokenError::Missing)));
}

#[test]
fn a_transport_only_receiver_rejects_webhook_bodies_and_decrypts_records() {
    let r = Receiver::builder(decryptor())
        .trusted_transport_only()
        .client_state(SECRET)
        .build()
        .unwrap();
    let body = record(vec![presence("u3", TENANT, SECRET)]);
    let Reply::Notifications(posted) = r.receive(None, &body).unwrap() else {
        unreachable!()
    };
    assert!(
        matches!(&posted[0].outcome, Outcome::Rejected(x) if matches!(x.error, Error::Token(TokenError::Missing)))
    );
    // Even with a genuine-looking token: this receiver has no token rules at all.
    let with_token = json!({"value": [presence("u3b", TENANT, SECRET)],
        "validationTokens": [issuer().token(TokenVersion::V2, APP, TENANT)]})
    .to_string();
    let Reply::Notifications(posted) = r.receive(None, with_token.as_bytes()).unwrap() else {
        unreachable!()
    };
    assert!(posted[0].outcome.is_rejected());
    assert_eq!(
        statuses(&r.receive_trusted_transport(&body).unwrap()),
        ["decrypted"]
    );
}

#[test]
fn every_other_check_still_applies_on_a_trusted_transport() {
    let r = receiver();
    // Wrong clientState.
    let wrong = record(vec![presence("u4", TENANT, "not-the-secret")]);
    let items = r.receive_trusted_transport(&wrong).unwrap();
    assert!(
        matches!(&items[0].outcome, Outcome::Rejected(x) if matches!(x.error, Error::ClientState))
    );
    // A tampered ciphertext: the signature fails.
    let mut tampered = presence("u5", TENANT, SECRET);
    let data = tampered["encryptedContent"]["data"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if data.starts_with('A') { "B" } else { "A" };
    tampered["encryptedContent"]["data"] = Value::String(format!("{flipped}{}", &data[1..]));
    let items = r
        .receive_trusted_transport(&record(vec![tampered]))
        .unwrap();
    assert!(
        matches!(&items[0].outcome, Outcome::Rejected(x) if matches!(x.error, Error::Verification)),
        "{:?}",
        items[0].outcome
    );
    // Encrypted for another certificate: the key choice fails.
    let (_, other) = test_support::other_keypair();
    let mut spec = NotificationSpec::new(TENANT, "communications/presences/u6");
    spec.client_state = Some(SECRET.into());
    let foreign = GraphEncryptor::new(other, "cert-1")
        .notification(&json!({"id": "u6"}), &spec)
        .unwrap();
    let items = r
        .receive_trusted_transport(&record(vec![serde_json::to_value(foreign).unwrap()]))
        .unwrap();
    assert!(items[0].outcome.is_rejected());
    // The replay store: the same record again is a duplicate.
    let body = record(vec![presence("u7", TENANT, SECRET)]);
    assert_eq!(
        statuses(&r.receive_trusted_transport(&body).unwrap()),
        ["decrypted"]
    );
    let again = r.receive_trusted_transport(&body).unwrap();
    assert!(
        matches!(&again[0].outcome, Outcome::Rejected(x) if matches!(x.error, Error::Duplicate))
    );
    // Limits and shape of the whole body.
    assert!(matches!(
        r.receive_trusted_transport(b"not json"),
        Err(Error::Malformed { .. })
    ));
    let small = Receiver::builder(decryptor())
        .trusted_transport_only()
        .max_body_bytes(100)
        .build()
        .unwrap();
    assert!(matches!(
        small.receive_trusted_transport(&body),
        Err(Error::BodyTooLarge { .. })
    ));
}

#[test]
fn the_validation_message_is_recognised_strictly() {
    let r = receiver();
    // `NA` as subscription but carrying encrypted content: not the hub's message.
    let mut fake = presence("u8", TENANT, "NA");
    fake["subscriptionId"] = "NA".into();
    fake["changeType"] =
        "Validation: Testing client application reachability for subscription Request-Id: x".into();
    // Another subscription id with the text: not it either (and the clientState is wrong).
    let mut other = validation_message();
    other["subscriptionId"] = "sub-1".into();
    let items = r
        .receive_trusted_transport(&record(vec![fake, other]))
        .unwrap();
    assert_eq!(statuses(&items), ["rejected", "rejected"]);
}

#[test]
fn an_offloaded_item_needs_a_usable_id_and_the_client_state() {
    let r = receiver();
    let mut bad_id = offloaded("x");
    bad_id["additionalPayloadStorageId"] = json!(42);
    let mut wrong_state = offloaded("y");
    wrong_state["clientState"] = "nope".into();
    let items = r
        .receive_trusted_transport(&record(vec![bad_id, wrong_state, offloaded("z")]))
        .unwrap();
    assert_eq!(statuses(&items), ["rejected", "rejected", "offloaded"]);
    let Outcome::Rejected(x) = &items[0].outcome else {
        unreachable!()
    };
    assert!(x.error.to_string().contains("additionalPayloadStorageId"));
}

#[test]
fn screening_forwards_only_what_the_tokens_cover() {
    let r = receiver();
    let covered = presence("s1", TENANT, SECRET);
    let uncovered = presence("s2", "tenant-b", SECRET);
    let wrong_state = presence("s3", TENANT, "nope");
    let token = issuer().token(TokenVersion::V2, APP, TENANT);

    // All covered: the body is handed on byte for byte.
    let whole =
        json!({"value": [covered.clone()], "validationTokens": [token.clone()]}).to_string();
    let screened = r.screen(whole.as_bytes()).unwrap();
    assert_eq!(screened.body.as_deref(), Some(whole.as_bytes()));
    assert_eq!((screened.admitted, screened.refused.len()), (1, 0));

    // Mixed: only the covered item goes on, the others are reported. Event Hubs' validation
    // message POSTed to the webhook (where Graph never sends it) is an ordinary item: its
    // clientState "NA" is wrong, so it cannot be used to write records to the topic.
    let mixed = json!({"value": [uncovered, covered, wrong_state, validation_message()],
                       "validationTokens": [token]})
    .to_string();
    let screened = r.screen(mixed.as_bytes()).unwrap();
    assert_eq!(screened.admitted, 1);
    let refused: Vec<usize> = screened.refused.iter().map(|i| i.index).collect();
    assert_eq!(refused, [0, 2, 3]);
    assert!(
        matches!(&screened.refused[0].outcome, Outcome::Rejected(x) if matches!(x.error, Error::Token(TokenError::NotCovered(_))))
    );
    assert!(
        matches!(&screened.refused[2].outcome, Outcome::Rejected(x) if matches!(x.error, Error::ClientState))
    );
    let forwarded = screened.body.unwrap();
    let items = r.receive_trusted_transport(&forwarded).unwrap();
    assert_eq!(statuses(&items), ["decrypted"]);
    let Outcome::Decrypted(d) = &items[0].outcome else {
        unreachable!()
    };
    assert_eq!(
        d.notification.resource.as_deref(),
        Some("communications/presences/s1")
    );

    // No token at all: nothing goes on.
    let none = record(vec![presence("s4", TENANT, SECRET)]);
    let screened = r.screen(&none).unwrap();
    assert!(screened.body.is_none());
    assert_eq!(screened.refused.len(), 1);
    // A body that is not a collection is an error, as for receive.
    assert!(r.screen(b"[1,2]").is_err());
}

#[test]
fn on_the_webhook_an_offloaded_item_needs_a_token_like_an_encrypted_one() {
    let r = receiver();
    // Graph offloads only on Event Hubs: a webhook POST naming a blob proves nothing by itself.
    let bare = record(vec![offloaded("blob-1")]);
    let Reply::Notifications(items) = r.receive(None, &bare).unwrap() else {
        unreachable!()
    };
    assert!(
        matches!(&items[0].outcome, Outcome::Rejected(x) if matches!(x.error, Error::Token(TokenError::Missing)))
    );
    let screened = r.screen(&bare).unwrap();
    assert!(screened.body.is_none());
    // Covered by a valid token for its tenant: the outcome offloaded, and handed on.
    let covered = json!({"value": [offloaded("blob-2")],
        "validationTokens": [issuer().token(TokenVersion::V2, APP, TENANT)]})
    .to_string();
    let Reply::Notifications(items) = r.receive(None, covered.as_bytes()).unwrap() else {
        unreachable!()
    };
    assert_eq!(statuses(&items), ["offloaded"]);
    assert_eq!(r.screen(covered.as_bytes()).unwrap().admitted, 1);
}
