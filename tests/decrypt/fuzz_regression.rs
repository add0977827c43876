//! Replays, on stable, every committed fuzz seed (`fuzz/seeds/<target>/`) and every saved crash
//! input (`fuzz/regressions/<target>/`) through the entry points the cargo-fuzz targets call.
//!
//! The seeds are made by the test kit: `cargo test --test fuzz_regression -- --ignored
//! generate_seeds` rewrites them (placeholders stand for the per-process key and tokens: see
//! `fuzz/entry/mod.rs`).

#[path = "../../fuzz/entry/mod.rs"]
mod entry;

use std::path::{Path, PathBuf};

use base64::Engine;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"));
    out.sort();
    out
}

#[test]
fn replay_seeds_and_regressions() {
    let mut failures = Vec::new();
    for (name, run) in entry::TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(name));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {name}");
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read input");
            let outcome = std::panic::catch_unwind(|| run(&data));
            if outcome.is_err() {
                failures.push(format!(
                    "{name}: {} (base64 {})",
                    path.display(),
                    base64::engine::general_purpose::STANDARD.encode(&data)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz inputs that panic:\n{}",
        failures.join("\n")
    );
}

/// Regenerates `fuzz/seeds/` with the test kit.
#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn generate_seeds() {
    use entry::{APP, CERT_ID, CLIENT_STATE, KEY, RESOURCE, TENANT};
    use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    use msgraph_notify::token::TokenVersion;
    use msgraph_notify::{Certificate, PrivateKey};
    use serde_json::json;

    let f = entry::fixture();
    let thumbprint = f.cert.thumbprint();
    // Process-specific values become placeholders, so the seeds stay valid under a fresh key.
    let generic = |text: String| {
        text.replace(&f.data_key, "@@DATAKEY@@")
            .replace(&thumbprint, "@@THUMBPRINT@@")
            .replace(&f.token_v2, "@@TOKEN@@")
            .replace(&f.token_v1, "@@TOKEN1@@")
            .into_bytes()
    };
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    };
    let with = |mode: u8, rest: &[u8]| [&[mode][..], rest].concat();

    let chat = json!({
        "id": "1712345678901", "messageType": "message", "createdDateTime": "2024-04-05T12:34:56.789Z",
        "from": {"user": {"id": "u1", "displayName": "Adele Vance"}},
        "body": {"contentType": "html", "content": "<p>hi</p>"}, "chatId": "19:x",
        "attachments": [], "mentions": [], "reactions": [{"reactionType": "like"}]
    });
    let call = json!({
        "@odata.type": "#microsoft.graph.callEvent", "eventType": "callStarted",
        "eventDateTime": "2024-04-05T12:34:56Z",
        "participants@delta": [{"id": "p1", "removedState": {"reason": "left"}}]
    });
    let lifecycle = json!({
        "subscriptionId": "s1", "lifecycleEvent": "reauthorizationRequired",
        "clientState": CLIENT_STATE, "tenantId": TENANT,
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00+00:00"
    });
    let mut spec = NotificationSpec::new(TENANT, RESOURCE);
    spec.client_state = Some(CLIENT_STATE.into());
    let enc = GraphEncryptor::new(&f.cert, CERT_ID).symmetric_key(&KEY);
    let item = serde_json::to_value(&f.notification).expect("json");
    let mut chat_spec = NotificationSpec::new(TENANT, "chats('19:x')/messages('1')");
    chat_spec.client_state = Some(CLIENT_STATE.into());
    let mut chat_item = enc.notification(&chat, &chat_spec).expect("item");
    if let Some(c) = chat_item.encrypted_content.as_mut() {
        // OAEP is randomized: reuse the fixture's wrapping of KEY, which the placeholder names.
        c.data_key = Some(f.data_key.clone());
    }
    let chat_item = serde_json::to_value(chat_item).expect("json");
    let body = json!({"value": [item, chat_item], "validationTokens": [f.token_v2]});
    let body_v1 = json!({"value": [item], "validationTokens": [f.token_v1]});
    let mixed = json!({"value": [lifecycle, {"subscriptionId": "s2", "changeType": "created",
        "clientState": CLIENT_STATE, "resource": "r"}, item], "validationTokens": null});

    // collection_json
    write("collection_json", "rich", &generic(body.to_string()));
    write("collection_json", "mixed", &generic(mixed.to_string()));
    write("collection_json", "item", &generic(item.to_string()));

    // resource_json
    write(
        "resource_json",
        "presence",
        &with(1, entry::presence().to_string().as_bytes()),
    );
    write(
        "resource_json",
        "chat",
        &with(2, chat.to_string().as_bytes()),
    );
    write(
        "resource_json",
        "call",
        &with(3, call.to_string().as_bytes()),
    );
    write(
        "resource_json",
        "other",
        &with(4, br#"{"a":[1,2.5,null,true,"x"]}"#),
    );
    // The doc sample of each kind, from its path alone and (under another path) its type alone.
    for sample in msgraph_notify::testing::doc_samples() {
        let index = entry::RESOURCE_PATHS
            .iter()
            .position(|p| {
                p.map(msgraph_notify::resource::PathKind::of)
                    .is_some_and(|k| k.as_str() == sample.kind)
            })
            .expect("a path of each kind") as u8;
        write(
            "resource_json",
            &format!("{}_path", sample.kind),
            &with(index, sample.json.to_string().as_bytes()),
        );
        write(
            "resource_json",
            &format!("{}_type", sample.kind),
            &with(0, sample.typed_json().to_string().as_bytes()),
        );
    }
    let mut from_data = b"CHATS('19:a/b')/%6Dessages('1')?$select=x\n".to_vec();
    from_data.extend_from_slice(chat.to_string().as_bytes());
    write(
        "resource_json",
        "path_from_data",
        &with(entry::PATH_FROM_DATA, &from_data),
    );

    // encrypted_content
    let content = serde_json::to_string(&f.notification.encrypted_content).expect("json");
    write(
        "encrypted_content",
        "json_content",
        &with(0, &generic(content)),
    );
    write(
        "encrypted_content",
        "json_item",
        &with(0, &generic(item.to_string())),
    );
    write(
        "encrypted_content",
        "plaintext",
        &with(1, entry::presence().to_string().as_bytes()),
    );
    write(
        "encrypted_content",
        "plaintext_bad_utf8",
        &with(1, b"{\"a\":\"\xff\xfe\"}"),
    );
    write("encrypted_content", "unpadded", &with(2, &[0x41; 32]));
    write("encrypted_content", "ciphertext", &with(3, &[7; 48]));
    // mode 4: re-sign on; 2 mutations: (data, flip bit at 5) and (thumbprint, lowercase).
    write(
        "encrypted_content",
        "mutate_resign",
        &[4, 1, 1, 0, 5, 0, 5, 0, 4, 8, 0, 0, 0],
    );
    // mode 5: no re-sign; 1 mutation: dataSignature, truncate at 10.
    write(
        "encrypted_content",
        "mutate_sig",
        &[5, 0, 0, 2, 2, 0, 10, 0],
    );
    // mode 6: dataKey replaced by the base64 of 4 bytes.
    write(
        "encrypted_content",
        "mutate_key",
        &[6, 0, 0, 1, 4, 0, 0, 4, 1, 2, 3, 4],
    );

    // token
    write("token", "valid_v2", &with(0, b"@@TOKEN@@"));
    write("token", "valid_v1", &with(0, b"@@TOKEN1@@"));
    let claims = f.issuer.claims(TokenVersion::V2, APP, TENANT);
    write("token", "claims", &with(1, claims.to_string().as_bytes()));
    write("token", "jwks", &with(2, f.issuer.jwks_json().as_bytes()));
    write("token", "mutate_header", &[3, 0, 0, 0, 0, b'{', b'}']);
    write("token", "mutate_sig", &[4, 2, 1, 0, 40]);

    // key_load
    let key = PrivateKey::generate(2048).expect("key");
    let cert = Certificate::self_signed(&key, "fuzz-seed", 30).expect("cert");
    let pkcs8 = key.to_pkcs8_der();
    write(
        "key_load",
        "pkcs8_pem",
        &with(0, key.to_pkcs8_pem().as_bytes()),
    );
    write("key_load", "pkcs8_der", &with(0, &pkcs8));
    let info = pkcs8::PrivateKeyInfoRef::try_from(pkcs8.as_slice()).expect("pkcs8");
    let pkcs1 = info.private_key.as_bytes();
    write("key_load", "pkcs1_der", &with(0, pkcs1));
    let pkcs1_pem =
        pkcs8::der::pem::encode_string("RSA PRIVATE KEY", pkcs8::der::pem::LineEnding::LF, pkcs1)
            .expect("pem");
    write("key_load", "pkcs1_pem", &with(0, pkcs1_pem.as_bytes()));
    let both = format!("{}{}", key.to_pkcs8_pem().as_str(), cert.to_pem());
    write("key_load", "key_and_cert_pem", &with(0, both.as_bytes()));
    write("key_load", "cert_pem", &with(0, cert.to_pem().as_bytes()));
    write("key_load", "cert_der", &with(0, cert.der()));
    let encrypted = info.encrypt("fuzz").expect("encrypt pkcs8");
    let encrypted_pem = encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::der::pem::LineEnding::LF)
        .expect("pem");
    write(
        "key_load",
        "encrypted_pem",
        &with(2, encrypted_pem.as_bytes()),
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "fuzz",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            b"fuzz".as_slice(),
            p12_keystore::PrivateKey::from_der(&pkcs8).expect("p12 key"),
            [p12_keystore::Certificate::from_der(cert.der()).expect("p12 cert")],
        )),
    );
    let p12 = store
        .writer("fuzz")
        .encryption_iterations(1)
        .mac_iterations(1)
        .write()
        .expect("pkcs12");
    write("key_load", "pkcs12_aes", &with(2, &p12));
    let p12_legacy = store
        .writer("fuzz")
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha1)
        .encryption_iterations(1)
        .mac_iterations(1)
        .write()
        .expect("pkcs12");
    write("key_load", "pkcs12_3des", &with(2, &p12_legacy));

    // receiver
    write("receiver", "rich", &with(0, &generic(body.to_string())));
    write(
        "receiver",
        "rich_v1",
        &with(0, &generic(body_v1.to_string())),
    );
    write("receiver", "mixed", &with(0, &generic(mixed.to_string())));
    write(
        "receiver",
        "handshake",
        &with(1, b"validationToken=Validation%3A+ok%20%2F\n"),
    );
    let no_token = json!({"value": [item]});
    write(
        "receiver",
        "no_token",
        &with(0, &generic(no_token.to_string())),
    );

    // offloaded_payload: the blob an Event Hubs record names.
    let blob = json!({"resource": item["resource"], "resourceData": item["resourceData"],
                      "encryptedContent": item["encryptedContent"]});
    write("offloaded_payload", "genuine", &generic(blob.to_string()));
    let mut whole = item.clone();
    whole["subscriptionId"] = "not-the-record's".into();
    whole["clientState"] = "not-the-record's".into();
    write(
        "offloaded_payload",
        "whole_notification",
        &generic(whole.to_string()),
    );
    let conflicting = json!({"resource": "other", "encryptedContent": item["encryptedContent"]});
    write(
        "offloaded_payload",
        "no_resource_data",
        &generic(conflicting.to_string()),
    );
    write(
        "offloaded_payload",
        "not_an_object",
        b"[\"encryptedContent\"]",
    );
}

/// The seeds reach the deep paths: the rich body decrypts both items under this process's key
/// and tokens, and the encryptedContent seed decrypts.
#[test]
fn seeds_reach_decryption() {
    use msgraph_notify::receiver::{Outcome, Reply};
    let f = entry::fixture();
    let seed = std::fs::read(fuzz_dir().join("seeds/receiver/rich")).expect("seed");
    let body = entry::expand(&seed[1..]);
    let Ok(Reply::Notifications(items)) = f.receiver.receive(None, &body) else {
        panic!("the rich seed is not a notification body");
    };
    assert_eq!(items.len(), 2);
    for item in &items {
        assert!(
            matches!(item.outcome, Outcome::Decrypted(_)),
            "{:?}",
            item.outcome
        );
    }
    // The genuine blob decrypts, and the whole notification's own ids do not replace the record's.
    for name in ["genuine", "whole_notification"] {
        let seed =
            std::fs::read(fuzz_dir().join("seeds/offloaded_payload").join(name)).expect("seed");
        f.blob.insert(entry::BLOB, entry::expand(&seed));
        let record = serde_json::json!({"value": [{
            "subscriptionId": entry::OFFLOADED_SUBSCRIPTION, "tenantId": entry::TENANT,
            "clientState": entry::CLIENT_STATE, "additionalPayloadStorageId": entry::BLOB}]});
        let items = f
            .offload_receiver
            .receive_trusted_transport(record.to_string().as_bytes())
            .unwrap();
        let Outcome::Decrypted(d) = &items[0].outcome else {
            panic!("{name}: {:?}", items[0].outcome)
        };
        assert_eq!(
            d.notification.subscription_id.as_deref(),
            Some(entry::OFFLOADED_SUBSCRIPTION)
        );
    }
    let seed =
        std::fs::read(fuzz_dir().join("seeds/encrypted_content/json_content")).expect("seed");
    let content: msgraph_notify::EncryptedContent =
        serde_json::from_slice(&entry::expand(&seed[1..])).expect("json");
    assert!(f.decryptor.decrypt(&content).is_ok());
}
