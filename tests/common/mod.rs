//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use msgraph_notify::{Certificate, PrivateKey};

/// `../shared` beside the repository, or `$MSGRAPH_NOTIFY_SHARED`. `None` (with a note) when it is
/// absent, except under `CI=true`, where absence fails the test.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MSGRAPH_NOTIFY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("SPEC.md").is_file() || dir.join("vectors").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the shared test data is missing at {} (CI=true)",
            dir.display()
        );
    }
    eprintln!(
        "skipping: the shared test data is absent at {} (set MSGRAPH_NOTIFY_SHARED)",
        dir.display()
    );
    None
}

/// The real Graph vector's folder.
pub fn vector_dir() -> Option<PathBuf> {
    shared_dir().map(|d| d.join("vectors/dotnet-sdk"))
}

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
