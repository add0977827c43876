//! Every kind of bad `encryptedContent` gives its intended error, and nothing panics.

use msgraph_notify::model::EncryptedContent;
use msgraph_notify::testing::{GraphEncryptor, KeyWrap};
use msgraph_notify::{Decryptor, Error, KeyRing};

const ID: &str = "cert-1";
const PLAINTEXT: &[u8] = br#"{"id":"1","availability":"Busy"}"#;

fn decryptor() -> Decryptor {
    let (key, cert) = test_support::keypair(2048);
    let mut ring = KeyRing::new();
    ring.add(ID, test_support::copy_key(key), Some(cert.clone()))
        .unwrap();
    Decryptor::new(ring)
}

fn encryptor() -> GraphEncryptor<'static> {
    GraphEncryptor::new(&test_support::keypair(2048).1, ID)
}

fn good() -> EncryptedContent {
    encryptor().encrypt(PLAINTEXT).unwrap()
}

fn flip_base64_byte(b64: &str, index: usize) -> String {
    let mut bytes = msgraph_b64_decode(b64);
    bytes[index] ^= 0x01;
    msgraph_b64_encode(&bytes)
}

// Round-trip helpers through the crate's own test kit are avoided: a plain implementation here.
fn msgraph_b64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | A.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn msgraph_b64_encode(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn expect_verification(content: &EncryptedContent, what: &str) {
    match decryptor().decrypt(content) {
        Err(Error::Verification) => {}
        other => panic!("{what}: expected Error::Verification, got {other:?}"),
    }
}

fn expect_malformed(content: &EncryptedContent, field: &str, what: &str) {
    match decryptor().decrypt(content) {
        Err(Error::Malformed { field: f, .. }) if f == field => {}
        other => panic!("{what}: expected Malformed({field}), got {other:?}"),
    }
}

#[test]
fn the_good_item_decrypts() {
    assert_eq!(decryptor().decrypt(&good()).unwrap().as_bytes(), PLAINTEXT);
}

#[test]
fn tampered_data_fails_verification() {
    let mut c = good();
    for i in [0, 15, 16, 31] {
        c.data = Some(flip_base64_byte(good().data.as_deref().unwrap(), i));
        expect_verification(&c, "tampered data");
    }
}

#[test]
fn tampered_signature_fails_verification() {
    let mut c = good();
    c.data_signature = Some(flip_base64_byte(c.data_signature.as_deref().unwrap(), 31));
    expect_verification(&c, "tampered signature");
}

#[test]
fn tampered_data_key_fails_verification() {
    let mut c = good();
    c.data_key = Some(flip_base64_byte(c.data_key.as_deref().unwrap(), 100));
    expect_verification(&c, "tampered dataKey");
}

#[test]
fn missing_short_or_long_signature_fails_verification() {
    let mut c = good();
    c.data_signature = None;
    expect_verification(&c, "missing signature");
    c.data_signature = Some(msgraph_b64_encode(&[7u8; 31]));
    expect_verification(&c, "short signature");
    c.data_signature = Some(msgraph_b64_encode(&[7u8; 33]));
    expect_verification(&c, "long signature");
    c.data_signature = Some(String::new());
    expect_verification(&c, "empty signature");
}

#[test]
fn oaep_sha256_and_pkcs1_v15_wrapping_are_refused() {
    for wrap in [KeyWrap::OaepSha256, KeyWrap::Pkcs1v15] {
        let c = encryptor().key_wrap(wrap).encrypt(PLAINTEXT).unwrap();
        expect_verification(&c, &format!("{wrap:?}"));
    }
}

#[test]
fn another_keys_item_fails_verification_under_the_same_id() {
    // Encrypted for another certificate, but naming our id and no thumbprint.
    let c = GraphEncryptor::new(&test_support::other_keypair().1, ID)
        .without_thumbprint()
        .encrypt(PLAINTEXT)
        .unwrap();
    expect_verification(&c, "wrong key");
}

#[test]
fn unknown_id_names_the_id() {
    let c = GraphEncryptor::new(&test_support::keypair(2048).1, "never-registered")
        .encrypt(PLAINTEXT)
        .unwrap();
    let err = decryptor().decrypt(&c).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownCertificateId(id) if id == "never-registered"),
        "{err}"
    );
    assert!(err.to_string().contains("never-registered"));
}

#[test]
fn thumbprint_mismatch_is_reported() {
    let mut c = good();
    c.encryption_certificate_thumbprint = Some(test_support::other_keypair().1.thumbprint());
    match decryptor().decrypt(&c) {
        Err(Error::ThumbprintMismatch { certificate_id, .. }) => assert_eq!(certificate_id, ID),
        other => panic!("{other:?}"),
    }
    // Lower case is the same thumbprint.
    let mut c = good();
    c.encryption_certificate_thumbprint =
        Some(test_support::keypair(2048).1.thumbprint().to_lowercase());
    assert!(decryptor().decrypt(&c).is_ok());
}

#[test]
fn no_id_and_several_keys_is_no_matching_key() {
    let (k1, _) = test_support::keypair(2048);
    let (k2, _) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    ring.add("a", test_support::copy_key(k1), None).unwrap();
    ring.add("b", test_support::copy_key(k2), None).unwrap();
    let c = encryptor()
        .without_certificate_id()
        .without_thumbprint()
        .encrypt(PLAINTEXT)
        .unwrap();
    assert!(matches!(
        Decryptor::new(ring).decrypt(&c),
        Err(Error::NoMatchingKey)
    ));
}

#[test]
fn invalid_base64_in_each_field_names_the_field() {
    for (field, bad) in [
        ("encryptedContent.data", "not base64!"),
        ("encryptedContent.dataKey", "@@@@"),
        ("encryptedContent.dataSignature", "AAA"), // missing padding
    ] {
        let mut c = good();
        match field {
            "encryptedContent.data" => c.data = Some(bad.into()),
            "encryptedContent.dataKey" => c.data_key = Some(bad.into()),
            _ => c.data_signature = Some(bad.into()),
        }
        expect_malformed(&c, field, "bad base64");
    }
    // URL-safe alphabet is not Graph's.
    let mut c = good();
    c.data = Some(c.data.unwrap().replace('+', "-").replace('/', "_"));
    if c.data.as_deref().unwrap().contains(['-', '_']) {
        expect_malformed(&c, "encryptedContent.data", "url-safe base64");
    }
}

#[test]
fn missing_fields_are_named() {
    let mut c = good();
    c.data = None;
    expect_malformed(&c, "encryptedContent.data", "missing data");
    let mut c = good();
    c.data_key = None;
    expect_malformed(&c, "encryptedContent.dataKey", "missing dataKey");
}

#[test]
fn ciphertext_not_a_multiple_of_16_under_a_valid_mac_is_malformed() {
    for len in [0usize, 1, 15, 17, 33] {
        let c = encryptor().seal_ciphertext(&vec![0xAB; len]).unwrap();
        expect_malformed(
            &c,
            "encryptedContent.data",
            &format!("{len}-byte ciphertext"),
        );
    }
}

#[test]
fn bad_padding_under_a_valid_mac_fails_verification() {
    // Last plaintext byte 0x00 and 0x11 are never valid PKCS#7; 0x02 0x03 is inconsistent.
    for last in [[0u8, 0u8], [0, 0x11], [0x03, 0x02]] {
        let mut blocks = vec![b'a'; 32];
        blocks[30] = last[0];
        blocks[31] = last[1];
        let c = encryptor().encrypt_without_padding(&blocks).unwrap();
        expect_verification(&c, "bad padding");
    }
}

#[test]
fn invalid_utf8_under_a_valid_mac_is_a_plaintext_error() {
    let c = encryptor().encrypt(&[b'{', 0xFF, 0xFE, b'}']).unwrap();
    assert!(matches!(
        decryptor().decrypt(&c),
        Err(Error::Plaintext("UTF-8"))
    ));
}

#[test]
fn unwrapped_keys_of_a_wrong_length_fail_verification() {
    for len in [0usize, 1, 15, 20, 31, 33, 64] {
        let c = encryptor()
            .symmetric_key(&vec![0x42; len])
            .encrypt(PLAINTEXT)
            .unwrap();
        expect_verification(&c, &format!("{len}-byte key"));
    }
}

#[test]
fn errors_show_no_key_material() {
    let (key, _) = test_support::keypair(2048);
    let debug = format!("{key:?}");
    assert!(debug.contains("2048") && debug.len() < 80, "{debug}");
    let plaintext = decryptor().decrypt(&good()).unwrap();
    assert!(!format!("{plaintext:?}").contains("Busy"));
}

#[test]
fn garbage_keys_and_certificates_are_errors_not_panics() {
    use msgraph_notify::{Certificate, PrivateKey};
    for bytes in [
        &b""[..],
        b"\x30\x82\x01",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        &[0u8; 600],
    ] {
        assert!(PrivateKey::load(bytes, None).is_err());
        assert!(PrivateKey::load(bytes, Some("pw")).is_err());
        assert!(Certificate::load(bytes).is_err());
    }
}

#[test]
fn encrypted_pkcs8_pem_loads_with_its_password_only() {
    let (key, _) = test_support::keypair(2048);
    let der = key.to_pkcs8_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
    let encrypted = info.encrypt("s3cret").unwrap();
    let pem = encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    let (loaded, _) = msgraph_notify::PrivateKey::load(pem.as_bytes(), Some("s3cret")).unwrap();
    assert_eq!(loaded.public_key_pkcs1_der(), key.public_key_pkcs1_der());
    assert!(matches!(
        msgraph_notify::PrivateKey::load(pem.as_bytes(), Some("wrong")),
        Err(Error::Key(_))
    ));
    assert!(matches!(
        msgraph_notify::PrivateKey::load(pem.as_bytes(), None),
        Err(Error::Key(_))
    ));
}

#[test]
fn a_certificate_of_another_key_is_refused_at_registration() {
    let (key, _) = test_support::keypair(2048);
    let (_, other_cert) = test_support::other_keypair();
    let mut ring = KeyRing::new();
    assert!(matches!(
        ring.add("x", test_support::copy_key(key), Some(other_cert.clone())),
        Err(Error::Certificate(_))
    ));
}

#[test]
fn a_key_file_demanding_a_huge_kdf_cost_is_refused_at_once() {
    use pkcs8::der::Encode;
    use pkcs8::pkcs5::{EncryptionScheme, pbes2};
    let params =
        pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(50_000_000, &[1u8; 16], [2u8; 16])
            .unwrap();
    let info = pkcs8::EncryptedPrivateKeyInfoRef {
        encryption_algorithm: EncryptionScheme::Pbes2(params),
        encrypted_data: pkcs8::der::asn1::OctetStringRef::new(&[0u8; 1232]).unwrap(),
    };
    let der = info.to_der().unwrap();
    let pem = pkcs8::der::pem::encode_string("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF, &der)
        .unwrap();
    match msgraph_notify::PrivateKey::load(pem.as_bytes(), Some("pw")) {
        // Refused by the parameter check, before any derivation (a wrong password would say so).
        Err(Error::Key(reason)) => assert!(reason.contains("iteration count"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_certificate_lifetime_past_year_9999_is_an_error_not_a_panic() {
    let (key, _) = test_support::keypair(2048);
    for days in [u32::MAX, 3_000_000] {
        assert!(matches!(
            msgraph_notify::Certificate::self_signed(key, "receiver", days),
            Err(Error::Certificate(_))
        ));
    }
    assert!(msgraph_notify::Certificate::self_signed(key, "receiver", 36_500).is_ok());
}

#[test]
fn pem_output_is_rfc7468_and_loads_back() {
    let (key, cert) = test_support::keypair(2048);
    for (pem, label) in [
        (key.to_pkcs8_pem().to_string(), "PRIVATE KEY"),
        (cert.to_pem(), "CERTIFICATE"),
    ] {
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], format!("-----BEGIN {label}-----"));
        assert_eq!(*lines.last().unwrap(), format!("-----END {label}-----"));
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        assert!((1..=64).contains(&body[body.len() - 1].len()));
        assert!(pem.ends_with('\n'));
    }
    let (loaded, _) =
        msgraph_notify::PrivateKey::load(key.to_pkcs8_pem().as_bytes(), None).unwrap();
    assert_eq!(loaded.public_key_pkcs1_der(), key.public_key_pkcs1_der());
    let reloaded = msgraph_notify::Certificate::load(cert.to_pem().as_bytes()).unwrap();
    assert_eq!(reloaded.thumbprint(), cert.thumbprint());
}

#[test]
fn thumbprints_match_in_any_case_and_nothing_else() {
    let (_, cert) = test_support::keypair(2048);
    let upper = cert.thumbprint();
    assert_eq!(upper.len(), 40);
    assert!(
        upper
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    );
    let mixed: String = upper
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect();
    assert!(cert.has_thumbprint(&upper) && cert.has_thumbprint(&mixed));
    let mut other = upper.clone().into_bytes();
    other[39] = if other[39] == b'0' { b'1' } else { b'0' };
    for wrong in [
        String::from_utf8(other).unwrap(),
        upper[..38].to_owned(),
        format!("{upper}00"),
        format!("G{}", &upper[1..]),
        format!("{}é", &upper[..38]),
        String::new(),
    ] {
        assert!(!cert.has_thumbprint(&wrong), "{wrong}");
    }
}
