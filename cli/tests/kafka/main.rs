//! `consume` and `serve --forward` against a real Kafka-protocol broker, `tansu` 0.6, started by
//! each test on a free port of 127.0.0.1 with its memory storage engine: Event Hubs-shaped
//! records (no tokens, the hub's validation message, an offloaded item, poisonous records); 50
//! POSTs through `serve --forward` then `consume`; the broker stopped under `serve --forward`
//! (503, never 202), and the signing keys out of reach under it (503 until they arrive,
//! `forward_keys`); `consume` killed with SIGKILL mid-stream and restarted, with Redis as the
//! replay store: no item missing, none decrypted twice; offloaded payloads read from Azurite
//! (Microsoft's storage emulator), and a storage account that hangs waited out.
//! `membership`: consume's join, assignments and rebalances logged, a static member restarted
//! within its session; `forward_edges`: items with additionalPayloadStorageId kept back, the
//! default --max-body through a broker, a broker restarted without its state, TLS to a plaintext
//! broker.
//!
//! The broker is found through `MSGRAPH_NOTIFY_TANSU` (a path) or `tansu` on PATH. Without it the
//! tests are skipped with a note, except under `CI=true`, where its absence fails them.

mod admin;
#[path = "../common/mod.rs"]
mod common;
mod forward_edges;
mod forward_keys;

mod groups;
mod membership;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use test_support::redis::RedisServer;
use test_support::tansu::Broker;
use test_support::{azurite, offload};

/// How long a test waits for what must happen (generous: the machine may be busy).
const PATIENCE: Duration = Duration::from_secs(90);

/// A producer that sends every record in its own batch (see the SIGKILL test).
fn producer(broker: &Broker) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer")
}

/// Waits until the `decrypters` group has committed `offset` (or more) on partition 0 of
/// `topic`: what was printed is then recorded and committed, not merely printed (a line is out
/// just before its items are recorded and its offset committed).
fn wait_committed(broker: &Broker, topic: &str, offset: i64) {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("group.id", "decrypters")
        .create()
        .expect("a consumer to read the group's offsets");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition(topic, 0);
    let start = std::time::Instant::now();
    loop {
        let committed = watcher
            .committed_offsets(list.clone(), Duration::from_secs(5))
            .ok()
            .and_then(|l| l.find_partition(topic, 0).map(|p| p.offset()));
        if let Some(rdkafka::Offset::Offset(at)) = committed
            && at >= offset
        {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "offset {offset} of {topic} never committed: {committed:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn produce(producer: &FutureProducer, topic: &str, payloads: &[Vec<u8>]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for payload in payloads {
        runtime
            .block_on(producer.send(
                FutureRecord::<(), [u8]>::to(topic).payload(payload),
                Duration::from_secs(30),
            ))
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// A running `consume`, its output captured line by line.
struct Consumer(Captured);

/// The child and its captured `stdout` and `stderr` lines.
impl std::ops::Deref for Consumer {
    type Target = Captured;

    fn deref(&self) -> &Captured {
        &self.0
    }
}

impl Consumer {
    fn start(fx: &Fixture, broker: &Broker, topic: &str, extra: &[&str]) -> Consumer {
        Self::start_with_env(fx, broker, topic, extra, &[])
    }

    fn start_with_env(
        fx: &Fixture,
        broker: &Broker,
        topic: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Consumer {
        let mut command = bin();
        command
            .args(["consume", "--brokers", &broker.address(), "--topic", topic])
            .args(["--group", "decrypters"])
            .args(["--key", &format!("{CERT_ID}={}", fx.key_path.display())])
            .args(["--client-state", CLIENT_STATE, "--session-timeout", "6"])
            .args(extra)
            .envs(env.iter().copied());
        Consumer(Captured::spawn(&mut command, "consume"))
    }

    fn lines(&self) -> Vec<Value> {
        self.0.json_lines()
    }

    /// Waits until `done` holds for the lines printed so far; fails with them after PATIENCE.
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.0.wait_for(&format!("consume: {what}"), PATIENCE, done)
    }

    fn signal(&mut self, signal: &str) -> Option<i32> {
        self.0.stop_with(signal, PATIENCE)
    }
}

/// A broker with `topic` (of `partitions` partitions), or `None` (the test skips, saying so) when
/// tansu is not installed.
fn broker_with(topic: &str, partitions: u32) -> Option<Broker> {
    let broker = Broker::start(PATIENCE)?;
    broker.create_topic(topic, partitions);
    Some(broker)
}

/// A broker with `topic` (one partition) and a Redis, or `None` (the test skips, saying so) when
/// one is not installed.
fn broker_and_redis(topic: &str) -> Option<(Broker, RedisServer)> {
    Some((broker_with(topic, 1)?, RedisServer::start()?))
}

/// An Event Hubs record: a collection without validation tokens.
fn record(items: Vec<Value>) -> Vec<u8> {
    json!({ "value": items }).to_string().into_bytes()
}

fn validation_message() -> Value {
    json!({"subscriptionId": "NA", "subscriptionExpirationDateTime": "NA", "clientState": "NA",
           "changeType": "Validation: Testing client application reachability for subscription Request-Id: 522a8e7e-096a-494c-aaf1-ac0dcfca45b7",
           "resource": "NA", "resourceData": {"@odata.type": "NA", "@odata.id": "NA", "id": "NA"}})
}

fn tag(line: &Value) -> Option<&str> {
    line["data"]["id"].as_str()
}

#[test]
fn event_hubs_records_decrypt_without_tokens_and_poison_is_skipped() {
    let Some(broker) = broker_with("hub", 1) else {
        return;
    };
    let fx = Fixture::new();
    let offloaded = json!({"subscriptionId": "sub-9", "changeType": "created", "tenantId": TENANT,
                           "clientState": CLIENT_STATE, "additionalPayloadStorageId": "blob-77"});
    let mut wrong_state = fx.item(&Fixture::presence("e3"));
    wrong_state["clientState"] = "not-it".into();
    let records = vec![
        record(vec![
            fx.item(&Fixture::presence("e1")),
            validation_message(),
        ]),
        record(vec![offloaded]),
        b"this is not JSON".to_vec(),
        // Over --max-body (8192 bytes), however well-formed.
        record(vec![json!({"padding": "x".repeat(10_000)})]),
        record(vec![wrong_state, fx.item(&Fixture::presence("e2"))]),
    ];
    produce(&producer(&broker), "hub", &records);

    let mut consumer = Consumer::start(&fx, &broker, "hub", &["--max-body", "8192"]);
    let lines = consumer.wait_for("seven lines", |l| l.len() >= 7);
    let summary: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["partition"], 0, "{l}");
            (
                l["status"].as_str().unwrap().to_owned(),
                l["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("decrypted", 0),
        ("validation", 0),
        ("offloaded", 1),
        ("refused", 2),
        ("refused", 3),
        ("rejected", 4),
        ("decrypted", 4),
    ];
    assert_eq!(
        summary,
        expected.map(|(s, o)| (s.to_owned(), o)).to_vec(),
        "{lines:?}"
    );
    assert_eq!(tag(&lines[0]), Some("e1"));
    assert_eq!(
        lines[1]["requestId"],
        "522a8e7e-096a-494c-aaf1-ac0dcfca45b7"
    );
    assert_eq!(lines[2]["additionalPayloadStorageId"], "blob-77");
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("notification collection"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4]["error"].as_str().unwrap().contains("--max-body"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5]["error"].as_str().unwrap().contains("clientState"),
        "{}",
        lines[5]
    );
    assert_eq!(tag(&lines[6]), Some("e2"));
    assert_eq!(consumer.signal("-TERM"), Some(0));
    assert_eq!(consumer.lines().len(), 7, "nothing more after the poison");
}

fn serve_forwarding(fx: &Fixture, broker: &Broker, topic: &str) -> Served {
    let mut args = fx.receiver_args();
    args.extend([
        "--forward".to_owned(),
        format!("kafka://{}/{topic}", broker.address()),
    ]);
    Served::start(&args)
}

#[test]
fn fifty_posts_through_serve_forward_then_consume() {
    let Some(broker) = broker_with("ingress", 3) else {
        return;
    };
    let fx = Fixture::new();
    let mut served = serve_forwarding(&fx, &broker, "ingress");
    for n in 0..50 {
        let body = fx.body(vec![fx.item(&Fixture::presence(&format!("p{n}")))]);
        let answer = served.post("/", &body);
        assert_eq!(answer.status, 202, "POST {n}: {answer:?}");
    }
    // Graph's retry of a POST already taken: forwarded again, reported by consume as a duplicate.
    let again = fx.body(vec![fx.item(&Fixture::presence("p-retried"))]);
    assert_eq!(served.post("/", &again).status, 202);
    assert_eq!(served.post("/", &again).status, 202);
    // A forged POST (token of another signer): answered 202 like any POST, never forwarded.
    assert_eq!(served.post("/", &fx.forged_body("forged")).status, 202);
    // Not a collection: refused at the door.
    assert_eq!(served.post("/", b"[1,2,3]").status, 400);
    let refused = served.wait_lines(1, PATIENCE);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], "rejected");

    let mut consumer = Consumer::start(&fx, &broker, "ingress", &[]);
    let lines = consumer.wait_for("fifty-two lines", |l| l.len() >= 52);
    assert_eq!(consumer.signal("-TERM"), Some(0));
    let lines_after = consumer.lines();
    assert_eq!(lines_after.len(), 52, "{lines_after:?}");
    let duplicates: Vec<&Value> = lines.iter().filter(|l| l["status"] == "rejected").collect();
    assert_eq!(duplicates.len(), 1, "{lines:?}");
    assert!(
        duplicates[0]["error"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{}",
        duplicates[0]
    );
    let mut tags: Vec<String> = lines
        .iter()
        .filter(|l| l["status"] != "rejected")
        .map(|l| {
            assert_eq!(l["status"], "decrypted", "{l}");
            tag(l).unwrap().to_owned()
        })
        .collect();
    tags.sort();
    let mut expected: Vec<String> = (0..50).map(|n| format!("p{n}")).collect();
    expected.push("p-retried".to_owned());
    expected.sort();
    assert_eq!(tags, expected);
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn a_stopped_broker_gets_503_never_202() {
    let Some(mut broker) = broker_with("ingress", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut served = serve_forwarding(&fx, &broker, "ingress");
    let body = fx.body(vec![fx.item(&Fixture::presence("before"))]);
    assert_eq!(served.post("/", &body).status, 202);
    broker.stop();
    for n in 0..3 {
        let body = fx.body(vec![fx.item(&Fixture::presence(&format!("down{n}")))]);
        let answer = served.post("/", &body);
        assert_eq!(
            answer.status, 503,
            "POST {n} while the broker is down: {answer:?}"
        );
        assert!(
            answer.head.to_ascii_lowercase().contains("retry-after"),
            "{answer:?}"
        );
    }
    // Still serving: the handshake is answered.
    assert_eq!(served.post("/?validationToken=abc", b"").status, 200);
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn sigterm_stops_consume_while_redis_is_down_and_commits_nothing_unrecorded() {
    let Some((broker, redis)) = broker_and_redis("outage") else {
        return;
    };
    let fx = Fixture::new();
    let producer = producer(&broker);
    let replay = redis.url();
    let extra = ["--replay", replay.as_str(), "--replay-timeout-ms", "200"];
    let mut first = Consumer::start(&fx, &broker, "outage", &extra);
    produce(
        &producer,
        "outage",
        &[record(vec![fx.item(&Fixture::presence("before"))])],
    );
    first.wait_for("the first item", |l| {
        l.iter().any(|l| tag(l) == Some("before"))
    });
    wait_committed(&broker, "outage", 1);
    drop(redis);
    produce(
        &producer,
        "outage",
        &[record(vec![fx.item(&Fixture::presence("during"))])],
    );
    // consume cannot check the new item: it retries, and must still stop on SIGTERM.
    first.wait_stderr("no retry was reported", PATIENCE, |l| {
        l.contains("unavailable").then_some(())
    });
    assert_eq!(first.signal("-TERM"), Some(0), "SIGTERM ends consume");
    assert!(first.lines().iter().all(|l| tag(l) != Some("during")));
    // Nothing was lost: the record it could not check was not committed, and the next member
    // of the group (here with the in-process replay memory) decrypts it.
    let second = Consumer::start(&fx, &broker, "outage", &["--replay", "memory"]);
    let lines = second.wait_for("the item read during the outage", |l| {
        l.iter().any(|l| tag(l) == Some("during"))
    });
    assert!(lines.iter().all(|l| tag(l) != Some("before")), "{lines:?}");
}

#[test]
fn consume_killed_mid_stream_loses_nothing_and_decrypts_nothing_twice() {
    let Some((broker, redis)) = broker_and_redis("stream") else {
        return;
    };
    let fx = Fixture::new();
    const RECORDS: usize = 300;
    let bodies: Vec<Vec<u8>> = (0..RECORDS)
        .map(|n| record(vec![fx.item(&Fixture::presence(&format!("k{n}")))]))
        .collect();
    // One record per batch (linger.ms=0, batch.num.messages=1, one send at a time): tansu 0.6
    // returns nothing to a fetch that starts inside a multi-record batch, which is where a
    // consumer restarted from its committed offset would start. A broker flaw, not worked
    // around in `consume`.
    let producer = producer(&broker);
    let replay = redis.url();
    let extra = ["--replay", replay.as_str()];
    // The first consumer is running (its first line is out) before the rest is produced, at a
    // pace it keeps up with: it is killed mid-stream, never after the end.
    let mut first = Consumer::start(&fx, &broker, "stream", &extra);
    produce(&producer, "stream", &bodies[..1]);
    first.wait_for("the first line", |l| !l.is_empty());
    let writer = {
        let (producer, bodies) = (producer.clone(), bodies[1..].to_vec());
        std::thread::spawn(move || {
            for chunk in bodies.chunks(10) {
                produce(&producer, "stream", chunk);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let before = first.wait_for("thirty lines", |l| l.len() >= 30);
    // Lines appear when consume writes them, just before it records their items in Redis: a
    // kill in that instant (one write and one Redis round trip) would print them again after the
    // restart, which this test would report. Killing a little later, at a moment unrelated to
    // the writes, is what "at any moment" means here.
    std::thread::sleep(Duration::from_millis(70));
    assert_eq!(first.signal("-KILL"), None, "killed by the signal");
    let printed_first = first.lines();
    assert!(
        printed_first.len() < RECORDS,
        "the first consumer finished before it was killed: the test proves nothing ({} lines)",
        printed_first.len()
    );
    assert!(printed_first.len() >= before.len());
    writer.join().expect("producer thread");

    let mut second = Consumer::start(&fx, &broker, "stream", &extra);
    let all_decrypted = |first: &[Value], second: &[Value]| {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for line in first.iter().chain(second) {
            if line["status"] == "decrypted" {
                *seen.entry(tag(line).unwrap().to_owned()).or_default() += 1;
            }
        }
        seen
    };
    second.wait_for("every item decrypted", |l| {
        all_decrypted(&printed_first, l).len() >= RECORDS
    });
    assert_eq!(second.signal("-TERM"), Some(0));
    let printed_second = second.lines();
    let seen = all_decrypted(&printed_first, &printed_second);
    assert_eq!(seen.len(), RECORDS, "items missing");
    eprintln!(
        "killed after {} lines; the restarted consumer printed {} ({} duplicates)",
        printed_first.len(),
        printed_second.len(),
        printed_second
            .iter()
            .filter(|l| l["status"] != "decrypted")
            .count()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "decrypted twice: {twice:?}");
    // Whatever the second consumer read again was reported as a duplicate, nothing else.
    for line in &printed_second {
        if line["status"] != "decrypted" {
            assert!(
                line["error"].as_str().unwrap_or("").contains("duplicate"),
                "{line}"
            );
        }
    }
}

#[test]
fn the_event_hubs_connection_string_comes_from_the_environment_and_is_never_shown() {
    // No broker needed: nothing listens on this port, so librdkafka keeps failing to connect and
    // says so on stderr; the connection string must appear in none of it.
    let fx = Fixture::new();
    let secret = "c2VjcmV0LWtleS1uZXZlci1zaG93bg==";
    let connection = format!(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={secret}"
    );
    let key = format!("{CERT_ID}={}", fx.key_path.display());
    // consume reading the connection string from the variable `env`.
    let from_env = |env: &'static str| {
        ["consume", "--event-hubs-connection-string-env", env]
            .into_iter()
            .chain(["--topic", "hub", "--group", "g", "--key"])
    };
    let missing = run(
        &from_env("MSGRAPH_NOTIFY_TEST_UNSET_VARIABLE")
            .chain([key.as_str()])
            .collect::<Vec<_>>(),
        b"",
    );
    assert_refused(&missing, "MSGRAPH_NOTIFY_TEST_UNSET_VARIABLE");

    let child = bin()
        .args(from_env("EVENTHUB_CS"))
        .arg(&key)
        .args([
            "--brokers",
            &format!("127.0.0.1:{}", test_support::net::free_port()),
        ])
        .env("EVENTHUB_CS", &connection)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consume");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
    assert!(!text(&cmdline).contains(secret));
    // Long enough for connection attempts and their errors.
    std::thread::sleep(Duration::from_secs(3));
    process::signal(child.id(), "-TERM");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains(secret), "{stderr}");
    assert!(!stderr.contains("SharedAccessKey="), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn offloaded_payloads_are_read_from_azure_blob_and_a_hanging_account_is_waited_out() {
    let Some(broker) = Broker::start(PATIENCE) else {
        return;
    };
    let Some(azurite) = azurite::Azurite::start() else {
        return;
    };
    const CONTAINER: &str = "microsoft-graph-change-notifications";
    azurite.create_container(CONTAINER);
    broker.create_topic("large", 1);
    let fx = Fixture::new();
    // Over 1 MB once encrypted: what Graph offloads.
    let big = |tag: &str| {
        let mut resource = Fixture::presence(tag);
        resource["statusMessage"] = json!({"message": {"content": "y".repeat(1_100_000)}});
        fx.item(&resource)
    };
    let (hub_1, blob_1) = offload(big("o1"), "5f0c1a4e-8d2b-4e61-b7a5-0e4f6c2d9b31");
    azurite.put_blob(CONTAINER, "5f0c1a4e-8d2b-4e61-b7a5-0e4f6c2d9b31", &blob_1);
    let (hub_missing, _) = offload(fx.item(&Fixture::presence("o2")), "never-written");
    let (hub_3, blob_3) = offload(big("o3"), "blob-3");
    azurite.put_blob(CONTAINER, "blob-3", &blob_3);
    let producer = producer(&broker);
    produce(
        &producer,
        "large",
        &[
            record(vec![hub_1, validation_message()]),
            record(vec![hub_missing]),
        ],
    );

    let connection = azurite.connection_string();
    let mut consumer = Consumer::start_with_env(
        &fx,
        &broker,
        "large",
        &[
            "--blob-connection-string-env",
            "BLOB_CS",
            "--blob-timeout",
            "2",
        ],
        &[("BLOB_CS", &connection)],
    );
    let lines = consumer.wait_for("three lines", |l| l.len() >= 3);
    assert_eq!(lines[0]["status"], "decrypted", "{}", lines[0]);
    assert_eq!(tag(&lines[0]), Some("o1"));
    assert_eq!(
        lines[0]["data"]["statusMessage"]["message"]["content"]
            .as_str()
            .map(str::len),
        Some(1_100_000)
    );
    assert_eq!(
        lines[0]["additionalPayloadStorageId"],
        "5f0c1a4e-8d2b-4e61-b7a5-0e4f6c2d9b31"
    );
    assert_eq!(lines[1]["status"], "validation");
    // A blob that does not exist will not appear by waiting: the item is rejected, the record
    // passed.
    assert_eq!(lines[2]["status"], "rejected", "{}", lines[2]);
    assert_eq!(lines[2]["offset"], 1);
    assert!(
        lines[2]["error"].as_str().unwrap().contains("no blob"),
        "{}",
        lines[2]
    );

    // The account hangs: the record waits (retried, nothing printed, nothing skipped)...
    azurite.pause();
    produce(&producer, "large", &[record(vec![hub_3])]);
    consumer.wait_stderr("no warning about the blob store", PATIENCE, |l| {
        l.contains("blob store is unavailable").then_some(())
    });
    assert_eq!(consumer.lines().len(), 3);
    // ...and is decrypted once the account answers again.
    azurite.resume();
    let lines = consumer.wait_for("the waiting record", |l| l.len() >= 4);
    assert_eq!(lines[3]["status"], "decrypted", "{}", lines[3]);
    assert_eq!(tag(&lines[3]), Some("o3"));
    assert_eq!(lines[3]["offset"], 2);
    assert_eq!(consumer.signal("-TERM"), Some(0));
    let stderr = consumer.stderr.lock().unwrap().join("\n");
    assert!(!stderr.contains(azurite::ACCOUNT_KEY), "{stderr}");
    assert_eq!(consumer.lines().len(), 4);
}
