//! Certificate rotation under one id: every key registered under an id is kept, and the
//! notification's thumbprint chooses among them.

use msgraph_notify::model::EncryptedContent;
use msgraph_notify::testing::GraphEncryptor;
use msgraph_notify::{Certificate, Decryptor, Error, KeyRing};

fn content(cert: &Certificate, id: &str, text: &str) -> EncryptedContent {
    GraphEncryptor::new(cert, id)
        .encrypt(format!("{{\"t\":\"{text}\"}}").as_bytes())
        .unwrap()
}

#[test]
fn two_certificates_under_one_id_both_decrypt() {
    let (k1, c1) = test_support::keypair(2048);
    let (k2, c2) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    ring.add("receiver", test_support::copy_key(k1), Some(c1.clone()))
        .unwrap();
    ring.add("receiver", test_support::copy_key(k2), Some(c2.clone()))
        .unwrap();
    assert_eq!(ring.len(), 2);
    let d = Decryptor::new(ring);
    assert_eq!(
        d.decrypt(&content(c1, "receiver", "old")).unwrap().as_str(),
        r#"{"t":"old"}"#
    );
    assert_eq!(
        d.decrypt(&content(c2, "receiver", "new")).unwrap().as_str(),
        r#"{"t":"new"}"#
    );

    // A thumbprint that neither has: a mismatch that lists both registered certificates.
    let mut stray = content(c1, "receiver", "x");
    stray.encryption_certificate_thumbprint = Some("AB".repeat(20));
    match d.decrypt(&stray) {
        Err(Error::ThumbprintMismatch { registered, .. }) => {
            assert!(registered.contains(&c1.thumbprint()) && registered.contains(&c2.thumbprint()));
        }
        other => panic!("{other:?}"),
    }
    // No thumbprint: only the thumbprint could choose, so the item says what is missing.
    let mut bare = content(c1, "receiver", "x");
    bare.encryption_certificate_thumbprint = None;
    match d.decrypt(&bare) {
        Err(Error::Malformed { field, .. }) => assert_eq!(field, "encryptionCertificateThumbprint"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_without_certificate_serves_the_other_thumbprints_of_its_id() {
    let (k1, c1) = test_support::keypair(2048);
    let (k2, c2) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    ring.add("receiver", test_support::copy_key(k1), None)
        .unwrap();
    ring.add("receiver", test_support::copy_key(k2), Some(c2.clone()))
        .unwrap();
    let d = Decryptor::new(ring);
    assert!(d.decrypt(&content(c2, "receiver", "by thumbprint")).is_ok());
    assert!(
        d.decrypt(&content(c1, "receiver", "the certless one"))
            .is_ok()
    );
}

#[test]
fn a_second_key_is_refused_only_when_nothing_tells_them_apart() {
    let (k1, c1) = test_support::keypair(2048);
    let (k2, _) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    ring.add("receiver", test_support::copy_key(k1), None)
        .unwrap();
    let err = ring
        .add("receiver", test_support::copy_key(k2), None)
        .unwrap_err();
    assert!(matches!(err, Error::Key(_)));
    assert!(
        err.to_string().contains("neither has a certificate"),
        "{err}"
    );
    assert_eq!(ring.len(), 1, "the first key stays");

    // The same certificate twice under one id is a mistake too.
    let mut ring = KeyRing::new();
    ring.add("receiver", test_support::copy_key(k1), Some(c1.clone()))
        .unwrap();
    let err = ring
        .add("receiver", test_support::copy_key(k1), Some(c1.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");
    // Under another id it is fine (Graph echoes whatever id the subscription gave).
    ring.add("other", test_support::copy_key(k1), Some(c1.clone()))
        .unwrap();

    // remove() takes every key of the id.
    ring.add("receiver", test_support::copy_key(k2), None)
        .unwrap();
    assert_eq!(ring.len(), 3);
    assert!(ring.remove("receiver"));
    assert_eq!(ring.len(), 1);
    assert!(!ring.remove("receiver"));
}
