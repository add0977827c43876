//! The receiving flow: one POST in, one outcome per item out.

use msgraph_notify::model::{ChangeNotification, LifecycleEvent};
use msgraph_notify::receiver::{Outcome, Receiver, Reply, dangerous};
use msgraph_notify::resource::Resource;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenFlaw};
use msgraph_notify::token::{Jwks, TokenError, TokenVersion, Validation};
use msgraph_notify::{Decryptor, Error};
use serde_json::{Value, json};
use test_support::{decryptor, issuer};

const APP: &str = "app-1";
const TENANT_A: &str = "tenant-a";
const TENANT_B: &str = "tenant-b";
const SECRET: &str = "client-state-secret";

fn receiver() -> Receiver {
    test_support::webhook(decryptor(), &[APP], SECRET)
        .build()
        .unwrap()
}

fn presence(tenant: &str) -> ChangeNotification {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(tenant, "communications/presences/u1");
    spec.client_state = Some(SECRET.into());
    GraphEncryptor::new(cert, "cert-1")
        .notification(
            &json!({"@odata.type": "#microsoft.graph.presence", "id": "u1", "availability": "Busy"}),
            &spec,
        )
        .unwrap()
}

fn chat(tenant: &str) -> ChangeNotification {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(tenant, "chats('19:abc')/messages('1')");
    spec.client_state = Some(SECRET.into());
    spec.change_type = "created".into();
    GraphEncryptor::new(cert, "cert-1")
        .notification(&json!({"id": "1", "body": {"content": "héllo"}}), &spec)
        .unwrap()
}

fn lifecycle(event: &str) -> Value {
    json!({"subscriptionId": "sub-1", "subscriptionExpirationDateTime": "2030-01-01T00:00:00+00:00",
           "tenantId": TENANT_A, "clientState": SECRET, "lifecycleEvent": event})
}

fn basic() -> Value {
    json!({"subscriptionId": "sub-2", "changeType": "updated", "tenantId": TENANT_A,
           "clientState": SECRET, "resource": "users/u1/messages/m1",
           "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": "m1"}})
}

fn body(items: Vec<Value>, tokens: Option<Vec<String>>) -> Vec<u8> {
    let mut b = json!({ "value": items });
    if let Some(tokens) = tokens {
        b["validationTokens"] = json!(tokens);
    }
    b.to_string().into_bytes()
}

fn v(n: ChangeNotification) -> Value {
    serde_json::to_value(n).unwrap()
}

fn items(r: &Receiver, body: &[u8]) -> Vec<Outcome> {
    match r.receive(None, body).unwrap() {
        Reply::Notifications(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_eq!(item.index, i);
            }
            items.into_iter().map(|i| i.outcome).collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn rejection(o: &Outcome) -> &Error {
    match o {
        Outcome::Rejected(r) => &r.error,
        other => panic!("expected a rejection, got {}", other.status()),
    }
}

fn token_rejection(o: &Outcome) -> &TokenError {
    match rejection(o) {
        Error::Token(t) => t,
        other => panic!("expected a token rejection, got {other}"),
    }
}

#[test]
fn handshake_echoes_the_decoded_token() {
    let r = receiver();
    for (query, expected) in [
        ("validationToken=abc", "abc"),
        (
            "?validationToken=Validation%3A%20Testing+client",
            "Validation: Testing client",
        ),
        ("a=1&validationToken=%E2%9C%93%2F%3D", "✓/="),
    ] {
        match r.receive(Some(query), b"").unwrap() {
            Reply::Handshake(t) => assert_eq!(t, expected),
            other => panic!("{other:?}"),
        }
    }
    // Without the parameter, the body is processed.
    assert!(
        matches!(r.receive(Some("x=1"), b"{\"value\":[]}").unwrap(), Reply::Notifications(v) if v.is_empty())
    );
}

#[test]
fn a_mixed_batch_gives_one_outcome_per_item_in_order() {
    let r = receiver();
    let tokens = vec![
        issuer().token(TokenVersion::V1, APP, TENANT_A),
        issuer().token(TokenVersion::V2, APP, TENANT_B),
    ];
    let b = body(
        vec![
            v(presence(TENANT_A)),
            lifecycle("reauthorizationRequired"),
            v(chat(TENANT_B)),
            basic(),
            lifecycle("somethingNew"),
        ],
        Some(tokens),
    );
    let out = items(&r, &b);
    assert_eq!(
        out.iter().map(Outcome::status).collect::<Vec<_>>(),
        ["decrypted", "lifecycle", "decrypted", "basic", "lifecycle"]
    );
    let Outcome::Decrypted(d) = &out[0] else {
        unreachable!()
    };
    assert!(matches!(d.resource, Resource::Presence(_)));
    assert_eq!(d.notification.tenant_id.as_deref(), Some(TENANT_A));
    let Outcome::Decrypted(d) = &out[2] else {
        unreachable!()
    };
    assert!(
        matches!(&d.resource, Resource::ChatMessage(m) if m.body.as_ref().unwrap().content.as_deref() == Some("héllo"))
    );
    let Outcome::Lifecycle(l) = &out[1] else {
        unreachable!()
    };
    assert_eq!(l.event, LifecycleEvent::ReauthorizationRequired);
    assert_eq!(l.subscription_id.as_deref(), Some("sub-1"));
    assert_eq!(
        l.subscription_expiration_date_time.as_deref(),
        Some("2030-01-01T00:00:00+00:00")
    );
    let Outcome::Lifecycle(l) = &out[4] else {
        unreachable!()
    };
    assert_eq!(l.event.as_str(), "somethingNew");
    // The JSON line of each item.
    let Reply::Notifications(all) = r.receive(None, &b).unwrap() else {
        unreachable!()
    };
    let line = all[0].to_json();
    assert_eq!(line["status"], "decrypted");
    assert_eq!(line["data"]["availability"], "Busy");
    assert_eq!(line["tenantId"], TENANT_A);
    assert_eq!(
        all[1].to_json()["lifecycleEvent"],
        "reauthorizationRequired"
    );
}

#[test]
fn no_tokens_or_an_empty_list_rejects_every_encrypted_item() {
    let r = receiver();
    for tokens in [None, Some(vec![])] {
        let out = items(
            &r,
            &body(
                vec![v(presence(TENANT_A)), basic(), lifecycle("missed")],
                tokens,
            ),
        );
        assert_eq!(token_rejection(&out[0]), &TokenError::Missing);
        assert_eq!(out[1].status(), "basic");
        assert_eq!(out[2].status(), "lifecycle");
    }
    // "validationTokens": null is rejected too, with Graph's documented reason (SPEC §9): the
    // Change Tracking principal holds no app role of an app that requires assignment.
    let mut b: Value = serde_json::from_slice(&body(vec![v(presence(TENANT_A))], None)).unwrap();
    b["validationTokens"] = Value::Null;
    let out = items(&r, b.to_string().as_bytes());
    assert_eq!(token_rejection(&out[0]), &TokenError::Null);
    let reason = TokenError::Null.to_string();
    assert!(
        reason.contains("app role assignment")
            && reason.contains("0bf30f3b-4a52-48df-9a82-234910c4a086"),
        "{reason}"
    );
}

#[test]
fn a_tenant_no_token_covers_is_rejected() {
    let r = receiver();
    let out = items(
        &r,
        &body(
            vec![v(presence(TENANT_A)), v(presence(TENANT_B))],
            Some(vec![issuer().token(TokenVersion::V2, APP, TENANT_A)]),
        ),
    );
    assert_eq!(out[0].status(), "decrypted");
    assert_eq!(
        token_rejection(&out[1]),
        &TokenError::NotCovered(TENANT_B.into())
    );
}

#[test]
fn a_subscription_bound_to_an_app_needs_that_apps_token() {
    const OTHER_APP: &str = "app-2";
    let builder = || {
        Receiver::builder(decryptor())
            .validation(Validation::new([APP, OTHER_APP]))
            .signing_keys(issuer().signing_keys())
            .client_state(SECRET)
    };
    let r = builder()
        .subscription_app("sub-of-app-1", APP)
        .build()
        .unwrap();
    let item = |subscription: &str| {
        let mut n = v(presence(TENANT_A));
        n["subscriptionId"] = subscription.into();
        n
    };
    let bound = || item("sub-of-app-1");
    let unbound = || item("sub-unknown");
    // Only the other app's token: the bound item is refused, the unbound one is covered.
    let other_only = vec![issuer().token(TokenVersion::V2, OTHER_APP, TENANT_A)];
    let out = items(&r, &body(vec![bound(), unbound()], Some(other_only)));
    assert_eq!(
        token_rejection(&out[0]),
        &TokenError::AppNotCovered {
            app_id: APP.into(),
            tenant_id: TENANT_A.into()
        }
    );
    assert_eq!(out[1].status(), "decrypted");
    // The bound app's token, v1.0 this time: both pass.
    let own = vec![issuer().token(TokenVersion::V1, APP, TENANT_A)];
    let out = items(&r, &body(vec![bound(), unbound()], Some(own)));
    assert_eq!(out[0].status(), "decrypted");
    assert_eq!(out[1].status(), "decrypted");
    // The bound app's token for another tenant does not cover this one.
    let elsewhere = vec![
        issuer().token(TokenVersion::V2, APP, TENANT_B),
        issuer().token(TokenVersion::V2, OTHER_APP, TENANT_A),
    ];
    let out = items(&r, &body(vec![bound()], Some(elsewhere)));
    assert!(matches!(
        token_rejection(&out[0]),
        TokenError::AppNotCovered { .. }
    ));
    // Subscription ids are GUIDs: bound whatever their ASCII case.
    let out = items(
        &r,
        &body(
            vec![item("SUB-OF-APP-1")],
            Some(vec![issuer().token(TokenVersion::V2, OTHER_APP, TENANT_A)]),
        ),
    );
    assert!(matches!(
        token_rejection(&out[0]),
        TokenError::AppNotCovered { .. }
    ));
    // Only bound subscriptions: an invented id is refused even with a genuine token.
    let strict = builder()
        .subscription_app("sub-of-app-1", APP)
        .only_bound_subscriptions()
        .build()
        .unwrap();
    let tokens = vec![
        issuer().token(TokenVersion::V2, APP, TENANT_A),
        issuer().token(TokenVersion::V2, OTHER_APP, TENANT_A),
    ];
    let out = items(&strict, &body(vec![bound(), unbound()], Some(tokens)));
    assert_eq!(out[0].status(), "decrypted");
    assert_eq!(
        token_rejection(&out[1]),
        &TokenError::UnboundSubscription("sub-unknown".into())
    );
    // Configuration errors: a subscription bound to two apps, only-bound with no binding,
    // bindings while tokens are skipped.
    for (builder, field) in [
        (
            builder()
                .subscription_app("s", APP)
                .subscription_app("S", OTHER_APP),
            "subscription_app",
        ),
        (
            builder().only_bound_subscriptions(),
            "only_bound_subscriptions",
        ),
        (
            dangerous::skip_token_validation(builder().subscription_app("s", APP)),
            "subscription_app",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert!(
            matches!(&err, Error::Malformed { field: f, .. } if f == field),
            "{err:?}"
        );
    }
    // The same binding twice is fine.
    assert!(
        builder()
            .subscription_app("s", APP)
            .subscription_app("s", APP)
            .build()
            .is_ok()
    );
    // Binding a subscription to an app that is not a receiving app is a configuration error.
    let err = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .subscription_app("sub-x", "not-configured")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Malformed { field, .. } if field == "subscription_app"));
}

#[test]
fn a_failed_token_taints_its_tenant_only() {
    let r = receiver();
    let tokens = vec![
        issuer().token(TokenVersion::V2, APP, TENANT_A),
        issuer().flawed_token(TokenVersion::V1, APP, TENANT_A, TokenFlaw::Expired),
        issuer().token(TokenVersion::V2, APP, TENANT_B),
    ];
    let out = items(
        &r,
        &body(vec![v(presence(TENANT_A)), v(chat(TENANT_B))], Some(tokens)),
    );
    assert_eq!(token_rejection(&out[0]), &TokenError::Expired);
    assert_eq!(out[1].status(), "decrypted");
}

#[test]
fn each_token_failure_reaches_the_item_with_its_reason() {
    let r = receiver();
    for (flaw, check) in [
        // A genuine token of another app is ignored (it covers that app's items), so the item
        // is simply not covered.
        (
            TokenFlaw::WrongAudience,
            (|e: &TokenError| matches!(e, TokenError::NotCovered(_))) as fn(&TokenError) -> bool,
        ),
        (TokenFlaw::WrongPublisher, |e| {
            matches!(e, TokenError::Publisher(_))
        }),
        (TokenFlaw::OtherTenantsIssuer, |e| {
            matches!(e, TokenError::Issuer(_))
        }),
        (TokenFlaw::NotYetValid, |e| {
            matches!(e, TokenError::NotYetValid)
        }),
        (TokenFlaw::AlgNone, |e| {
            matches!(e, TokenError::Algorithm(_))
        }),
        (TokenFlaw::UnknownKid, |e| {
            matches!(e, TokenError::UnknownKey(_))
        }),
        (TokenFlaw::ForeignSignature, |e| {
            matches!(e, TokenError::Signature)
        }),
    ] {
        let token = issuer().flawed_token(TokenVersion::V2, APP, TENANT_A, flaw);
        let out = items(&r, &body(vec![v(presence(TENANT_A))], Some(vec![token])));
        assert!(
            check(token_rejection(&out[0])),
            "{flaw:?}: {:?}",
            token_rejection(&out[0])
        );
    }
}

#[test]
fn a_garbage_token_taints_every_encrypted_item() {
    let r = receiver();
    let tokens = vec![
        issuer().token(TokenVersion::V2, APP, TENANT_A),
        "garbage".to_owned(),
    ];
    let out = items(
        &r,
        &body(vec![v(presence(TENANT_A)), basic()], Some(tokens)),
    );
    assert!(matches!(token_rejection(&out[0]), TokenError::Malformed(_)));
    assert_eq!(out[1].status(), "basic");
    // Non-string entries are garbage too.
    let mut b: Value = serde_json::from_slice(&body(vec![v(presence(TENANT_A))], None)).unwrap();
    b["validationTokens"] = json!([42]);
    let out = items(&r, b.to_string().as_bytes());
    assert!(matches!(token_rejection(&out[0]), TokenError::Malformed(_)));
}

#[test]
fn token_checks_come_before_any_decryption() {
    // A forged item whose dataKey is garbage and which has no token: rejected for the token, so
    // no RSA work was spent on it.
    let r = receiver();
    let mut forged = v(presence(TENANT_A));
    forged["encryptedContent"]["dataKey"] = "AAAA".into();
    let out = items(&r, &body(vec![forged], None));
    assert_eq!(token_rejection(&out[0]), &TokenError::Missing);
}

#[test]
fn client_state_is_checked_per_item_and_secrets_rotate() {
    let r = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .client_state("old-secret")
        .client_state(SECRET)
        .build()
        .unwrap();
    let mut wrong = basic();
    wrong["clientState"] = "client-state-secreT".into();
    let mut missing = basic();
    missing.as_object_mut().unwrap().remove("clientState");
    let mut old = basic();
    old["clientState"] = "old-secret".into();
    let mut wrong_lifecycle = lifecycle("missed");
    wrong_lifecycle["clientState"] = "nope".into();
    let out = items(
        &r,
        &body(vec![basic(), wrong, missing, old, wrong_lifecycle], None),
    );
    assert_eq!(out[0].status(), "basic");
    assert!(matches!(rejection(&out[1]), Error::ClientState));
    assert!(matches!(rejection(&out[2]), Error::ClientState));
    assert_eq!(out[3].status(), "basic");
    assert!(matches!(rejection(&out[4]), Error::ClientState));
}

#[test]
fn body_level_errors() {
    let r = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .max_body_bytes(1000)
        .build()
        .unwrap();
    assert!(matches!(
        r.receive(None, &vec![b' '; 1001]),
        Err(Error::BodyTooLarge {
            size: 1001,
            limit: 1000
        })
    ));
    for &bad in test_support::NOT_THE_DOCUMENT {
        match r.receive(None, bad) {
            Err(Error::Malformed { .. }) => {}
            other => panic!("{}: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    // Deeply nested JSON in an item is refused with that item, by the parser's depth limit (not
    // by a stack overflow); the body and its other items go on.
    let r = receiver();
    let deep_array = format!("{}{}", "[".repeat(400), "]".repeat(400));
    let deep_object = format!(
        "{{\"subscriptionId\":\"s\",\"x\":{}1{}}}",
        "{\"a\":".repeat(300),
        "}".repeat(300)
    );
    for deep in [deep_array, deep_object] {
        let good = serde_json::to_string(&presence(TENANT_A)).unwrap();
        let token = issuer().token(TokenVersion::V2, APP, TENANT_A);
        let body = format!("{{\"value\":[{deep},{good}],\"validationTokens\":[\"{token}\"]}}");
        let out = items(&r, body.as_bytes());
        assert!(
            matches!(rejection(&out[0]), Error::Malformed { reason, .. }
                if reason.contains("recursion limit") || reason.contains("invalid type: sequence")),
            "{:?}",
            out[0]
        );
        assert_eq!(out[1].status(), "decrypted");
    }
}

#[test]
fn one_bad_item_never_sinks_the_others() {
    let r = receiver();
    let mut bad_b64 = v(presence(TENANT_A));
    bad_b64["encryptedContent"]["data"] = "%%%".into();
    let mut tampered = v(presence(TENANT_A));
    tampered["encryptedContent"]["dataSignature"] =
        v(presence(TENANT_A))["encryptedContent"]["dataSignature"].clone();
    let mut no_tenant = v(presence(TENANT_A));
    no_tenant.as_object_mut().unwrap().remove("tenantId");
    let items_in = vec![
        json!(5),
        json!({"subscriptionId": 7}),
        bad_b64,
        v(presence(TENANT_A)),
        tampered,
        no_tenant,
        json!({"subscriptionId": "s", "clientState": SECRET, "encryptedContent": "x"}),
        v(chat(TENANT_A)),
    ];
    let out = items(
        &r,
        &body(
            items_in,
            Some(vec![issuer().token(TokenVersion::V2, APP, TENANT_A)]),
        ),
    );
    assert!(matches!(rejection(&out[0]), Error::Malformed { field, .. } if field == "value[0]"));
    // A field of the wrong JSON type is named by its path in the item.
    assert!(
        matches!(rejection(&out[1]), Error::Malformed { field, reason } if field == "subscriptionId" && reason.contains("integer")),
        "{:?}",
        rejection(&out[1])
    );
    assert!(
        matches!(rejection(&out[2]), Error::Malformed { field, .. } if field == "encryptedContent.data")
    );
    assert_eq!(out[3].status(), "decrypted");
    assert!(matches!(rejection(&out[4]), Error::Verification));
    assert!(matches!(rejection(&out[5]), Error::Malformed { field, .. } if field == "tenantId"));
    assert!(
        matches!(rejection(&out[6]), Error::Malformed { field, .. } if field == "encryptedContent"),
        "{:?}",
        rejection(&out[6])
    );
    assert_eq!(out[7].status(), "decrypted");
}

#[test]
fn a_validated_token_is_cached_until_it_expires() {
    let keys = issuer().signing_keys();
    let r = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .signing_keys(keys.clone())
        .client_state(SECRET)
        .build()
        .unwrap();
    let token = issuer().token(TokenVersion::V2, APP, TENANT_A);
    let b = body(vec![v(presence(TENANT_A))], Some(vec![token.clone()]));
    assert_eq!(items(&r, &b)[0].status(), "decrypted");
    // The key set is emptied: the cached token still covers its tenant...
    keys.replace(Jwks::default());
    let b2 = body(vec![v(presence(TENANT_A))], Some(vec![token]));
    assert_eq!(items(&r, &b2)[0].status(), "decrypted");
    // ...while a token never seen before now fails on its unknown kid.
    let fresh = issuer().token(TokenVersion::V1, APP, TENANT_A);
    let out = items(&r, &body(vec![v(presence(TENANT_A))], Some(vec![fresh])));
    assert!(matches!(
        token_rejection(&out[0]),
        TokenError::UnknownKey(_)
    ));
    assert_eq!(
        r.unknown_kids(&body(
            vec![],
            Some(vec![issuer().token(TokenVersion::V1, APP, "t")])
        )),
        [issuer().kid()]
    );
}

#[test]
fn parallel_and_sequential_agree() {
    let seq = receiver();
    let par = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .client_state(SECRET)
        .parallel(true)
        .build()
        .unwrap();
    let mut list = Vec::new();
    for i in 0..24 {
        let mut item = if i % 2 == 0 {
            v(presence(TENANT_A))
        } else {
            v(chat(TENANT_A))
        };
        if i % 5 == 0 {
            item["encryptedContent"]["dataSignature"] =
                v(presence(TENANT_A))["encryptedContent"]["dataSignature"].clone();
        }
        list.push(item);
    }
    let b = body(
        list,
        Some(vec![issuer().token(TokenVersion::V2, APP, TENANT_A)]),
    );
    let a: Vec<_> = items(&seq, &b).iter().map(|o| o.status()).collect();
    let p: Vec<_> = items(&par, &b).iter().map(|o| o.status()).collect();
    assert_eq!(a, p);
    assert_eq!(a.iter().filter(|s| **s == "rejected").count(), 5);
}

#[test]
fn skipping_tokens_is_explicit_and_works_offline() {
    assert!(
        Receiver::builder(decryptor()).build().is_err(),
        "no validation and no explicit skip"
    );
    let r = dangerous::skip_token_validation(Receiver::builder(decryptor()))
        .build()
        .unwrap();
    let out = items(&r, &body(vec![v(presence(TENANT_A))], None));
    assert_eq!(out[0].status(), "decrypted");
}

#[test]
fn the_docs_samples_go_through_the_receiver() {
    let Some(shared) = test_support::shared_dir() else {
        return;
    };
    let r = dangerous::skip_token_validation(Receiver::builder(decryptor()))
        .build()
        .unwrap();
    for (file, expected) in [
        ("samples/lifecycle/lifecycle-missed.json", "lifecycle"),
        (
            "samples/lifecycle/lifecycle-subscriptionRemoved.json",
            "lifecycle",
        ),
        (
            "samples/lifecycle/lifecycle-reauthorizationRequired.json",
            "lifecycle",
        ),
        // Event Hubs' reachability message through the webhook, where Graph never sends it: an
        // ordinary item (no encrypted content, and no clientState configured here).
        (
            "samples/collection/eventhubs-validation-message.json",
            "basic",
        ),
        (
            "samples/presence/presence-rich-notification-encrypted.json",
            "rejected",
        ),
    ] {
        let bytes = std::fs::read(shared.join(file)).unwrap();
        let out = items(&r, &bytes);
        assert!(
            out.iter().all(|o| o.status() == expected),
            "{file}: {:?}",
            out.iter().map(Outcome::status).collect::<Vec<_>>()
        );
    }
    // Through the hub's own transport it is its own outcome, never a rejection; through the
    // webhook of a receiver with a clientState it fails the clientState check like any item.
    let validation =
        std::fs::read(shared.join("samples/collection/eventhubs-validation-message.json")).unwrap();
    let hub = r.receive_trusted_transport(&validation).unwrap();
    assert!(hub.iter().all(|o| o.outcome.status() == "validation"));
    let with_state = dangerous::skip_token_validation(Receiver::builder(decryptor()))
        .client_state("s3cret")
        .build()
        .unwrap();
    let posted = items(&with_state, &validation);
    assert!(
        posted.iter().all(|o| o.status() == "rejected"),
        "{posted:?}"
    );
    assert!(
        with_state
            .receive_trusted_transport(&validation)
            .unwrap()
            .iter()
            .all(|o| o.outcome.status() == "validation")
    );
    // The real vector's constructed collection has no token: refused unless tokens are skipped.
    let vector =
        std::fs::read(shared.join("vectors/dotnet-sdk/notification-collection.CONSTRUCTED.json"))
            .unwrap();
    let (key, cert) = msgraph_notify::PrivateKey::from_pkcs12(
        &std::fs::read(shared.join("vectors/dotnet-sdk/certificate.pfx")).unwrap(),
        "rich",
    )
    .unwrap();
    let strict = Receiver::builder(Decryptor::with_key(key, cert).unwrap())
        .validation(Validation::new([APP]))
        .build()
        .unwrap();
    assert_eq!(
        token_rejection(&items(&strict, &vector)[0]),
        &TokenError::Missing
    );
}

#[test]
fn debug_output_shows_no_secret() {
    let shown = format!("{:?}", receiver());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("client_states: 1"));
}

#[test]
fn a_body_stuffed_with_tokens_is_refused_without_checking_them() {
    let r = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .client_state(SECRET)
        .max_validation_tokens(3)
        .build()
        .unwrap();
    let good = issuer().token(TokenVersion::V2, APP, TENANT_A);
    // Up to the limit (duplicates are checked once).
    let out = items(
        &r,
        &body(vec![v(presence(TENANT_A))], Some(vec![good.clone(); 3])),
    );
    assert_eq!(out[0].status(), "decrypted");
    // One more and the body is refused whole, while parsing: no token is checked, no item has
    // an outcome.
    let mut tokens = vec![good];
    tokens.extend((0..3).map(|i| {
        issuer().flawed_token(
            TokenVersion::V1,
            APP,
            &format!("t{i}"),
            TokenFlaw::ForeignSignature,
        )
    }));
    let err = r
        .receive(
            None,
            &body(vec![v(presence(TENANT_A)), basic()], Some(tokens)),
        )
        .unwrap_err();
    test_support::assert_too_many(&err, "validation tokens", 3);
}

#[test]
fn a_body_past_the_item_limit_is_refused_whole_before_any_rsa_work() {
    let r = Receiver::builder(decryptor())
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .client_state(SECRET)
        .max_items(2)
        .build()
        .unwrap();
    let token = issuer().token(TokenVersion::V2, APP, TENANT_A);
    let out = items(
        &r,
        &body(
            vec![v(presence(TENANT_A)), basic()],
            Some(vec![token.clone()]),
        ),
    );
    assert_eq!(out[0].status(), "decrypted");
    assert_eq!(out[1].status(), "basic");
    let err = r
        .receive(
            None,
            &body(
                vec![
                    v(presence(TENANT_A)),
                    basic(),
                    v(presence(TENANT_A)),
                    basic(),
                ],
                Some(vec![token]),
            ),
        )
        .unwrap_err();
    test_support::assert_too_many(&err, "items", 2);
    assert!(err.to_string().contains("more than 2 items"));
}
