//! Fixed vectors: one JSON file per case under `tests/vectors/`, the expected outcome in the file.
//!
//! The files were made once by the test kit (`write_vectors` below, run with
//! `MSGRAPH_NOTIFY_WRITE_VECTORS=1 cargo test --test test_vectors -- --ignored`) and are committed,
//! so a change to the kit cannot silently change what the decryptor is tested against. The key is a
//! test-only RSA-2048 key made for these files.

use std::path::{Path, PathBuf};

use msgraph_notify::model::EncryptedContent;
use msgraph_notify::{Certificate, Decryptor, Error, KeyRing, PrivateKey};
use serde_json::{Value, json};

const CERT_ID: &str = "vector-cert";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn kind(e: &Error) -> String {
    match e {
        Error::Malformed { field, .. } => format!("malformed:{field}"),
        Error::Verification => "verification".into(),
        Error::Plaintext(what) => format!("plaintext:{what}"),
        Error::UnknownCertificateId(_) => "unknown_certificate_id".into(),
        Error::ThumbprintMismatch { .. } => "thumbprint_mismatch".into(),
        Error::NoMatchingKey => "no_matching_key".into(),
        other => format!("other:{other}"),
    }
}

fn decryptor() -> Decryptor {
    let key =
        PrivateKey::from_pem(&std::fs::read_to_string(dir().join("keys/rsa2048.key.pem")).unwrap())
            .unwrap();
    let cert =
        Certificate::load(&std::fs::read(dir().join("keys/rsa2048.cert.pem")).unwrap()).unwrap();
    let mut ring = KeyRing::new();
    ring.add(CERT_ID, key, Some(cert)).unwrap();
    Decryptor::new(ring)
}

#[test]
fn every_vector_file_gives_its_expected_outcome() {
    let decryptor = decryptor();
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "only {} vector files", files.len());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let content: EncryptedContent =
            serde_json::from_value(case["encryptedContent"].clone()).unwrap();
        let result = decryptor.decrypt(&content);
        match (&case["expected"]["plaintext"], &case["expected"]["error"]) {
            (Value::String(expected), _) => {
                let plaintext = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(plaintext.as_str(), expected, "{name}");
            }
            (_, Value::String(expected)) => {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{name}: decrypted, expected {expected}"));
                assert_eq!(&kind(&err), expected, "{name}: {err}");
            }
            _ => panic!("{name}: no expected outcome"),
        }
    }
}

#[test]
#[ignore = "writes tests/vectors; run by hand with MSGRAPH_NOTIFY_WRITE_VECTORS=1"]
fn write_vectors() {
    use msgraph_notify::testing::{GraphEncryptor, KeyWrap};
    if std::env::var("MSGRAPH_NOTIFY_WRITE_VECTORS").as_deref() != Ok("1") {
        return;
    }
    std::fs::create_dir_all(dir().join("keys")).unwrap();
    let key = PrivateKey::generate(2048).unwrap();
    let cert =
        Certificate::self_signed(&key, "msgraph-notify test vectors (test only)", 36500).unwrap();
    std::fs::write(
        dir().join("keys/rsa2048.key.pem"),
        key.to_pkcs8_pem().as_bytes(),
    )
    .unwrap();
    std::fs::write(dir().join("keys/rsa2048.cert.pem"), cert.to_pem()).unwrap();
    let other_key = PrivateKey::generate(2048).unwrap();
    let other = Certificate::self_signed(&other_key, "another certificate", 36500).unwrap();

    let kit = || GraphEncryptor::new(&cert, CERT_ID);
    let presence = r##"{"@odata.type":"#microsoft.graph.presence","id":"u1","availability":"Busy","activity":"InACall"}"##;
    let chat = r#"{"id":"1","body":{"contentType":"text","content":"Grüße — 你好 🎉"}}"#;
    let write = |name: &str, description: &str, content: EncryptedContent, expected: Value| {
        let case =
            json!({"description": description, "encryptedContent": content, "expected": expected});
        std::fs::write(
            dir().join(format!("{name}.json")),
            serde_json::to_string_pretty(&case).unwrap() + "\n",
        )
        .unwrap();
    };
    let ok = |s: &str| json!({"plaintext": s});
    let err = |s: &str| json!({"error": s});
    let flip = |b64: &str, i: usize| {
        use base64::Engine;
        let e = base64::engine::general_purpose::STANDARD;
        let mut bytes = e.decode(b64).unwrap();
        bytes[i] ^= 1;
        e.encode(bytes)
    };

    write(
        "ok-presence-aes256",
        "a presence change as Graph sends it",
        kit().encrypt(presence.as_bytes()).unwrap(),
        ok(presence),
    );
    write(
        "ok-chat-aes128-non-ascii",
        "AES-128 key, non-ASCII text",
        kit().aes_key_len(16).encrypt(chat.as_bytes()).unwrap(),
        ok(chat),
    );
    write(
        "ok-aes192",
        "AES-192 key",
        kit().aes_key_len(24).encrypt(b"{}").unwrap(),
        ok("{}"),
    );
    let aligned = r#"{"id":"0123456789abcdef0123456"}"#;
    assert_eq!(aligned.len() % 16, 0);
    write(
        "ok-block-aligned",
        "a plaintext of whole blocks gets a whole padding block",
        kit().encrypt(aligned.as_bytes()).unwrap(),
        ok(aligned),
    );
    let mut lower = kit().encrypt(b"{}").unwrap();
    lower.encryption_certificate_thumbprint = Some(cert.thumbprint().to_lowercase());
    write(
        "ok-thumbprint-lower-case",
        "thumbprints compare case-insensitively",
        lower,
        ok("{}"),
    );

    let mut c = kit().encrypt(presence.as_bytes()).unwrap();
    c.data = Some(flip(c.data.as_deref().unwrap(), 5));
    write(
        "bad-tampered-data",
        "one bit of the ciphertext changed",
        c,
        err("verification"),
    );
    let mut c = kit().encrypt(presence.as_bytes()).unwrap();
    c.data_signature = Some(flip(c.data_signature.as_deref().unwrap(), 0));
    write(
        "bad-tampered-signature",
        "one bit of the signature changed",
        c,
        err("verification"),
    );
    let mut c = kit().encrypt(presence.as_bytes()).unwrap();
    c.data_key = Some(flip(c.data_key.as_deref().unwrap(), 200));
    write(
        "bad-tampered-data-key",
        "one bit of the wrapped key changed",
        c,
        err("verification"),
    );
    let mut c = kit().encrypt(presence.as_bytes()).unwrap();
    c.data_signature = None;
    write(
        "bad-missing-signature",
        "no dataSignature (as in a docs example)",
        c,
        err("verification"),
    );
    let mut c = kit().encrypt(presence.as_bytes()).unwrap();
    c.data_signature = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into());
    write(
        "bad-short-signature",
        "a 29-byte signature",
        c,
        err("verification"),
    );
    write(
        "bad-oaep-sha256",
        "key wrapped with OAEP-SHA-256",
        kit().key_wrap(KeyWrap::OaepSha256).encrypt(b"{}").unwrap(),
        err("verification"),
    );
    write(
        "bad-pkcs1v15",
        "key wrapped with PKCS#1 v1.5",
        kit().key_wrap(KeyWrap::Pkcs1v15).encrypt(b"{}").unwrap(),
        err("verification"),
    );
    let mut blocks = [b'a'; 32];
    blocks[31] = 0;
    write(
        "bad-padding-under-valid-mac",
        "the signature holds, the padding does not",
        kit().encrypt_without_padding(&blocks).unwrap(),
        err("verification"),
    );
    write(
        "bad-utf8-under-valid-mac",
        "the signature holds, the plaintext is not UTF-8",
        kit().encrypt(&[b'"', 0xC3, 0x28, b'"']).unwrap(),
        err("plaintext:UTF-8"),
    );
    write(
        "bad-length-under-valid-mac",
        "the signature holds over 33 bytes of ciphertext",
        kit().seal_ciphertext(&[7u8; 33]).unwrap(),
        err("malformed:encryptedContent.data"),
    );
    write(
        "bad-key-length-20",
        "the unwrapped key is 20 bytes",
        kit().symmetric_key(&[9u8; 20]).encrypt(b"{}").unwrap(),
        err("verification"),
    );
    let mut c = kit().encrypt(b"{}").unwrap();
    c.data_key = Some("not*base64".into());
    write(
        "bad-base64-data-key",
        "dataKey is not base64",
        c,
        err("malformed:encryptedContent.dataKey"),
    );
    write(
        "bad-unknown-id",
        "an encryptionCertificateId no key is registered under",
        GraphEncryptor::new(&cert, "rotated-away")
            .encrypt(b"{}")
            .unwrap(),
        err("unknown_certificate_id"),
    );
    let mut c = kit().encrypt(b"{}").unwrap();
    c.encryption_certificate_thumbprint = Some(other.thumbprint());
    write(
        "bad-thumbprint-mismatch",
        "the id is ours, the thumbprint another certificate's",
        c,
        err("thumbprint_mismatch"),
    );
    write(
        "bad-wrong-key",
        "encrypted for another certificate under our id, no thumbprint",
        GraphEncryptor::new(&other, CERT_ID)
            .without_thumbprint()
            .encrypt(b"{}")
            .unwrap(),
        err("verification"),
    );
}
