//! The one real Graph-produced vector (RSA-4096, a Teams channel reply), from ../shared.

use msgraph_notify::model::{ChangeNotificationCollection, EncryptedContent};
use msgraph_notify::resource::Resource;
use msgraph_notify::{Certificate, Decryptor, KeyRing, PrivateKey};

const PASSWORD: &str = "rich";
const THUMBPRINT: &str = "4B95353E086AD37196606ACF834A14532F03E6DB";

fn read(name: &str) -> Option<Vec<u8>> {
    let dir = test_support::vector_dir()?;
    Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn content() -> Option<EncryptedContent> {
    Some(serde_json::from_slice(&read("encryptedContent.json")?).unwrap())
}

fn assert_decrypts(key: PrivateKey, cert: Option<Certificate>) {
    let (Some(content), Some(expected)) = (content(), read("decrypted.json")) else {
        return;
    };
    let decryptor = Decryptor::with_key(key, cert).unwrap();
    let plaintext = decryptor.decrypt(&content).unwrap();
    assert_eq!(plaintext.as_bytes(), expected.as_slice());
}

#[test]
fn legacy_pkcs12_rc2_3des_decrypts_exactly() {
    let Some(pfx) = read("certificate.pfx") else {
        return;
    };
    let (key, cert) = PrivateKey::from_pkcs12(&pfx, PASSWORD).unwrap();
    assert_eq!(key.bits(), 4096);
    let cert = cert.expect("the PFX holds the certificate");
    assert_eq!(cert.thumbprint(), THUMBPRINT);
    assert_decrypts(key, Some(cert));
}

#[test]
fn modern_pkcs12_aes256_decrypts_exactly() {
    let Some(pfx) = read("certificate.reencoded-aes256.pfx") else {
        return;
    };
    let (key, cert) = PrivateKey::load(&pfx, Some(PASSWORD)).unwrap();
    assert_eq!(
        cert.as_ref().map(Certificate::thumbprint).as_deref(),
        Some(THUMBPRINT)
    );
    assert_decrypts(key, cert);
}

#[test]
fn wrong_pkcs12_password_is_a_key_error() {
    let Some(pfx) = read("certificate.pfx") else {
        return;
    };
    let err = PrivateKey::from_pkcs12(&pfx, "not-rich").unwrap_err();
    assert!(matches!(err, msgraph_notify::Error::Key(_)), "{err}");
}

/// `private_key.pem` (PKCS#8) and `private_key.pkcs1.pem` when ../shared has them; otherwise
/// both PEM forms are derived here from the PKCS#12 key, so each PEM path is still exercised.
fn pem_forms() -> Option<(String, String)> {
    let dir = test_support::vector_dir()?;
    let pkcs8 = std::fs::read_to_string(dir.join("private_key.pem"));
    let pkcs1 = std::fs::read_to_string(dir.join("private_key.pkcs1.pem"));
    if let (Ok(a), Ok(b)) = (pkcs8, pkcs1) {
        return Some((a, b));
    }
    let (key, _) = PrivateKey::from_pkcs12(&read("certificate.pfx")?, PASSWORD).unwrap();
    let pkcs8_der = key.to_pkcs8_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8_der.as_slice()).unwrap();
    let pkcs1_pem = pkcs8::der::pem::encode_string(
        "RSA PRIVATE KEY",
        pkcs8::LineEnding::LF,
        info.private_key.as_bytes(),
    )
    .unwrap();
    Some((key.to_pkcs8_pem().to_string(), pkcs1_pem))
}

#[test]
fn pkcs8_pem_decrypts_exactly() {
    let Some((pkcs8, pkcs1)) = pem_forms() else {
        return;
    };
    assert!(pkcs8.contains("BEGIN PRIVATE KEY"));
    assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
    assert_decrypts(PrivateKey::from_pem(&pkcs8).unwrap(), None);
}

#[test]
fn pkcs1_pem_decrypts_exactly() {
    let Some((_, pkcs1)) = pem_forms() else {
        return;
    };
    let (key, cert) = PrivateKey::load(pkcs1.as_bytes(), None).unwrap();
    assert!(cert.is_none());
    assert_decrypts(key, None);
}

#[test]
fn certificate_pem_and_der_have_the_thumbprint_and_match_the_key() {
    let (Some(pem), Some(der), Some(pfx)) = (
        read("certificate.pem"),
        read("certificate.der"),
        read("certificate.pfx"),
    ) else {
        return;
    };
    let from_pem = Certificate::load(&pem).unwrap();
    let from_der = Certificate::load(&der).unwrap();
    assert_eq!(from_pem, from_der);
    assert_eq!(from_der.thumbprint(), THUMBPRINT);
    assert!(from_der.has_thumbprint(&THUMBPRINT.to_lowercase()));
    // The certificate expired in 2023: it still serves.
    assert!(
        from_der.not_after().contains("2023"),
        "{}",
        from_der.not_after()
    );
    let (key, _) = PrivateKey::from_pkcs12(&pfx, PASSWORD).unwrap();
    assert!(from_der.matches(&key));
    assert!(!from_der.matches(&test_support::other_keypair().0));
    // encryptionCertificate is the base64 of the DER.
    let b64 = from_der.encryption_certificate();
    assert_eq!(
        Certificate::from_der(&base64_decode(&b64))
            .unwrap()
            .thumbprint(),
        THUMBPRINT
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    // A tiny independent decoder, so the test does not trust the crate's own base64.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn constructed_collection_decrypts_into_a_chat_message() {
    let (Some(body), Some(pfx)) = (
        read("notification-collection.CONSTRUCTED.json"),
        read("certificate.pfx"),
    ) else {
        return;
    };
    let collection: ChangeNotificationCollection = serde_json::from_slice(&body).unwrap();
    let (key, cert) = PrivateKey::from_pkcs12(&pfx, PASSWORD).unwrap();
    let mut ring = KeyRing::new();
    ring.add("custom-id-for-testing", key, cert).unwrap();
    let decrypted = Decryptor::new(ring)
        .decrypt_notification(&collection.value[0])
        .unwrap();
    let Resource::ChatMessage(message) = decrypted.resource else {
        panic!(
            "expected a chat message, got {:?}",
            decrypted.resource.kind()
        );
    };
    assert_eq!(message.etag.as_deref(), Some("1625126194597"));
    let body = message.body.unwrap();
    assert_eq!(body.content.as_deref(), Some("Hello World"));
    assert_eq!(body.content_type.as_deref(), Some("text"));
}

#[test]
fn a_ring_with_only_another_id_refuses_the_vector() {
    let (Some(content), Some(pfx)) = (content(), read("certificate.pfx")) else {
        return;
    };
    let (key, cert) = PrivateKey::from_pkcs12(&pfx, PASSWORD).unwrap();
    let mut ring = KeyRing::new();
    ring.add("some-other-id", key, cert).unwrap();
    let err = Decryptor::new(ring).decrypt(&content).unwrap_err();
    assert!(
        matches!(&err, msgraph_notify::Error::UnknownCertificateId(id) if id == "custom-id-for-testing"),
        "{err}"
    );
    assert!(err.to_string().contains("custom-id-for-testing"));
}
