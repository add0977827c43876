//! The receiver under attack (issue 9): replays with rewritten metadata, item and token floods,
//! honest tokens of other apps, configurations that would weaken checks, GUID spellings, and
//! secrets in `Debug`. Each test fails on a receiver without the fix it names.

use std::sync::Arc;

use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::replay::{Fingerprint, ReplayGuard, ReplayStore, ReplayStoreError};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenFlaw, TokenIssuer};
use msgraph_notify::token::{TokenError, TokenVersion, Validation};
use msgraph_notify::{ChangeNotification, Decryptor, Error};
use serde_json::{Value, json};
use test_support::issuer;

const APP: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const OTHER_APP: &str = "33333333-aaaa-4bbb-8ccc-000000000003";
const TENANT: &str = "22222222-aaaa-4bbb-8ccc-000000000002";
const TENANT_2: &str = "44444444-aaaa-4bbb-8ccc-000000000004";
const SECRET: &str = "client-state-secret-9f2e";

fn builder() -> msgraph_notify::receiver::ReceiverBuilder {
    test_support::webhook(test_support::decryptor(), &[APP, OTHER_APP], SECRET)
}

fn item(tenant: &str, n: usize) -> ChangeNotification {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(tenant, &format!("communications/presences/u{n}"));
    spec.client_state = Some(SECRET.into());
    let presence = json!({"@odata.type": "#microsoft.graph.presence", "id": format!("u{n}"), "availability": "Busy"});
    GraphEncryptor::new(cert, "cert-1")
        .notification(&presence, &spec)
        .unwrap()
}

fn body(items: &[ChangeNotification], tokens: &[String]) -> Vec<u8> {
    json!({"value": items, "validationTokens": tokens})
        .to_string()
        .into_bytes()
}

fn token(app: &str, tenant: &str) -> String {
    issuer().token(TokenVersion::V2, app, tenant)
}

fn items(receiver: &Receiver, body: &[u8]) -> Vec<Item> {
    match receiver.receive(None, body).unwrap() {
        Reply::Notifications(items) => items,
        other => panic!("not notifications: {other:?}"),
    }
}

fn statuses(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| match &i.outcome {
            Outcome::Rejected(r) if matches!(r.error, Error::Duplicate) => "duplicate".to_owned(),
            Outcome::Rejected(r) => format!("rejected: {}", r.error),
            other => other.status().to_owned(),
        })
        .collect()
}

#[test]
fn replays_with_rewritten_metadata_are_duplicates_never_decrypted_twice() {
    let receiver = builder()
        .replay_guard(ReplayGuard::default())
        .build()
        .unwrap();
    let genuine = [item(TENANT, 1), item(TENANT_2, 2)];
    let tokens = [token(APP, TENANT), token(APP, TENANT_2)];
    let captured = body(&genuine, &tokens);
    assert_eq!(
        statuses(&items(&receiver, &captured)),
        ["decrypted", "decrypted"]
    );
    // The same POST again.
    assert_eq!(
        statuses(&items(&receiver, &captured)),
        ["duplicate", "duplicate"]
    );
    // Every unauthenticated field rewritten, one at a time and all at once, and the two items'
    // tenants swapped (the capture carried both tenants' tokens).
    let rewrites: [&dyn Fn(&mut Value); 5] = [
        &|v| v["changeType"] = "deleted".into(),
        &|v| v["subscriptionId"] = "00000000-0000-0000-0000-00000000beef".into(),
        &|v| v["resource"] = "communications/presences/someone-else".into(),
        &|v| v["tenantId"] = TENANT_2.into(),
        &|v| {
            v["changeType"] = "created".into();
            v["id"] = "new-id".into();
            v["subscriptionExpirationDateTime"] = "2031-01-01T00:00:00Z".into();
            v["resourceData"] = json!({"id": "other"});
        },
    ];
    for rewrite in rewrites {
        let mut values: Vec<Value> = genuine
            .iter()
            .map(|n| serde_json::to_value(n).unwrap())
            .collect();
        values.iter_mut().for_each(rewrite);
        let replay = json!({"value": values, "validationTokens": tokens}).to_string();
        assert_eq!(
            statuses(&items(&receiver, replay.as_bytes())),
            ["duplicate", "duplicate"],
            "{replay}"
        );
    }
    // The items are still distinct from new ones.
    assert_eq!(
        statuses(&items(
            &receiver,
            &body(&[item(TENANT, 3)], &[token(APP, TENANT)])
        )),
        ["decrypted"]
    );
}

#[test]
fn during_rotation_a_copy_naming_the_other_key_cannot_make_the_genuine_item_a_duplicate() {
    // Two live keys under one id (rotation), told apart by thumbprint.
    let (old_key, old_cert) = test_support::keypair(2048);
    let (new_key, new_cert) = test_support::keypair(3072);
    let mut ring = msgraph_notify::KeyRing::new();
    ring.add(
        "cert-1",
        test_support::copy_key(old_key),
        Some(old_cert.clone()),
    )
    .unwrap();
    ring.add(
        "cert-1",
        test_support::copy_key(new_key),
        Some(new_cert.clone()),
    )
    .unwrap();
    let receiver = test_support::webhook(Decryptor::new(ring), &[APP], SECRET)
        .replay_guard(ReplayGuard::default())
        .build()
        .unwrap();
    let mut spec = NotificationSpec::new(TENANT, "communications/presences/rot");
    spec.client_state = Some(SECRET.into());
    let presence =
        json!({"@odata.type": "#microsoft.graph.presence", "id": "rot", "availability": "Away"});
    let genuine = GraphEncryptor::new(old_cert, "cert-1")
        .notification(&presence, &spec)
        .unwrap();
    let genuine = serde_json::to_value(&genuine).unwrap();
    // The attacker's copy, first in the body: the same ciphertext, the thumbprint of the other
    // key. It chooses the new key, whose unwrap fails.
    let mut copy = genuine.clone();
    copy["encryptedContent"]["encryptionCertificateThumbprint"] = new_cert.thumbprint().into();
    let tokens = [token(APP, TENANT)];
    let first = json!({"value": [copy, genuine], "validationTokens": tokens}).to_string();
    let got = items(&receiver, first.as_bytes());
    assert_eq!(
        statuses(&got)[1],
        "decrypted",
        "the genuine copy must decrypt: {:?}",
        statuses(&got)
    );
    assert!(
        matches!(&got[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::Verification)),
        "{:?}",
        statuses(&got)
    );
    // The genuine item again, and spelled otherwise (the same key chosen by a lower-case
    // thumbprint): duplicates.
    let mut respelled = genuine.clone();
    respelled["encryptedContent"]["encryptionCertificateThumbprint"] =
        old_cert.thumbprint().to_ascii_lowercase().into();
    let again = json!({"value": [genuine, respelled], "validationTokens": tokens}).to_string();
    assert_eq!(
        statuses(&items(&receiver, again.as_bytes())),
        ["duplicate", "duplicate"]
    );
}

#[test]
fn one_key_under_two_ids_is_one_key_for_the_replay_memory() {
    // The same private key registered twice (under two ids; once without a certificate): a
    // captured item rewritten to reach it through the other entry is still a duplicate.
    let (key, cert) = test_support::keypair(2048);
    let mut ring = msgraph_notify::KeyRing::new();
    ring.add("cert-1", test_support::copy_key(key), Some(cert.clone()))
        .unwrap();
    ring.add("cert-2", test_support::copy_key(key), None)
        .unwrap();
    let receiver = test_support::webhook(Decryptor::new(ring), &[APP], SECRET)
        .replay_guard(ReplayGuard::default())
        .build()
        .unwrap();
    let genuine = serde_json::to_value(item(TENANT, 7)).unwrap();
    let mut other_entry = genuine.clone();
    other_entry["encryptedContent"]["encryptionCertificateId"] = "cert-2".into();
    let tokens = [token(APP, TENANT)];
    let body = json!({"value": [genuine, other_entry], "validationTokens": tokens}).to_string();
    assert_eq!(
        statuses(&items(&receiver, body.as_bytes())),
        ["decrypted", "duplicate"]
    );
}

/// A replay store that counts how often it is asked and can be switched to fail.
#[derive(Debug, Default)]
struct Counting {
    inner: ReplayGuard,
    inserts: std::sync::atomic::AtomicUsize,
    removes: std::sync::atomic::AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl ReplayStore for Counting {
    fn insert_if_absent(&self, fp: &Fingerprint) -> Result<bool, ReplayStoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.inserts.fetch_add(1, SeqCst);
        if self.down.load(SeqCst) {
            return Err(ReplayStoreError("connection refused".into()));
        }
        self.inner.insert_if_absent(fp)
    }

    fn remove(&self, fp: &Fingerprint) {
        self.removes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.remove(fp);
    }
}

#[test]
fn a_failed_item_is_forgotten_and_an_unavailable_store_rejects() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(Counting::default());
    let receiver = builder()
        .replay_store(Arc::clone(&store) as Arc<dyn ReplayStore>)
        .build()
        .unwrap();
    let tokens = [token(APP, TENANT)];
    // A forged copy with the genuine key and signature but other data fails the MAC: it was
    // recorded before the RSA unwrap, and is forgotten again.
    let genuine = item(TENANT, 1);
    let mut forged = genuine.clone();
    let content = forged.encrypted_content.as_mut().unwrap();
    let other = item(TENANT, 2);
    content.data = other.encrypted_content.as_ref().unwrap().data.clone();
    let out = items(&receiver, &body(&[forged], &tokens));
    assert!(
        matches!(&out[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::Verification))
    );
    assert_eq!(
        (store.inserts.load(SeqCst), store.removes.load(SeqCst)),
        (1, 1)
    );
    assert!(store.inner.is_empty());
    assert_eq!(
        statuses(&items(
            &receiver,
            &body(std::slice::from_ref(&genuine), &tokens)
        )),
        ["decrypted"]
    );
    // The store down: the item is rejected (never processed twice by accident), naming the store.
    store.down.store(true, SeqCst);
    let out = items(&receiver, &body(&[item(TENANT, 4)], &tokens));
    let Outcome::Rejected(r) = &out[0].outcome else {
        panic!("accepted without the replay store")
    };
    assert!(matches!(r.error, Error::ReplayStore(_)));
    assert!(r.error.to_string().contains("replay store is unavailable"));
}

#[test]
fn concurrent_copies_are_decrypted_once() {
    let receiver = builder()
        .replay_guard(ReplayGuard::default())
        .parallel(true)
        .build()
        .unwrap();
    // The same item twice in one body, decrypted in parallel: once, and one duplicate.
    let one = item(TENANT, 7);
    let out = statuses(&items(
        &receiver,
        &body(&[one.clone(), one], &[token(APP, TENANT)]),
    ));
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(sorted, ["decrypted", "duplicate"], "{out:?}");
}

#[test]
fn item_floods_are_refused_whole_before_any_per_item_work() {
    let receiver = builder().build().unwrap();
    let body = test_support::flood(1 << 20);
    let err = receiver.receive(None, &body).unwrap_err();
    test_support::assert_too_many(&err, "items", 1000);
    assert!(err.to_string().contains("more than 1000 items"), "{err}");
    // At the limit, every item gets its outcome; one more and the body is refused.
    let receiver = builder().max_items(3).build().unwrap();
    let three = br#"{"value":[0,0,0]}"#;
    assert_eq!(items(&receiver, three).len(), 3);
    let four = br#"{"value":[0,0,0,{"subscriptionId":"s"}]}"#;
    assert!(matches!(
        receiver.receive(None, four),
        Err(Error::TooMany { what: "items", .. })
    ));
    // No kid lookups come out of a refused body either.
    assert!(receiver.unknown_kids(four).is_empty());
}

#[test]
fn token_floods_are_refused_whole() {
    let receiver = builder().max_validation_tokens(2).build().unwrap();
    let tokens: Vec<String> = (0..3).map(|i| format!("a.b.{i}")).collect();
    let err = receiver
        .receive(None, &body(&[item(TENANT, 1)], &tokens))
        .unwrap_err();
    test_support::assert_too_many(&err, "validation tokens", 2);
    // Two are fine (both garbage here: the item is rejected for its token, not the body).
    let out = items(&receiver, &body(&[item(TENANT, 1)], &tokens[..2]));
    assert!(out[0].outcome.is_rejected());
    // A validationTokens that is not an array is one malformed token, not a refused body.
    let odd = json!({"value": [item(TENANT, 1)], "validationTokens": {"a": 1}}).to_string();
    let out = items(&receiver, odd.as_bytes());
    assert!(matches!(&out[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::Token(_))));
}

#[test]
fn honest_tokens_of_other_apps_are_ignored_but_broken_ones_still_taint() {
    // We receive for APP only; another app shares the URL.
    let (key, cert) = test_support::keypair(2048);
    let receiver = Receiver::builder(
        Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap(),
    )
    .validation(Validation::new([APP]))
    .signing_keys(issuer().signing_keys())
    .build()
    .unwrap();
    let ours = item(TENANT, 1);
    let foreign = token("55555555-aaaa-4bbb-8ccc-000000000005", TENANT);
    let out = items(
        &receiver,
        &body(
            std::slice::from_ref(&ours),
            &[token(APP, TENANT), foreign.clone()],
        ),
    );
    assert_eq!(statuses(&out), ["decrypted"]);
    // Alone, the other app's token covers nothing of ours.
    let out = items(&receiver, &body(std::slice::from_ref(&ours), &[foreign]));
    assert!(
        matches!(&out[0].outcome, Outcome::Rejected(r) if matches!(r.error, Error::Token(TokenError::NotCovered(_)))),
        "{:?}",
        statuses(&out)
    );
    // A token that fails anything else still taints its tenant, whatever its audience.
    for flaw in [TokenFlaw::Expired, TokenFlaw::WrongPublisher] {
        let bad = issuer().flawed_token(
            TokenVersion::V2,
            "55555555-aaaa-4bbb-8ccc-000000000005",
            TENANT,
            flaw,
        );
        let out = items(
            &receiver,
            &body(std::slice::from_ref(&ours), &[token(APP, TENANT), bad]),
        );
        assert!(
            out[0].outcome.is_rejected(),
            "{flaw:?}: {:?}",
            statuses(&out)
        );
    }
    let other_issuer = TokenIssuer::new().unwrap(); // signed by a key we do not trust
    let out = items(
        &receiver,
        &body(
            std::slice::from_ref(&ours),
            &[
                token(APP, TENANT),
                other_issuer.token(
                    TokenVersion::V2,
                    "55555555-aaaa-4bbb-8ccc-000000000005",
                    TENANT,
                ),
            ],
        ),
    );
    assert!(out[0].outcome.is_rejected(), "{:?}", statuses(&out));
}

#[test]
fn configurations_that_weaken_checks_are_refused() {
    let (key, cert) = test_support::keypair(2048);
    let decryptor =
        || Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap();
    let base = |v: Validation| {
        Receiver::builder(decryptor())
            .validation(v)
            .signing_keys(issuer().signing_keys())
    };
    for (builder, field) in [
        (base(Validation::new([""])), "validation.app_ids"),
        (base(Validation::new([APP, " "])), "validation.app_ids"),
        (
            base(Validation::new([APP]).allow_tenants([""])),
            "validation.tenants",
        ),
        (
            base(Validation::new([APP]).allow_tenants(Vec::<String>::new())),
            "validation.tenants",
        ),
        (
            base(Validation::new([APP])).client_state(""),
            "client_state",
        ),
        (
            base(Validation::new([APP])).subscription_app("", APP),
            "subscription_app",
        ),
    ] {
        match builder.build() {
            Err(Error::Malformed { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // What the empty app id would have let through: a token without `aud`.
    let mut claims = issuer().claims(TokenVersion::V2, APP, TENANT);
    claims.as_object_mut().unwrap().remove("aud");
    let no_aud = issuer().sign(&claims);
    let receiver = base(Validation::new([APP])).build().unwrap();
    let out = items(&receiver, &body(&[item(TENANT, 1)], &[no_aud]));
    assert!(out[0].outcome.is_rejected());
}

#[test]
fn tenant_and_app_ids_compare_as_guids() {
    let upper_app = APP.to_ascii_uppercase();
    let (key, cert) = test_support::keypair(2048);
    let receiver = Receiver::builder(
        Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap(),
    )
    // Configured in upper case; tokens say lower case.
    .validation(Validation::new([upper_app.as_str()]).allow_tenants([TENANT.to_ascii_uppercase()]))
    .signing_keys(issuer().signing_keys())
    .subscription_app("9F9C5AD9-1C0C-4D5C-9D4C-8B0C1F4E2A01", APP)
    .build()
    .unwrap();
    let mut n = item(TENANT, 1);
    n.tenant_id = Some(TENANT.to_ascii_uppercase());
    n.subscription_id = Some("9f9c5ad9-1c0c-4d5c-9d4c-8b0c1f4e2a01".into());
    let out = items(&receiver, &body(&[n], &[token(APP, TENANT)]));
    assert_eq!(statuses(&out), ["decrypted"]);
    // Non-GUID ids still compare exactly.
    assert!(!msgraph_notify::token::ids_equal("Tenant-A", "tenant-a"));
}

#[test]
fn debug_of_every_outcome_hides_the_client_state() {
    let receiver = builder().build().unwrap();
    let lifecycle = json!({"subscriptionId": "s", "tenantId": TENANT, "clientState": SECRET, "lifecycleEvent": "missed"});
    let basic = json!({"subscriptionId": "s", "tenantId": TENANT, "clientState": SECRET, "changeType": "updated"});
    let body = json!({
        "value": [item(TENANT, 1), lifecycle, basic, item(TENANT_2, 3)],
        "validationTokens": [token(APP, TENANT)],
    })
    .to_string();
    let out = items(&receiver, body.as_bytes());
    assert_eq!(
        out.iter().map(|i| i.outcome.status()).collect::<Vec<_>>(),
        ["decrypted", "lifecycle", "basic", "rejected"]
    );
    let shown = format!("{out:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("<redacted>"));
}
