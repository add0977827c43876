//! `AzureBlobStore` against Azurite, Microsoft's storage emulator, on 127.0.0.1: the blob an
//! offloaded notification names is read over HTTP with Shared Key signing, verified and
//! decrypted; a missing blob, a missing container, a blob over the limit, a wrong account key and
//! a stopped service each give their own error, and the key never appears in one.

use std::sync::Arc;
use std::time::Duration;

use msgraph_notify::model::ChangeNotification;
use msgraph_notify::offload::azure::AzureBlobStore;
use msgraph_notify::offload::{DEFAULT_CONTAINER, PayloadError, PayloadStore};
use msgraph_notify::receiver::{Outcome, Receiver};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use msgraph_notify::{Decryptor, Error};
use serde_json::{Value, json};
use test_support::azurite::{self, Azurite};

const SECRET: &str = "client-state-secret";

/// A chat message over 1 MB as Graph sends it inline, and its plaintext.
fn big_chat_message(tag: &str) -> (Value, Value) {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new("tenant-a", &format!("chats('19:{tag}')/messages('1')"));
    spec.client_state = Some(SECRET.into());
    let data = json!({
        "@odata.type": "#microsoft.graph.chatMessage",
        "id": "1",
        "body": {"contentType": "html", "content": "<p>x</p>".repeat(140_000)},
    });
    let n: ChangeNotification = GraphEncryptor::new(cert, "cert-1")
        .notification(&data, &spec)
        .unwrap();
    (serde_json::to_value(n).unwrap(), data)
}

fn receiver(store: AzureBlobStore) -> Receiver {
    let (key, cert) = test_support::keypair(2048);
    Receiver::builder(Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap())
        .trusted_transport_only()
        .client_state(SECRET)
        .replay_guard(ReplayGuard::default())
        .payload_store(Arc::new(store))
        .build()
        .unwrap()
}

#[test]
fn an_offloaded_notification_is_read_from_azurite_and_decrypted() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container(DEFAULT_CONTAINER);
    let (item, data) = big_chat_message("a");
    // Names as Graph might choose them: a GUID, and one with a folder, spaces and non-ASCII.
    let ids = [
        "5f0c1a4e-8d2b-4e61-b7a5-0e4f6c2d9b31",
        "2026/11/30/nachricht über 1 MB.json",
    ];
    let mut records = Vec::new();
    for id in ids {
        let (hub, blob) = test_support::offload(item.clone(), id);
        assert!(blob.len() > 1_000_000, "the payload is over 1 MB");
        azurite.put_blob(DEFAULT_CONTAINER, id, &blob);
        records.push(json!({"value": [hub]}).to_string());
    }
    let store = AzureBlobStore::from_connection_string(&azurite.connection_string()).unwrap();
    assert_eq!(store.container_name(), DEFAULT_CONTAINER);
    let receiver = receiver(store);

    let items = receiver
        .receive_trusted_transport(records[0].as_bytes())
        .unwrap();
    let Outcome::Decrypted(d) = &items[0].outcome else {
        panic!("{:?}", items[0].outcome)
    };
    assert_eq!(
        serde_json::from_slice::<Value>(d.plaintext.as_bytes()).unwrap(),
        data
    );
    assert_eq!(
        d.notification.resource.as_deref(),
        item["resource"].as_str()
    );
    assert_eq!(items[0].to_json()["additionalPayloadStorageId"], ids[0]);

    // The second name holds the same payload: read and verified, then caught as a duplicate.
    let items = receiver
        .receive_trusted_transport(records[1].as_bytes())
        .unwrap();
    let Outcome::Rejected(r) = &items[0].outcome else {
        panic!("{:?}", items[0].outcome)
    };
    assert!(matches!(r.error, Error::Duplicate), "{}", r.error);
}

#[test]
fn missing_and_oversized_blobs_are_refused_for_good_a_missing_container_is_not() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container("payloads");
    azurite.put_blob("payloads", "small", b"{\"encryptedContent\":null}");
    azurite.put_blob("payloads", "large", &vec![b' '; 300_000]);
    let store = AzureBlobStore::from_connection_string(&azurite.connection_string())
        .unwrap()
        .container("payloads")
        .unwrap();

    assert_eq!(
        store.fetch("small", 1024).unwrap(),
        b"{\"encryptedContent\":null}"
    );
    assert_eq!(store.fetch("absent", 1024), Err(PayloadError::NotFound));
    assert_eq!(
        store.fetch("large", 100_000),
        Err(PayloadError::TooLarge { limit: 100_000 })
    );
    assert_eq!(store.fetch("large", 300_000).unwrap().len(), 300_000);
    assert!(matches!(
        store.fetch("a/../b", 1024),
        Err(PayloadError::InvalidName(_))
    ));

    // A container that does not exist is the deployment's mistake, not the item's: transient,
    // so a consumer waits for it to be fixed instead of refusing every offloaded item.
    let wrong = AzureBlobStore::from_connection_string(&azurite.connection_string())
        .unwrap()
        .container("no-such-container")
        .unwrap();
    let e = wrong.fetch("small", 1024).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("ContainerNotFound"), "{e}");

    // A blob's name holding the service's error code does not pass for the service's answer:
    // a missing blob so named is still a missing blob, refused for good (were it taken for a
    // missing container, anyone writing to the hub could stall a consumer on it forever).
    let e = store
        .fetch("<Code>ContainerNotFound</Code>", 1024)
        .unwrap_err();
    assert_eq!(e, PayloadError::NotFound);
}

#[test]
fn a_shared_access_signature_reads_and_a_bad_one_is_never_shown() {
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container(DEFAULT_CONTAINER);
    azurite.put_blob(DEFAULT_CONTAINER, "via-sas", b"{\"encryptedContent\":null}");
    let with_sas = |sas: &str| {
        AzureBlobStore::from_connection_string(&format!(
            "BlobEndpoint={};SharedAccessSignature={sas}",
            azurite.endpoint()
        ))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .unwrap()
    };
    let sas = azurite.account_sas("r");
    let store = with_sas(&sas);
    assert!(!format!("{store:?}").contains("sig="));
    assert_eq!(
        store.fetch("via-sas", 1024).unwrap(),
        b"{\"encryptedContent\":null}"
    );

    // The same token with another signature: refused by the service, transient (credentials
    // can be fixed), and the signature shown nowhere.
    let forged_sig = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D";
    let forged = format!("{}sig={forged_sig}", sas.split("sig=").next().unwrap());
    let e = with_sas(&forged).fetch("via-sas", 1024).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(!e.to_string().contains("AAAAAAAAAAAAAAAA"), "{e}");
    // Without the read permission.
    let e = with_sas(&azurite.account_sas("l"))
        .fetch("via-sas", 1024)
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
}

#[test]
fn a_wrong_key_or_a_stopped_service_is_unavailable_and_the_key_is_never_shown() {
    let Some(mut azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container(DEFAULT_CONTAINER);
    azurite.put_blob(DEFAULT_CONTAINER, "b", b"{}");
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let store = AzureBlobStore::from_connection_string(&format!(
        "AccountName={};AccountKey={wrong_key};BlobEndpoint={}",
        azurite::ACCOUNT,
        azurite.endpoint()
    ))
    .unwrap()
    .timeout(Duration::from_secs(5))
    .unwrap();
    assert!(!format!("{store:?}").contains(wrong_key));
    let e = store.fetch("b", 1024).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(!e.to_string().contains(wrong_key), "{e}");

    let good = AzureBlobStore::from_connection_string(&azurite.connection_string())
        .unwrap()
        .timeout(Duration::from_secs(3))
        .unwrap();
    assert_eq!(good.fetch("b", 1024).unwrap(), b"{}");
    azurite.stop();
    let e = good.fetch("b", 1024).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(!e.to_string().contains(azurite::ACCOUNT_KEY), "{e}");
}

#[test]
fn the_store_can_be_dropped_inside_an_async_runtime() {
    // A service building its receiver in async code drops it there too: that must not panic.
    let Some(azurite) = Azurite::start() else {
        return;
    };
    azurite.create_container(DEFAULT_CONTAINER);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = AzureBlobStore::from_connection_string(&azurite.connection_string()).unwrap();
        let store = tokio::task::spawn_blocking(move || {
            assert_eq!(store.fetch("absent", 10), Err(PayloadError::NotFound));
            store
        })
        .await
        .unwrap();
        drop(store);
    });
}
