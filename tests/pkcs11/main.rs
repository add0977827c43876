//! Keys in a PKCS#11 token, for real: a throw-away SoftHSM2 token (see test-support's `softhsm.rs`),
//! keys imported or generated there as non-extractable, and every unwrap done by the token.
//! Run with `cargo test -p msgraph-notify --features pkcs11 --test pkcs11`.

use std::sync::{Arc, Barrier};

use cryptoki::object::Attribute;
use msgraph_notify::keys::Unwrap;
use msgraph_notify::keys::pkcs11::{Pkcs11Key, Pkcs11Uri};
use msgraph_notify::model::EncryptedContent;
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenFlaw};
use msgraph_notify::token::{TokenVersion, Validation};
use msgraph_notify::{Certificate, Decryptor, Error, KeyRing, PrivateKey};
use serde_json::{Value, json};
use test_support::issuer;
use test_support::softhsm::{self, Hsm};

/// Every token this test binary uses (made before the module is first loaded).
const TOKENS: &[&str] = &["graph", "pins"];

fn hsm() -> Option<&'static Hsm> {
    softhsm::hsm(TOKENS)
}

/// A key generated in the `graph` token under `label`, with its certificate.
fn generated(hsm: &Hsm, label: &str) -> (Pkcs11Key, Certificate) {
    let _one = softhsm::creating();
    let key = Pkcs11Key::generate(&hsm.uri("graph", label), 2048, label, 30).unwrap();
    let cert = key.certificate().cloned().expect("stored beside the key");
    (key, cert)
}

fn content(cert: &Certificate, id: &str, text: &str) -> EncryptedContent {
    GraphEncryptor::new(cert, id)
        .encrypt(json!({ "text": text }).to_string().as_bytes())
        .unwrap()
}

#[test]
fn the_real_graph_vector_decrypts_through_the_token() {
    let (Some(hsm), Some(dir)) = (hsm(), test_support::vector_dir()) else {
        return;
    };
    // Graph's own RSA-4096 key, imported as sensitive and non-extractable, with its certificate.
    let pem = std::fs::read_to_string(dir.join("private_key.pkcs1.pem")).unwrap();
    let (_, der) = pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap();
    let cert_der = std::fs::read(dir.join("certificate.der")).unwrap();
    hsm.import("graph", "real-vector", b"rv", &der, Some(&cert_der));
    let flags = hsm.private_key_flags("graph", "real-vector");
    assert!(flags.contains(&Attribute::Sensitive(true)));
    assert!(flags.contains(&Attribute::Extractable(false)));
    assert!(
        !flags
            .iter()
            .any(|a| matches!(a, Attribute::PrivateExponent(_))),
        "the token must not hand out the private exponent: {flags:?}"
    );

    let key = Pkcs11Key::open(&hsm.uri("graph", "real-vector")).unwrap();
    assert_eq!(key.bits(), 4096);
    let cert = key
        .certificate()
        .cloned()
        .expect("the certificate with the key's id");
    assert_eq!(
        cert.thumbprint(),
        "4B95353E086AD37196606ACF834A14532F03E6DB"
    );
    let content: EncryptedContent =
        serde_json::from_slice(&std::fs::read(dir.join("encryptedContent.json")).unwrap()).unwrap();
    let expected = std::fs::read(dir.join("decrypted.json")).unwrap();
    let id = content.encryption_certificate_id.clone().unwrap();

    let mut ring = KeyRing::new();
    ring.add_unwrapper(id, key.clone(), Some(cert)).unwrap();
    let plaintext = Decryptor::new(ring).decrypt(&content).unwrap();
    assert_eq!(plaintext.as_bytes(), expected.as_slice());
    assert_eq!(key.unwrap_calls(), 1);
}

#[test]
fn a_generated_key_never_leaves_the_token_and_round_trips() {
    let Some(hsm) = hsm() else { return };
    let (key, cert) = generated(hsm, "generated");
    let flags = hsm.private_key_flags("graph", "generated");
    for want in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
    ] {
        assert!(flags.contains(&want), "{want:?} in {flags:?}");
    }
    assert!(cert.belongs_to(&key));

    let decryptor = Decryptor::with_unwrapper(key.clone(), Some(cert.clone())).unwrap();
    let ok = content(&cert, "any", "through the token");
    assert_eq!(
        decryptor.decrypt(&ok).unwrap().as_str(),
        r#"{"text":"through the token"}"#
    );

    // What the token says about a bad ciphertext is the uniform error, as in process.
    let mut wrong = ok.clone();
    let other = content(&test_support::other_keypair().1, "any", "x");
    wrong.data_key = other.data_key;
    wrong.encryption_certificate_thumbprint = None;
    assert!(matches!(
        decryptor.decrypt(&wrong),
        Err(Error::Verification)
    ));
    let mut short = ok.clone();
    short.data_key = Some("AAAA".into());
    assert!(matches!(
        decryptor.decrypt(&short),
        Err(Error::Verification)
    ));
    // And the token keeps working after refusing them.
    assert!(decryptor.decrypt(&ok).is_ok());
    assert_eq!(key.unwrap_calls(), 4);

    // The same label again is refused rather than shadowed.
    let again = {
        let _one = softhsm::creating();
        Pkcs11Key::generate(&hsm.uri("graph", "generated"), 2048, "x", 1).unwrap_err()
    };
    assert!(again.to_string().contains("exists"), "{again}");
}

#[test]
fn rotation_with_one_file_key_and_one_token_key_under_one_id() {
    let Some(hsm) = hsm() else { return };
    let (token_key, token_cert) = generated(hsm, "rotation-new");
    let (file_key, file_cert) = test_support::keypair(2048);
    let mut ring = KeyRing::new();
    ring.add(
        "receiver",
        test_support::copy_key(file_key),
        Some(file_cert.clone()),
    )
    .unwrap();
    ring.add_unwrapper("receiver", token_key.clone(), Some(token_cert.clone()))
        .unwrap();
    let decryptor = Decryptor::new(ring);

    for round in 0..3 {
        let old = content(file_cert, "receiver", &format!("old {round}"));
        let new = content(&token_cert, "receiver", &format!("new {round}"));
        assert!(decryptor.decrypt(&old).unwrap().as_str().contains("old"));
        assert!(decryptor.decrypt(&new).unwrap().as_str().contains("new"));
    }
    // Only the items for the token's certificate went to the token.
    assert_eq!(token_key.unwrap_calls(), 3);

    // A thumbprint neither certificate has is refused before any unwrap.
    let mut unknown = content(&token_cert, "receiver", "x");
    unknown.encryption_certificate_thumbprint = Some("00".repeat(20));
    assert!(matches!(
        decryptor.decrypt(&unknown),
        Err(Error::ThumbprintMismatch { .. })
    ));
    assert_eq!(token_key.unwrap_calls(), 3);
}

#[test]
fn two_workers_unwrap_in_parallel_on_their_own_sessions() {
    let Some(hsm) = hsm() else { return };
    let (key, cert) = generated(hsm, "parallel");
    let decryptor = Arc::new(Decryptor::with_unwrapper(key.clone(), Some(cert.clone())).unwrap());
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (decryptor, barrier, cert) = (decryptor.clone(), barrier.clone(), cert.clone());
            std::thread::spawn(move || {
                let items: Vec<_> = (0..25)
                    .map(|i| content(&cert, "p", &format!("{w}-{i}")))
                    .collect();
                barrier.wait();
                for (i, item) in items.iter().enumerate() {
                    let text = decryptor.decrypt(item).unwrap();
                    assert_eq!(
                        text.as_str(),
                        json!({ "text": format!("{w}-{i}") }).to_string()
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(key.unwrap_calls(), 50);
    // Two unwraps ran at once on two sessions (the one opened with the key, one more).
    assert!(key.sessions_opened() >= 2, "{}", key.sessions_opened());
}

#[test]
fn a_wrong_pin_is_a_clear_error_that_names_the_pin_and_not_its_value() {
    let Some(hsm) = hsm() else { return };
    let uri = format!(
        "pkcs11:token=pins;object=k?module-path={}&pin-value=999999",
        hsm.module.display()
    );
    let err = Pkcs11Key::open(&uri).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Key(_)), "{err:?}");
    assert!(text.contains("PIN is incorrect"), "{text}");
    assert!(!text.contains("999999"), "{text}");

    let pin_file = hsm.dir.join("wrong-pin");
    std::fs::write(&pin_file, "123123\n").unwrap();
    let uri = format!(
        "pkcs11:token=pins;object=k?module-path={}&pin-source=file:{}",
        hsm.module.display(),
        pin_file.display()
    );
    let text = Pkcs11Key::open(&uri).unwrap_err().to_string();
    assert!(text.contains("PIN is incorrect"), "{text}");
    assert!(!text.contains("123123"), "{text}");

    let uri = format!(
        "pkcs11:token=pins;object=k?module-path={}&pin-source=file:{}",
        hsm.module.display(),
        hsm.dir.join("no-such-pin-file").display()
    );
    let text = Pkcs11Key::open(&uri).unwrap_err().to_string();
    assert!(text.contains("cannot read the PIN file"), "{text}");
}

#[test]
fn a_missing_object_or_token_is_named() {
    let Some(hsm) = hsm() else { return };
    let text = Pkcs11Key::open(&hsm.uri("graph", "no-such-key"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("no RSA private key matches") && text.contains("no-such-key"),
        "{text}"
    );
    let text = Pkcs11Key::open(&hsm.uri("no-such-token", "k"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("no token") && text.contains("\"graph\""),
        "the message lists the tokens present: {text}"
    );
    // Without a PIN the private key is not visible: the message says why.
    let uri = format!(
        "pkcs11:token=graph;object=no-pin?module-path={}",
        hsm.module.display()
    );
    let text = Pkcs11Key::open(&uri).unwrap_err().to_string();
    assert!(text.contains("no PIN was given"), "{text}");
}

#[test]
fn a_module_path_that_does_not_exist_is_named() {
    let err = Pkcs11Key::open("pkcs11:object=k?module-path=/nonexistent/libpkcs11.so&pin-value=1")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/libpkcs11.so") && text.contains("does not exist"),
        "{text}"
    );
    // A file that is no PKCS#11 module.
    let Some(hsm) = hsm() else { return };
    let text = Pkcs11Key::open(&format!(
        "pkcs11:object=k?module-path={}",
        hsm.dir.join("pin").display()
    ))
    .unwrap_err()
    .to_string();
    assert!(text.contains("cannot load the PKCS#11 module"), "{text}");
}

#[test]
fn a_flood_of_forged_items_makes_no_call_to_the_token() {
    let Some(hsm) = hsm() else { return };
    let (key, cert) = generated(hsm, "flood");
    let mut ring = KeyRing::new();
    ring.add_unwrapper("flood", key.clone(), Some(cert.clone()))
        .unwrap();
    let receiver = Receiver::builder(Decryptor::new(ring))
        .validation(Validation::new(["app"]))
        .signing_keys(issuer().signing_keys())
        .client_state("secret")
        .parallel(true)
        .build()
        .unwrap();
    let item = |i: usize, client_state: &str| -> Value {
        let mut spec = NotificationSpec::new("tenant", "communications/presences/u1");
        spec.client_state = Some(client_state.into());
        let n = GraphEncryptor::new(&cert, "flood")
            .notification(
                &json!({"@odata.type": "#microsoft.graph.presence", "id": format!("u{i}")}),
                &spec,
            )
            .unwrap();
        serde_json::to_value(n).unwrap()
    };
    let outcomes = |body: Value| -> Vec<Outcome> {
        match receiver.receive(None, body.to_string().as_bytes()).unwrap() {
            Reply::Notifications(items) => items.into_iter().map(|i| i.outcome).collect(),
            other => panic!("{other:?}"),
        }
    };
    let genuine: Vec<Value> = (0..40).map(|i| item(i, "secret")).collect();
    let forged_tokens = [
        None,
        Some(vec![issuer().flawed_token(
            TokenVersion::V2,
            "app",
            "tenant",
            TokenFlaw::Expired,
        )]),
        Some(vec![issuer().flawed_token(
            TokenVersion::V1,
            "app",
            "tenant",
            TokenFlaw::UnknownKid,
        )]),
        Some(vec![issuer().flawed_token(
            TokenVersion::V2,
            "app",
            "tenant",
            TokenFlaw::AlgNone,
        )]),
        Some(vec![issuer().token(
            TokenVersion::V2,
            "app",
            "other-tenant",
        )]),
    ];
    for tokens in forged_tokens {
        let mut body = json!({ "value": genuine });
        if let Some(t) = tokens {
            body["validationTokens"] = json!(t);
        }
        let out = outcomes(body);
        assert_eq!(out.len(), 40);
        assert!(out.iter().all(|o| o.status() == "rejected"));
    }
    // A valid token, but a wrong clientState on every item.
    let wrong_state: Vec<Value> = (0..40).map(|i| item(i, "guess")).collect();
    let body = json!({ "value": wrong_state,
        "validationTokens": [issuer().token(TokenVersion::V2, "app", "tenant")] });
    assert!(outcomes(body).iter().all(|o| o.status() == "rejected"));
    assert_eq!(key.unwrap_calls(), 0, "forged items reached the token");

    // The genuine POST: one token operation per item.
    let body = json!({ "value": genuine,
        "validationTokens": [issuer().token(TokenVersion::V2, "app", "tenant")] });
    let out = outcomes(body);
    assert!(
        out.iter().all(|o| o.status() == "decrypted"),
        "{:?}",
        out.iter().map(Outcome::status).collect::<Vec<_>>()
    );
    assert_eq!(key.unwrap_calls(), 40);
}

#[test]
fn debug_output_never_shows_the_pin() {
    let Some(hsm) = hsm() else { return };
    let (key, _) = generated(hsm, "debug");
    let uri = format!(
        "pkcs11:token=graph;object=debug?module-path={}&pin-value={}",
        hsm.module.display(),
        softhsm::PIN
    );
    let parsed = Pkcs11Uri::parse(&uri).unwrap();
    let by_value = Pkcs11Key::open(&uri).unwrap();
    for text in [
        format!("{parsed:?}"),
        format!("{by_value:?}"),
        format!("{key:?}"),
        by_value.describe(),
    ] {
        assert!(!text.contains(softhsm::PIN), "{text}");
    }
    let mut ring = KeyRing::new();
    ring.add_unwrapper("debug", by_value, None).unwrap();
    assert!(!format!("{ring:?}").contains(softhsm::PIN));
}

#[test]
fn uri_parsing_is_strict_and_names_what_is_wrong() {
    let ok = Pkcs11Uri::parse(
        "pkcs11:token=my%20token;serial=0123;slot-id=7;id=%01%ff;type=private\
         ?module-path=/m.so&pin-source=file:/run/pin",
    )
    .unwrap();
    assert_eq!(ok.token.as_deref(), Some("my token"));
    assert_eq!(ok.serial.as_deref(), Some("0123"));
    assert_eq!(ok.slot_id, Some(7));
    assert_eq!(ok.id.as_deref(), Some(&[1u8, 0xff][..]));
    assert_eq!(ok.object, None);
    assert_eq!(
        ok.module_path.as_deref(),
        Some(std::path::Path::new("/m.so"))
    );
    assert_eq!(ok.pin_source.as_deref(), Some("file:/run/pin"));

    for (uri, says) in [
        ("token=t;object=k", "must start with \"pkcs11:\""),
        ("pkcs11:token=t", "names no key"),
        ("pkcs11:object=k;object=l", "\"object\" is given twice"),
        ("pkcs11:object=k%2", "malformed percent-encoding"),
        ("pkcs11:object=k%zz", "malformed percent-encoding"),
        (
            "pkcs11:object=k;colour=red",
            "unsupported path attribute \"colour\"",
        ),
        (
            "pkcs11:object=k?colour=red",
            "unsupported query attribute \"colour\"",
        ),
        ("pkcs11:object=k;type=cert", "type=private"),
        ("pkcs11:object=k;slot-id=x", "slot-id"),
        ("pkcs11:object", "has no \"=\""),
        ("pkcs11:object=k?pin-value=1&pin-source=file:/p", "not both"),
        ("pkcs11:object=%ff", "not UTF-8"),
        ("pkcs11:object=k?module-name=softhsm2", "module-path"),
    ] {
        let err = Pkcs11Uri::parse(uri).unwrap_err();
        assert!(matches!(err, Error::Key(_)));
        assert!(err.to_string().contains(says), "{uri}: {err}");
    }
}

#[test]
fn an_unwrapper_failure_is_its_own_error_not_a_bad_notification() {
    /// A key store that is down: what a vault out of reach or a removed token reports.
    struct Down;
    impl Unwrap for Down {
        fn unwrap_key(&self, _: &[u8]) -> msgraph_notify::Result<zeroize::Zeroizing<Vec<u8>>> {
            Err(Error::KeyUnavailable("the vault is out of reach".into()))
        }
    }
    /// A key store that answers with its own kind of error for a bad ciphertext.
    struct Chatty;
    impl Unwrap for Chatty {
        fn unwrap_key(&self, _: &[u8]) -> msgraph_notify::Result<zeroize::Zeroizing<Vec<u8>>> {
            Err(Error::Backend("OAEP decoding error at byte 17".into()))
        }
    }
    let (_, cert) = test_support::keypair(2048);
    let item = content(cert, "x", "y");
    let down = Decryptor::with_unwrapper(Down, Some(cert.clone())).unwrap();
    match down.decrypt(&item) {
        Err(Error::KeyUnavailable(why)) => assert_eq!(why, "the vault is out of reach"),
        other => panic!("{other:?}"),
    }
    // Anything else an unwrapper says becomes the one uniform error, with no detail.
    let chatty = Decryptor::with_unwrapper(Chatty, Some(cert.clone())).unwrap();
    assert!(matches!(chatty.decrypt(&item), Err(Error::Verification)));
    // A certificate that does not belong to a key that tells its modulus is refused.
    let other = PrivateKey::generate(2048).unwrap();
    assert!(matches!(
        Decryptor::with_unwrapper(other, Some(cert.clone())),
        Err(Error::Certificate(_))
    ));
}

#[test]
fn a_key_is_found_by_token_serial_and_percent_encoded_id() {
    let Some(hsm) = hsm() else { return };
    let serial = {
        let ctx = hsm.ctx();
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label() == "graph")
            .unwrap();
        ctx.get_token_info(slot).unwrap().serial_number().to_owned()
    };
    let module = hsm.module.display();
    let pin = hsm.dir.join("pin");
    let made = {
        let _one = softhsm::creating();
        Pkcs11Key::generate(
            &format!(
                "pkcs11:token=graph;object=by-id;id=%0a%FF%3b?module-path={module}&pin-source=file:{}",
                pin.display()
            ),
            2048,
            "by-id",
            1,
        )
        .unwrap()
    };
    // No label, no token label: the serial finds the token, the id bytes the key and its
    // certificate.
    let found = Pkcs11Key::open(&format!(
        "pkcs11:serial={serial};id=%0A%ff%3B;type=private?module-path={module}&pin-source=file:{}",
        pin.display()
    ))
    .unwrap();
    assert_eq!(found.certificate(), made.certificate());
    let cert = found.certificate().cloned().unwrap();
    let d = Decryptor::with_unwrapper(found, Some(cert.clone())).unwrap();
    assert!(d.decrypt(&content(&cert, "x", "by id")).is_ok());
    // A serial no token has.
    let text = Pkcs11Key::open(&format!(
        "pkcs11:serial=0000000000000000;id=%0a%ff%3b?module-path={module}&pin-source=file:{}",
        pin.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(text.contains("no token"), "{text}");
}
