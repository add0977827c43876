//! Replicas sharing one real Redis (`redis-server` on 127.0.0.1): one keeper at a time, each
//! desired subscription created exactly once, lifecycle notifications handed to the keeper, and
//! a takeover that adopts the same ids when the keeper dies.

use std::sync::Arc;
use std::time::Duration;

use msgraph_notify::subscription::{Keeper, KeeperEvent, RedisState};
use test_support::redis::RedisServer;

use super::*;

fn replica(w: &World, url: &str, prefix: &str) -> Keeper {
    let redis = Arc::new(
        RedisState::open(url)
            .unwrap()
            .prefix(prefix)
            .lease_ttl(Duration::from_millis(1500)),
    );
    w.keeper(redis.clone()).coordination(redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_create_each_subscription_once_and_take_over() {
    let Some(server) = RedisServer::start() else {
        return; // test-support says why (and fails under CI=true)
    };
    let w = world().await;
    let prefix = format!("keeper-test-{}:", std::process::id());
    let replicas: Vec<Keeper> = (0..3)
        .map(|_| replica(&w, &server.url(), &prefix))
        .collect();

    // All start and pass at once, several times: one of them creates, the others wait.
    async fn pass(r: &Keeper) -> Vec<KeeperEvent> {
        let mut events = r.start().await;
        events.extend(r.reconcile().await);
        events
    }
    let mut all = Vec::new();
    for _ in 0..3 {
        let (a, b, c) = tokio::join!(pass(&replicas[0]), pass(&replicas[1]), pass(&replicas[2]));
        all.extend(a.into_iter().chain(b).chain(c));
    }
    let created = all
        .iter()
        .filter(|e| matches!(e, KeeperEvent::Created { .. }))
        .count();
    assert_eq!(created, 2, "{all:?}");
    assert_eq!(w.emulator.subscriptions().len(), 2);
    let keepers: Vec<usize> = (0..3).filter(|i| replicas[*i].is_keeper()).collect();
    assert_eq!(keepers.len(), 1, "exactly one keeper");
    let leader = keepers[0];
    let ids: Vec<String> = replicas[leader]
        .kept()
        .await
        .into_iter()
        .map(|k| k.id)
        .collect();

    // A follower receives a lifecycle notification: it hands it over; the keeper answers it.
    let follower = (leader + 1) % 3;
    let chats = w
        .emulator
        .subscriptions()
        .into_iter()
        .find(|s| s.resource == CHATS)
        .unwrap()
        .id;
    w.emulator.lifecycle(&chats, "missed").unwrap();
    let notification = wait_for(|| w.lifecycle_notifications(), 1).await.remove(0);
    assert!(
        replicas[follower]
            .on_lifecycle(&notification)
            .await
            .is_empty()
    );
    let events = replicas[leader].reconcile().await;
    assert!(
        events.iter().any(|e| matches!(e, KeeperEvent::Resync { subscription_id, .. } if *subscription_id == chats)),
        "{events:?}"
    );

    // The keeper dies (its lease is not extended): after the lease's time, another takes over,
    // adopts the same ids from Redis, and renews them when due; nothing is created again.
    let mut survivors: Vec<Keeper> = replicas
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, r)| r)
        .collect();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let mut takeover = Vec::new();
    for r in &mut survivors {
        takeover.extend(r.reconcile().await);
    }
    let mut adopted: Vec<String> = takeover
        .iter()
        .filter_map(|e| match e {
            KeeperEvent::Adopted { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    adopted.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(adopted, expected, "{takeover:?}");
    assert_eq!(survivors.iter().filter(|r| r.is_keeper()).count(), 1);
    w.clock.advance(Duration::from_secs(46 * 60));
    let mut renewed = Vec::new();
    for r in &survivors {
        renewed.extend(r.reconcile().await);
    }
    assert!(
        renewed
            .iter()
            .all(|e| matches!(e, KeeperEvent::Renewed { .. }))
            && renewed.len() == 1,
        "the presence subscription renewed once: {renewed:?}"
    );
    assert_eq!(w.emulator.subscriptions().len(), 2);
    drop(server);
    w.emulator.shutdown().await;
}
