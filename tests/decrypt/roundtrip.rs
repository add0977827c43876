//! What the test kit encrypts as Graph does, the decryptor returns byte for byte.

use msgraph_notify::resource::{Availability, Resource};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use msgraph_notify::{Decryptor, KeyRing};

fn roundtrip(bits: usize, aes_len: usize, plaintext: &[u8]) {
    let (key, cert) = test_support::keypair(bits);
    let content = GraphEncryptor::new(cert, "cert-id")
        .aes_key_len(aes_len)
        .encrypt(plaintext)
        .unwrap();
    let mut ring = KeyRing::new();
    ring.add("cert-id", test_support::copy_key(key), Some(cert.clone()))
        .unwrap();
    let out = Decryptor::new(ring).decrypt(&content).unwrap();
    assert_eq!(
        out.as_bytes(),
        plaintext,
        "{bits}-bit RSA, AES-{}",
        aes_len * 8
    );
}

fn json_of_len(len: usize) -> Vec<u8> {
    // {"x":"aaaa..."} padded to exactly `len` bytes.
    let filler = len.saturating_sub(8);
    let mut s = String::from("{\"x\":\"");
    s.extend(std::iter::repeat_n('a', filler));
    s.push_str("\"}");
    assert_eq!(s.len(), len.max(8));
    s.into_bytes()
}

#[test]
fn every_rsa_size_and_aes_size() {
    for bits in [2048, 3072, 4096] {
        for aes in [16, 24, 32] {
            roundtrip(bits, aes, br#"{"id":"1","availability":"Busy"}"#);
        }
    }
}

#[test]
fn payloads_from_empty_object_to_64_kib() {
    roundtrip(2048, 32, b"{}");
    for len in [15, 16, 17, 31, 32, 33, 1024, 16 * 1024, 64 * 1024] {
        roundtrip(2048, 32, &json_of_len(len));
    }
}

#[test]
fn block_aligned_plaintexts_get_a_full_padding_block() {
    for len in [16, 32, 48, 4096] {
        let p = json_of_len(len);
        assert_eq!(p.len() % 16, 0);
        let (_, cert) = test_support::keypair(2048);
        let content = GraphEncryptor::new(cert, "c").encrypt(&p).unwrap();
        // Ciphertext is one block longer: PKCS#7 adds 16 bytes of 0x10.
        let b64 = content.data.as_deref().unwrap();
        let padding = b64.bytes().rev().take_while(|&c| c == b'=').count();
        assert_eq!(b64.len() / 4 * 3 - padding, len + 16);
        roundtrip(2048, 32, &p);
    }
}

#[test]
fn non_ascii_text_survives() {
    let text = r#"{"body":{"content":"Grüße, 你好, مرحبا, 🎉 — ok"}}"#;
    roundtrip(2048, 32, text.as_bytes());
    roundtrip(4096, 16, text.as_bytes());
}

#[test]
fn rotation_two_live_keys_each_serve_their_id() {
    let (k1, c1) = test_support::keypair(2048);
    let (k2, c2) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    ring.add("old", test_support::copy_key(k1), Some(c1.clone()))
        .unwrap();
    ring.add("new", test_support::copy_key(k2), Some(c2.clone()))
        .unwrap();
    let d = Decryptor::new(ring);
    let a = GraphEncryptor::new(c1, "old")
        .encrypt(b"{\"k\":1}")
        .unwrap();
    let b = GraphEncryptor::new(c2, "new")
        .encrypt(b"{\"k\":2}")
        .unwrap();
    assert_eq!(d.decrypt(&a).unwrap().as_bytes(), b"{\"k\":1}");
    assert_eq!(d.decrypt(&b).unwrap().as_bytes(), b"{\"k\":2}");
}

#[test]
fn an_id_less_key_serves_by_thumbprint_among_several() {
    let (k1, c1) = test_support::keypair(2048);
    let (k2, c2) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    ring.add_without_id(test_support::copy_key(k1), Some(c1.clone()))
        .unwrap();
    ring.add("other", test_support::copy_key(k2), Some(c2.clone()))
        .unwrap();
    let d = Decryptor::new(ring);
    // Unknown id, but the thumbprint names the id-less key's certificate.
    let a = GraphEncryptor::new(c1, "unregistered-id")
        .encrypt(b"{}")
        .unwrap();
    assert_eq!(d.decrypt(&a).unwrap().as_bytes(), b"{}");
}

#[test]
fn a_single_id_less_key_serves_without_id_or_thumbprint() {
    let (k, c) = test_support::keypair(2048);
    let d = Decryptor::with_key(test_support::copy_key(k), None).unwrap();
    let content = GraphEncryptor::new(c, "x")
        .without_certificate_id()
        .without_thumbprint()
        .encrypt(b"{}")
        .unwrap();
    assert_eq!(d.decrypt(&content).unwrap().as_bytes(), b"{}");
}

#[test]
fn whole_notification_types_the_resource() {
    let (k, c) = test_support::keypair(2048);
    let presence = serde_json::json!({
        "@odata.type": "#Microsoft.Graph.Presence",
        "id": "u1", "availability": "DoNotDisturb", "activity": "Presenting"
    });
    let n = GraphEncryptor::new(c, "id")
        .notification(
            &presence,
            &NotificationSpec::new("t1", "communications/presences/u1"),
        )
        .unwrap();
    let d = Decryptor::with_key(test_support::copy_key(k), Some(c.clone())).unwrap();
    let out = d.decrypt_notification(&n).unwrap();
    match out.resource {
        Resource::Presence(p) => {
            assert_eq!(p.availability, Some(Availability::DoNotDisturb));
            assert_eq!(p.activity.unwrap().as_str(), "Presenting");
        }
        other => panic!("{other:?}"),
    }
    // A chat message has no @odata.type: the resource path decides.
    let chat = serde_json::json!({"id": "1", "messageType": "message", "body": {"content": "hi"}});
    let n = GraphEncryptor::new(c, "id")
        .notification(
            &chat,
            &NotificationSpec::new("t1", "chats('19:x')/messages('1')"),
        )
        .unwrap();
    assert!(matches!(
        d.decrypt_notification(&n).unwrap().resource,
        Resource::ChatMessage(_)
    ));
    // Anything else is kept as JSON.
    let user = serde_json::json!({"@odata.type": "#microsoft.graph.user", "id": "u"});
    let n = GraphEncryptor::new(c, "id")
        .notification(&user, &NotificationSpec::new("t1", "users/u"))
        .unwrap();
    assert!(
        matches!(d.decrypt_notification(&n).unwrap().resource, Resource::Other(v) if v["id"] == "u")
    );
}
