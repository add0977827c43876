//! Offloaded payloads (Event Hubs, over 1 MB): a receiver given a `PayloadStore` fetches the blob
//! `additionalPayloadStorageId` names and verifies and decrypts it as an inline item; every way a
//! blob can be missing, unreadable, oversized, malformed or tampered rejects that item alone.
//! Real keys and ciphertext; the store is an in-memory map (Azure Blob is tests/offload/azure_blob.rs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use msgraph_notify::Error;
use msgraph_notify::model::ChangeNotification;
use msgraph_notify::offload::{MemoryPayloadStore, PayloadError, PayloadStore};
use msgraph_notify::receiver::{Item, Outcome, Receiver, ReceiverBuilder, Reply};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::{TokenError, TokenVersion, Validation};
use serde_json::{Value, json};

const TENANT: &str = "tenant-a";
const SECRET: &str = "client-state-secret";

/// The crate's in-memory store, with a record of every fetch and a switch that takes it down.
#[derive(Default)]
struct Blobs {
    blobs: MemoryPayloadStore,
    fetches: Mutex<Vec<(String, usize)>>,
    down: AtomicBool,
    /// Returns the whole blob whatever the limit (a careless store): the receiver must still
    /// refuse what is over its limit.
    ignore_limit: bool,
}

impl Blobs {
    fn put(&self, id: &str, blob: Vec<u8>) {
        self.blobs.insert(id, blob);
    }

    fn fetched(&self) -> Vec<String> {
        self.fetches
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }
}

impl PayloadStore for Blobs {
    fn fetch(&self, storage_id: &str, max_bytes: usize) -> Result<Vec<u8>, PayloadError> {
        self.fetches
            .lock()
            .unwrap()
            .push((storage_id.to_owned(), max_bytes));
        if self.down.load(Ordering::SeqCst) {
            return Err(PayloadError::Unavailable("connection refused".into()));
        }
        let limit = if self.ignore_limit {
            usize::MAX
        } else {
            max_bytes
        };
        self.blobs.fetch(storage_id, limit)
    }
}

use test_support::decryptor;

fn builder(store: &Arc<Blobs>) -> ReceiverBuilder {
    Receiver::builder(decryptor())
        .trusted_transport_only()
        .client_state(SECRET)
        .replay_guard(ReplayGuard::default())
        .payload_store(Arc::clone(store) as Arc<dyn PayloadStore>)
}

/// A chat message as Graph sends it inline (resource, resourceData, encryptedContent), with the
/// plaintext.
fn chat_message(tag: &str) -> (Value, Value) {
    let (_, cert) = test_support::keypair(2048);
    let resource = format!("chats('19:{tag}@thread.v2')/messages('{tag}')");
    let mut spec = NotificationSpec::new(TENANT, &resource);
    spec.client_state = Some(SECRET.into());
    let data = json!({
        "@odata.type": "#microsoft.graph.chatMessage",
        "id": tag,
        "messageType": "message",
        "body": {"contentType": "text", "content": format!("message {tag} ").repeat(200)},
    });
    let n: ChangeNotification = GraphEncryptor::new(cert, "cert-1")
        .notification(&data, &spec)
        .unwrap();
    (serde_json::to_value(n).unwrap(), data)
}

fn record(items: &[Value]) -> Vec<u8> {
    json!({ "value": items }).to_string().into_bytes()
}

fn statuses(items: &[Item]) -> Vec<&'static str> {
    items.iter().map(|i| i.outcome.status()).collect()
}

fn error_of(item: &Item) -> &Error {
    match &item.outcome {
        Outcome::Rejected(r) => &r.error,
        other => panic!("item {} not rejected: {}", item.index, other.status()),
    }
}

#[test]
fn an_offloaded_item_is_fetched_verified_and_decrypted_as_an_inline_one() {
    let store = Arc::new(Blobs::default());
    let receiver = builder(&store).max_payload_bytes(1 << 20).build().unwrap();
    let (mut inline, _) = chat_message("inline");
    // An inline item naming a blob anyway: decrypted from its own content, and its line does not
    // claim a blob was read.
    inline["additionalPayloadStorageId"] = "not-read".into();
    let (big, data) = chat_message("big");
    let (hub_item, blob) = test_support::offload(big.clone(), "2b8e0a51-blob");
    assert!(hub_item.get("encryptedContent").is_none() && hub_item.get("resource").is_none());
    store.put("2b8e0a51-blob", blob);

    let items = receiver
        .receive_trusted_transport(&record(&[inline, hub_item]))
        .unwrap();
    assert_eq!(statuses(&items), ["decrypted", "decrypted"]);
    let Outcome::Decrypted(d) = &items[1].outcome else {
        unreachable!()
    };
    // The plaintext byte for byte, the resource path and data from the blob, the rest from the
    // record.
    assert_eq!(
        serde_json::from_slice::<Value>(d.plaintext.as_bytes()).unwrap(),
        data
    );
    assert_eq!(d.notification.resource.as_deref(), big["resource"].as_str());
    assert_eq!(
        d.notification.resource_data.as_ref(),
        Some(&big["resourceData"])
    );
    assert_eq!(
        d.notification.subscription_id.as_deref(),
        big["subscriptionId"].as_str()
    );
    assert_eq!(d.storage_id.as_deref(), Some("2b8e0a51-blob"));
    assert!(d.notification.encrypted_content.is_none());
    assert!(
        items[0]
            .to_json()
            .get("additionalPayloadStorageId")
            .is_none()
    );
    let Outcome::Decrypted(inline) = &items[0].outcome else {
        unreachable!()
    };
    assert!(inline.storage_id.is_none() && inline.notification.encrypted_content.is_some());
    let line = items[1].to_json();
    assert_eq!(line["additionalPayloadStorageId"], "2b8e0a51-blob");
    assert_eq!(line["resourceKind"], "chatMessage");
    assert_eq!(line["data"], data);
    // One fetch, for that id, with the receiver's limit.
    assert_eq!(
        *store.fetches.lock().unwrap(),
        [("2b8e0a51-blob".to_owned(), 1 << 20)]
    );
}

#[test]
fn each_way_a_blob_can_be_wrong_rejects_that_item_alone() {
    let store = Arc::new(Blobs {
        ignore_limit: true,
        ..Blobs::default()
    });
    let receiver = builder(&store)
        .max_payload_bytes(256 * 1024)
        .build()
        .unwrap();
    let mut items = Vec::new();

    // 0: genuine.
    let (good, _) = chat_message("good");
    let (hub, blob) = test_support::offload(good, "good");
    store.put("good", blob);
    items.push(hub);
    // 1: no such blob.
    let (missing, _) = chat_message("missing");
    items.push(test_support::offload(missing, "never-written").0);
    // 2: not JSON.
    let (garbage, _) = chat_message("garbage");
    let (hub, _) = test_support::offload(garbage, "garbage");
    store.put("garbage", b"\x00\x01 not json".to_vec());
    items.push(hub);
    // 3: JSON without encryptedContent.
    let (empty, _) = chat_message("empty");
    let (hub, _) = test_support::offload(empty, "empty");
    store.put(
        "empty",
        br#"{"resource":"chats('x')/messages('y')"}"#.to_vec(),
    );
    items.push(hub);
    // 4: tampered ciphertext: the signature check refuses it, before any decryption.
    let (tampered, _) = chat_message("tampered");
    let (hub, blob) = test_support::offload(tampered, "tampered");
    let mut blob: Value = serde_json::from_slice(&blob).unwrap();
    let data = blob["encryptedContent"]["data"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if data.starts_with('A') { "B" } else { "A" };
    blob["encryptedContent"]["data"] = format!("{flipped}{}", &data[1..]).into();
    store.put("tampered", blob.to_string().into_bytes());
    items.push(hub);
    // 5: the record carries a resource, the blob another one.
    let (conflict, _) = chat_message("conflict");
    let (mut hub, blob) = test_support::offload(conflict, "conflict");
    hub["resource"] = "chats('19:other@thread.v2')/messages('1')".into();
    store.put("conflict", blob);
    items.push(hub);
    // 6: over the receiver's limit (the store returned it anyway).
    let (huge, _) = chat_message("huge");
    let (hub, _) = test_support::offload(huge, "huge");
    store.put("huge", vec![b' '; 256 * 1024 + 1]);
    items.push(hub);
    // 7: an id that cannot name a blob.
    let (dots, _) = chat_message("dots");
    items.push(test_support::offload(dots, "a/../b").0);
    // 8: nested past serde_json's depth limit.
    let (deep, _) = chat_message("deep");
    let (hub, _) = test_support::offload(deep, "deep");
    let mut nested = "[".repeat(10_000);
    nested.push_str(&"]".repeat(10_000));
    store.put(
        "deep",
        format!(r#"{{"resourceData":{nested}}}"#).into_bytes(),
    );
    items.push(hub);

    // 9: a resourceData far larger than any Graph sends (a JSON tree many times its size).
    let (wide, _) = chat_message("wide");
    let (hub, blob) = test_support::offload(wide, "wide");
    let mut blob: Value = serde_json::from_slice(&blob).unwrap();
    blob["resourceData"] = json!(vec![0; 35_000]);
    store.put("wide", blob.to_string().into_bytes());
    items.push(hub);

    let out = receiver.receive_trusted_transport(&record(&items)).unwrap();
    assert_eq!(out[0].outcome.status(), "decrypted");
    assert!(
        out[1..].iter().all(|i| i.outcome.is_rejected()),
        "{:?}",
        statuses(&out)
    );
    assert!(matches!(
        error_of(&out[1]),
        Error::Payload(PayloadError::NotFound)
    ));
    assert!(matches!(error_of(&out[2]), Error::Malformed { .. }));
    assert!(
        error_of(&out[2])
            .to_string()
            .contains("additionalPayloadStorageId")
    );
    assert!(
        matches!(error_of(&out[3]), Error::Malformed { field, .. } if field.ends_with("encryptedContent"))
    );
    assert!(matches!(error_of(&out[4]), Error::Verification));
    assert!(matches!(error_of(&out[5]), Error::Malformed { field, .. } if field == "resource"));
    // Over the whole budget by itself.
    assert!(matches!(
        error_of(&out[6]),
        Error::Payload(PayloadError::TooLarge { limit: 262_144 })
    ));
    assert!(matches!(
        error_of(&out[7]),
        Error::Payload(PayloadError::InvalidName(_))
    ));
    assert!(matches!(error_of(&out[8]), Error::Malformed { .. }));
    assert!(
        matches!(error_of(&out[9]), Error::Malformed { field, .. } if field.ends_with("resourceData")),
        "{}",
        error_of(&out[9])
    );
    // None of these may pass later: not transient.
    for item in &out[1..] {
        if let Error::Payload(e) = error_of(item) {
            assert!(!e.is_transient());
        }
    }
    // The rejected items keep their notification for the report.
    let Outcome::Rejected(r) = &out[1].outcome else {
        unreachable!()
    };
    assert_eq!(
        r.notification.as_ref().unwrap().extra["additionalPayloadStorageId"],
        "never-written"
    );
}

#[test]
fn a_store_out_of_reach_leaves_the_item_unjudged_and_it_decrypts_once_back() {
    let store = Arc::new(Blobs::default());
    let receiver = builder(&store).build().unwrap();
    let (big, _) = chat_message("later");
    let (hub, blob) = test_support::offload(big, "later");
    store.put("later", blob);
    let body = record(&[hub]);

    store.down.store(true, Ordering::SeqCst);
    let out = receiver.receive_trusted_transport(&body).unwrap();
    let Error::Payload(e) = error_of(&out[0]) else {
        panic!("{:?}", error_of(&out[0]))
    };
    assert!(e.is_transient(), "{e}");

    // Nothing was remembered: the retry decrypts, and only a third delivery is a duplicate.
    store.down.store(false, Ordering::SeqCst);
    let out = receiver.receive_trusted_transport(&body).unwrap();
    assert_eq!(statuses(&out), ["decrypted"]);
    let out = receiver.receive_trusted_transport(&body).unwrap();
    assert!(matches!(error_of(&out[0]), Error::Duplicate));
}

#[test]
fn a_blob_holding_a_payload_already_seen_is_a_duplicate_whatever_its_name() {
    let store = Arc::new(Blobs::default());
    let receiver = builder(&store).build().unwrap();
    let (item, _) = chat_message("seen");
    // The payload arrived inline once...
    let out = receiver
        .receive_trusted_transport(&record(std::slice::from_ref(&item)))
        .unwrap();
    assert_eq!(statuses(&out), ["decrypted"]);
    // ...and a blob holding the same encryptedContent (copied under another name) is caught.
    let (hub, blob) = test_support::offload(item, "copy");
    store.put("copy", blob);
    let out = receiver.receive_trusted_transport(&record(&[hub])).unwrap();
    assert!(matches!(error_of(&out[0]), Error::Duplicate));
}

#[test]
fn the_cheap_checks_come_before_any_fetch() {
    let store = Arc::new(Blobs::default());
    let receiver = builder(&store)
        .subscription_app("bound-sub", "app-1")
        .only_bound_subscriptions()
        .build()
        .unwrap();
    let (a, _) = chat_message("wrong-state");
    let (mut wrong_state, blob) = test_support::offload(a, "wrong-state");
    wrong_state["clientState"] = "guess".into();
    store.put("wrong-state", blob);
    let (b, _) = chat_message("unbound");
    let (unbound, blob) = test_support::offload(b, "unbound");
    store.put("unbound", blob);

    let out = receiver
        .receive_trusted_transport(&record(&[wrong_state, unbound]))
        .unwrap();
    assert!(matches!(error_of(&out[0]), Error::ClientState));
    assert!(matches!(
        error_of(&out[1]),
        Error::Token(TokenError::UnboundSubscription(_))
    ));
    assert!(store.fetched().is_empty(), "fetched {:?}", store.fetched());
}

#[test]
fn the_webhook_never_fetches_and_a_receiver_without_a_store_reports_the_id() {
    // Graph offloads only on Event Hubs: through the webhook, even a token-covered item naming a
    // blob is reported, never fetched.
    let issuer = TokenIssuer::new().unwrap();
    let store = Arc::new(Blobs::default());
    let receiver = Receiver::builder(decryptor())
        .validation(Validation::new(["app-1"]))
        .signing_keys(issuer.signing_keys())
        .client_state(SECRET)
        .payload_store(Arc::clone(&store) as Arc<dyn PayloadStore>)
        .build()
        .unwrap();
    let (item, _) = chat_message("webhook");
    let (hub, blob) = test_support::offload(item, "webhook");
    store.put("webhook", blob);
    let body = json!({"value": [hub.clone()],
                      "validationTokens": [issuer.token(TokenVersion::V2, "app-1", TENANT)]});
    let Reply::Notifications(out) = receiver.receive(None, body.to_string().as_bytes()).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(statuses(&out), ["offloaded"]);
    assert!(store.fetched().is_empty());

    let without = Receiver::builder(decryptor())
        .trusted_transport_only()
        .client_state(SECRET)
        .build()
        .unwrap();
    let out = without.receive_trusted_transport(&record(&[hub])).unwrap();
    assert_eq!(out[0].to_json()["additionalPayloadStorageId"], "webhook");
    assert_eq!(statuses(&out), ["offloaded"]);
}

#[test]
fn one_record_reads_at_most_its_budget_of_blobs_one_at_a_time() {
    // A record naming the same large blob many times must not make the receiver hold it many
    // times: max_payload_bytes is the budget of the whole body.
    let store = Arc::new(Blobs::default());
    let (item, _) = chat_message("budget");
    let (hub, blob) = test_support::offload(item, "shared");
    let size = blob.len();
    store.put("shared", blob);
    let receiver = Receiver::builder(decryptor())
        .trusted_transport_only()
        .client_state(SECRET)
        .payload_store(Arc::clone(&store) as Arc<dyn PayloadStore>)
        .max_payload_bytes(2 * size + size / 2)
        .build()
        .unwrap();
    let out = receiver
        .receive_trusted_transport(&record(&[hub.clone(), hub.clone(), hub.clone(), hub]))
        .unwrap();
    assert_eq!(
        statuses(&out),
        ["decrypted", "decrypted", "rejected", "rejected"]
    );
    assert!(matches!(
        error_of(&out[2]),
        Error::Payload(PayloadError::OverBudget { budget }) if *budget == 2 * size + size / 2
    ));
    assert!(matches!(
        error_of(&out[3]),
        Error::Payload(PayloadError::OverBudget { .. })
    ));
    assert!(error_of(&out[2]).to_string().contains("max_payload_bytes"));
    // Each fetch was offered only what was left.
    let limits: Vec<usize> = store
        .fetches
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| *l)
        .collect();
    assert_eq!(
        limits,
        [2 * size + size / 2, size + size / 2, size / 2, size / 2]
    );
}
