//! The Redis replay store knows when it forgot, and says why it cannot answer: a `redis-server`
//! restarted empty (no persistence) or flushed is noticed (the marker key is gone) and the store
//! refuses to answer for one time to live, or until an operator accepts the loss; every store on
//! the same server and prefix agrees; another prefix is another memory; a server that refuses
//! our password or our connection is named as such.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use msgraph_notify::ChangeNotification;
use msgraph_notify::replay::{
    Fingerprint, RedisFault, RedisReplayStore, ReplayMemory, ReplayStore, ReplayStoreError,
};
use test_support::redis::RedisServer;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn fp(n: u32) -> Fingerprint {
    let item: ChangeNotification = serde_json::from_value(serde_json::json!({
        "encryptedContent": {"dataSignature": format!("sig-{n}"), "dataKey": "k", "data": "d"}
    }))
    .unwrap();
    Fingerprint::of(&item).unwrap()
}

/// The first answer that is not the broken connection of a restart: the server came back on the
/// same port, and the pool's old connection fails once.
fn settled(
    mut call: impl FnMut() -> Result<bool, ReplayStoreError>,
) -> Result<bool, ReplayStoreError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call();
        match &answer {
            Err(e) if !e.0.contains("lost") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => return answer,
        }
    }
}

fn assert_lost(store: &RedisReplayStore, answer: Result<bool, ReplayStoreError>) {
    let err = answer.expect_err("a lost memory must not answer");
    assert!(
        err.to_string().contains("replay memory in Redis was lost"),
        "{err}"
    );
    assert!(
        err.to_string().contains("appendonly yes"),
        "says the fix: {err}"
    );
    assert!(!err.to_string().contains("replay-unavailable"), "{err}");
    assert!(
        matches!(store.memory(), ReplayMemory::Lost { .. }),
        "{:?}",
        store.memory()
    );
    assert_eq!(store.fault(), Some(RedisFault::MemoryLost));
    assert!(!store.is_available());
}

#[test]
fn a_redis_restarted_empty_is_noticed_and_refused_until_accepted() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisReplayStore::open(&server.url(), DAY)
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    assert_eq!(store.memory(), ReplayMemory::Unchecked);
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(true));
    assert!(matches!(store.memory(), ReplayMemory::Whole { .. }));
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(false));
    assert_eq!(store.losses_detected(), 0);

    // Restarted without persistence: fp(1) is forgotten. Without the marker it would be taken as
    // new (a replay processed again); the store refuses instead.
    server.restart_empty();
    assert_lost(&store, settled(|| store.insert_if_absent(&fp(1))));
    assert_eq!(store.losses_detected(), 1);
    assert_lost(&store, store.contains(&fp(1)));
    assert!(store.insert_all(&[fp(3)]).is_err());
    assert!(store.ping().is_err());
    assert_eq!(store.losses_detected(), 1, "one loss, counted once");

    // A store opened afterwards (a replica, a restarted process) reads the same verdict from the
    // marker the first one wrote.
    let later = RedisReplayStore::open(&server.url(), DAY).unwrap();
    assert_lost(&later, later.insert_if_absent(&fp(4)));
    assert_eq!(later.losses_detected(), 0, "it did not see the loss itself");

    // An operator's explicit choice ends it for every store.
    store.accept_loss().unwrap();
    assert!(matches!(store.memory(), ReplayMemory::Whole { .. }));
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(true));
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(false));
    std::thread::sleep(Duration::from_millis(600)); // the other re-reads the marker
    assert_eq!(later.insert_if_absent(&fp(1)), Ok(false));
    assert_eq!(later.fault(), None);
}

#[test]
fn a_flush_is_noticed_by_a_ping_and_the_window_ends_by_itself() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ttl = Duration::from_secs(2);
    let store = RedisReplayStore::open(&server.url(), ttl).unwrap();
    store.ping().unwrap();
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(true));
    server.flushall();
    // No traffic: the readiness probe's ping notices.
    let err = store.ping().unwrap_err();
    assert!(err.to_string().contains("lost"), "{err}");
    assert_lost(&store, store.insert_if_absent(&fp(1)));
    // One time to live after the loss, everything a valid token allows has expired: the memory
    // is whole again.
    std::thread::sleep(ttl + Duration::from_millis(600));
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(true));
    assert!(matches!(store.memory(), ReplayMemory::Whole { .. }));
    assert!(store.is_available());
}

#[test]
fn a_first_contact_with_an_empty_redis_starts_a_new_memory() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // A first start cannot be told from a loss nobody saw: a new memory, not a refusal.
    let store = RedisReplayStore::open(&server.url(), DAY).unwrap();
    assert_eq!(store.insert_if_absent(&fp(1)), Ok(true));
    assert!(matches!(store.memory(), ReplayMemory::Whole { .. }));
    assert_eq!(store.losses_detected(), 0);
}

#[test]
fn two_prefixes_are_two_memories_each_with_its_own_marker() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // What `consume` does for two consumer groups on one Redis.
    let a = RedisReplayStore::open(&server.url(), DAY)
        .unwrap()
        .with_prefix("msgraph-notify:replay:group:a:");
    let b = RedisReplayStore::open(&server.url(), DAY)
        .unwrap()
        .with_prefix("msgraph-notify:replay:group:b:");
    assert_eq!(a.insert_if_absent(&fp(1)), Ok(true));
    assert_eq!(
        b.insert_if_absent(&fp(1)),
        Ok(true),
        "not a duplicate for group b"
    );
    assert_eq!(a.insert_if_absent(&fp(1)), Ok(false));
    assert_eq!(b.contains(&fp(1)), Ok(true));
    assert_eq!(b.prefix(), "msgraph-notify:replay:group:b:");
}

#[test]
fn a_refused_password_is_named_as_authentication() {
    let Some(server) = RedisServer::start_with(&["--requirepass", "right-password"]) else {
        return;
    };
    let timeout = Duration::from_millis(400);
    // No password (NOAUTH), then a wrong one (WRONGPASS).
    let none = RedisReplayStore::open(&server.url(), DAY)
        .unwrap()
        .with_timeout(timeout);
    let wrong = RedisReplayStore::open_with_password(&server.url(), "wrong-password", DAY)
        .unwrap()
        .with_timeout(timeout);
    for store in [&none, &wrong] {
        let err = store.ping().unwrap_err().to_string();
        assert!(err.contains("authentication"), "{err}");
        assert!(
            !err.contains("wrong-password") && !err.contains("right-password"),
            "{err}"
        );
        assert!(!err.contains("replay-unavailable"), "{err}");
        assert_eq!(store.fault(), Some(RedisFault::Authentication));
        assert!(!RedisFault::Authentication.is_passing());
        let err = store.insert_if_absent(&fp(1)).unwrap_err().to_string();
        assert!(
            err.contains("authentication"),
            "every error names it: {err}"
        );
    }
    let right = RedisReplayStore::open_with_password(&server.url(), "right-password", DAY).unwrap();
    right.ping().unwrap();
    assert_eq!(right.insert_if_absent(&fp(1)), Ok(true));
    assert_eq!(right.fault(), None);
}

#[test]
fn a_stopped_redis_is_named_as_refused() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisReplayStore::open(&server.url(), DAY)
        .unwrap()
        .with_timeout(Duration::from_millis(400));
    store.ping().unwrap();
    server.stop();
    // The pooled connection breaks first; a new one is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = store.ping().unwrap_err().to_string();
        if store.fault() == Some(RedisFault::Refused) {
            assert!(err.contains("refused the connection"), "{err}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never named refused: {err} {:?}",
            store.fault()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
