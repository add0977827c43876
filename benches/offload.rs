//! Offloaded payloads (Event Hubs, over 1 MB): what reading the blob from Azure Blob storage adds
//! to an item, against the same item inline, with Azurite (Microsoft's storage emulator) on
//! 127.0.0.1 as the storage account.
//!
//! For each resource size: the inline record (`receive_trusted_transport`, the item carrying its
//! `encryptedContent`), the offloaded record (the same, the content read from the blob through
//! `AzureBlobStore`), and the blob read alone (`PayloadStore::fetch`). Medians and the slowest of
//! `ROUNDS` runs each, interleaved. Needs Azurite (`MSGRAPH_NOTIFY_AZURITE` or `azurite-blob` on
//! PATH).
//!
//! ```sh
//! MSGRAPH_NOTIFY_AZURITE=/path/to/azurite-blob cargo bench --features azure-blob --bench offload
//! cargo bench --features azure-blob --bench offload -- 60     # rounds
//! ```
//!
//! Timing is measured, never asserted: this is a program, not a test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msgraph_notify::model::ChangeNotification;
use msgraph_notify::offload::azure::AzureBlobStore;
use msgraph_notify::offload::{DEFAULT_CONTAINER, PayloadStore};
use msgraph_notify::receiver::{Outcome, Receiver};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use msgraph_notify::{Certificate, Decryptor, PrivateKey};
use serde_json::{Value, json};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let Some(azurite) = test_support::azurite::Azurite::start() else {
        eprintln!("offload bench: Azurite is not installed; nothing measured");
        return;
    };
    azurite.create_container(DEFAULT_CONTAINER);

    let key = PrivateKey::generate(2048).expect("key");
    let cert = Certificate::self_signed(&key, "bench", 1).expect("cert");
    let store = Arc::new(
        AzureBlobStore::from_connection_string(&azurite.connection_string()).expect("store"),
    );
    let receiver = Receiver::builder(Decryptor::with_key(key, Some(cert.clone())).expect("key"))
        .trusted_transport_only()
        // The inline records are the size Graph would not send through a hub: let them in.
        .max_body_bytes(64 << 20)
        .payload_store(Arc::clone(&store) as Arc<dyn PayloadStore>)
        .build()
        .expect("receiver");

    println!(
        "| resource | blob | inline record: median / max | offloaded record: median / max | added | blob read alone: median |"
    );
    println!("|---|---|---|---|---|---|");
    for size in [64 * 1024, 1_100_000, 4 * 1024 * 1024] {
        let resource = json!({
            "@odata.type": "#microsoft.graph.chatMessage",
            "id": "1",
            "body": {"contentType": "html", "content": "x".repeat(size)},
        });
        let spec = NotificationSpec::new("tenant", "chats('19:a')/messages('1')");
        let item: ChangeNotification = GraphEncryptor::new(&cert, "cert-1")
            .notification(&resource, &spec)
            .expect("encrypt");
        let mut item = serde_json::to_value(item).expect("json");
        let inline = json!({"value": [item.clone()]}).to_string().into_bytes();
        let object = item.as_object_mut().expect("object");
        let mut blob = serde_json::Map::new();
        for name in ["resource", "resourceData", "encryptedContent"] {
            if let Some(v) = object.remove(name) {
                blob.insert(name.to_owned(), v);
            }
        }
        let id = format!("bench-{size}");
        object.insert("additionalPayloadStorageId".into(), id.clone().into());
        let blob = Value::Object(blob).to_string().into_bytes();
        azurite.put_blob(DEFAULT_CONTAINER, &id, &blob);
        let offloaded = json!({"value": [item]}).to_string().into_bytes();

        let run = |body: &[u8]| {
            let start = Instant::now();
            let items = receiver.receive_trusted_transport(body).expect("receive");
            let took = start.elapsed();
            assert!(
                matches!(items[0].outcome, Outcome::Decrypted(_)),
                "{:?}",
                items[0].outcome.status()
            );
            took
        };
        // Warm-up: connections, caches.
        run(&inline);
        run(&offloaded);
        let (mut a, mut b, mut f) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(run(&inline));
            b.push(run(&offloaded));
            let start = Instant::now();
            let got = store.fetch(&id, 64 << 20).expect("fetch");
            f.push(start.elapsed());
            assert_eq!(got.len(), blob.len());
        }
        let (a_max, b_max) = (*a.iter().max().unwrap(), *b.iter().max().unwrap());
        let (a, b, f) = (median(a), median(b), median(f));
        println!(
            "| {} KiB | {} KiB | {} / {} | {} / {} | **+{}** | {} |",
            size / 1024,
            blob.len() / 1024,
            ms(a),
            ms(a_max),
            ms(b),
            ms(b_max),
            ms(b.saturating_sub(a)),
            ms(f)
        );
    }
}
