//! `RedisReplayStore` against a real `redis-server` started on 127.0.0.1 (a free port, no
//! persistence): one atomic check-and-insert shared by two stores (two replicas), removal, the
//! TTL, concurrent inserts, and an unreachable server. Skipped, with a note, when `redis-server`
//! is not installed, except under `CI=true` (`.ci/run` installs it).
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use msgraph_notify::ChangeNotification;
use msgraph_notify::replay::{Fingerprint, RedisReplayStore, ReplayStore};
use test_support::redis::RedisServer;

fn fp(n: u32) -> Fingerprint {
    let item: ChangeNotification = serde_json::from_value(serde_json::json!({
        "encryptedContent": {"dataSignature": format!("sig-{n}"), "dataKey": "k", "data": "d"}
    }))
    .unwrap();
    Fingerprint::of(&item).unwrap()
}

#[test]
fn two_stores_share_one_memory_atomically() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let day = Duration::from_secs(24 * 3600);
    let a = RedisReplayStore::open(&server.url(), day).unwrap();
    let b = RedisReplayStore::open(&server.url(), day).unwrap();
    a.ping().unwrap();
    assert_eq!(a.insert_if_absent(&fp(1)), Ok(true));
    assert_eq!(
        b.insert_if_absent(&fp(1)),
        Ok(false),
        "the other replica sees it"
    );
    assert_eq!(a.insert_if_absent(&fp(1)), Ok(false));
    // Removal (an item that failed) frees it for everyone.
    b.remove(&fp(1));
    assert_eq!(a.insert_if_absent(&fp(1)), Ok(true));
    // Another prefix is another memory.
    let c = RedisReplayStore::open(&server.url(), day)
        .unwrap()
        .with_prefix("other-deployment:");
    assert_eq!(c.insert_if_absent(&fp(1)), Ok(true));

    // 8 threads over two stores race for 200 fingerprints: each is won exactly once.
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = if t % 2 == 0 { &a } else { &b };
            let wins = &wins;
            s.spawn(move || {
                for n in 1000..1200 {
                    if store.insert_if_absent(&fp(n)).unwrap() {
                        wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 200);
}

#[test]
fn entries_expire_after_the_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisReplayStore::open(&server.url(), Duration::from_millis(300)).unwrap();
    assert_eq!(store.insert_if_absent(&fp(7)), Ok(true));
    assert_eq!(store.insert_if_absent(&fp(7)), Ok(false));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(store.insert_if_absent(&fp(7)), Ok(true));
}

#[test]
fn an_unreachable_server_is_an_error_not_a_pass() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisReplayStore::open(&server.url(), Duration::from_secs(60))
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(true));
    server.stop();
    let start = Instant::now();
    let err = store.insert_if_absent(&fp(2)).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.to_string().contains("replay store is unavailable"),
        "{err}"
    );
    assert!(!store.is_available());
    assert!(store.ping().is_err());
    // Debug never shows the URL (it may hold a password).
    assert!(!format!("{store:?}").contains("127.0.0.1"));
    // A URL that does not parse names no part of itself.
    let err = RedisReplayStore::open("redis://:hunter2@[bad", Duration::from_secs(1)).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
