//! The keys, certificates and token issuer the tests make once per test binary, and Graph's
//! offloaded layout.

use std::sync::OnceLock;

use msgraph_notify::testing::TokenIssuer;
use msgraph_notify::{Certificate, PrivateKey};

/// A key and self-signed certificate of `bits`, made once per test binary.
pub fn keypair(bits: usize) -> &'static (PrivateKey, Certificate) {
    static K2048: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    static K3072: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    static K4096: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    let cell = match bits {
        2048 => &K2048,
        3072 => &K3072,
        4096 => &K4096,
        _ => panic!("no test key of {bits} bits"),
    };
    cell.get_or_init(|| {
        let key = PrivateKey::generate(bits).expect("key generation");
        let cert = Certificate::self_signed(&key, "msgraph-notify-test", 30).expect("certificate");
        (key, cert)
    })
}

/// A second, unrelated 2048-bit key pair.
pub fn other_keypair() -> &'static (PrivateKey, Certificate) {
    static K: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    K.get_or_init(|| {
        let key = PrivateKey::generate(2048).expect("key generation");
        let cert = Certificate::self_signed(&key, "other", 30).expect("certificate");
        (key, cert)
    })
}

/// A fresh `PrivateKey` equal to `key` (keys are not `Clone`).
pub fn copy_key(key: &PrivateKey) -> PrivateKey {
    PrivateKey::from_der(&key.to_pkcs8_der()).expect("reload key")
}

/// The token issuer of this test binary (its signing keys are what the receivers trust).
pub fn issuer() -> &'static TokenIssuer {
    static ISSUER: OnceLock<TokenIssuer> = OnceLock::new();
    ISSUER.get_or_init(|| TokenIssuer::new().expect("token issuer"))
}

/// What Graph sends through Event Hubs for a notification over 1 MB, and the blob it stores
/// (the layout in `msgraph_notify::offload`): `resource`, `resourceData` and `encryptedContent`
/// moved from `item` into the blob, and `additionalPayloadStorageId` naming it.
pub fn offload(mut item: serde_json::Value, storage_id: &str) -> (serde_json::Value, Vec<u8>) {
    let object = item.as_object_mut().expect("a notification object");
    let mut blob = serde_json::Map::new();
    for name in ["resource", "resourceData", "encryptedContent"] {
        if let Some(value) = object.remove(name) {
            blob.insert(name.to_owned(), value);
        }
    }
    object.insert("additionalPayloadStorageId".into(), storage_id.into());
    (
        item,
        serde_json::Value::Object(blob).to_string().into_bytes(),
    )
}

/// A decryptor holding [`keypair`]`(2048)`.
pub fn decryptor() -> msgraph_notify::Decryptor {
    let (key, cert) = keypair(2048);
    msgraph_notify::Decryptor::with_key(copy_key(key), Some(cert.clone())).expect("decryptor")
}

/// A body of `0,0,0,…` elements of about `bytes` bytes (half a million items per MiB): an item
/// flood.
pub fn flood(bytes: usize) -> Vec<u8> {
    let mut body = b"{\"value\":[0".to_vec();
    while body.len() + 4 < bytes {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    body
}

/// A webhook receiver's builder over `decryptor`: tokens signed by [`issuer`] for one of `apps`
/// required, and the clientState `secret`.
pub fn webhook(
    decryptor: msgraph_notify::Decryptor,
    apps: &[&str],
    secret: &str,
) -> msgraph_notify::receiver::ReceiverBuilder {
    msgraph_notify::receiver::Receiver::builder(decryptor)
        .validation(msgraph_notify::token::Validation::new(apps.iter().copied()))
        .signing_keys(issuer().signing_keys())
        .client_state(secret)
}

/// Asserts that `err` refuses a body for holding more than `limit` of `what` (`items`,
/// `validation tokens`).
pub fn assert_too_many(err: &msgraph_notify::Error, what: &str, limit: usize) {
    assert!(
        matches!(err, msgraph_notify::Error::TooMany { what: w, limit: l } if *w == what && *l == limit),
        "{err}"
    );
}

/// Bytes that are not the JSON document a parser was asked for: not JSON at all, truncated, the
/// wrong top-level type, or an object without the expected member (neither a notification
/// collection's `value` array nor a JWKS's `keys` array). Every parser of the crate must refuse
/// each with an error, never a panic.
pub const NOT_THE_DOCUMENT: &[&[u8]] = &[
    b"",
    b"not json",
    b"{",
    b"[]",
    b"null",
    b"{\"other\":1}",
    b"{\"value\":{}}",
    b"{\"value\":\"x\"}",
    b"{\"keys\":5}",
];
