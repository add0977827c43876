//! Properties over generated inputs (proptest):
//!
//! - for any resource JSON, RSA size (2048, 3072, 4096) and AES key size (16, 24, 32), what the
//!   test kit encrypts as Graph does, the `Decryptor` returns byte for byte;
//! - any single-byte change to the decoded `data`, `dataKey` or `dataSignature` is rejected, always
//!   with the one uniform `Error::Verification`;
//! - any byte string given as a body to `Receiver::receive` yields an outcome, never a panic.
//!
//! Keys are generated once per binary; the RSA unwrap dominates each case, so case counts are
//! kept low (the whole file runs in seconds in a debug build).

use std::sync::OnceLock;

use base64::Engine;
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenFlaw};
use msgraph_notify::token::{TokenError, TokenVersion, Validation};
use msgraph_notify::{Decryptor, EncryptedContent, Error, KeyRing};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use test_support::issuer;

const APP: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const TENANT: &str = "22222222-aaaa-4bbb-8ccc-000000000002";

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

/// One decryptor holding all three test keys, each under its own certificate id.
fn decryptor() -> &'static Decryptor {
    static D: OnceLock<Decryptor> = OnceLock::new();
    D.get_or_init(|| {
        let mut ring = KeyRing::new();
        for bits in [2048, 3072, 4096] {
            let (key, cert) = test_support::keypair(bits);
            ring.add(
                format!("cert-{bits}"),
                test_support::copy_key(key),
                Some(cert.clone()),
            )
            .unwrap();
        }
        Decryptor::new(ring)
    })
}

fn encrypt(bits: usize, aes: usize, plaintext: &[u8]) -> EncryptedContent {
    let (_, cert) = test_support::keypair(bits);
    GraphEncryptor::new(cert, &format!("cert-{bits}"))
        .aes_key_len(aes)
        .encrypt(plaintext)
        .unwrap()
}

/// Any JSON value: scalars (with unicode, escapes and extreme numbers), arrays and objects,
/// nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[\"\\\\/\u{0}-\u{1f}\u{7f}\u{2028}\u{fffd}a-z]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A resource as Graph would wrap it: an object, often with an `@odata.type` this crate types.
fn resource_json() -> impl Strategy<Value = Value> {
    let odata = prop_oneof![
        Just(None),
        Just(Some("#microsoft.graph.presence")),
        Just(Some("#microsoft.graph.callevent")),
        Just(Some("#Microsoft.Graph.chatMessage")),
        Just(Some("#microsoft.graph.somethingNew")),
    ];
    (json_value(), odata).prop_map(|(v, odata)| {
        let mut object = match v {
            Value::Object(o) => o,
            other => Map::from_iter([("value".to_owned(), other)]),
        };
        if let Some(t) = odata {
            object.insert("@odata.type".into(), t.into());
        }
        Value::Object(object)
    })
}

/// `cases` cases, no regression files written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// XORs one byte of field `field` (0: data, 1: dataKey, 2: dataSignature) at `position` with
/// `xor`; returns the byte's index.
fn flip(
    content: &mut EncryptedContent,
    field: usize,
    position: prop::sample::Index,
    xor: u8,
) -> usize {
    let slot = match field {
        0 => &mut content.data,
        1 => &mut content.data_key,
        _ => &mut content.data_signature,
    };
    let mut bytes = b64().decode(slot.as_deref().unwrap()).unwrap();
    let at = position.index(bytes.len());
    bytes[at] ^= xor;
    *slot = Some(b64().encode(&bytes));
    at
}

fn aes_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(16usize), Just(24), Just(32)]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn what_the_kit_encrypts_decrypts_unchanged(
        resource in resource_json(),
        bits in prop_oneof![Just(2048usize), Just(3072)],
        aes in aes_len(),
    ) {
        let plaintext = serde_json::to_vec(&resource).unwrap();
        let content = encrypt(bits, aes, &plaintext);
        let out = decryptor().decrypt(&content).unwrap();
        prop_assert_eq!(out.as_bytes(), &plaintext[..]);
        // And it parses to the same JSON value as what went in (compared after the same parse:
        // serde_json's default float parsing is not an exact round trip).
        let back: Value = out.json().unwrap();
        prop_assert_eq!(back, serde_json::from_slice::<Value>(&plaintext).unwrap());
    }

    #[test]
    fn any_single_byte_change_is_rejected_uniformly(
        bits in prop_oneof![Just(2048usize), Just(3072)],
        aes in aes_len(),
        plaintext in prop::collection::vec(any::<u8>(), 0..200),
        field in 0..3usize,
        position in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        // Arbitrary bytes as plaintext: the tampering must be caught before any UTF-8 check.
        let mut content = encrypt(bits, aes, &plaintext);
        let at = flip(&mut content, field, position, xor);
        let result = decryptor().decrypt(&content);
        prop_assert!(
            matches!(result, Err(Error::Verification)),
            "field {} byte {} ^ {:#04x}: {:?}", field, at, xor, result.map(|p| p.len())
        );
    }
}

proptest! {
    // RSA-4096 unwraps cost about ten times a 2048-bit one: fewer cases.
    #![proptest_config(config(12))]

    #[test]
    fn rsa_4096_roundtrips_unchanged(resource in resource_json(), aes in aes_len()) {
        let plaintext = serde_json::to_vec(&resource).unwrap();
        let content = encrypt(4096, aes, &plaintext);
        let out = decryptor().decrypt(&content).unwrap();
        prop_assert_eq!(out.as_bytes(), &plaintext[..]);
    }

    #[test]
    fn rsa_4096_single_byte_changes_are_rejected(
        aes in aes_len(),
        field in 0..3usize,
        position in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        let mut content = encrypt(4096, aes, br#"{"id":"1","availability":"Busy"}"#);
        flip(&mut content, field, position, xor);
        prop_assert!(matches!(decryptor().decrypt(&content), Err(Error::Verification)));
    }
}

// ---- Any body: an outcome, no panic ----

/// A receiver with every check on: tokens, clientState, a small size limit, a replay guard.
fn receiver() -> &'static Receiver {
    static R: OnceLock<Receiver> = OnceLock::new();
    R.get_or_init(|| {
        let (key, cert) = test_support::keypair(2048);
        Receiver::builder(
            Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap(),
        )
        .validation(Validation::new([APP]))
        .signing_keys(issuer().signing_keys())
        .client_state("secret")
        .max_body_bytes(64 * 1024)
        .replay_guard(ReplayGuard::new(64, std::time::Duration::from_secs(60)))
        .build()
        .unwrap()
    })
}

/// A genuine body: two encrypted items, a lifecycle item and a valid token.
fn genuine_body() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let (_, cert) = test_support::keypair(2048);
        let mut spec = NotificationSpec::new(TENANT, "communications/presences/u1");
        spec.client_state = Some("secret".into());
        let encryptor = GraphEncryptor::new(cert, "cert-1");
        let presence = json!({"@odata.type": "#microsoft.graph.presence", "availability": "Busy"});
        let message = json!({"id": "1", "body": {"contentType": "text", "content": "hi"}});
        json!({
            "value": [
                encryptor.notification(&presence, &spec).unwrap(),
                encryptor.notification(&message, &spec).unwrap(),
                {"subscriptionId": "s", "lifecycleEvent": "missed", "clientState": "secret"},
            ],
            "validationTokens": [issuer().token(TokenVersion::V1, APP, TENANT)],
        })
        .to_string()
        .into_bytes()
    })
}

/// Checks the one promise: an `Ok` with one outcome per item, or an `Err`, and no panic.
fn receive_any(body: &[u8]) -> Result<(), TestCaseError> {
    match receiver().receive(None, body) {
        Ok(Reply::Notifications(items)) => {
            for (i, item) in items.iter().enumerate() {
                prop_assert_eq!(item.index, i);
                if let Outcome::Decrypted(d) = &item.outcome {
                    // Whatever decrypted came through every check, including the signature.
                    prop_assert!(std::str::from_utf8(d.plaintext.as_bytes()).is_ok());
                }
                let _ = item.to_json();
            }
        }
        Ok(Reply::Handshake(_)) => prop_assert!(false, "no query, no handshake"),
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    Ok(())
}

/// Bodies shaped like a notification collection with arbitrary content where it matters.
fn collection_like() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        json_value(),
        "[A-Za-z0-9+/]{0,700}={0,2}".prop_map(Value::String),
    ];
    let content = prop::collection::vec(
        (
            prop::sample::select(vec![
                "data",
                "dataKey",
                "dataSignature",
                "encryptionCertificateId",
                "encryptionCertificateThumbprint",
            ]),
            field,
        ),
        0..6,
    )
    .prop_map(|kv| {
        Value::Object(
            kv.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    });
    let item = (
        prop::option::of(content),
        prop::option::of(prop_oneof![Just(json!("secret")), json_value()]),
        prop::option::of(prop_oneof![Just(json!(TENANT)), json_value()]),
        prop::option::of(json_value()),
    )
        .prop_map(|(content, state, tenant, lifecycle)| {
            let mut o = Map::new();
            o.insert("subscriptionId".into(), "s".into());
            for (k, v) in [
                ("encryptedContent", content),
                ("clientState", state),
                ("tenantId", tenant),
                ("lifecycleEvent", lifecycle),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            Value::Object(o)
        });
    let tokens = prop_oneof![
        Just(Value::Null),
        json_value(),
        Just(json!([issuer().token(TokenVersion::V2, APP, TENANT)])),
        prop::collection::vec("[A-Za-z0-9_.-]{0,80}", 0..4)
            .prop_map(|t| Value::Array(t.into_iter().map(Value::String).collect())),
    ];
    (
        prop_oneof![
            prop::collection::vec(item, 0..5).prop_map(Value::Array),
            json_value()
        ],
        tokens,
    )
        .prop_map(|(value, tokens)| {
            json!({"value": value, "validationTokens": tokens})
                .to_string()
                .into_bytes()
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_as_a_body_yield_an_outcome(body in prop::collection::vec(any::<u8>(), 0..512)) {
        receive_any(&body)?;
    }

    #[test]
    fn any_json_as_a_body_yields_an_outcome(value in json_value()) {
        receive_any(value.to_string().as_bytes())?;
    }

    #[test]
    fn any_collection_shaped_body_yields_an_outcome(body in collection_like()) {
        receive_any(&body)?;
    }
}

proptest! {
    // Mutations of a genuine body reach the RSA unwrap when the token survives: fewer cases.
    #![proptest_config(config(64))]

    #[test]
    fn any_mutation_of_a_genuine_body_yields_an_outcome(
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), 0..3u8),
            1..8,
        ),
    ) {
        let mut body = genuine_body().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(body.len() + 1);
            match kind {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i, byte),
                _ if i < body.len() => {
                    body.remove(i);
                }
                _ => body.push(byte),
            }
        }
        receive_any(&body)?;
    }
}

// ---- The threat model's core: a forger holding the certificate ----

/// The `validationTokens` a forger without a genuine token for the tenant can send.
fn forged_tokens() -> impl Strategy<Value = Value> {
    let flaw = prop::sample::select(vec![
        TokenFlaw::Expired,
        TokenFlaw::NotYetValid,
        TokenFlaw::WrongAudience,
        TokenFlaw::WrongPublisher,
        TokenFlaw::PublisherInOtherVersionsClaim,
        TokenFlaw::IssuerContainingTenant,
        TokenFlaw::OtherTenantsIssuer,
        TokenFlaw::AlgNone,
        TokenFlaw::Hs256WithPublicKey,
        TokenFlaw::UnknownKid,
        TokenFlaw::ForeignSignature,
        TokenFlaw::UnknownVersion,
    ]);
    let version = prop_oneof![Just(TokenVersion::V1), Just(TokenVersion::V2)];
    prop_oneof![
        Just(Value::Null),
        Just(json!([])),
        json_value(),
        prop::collection::vec("[A-Za-z0-9_.-]{0,120}", 1..4).prop_map(|t| json!(t)),
        (version.clone(), flaw)
            .prop_map(|(v, f)| json!([issuer().flawed_token(v, APP, TENANT, f)])),
        // Genuine tokens, but for another tenant or another app.
        version.clone().prop_map(|v| json!([issuer().token(
            v,
            APP,
            "33333333-aaaa-4bbb-8ccc-000000000003"
        )])),
        version.prop_map(|v| json!([issuer().token(v, "another-app", TENANT)])),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    /// Anyone with the subscriber's certificate (it is public) can build an `encryptedContent`
    /// whose MAC verifies. Without a valid token for the item's tenant, every such item is
    /// rejected for the token, before any RSA work: never decrypted, never a `Verification`
    /// error (which would mean the private key was used).
    #[test]
    fn forged_items_without_a_valid_token_never_reach_rsa(
        tokens in forged_tokens(),
        resources in prop::collection::vec(resource_json(), 1..4),
    ) {
        let (_, cert) = test_support::keypair(2048);
        let mut spec = NotificationSpec::new(TENANT, "communications/presences/u1");
        spec.client_state = Some("secret".into());
        let encryptor = GraphEncryptor::new(cert, "cert-1");
        let value: Vec<Value> = resources
            .iter()
            .map(|r| serde_json::to_value(encryptor.notification(r, &spec).unwrap()).unwrap())
            .collect();
        let body = json!({"value": value, "validationTokens": tokens}).to_string();
        let Ok(Reply::Notifications(items)) = receiver().receive(None, body.as_bytes()) else {
            return Err(TestCaseError::fail("a well-formed body"));
        };
        prop_assert_eq!(items.len(), resources.len());
        for item in items {
            match &item.outcome {
                Outcome::Rejected(r) => prop_assert!(
                    matches!(r.error, Error::Token(_)),
                    "rejected for {:?}, not for the token", r.error
                ),
                other => prop_assert!(false, "forged item accepted: {}", other.status()),
            }
        }
    }
}

#[test]
fn the_same_forged_items_with_a_valid_token_do_verify() {
    // The counterpart of the property above: it is the token, and nothing else, that stops them.
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(TENANT, "communications/presences/u2");
    spec.client_state = Some("secret".into());
    let forged = GraphEncryptor::new(cert, "cert-1")
        .notification(&json!({"@odata.type": "#microsoft.graph.presence"}), &spec)
        .unwrap();
    let body = json!({
        "value": [forged],
        "validationTokens": [issuer().token(TokenVersion::V2, APP, TENANT)],
    })
    .to_string();
    let Ok(Reply::Notifications(items)) = receiver().receive(None, body.as_bytes()) else {
        panic!("a well-formed body");
    };
    assert_eq!(items[0].outcome.status(), "decrypted");
    // And the missing-token case names itself.
    let body = json!({"value": [items_value(&body)]}).to_string();
    let Ok(Reply::Notifications(items)) = receiver().receive(None, body.as_bytes()) else {
        panic!("a well-formed body");
    };
    assert!(matches!(
        &items[0].outcome,
        Outcome::Rejected(r) if matches!(r.error, Error::Token(TokenError::Missing))
    ));
}

fn items_value(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap()["value"][0].clone()
}

#[test]
fn deeply_nested_and_oversized_bodies_yield_an_error_not_a_crash() {
    // serde_json stops at 128 levels of nesting; the size limit comes before parsing.
    for depth in [127, 128, 129, 10_000, 60_000] {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let _ = receiver().receive(None, body.as_bytes());
        let body = format!(
            "{{\"value\":[{}{}]}}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        );
        let _ = receiver().receive(None, body.as_bytes());
    }
    let big = vec![b' '; 64 * 1024 + 1];
    assert!(matches!(
        receiver().receive(None, &big),
        Err(Error::BodyTooLarge { .. })
    ));
}
