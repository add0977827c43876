//! Two consumer groups reading one topic with one Redis as their replay store: each group has a
//! replay memory of its own (the Redis key prefix names the group), so the second group decrypts
//! every item instead of taking the first group's as duplicates; within one group a record read
//! again is still a duplicate.

use std::collections::BTreeSet;

use crate::common::*;
use crate::{PATIENCE, broker_and_redis, produce, producer, record, tag};
use test_support::process::Captured;

fn consumer(fx: &Fixture, broker: &str, group: &str, redis: &str) -> Captured {
    let mut command = bin();
    command
        .args(["consume", "--brokers", broker, "--topic", "groups"])
        .args(["--group", group])
        .args(["--key", &format!("{CERT_ID}={}", fx.key_path.display())])
        .args(["--client-state", CLIENT_STATE, "--session-timeout", "6"])
        .args(["--replay", redis]);
    Captured::spawn(&mut command, "consume")
}

fn decrypted(lines: &[serde_json::Value]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| l["status"] == "decrypted")
        .filter_map(|l| tag(l).map(str::to_owned))
        .collect()
}

#[test]
fn two_consumer_groups_on_one_redis_each_decrypt_every_item() {
    let Some((broker, redis)) = broker_and_redis("groups") else {
        return;
    };
    let fx = Fixture::new();
    let bodies: Vec<Vec<u8>> = (0..3)
        .map(|n| record(vec![fx.item(&Fixture::presence(&format!("g{n}")))]))
        .collect();
    produce(&producer(&broker), "groups", &bodies);
    let expected: BTreeSet<String> = (0..3).map(|n| format!("g{n}")).collect();

    let mut first = consumer(&fx, &broker.address(), "decrypters", &redis.url());
    first.wait_for("the first group's items", PATIENCE, |l| {
        decrypted(l) == expected
    });
    assert_eq!(first.stop_with("-TERM", PATIENCE), Some(0));

    // Another group: its own memory, every item decrypted, none a duplicate.
    let mut second = consumer(&fx, &broker.address(), "auditors", &redis.url());
    let lines = second.wait_for("the second group's items", PATIENCE, |l| l.len() >= 3);
    assert_eq!(decrypted(&lines), expected, "{lines:?}");
    assert_eq!(second.stop_with("-TERM", PATIENCE), Some(0));
}
