//! `consume --log-format json --admin-listen ADDR` against tansu (issue 23, point 5): `/healthz`
//! answers at once; `/readyz` is 200 once partitions are assigned, 503 while the broker is
//! stopped (and for a consumer that never reached one) and 200 once it is back; `/metrics`
//! counts records and items by status under `serve`'s names, every known series at 0 from the
//! start; every stderr line is a JSON object. `serve --forward` says at start where its output
//! goes and that the replay store is the consumer's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::{Consumer, PATIENCE, broker_with, produce, producer, record};

/// The admin address `consume` printed on stderr.
fn admin_of(consumer: &Consumer) -> SocketAddr {
    consumer.wait_stderr("the admin address", PATIENCE, |l| {
        let rest = l.split("admin on http://").nth(1)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ':')))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

/// Waits until `/readyz` answers `status`; returns its body.
fn readyz_becomes(admin: SocketAddr, status: u16) -> String {
    let start = Instant::now();
    loop {
        let answer = http(admin, "GET", "/readyz", b"");
        if answer.status == status {
            return answer.body;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "/readyz stayed {} ({}), not {status}",
            answer.status,
            answer.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric_line<'a>(metrics: &'a str, series: &str) -> Option<&'a str> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map(|l| &l[series.len() + 1..])
}

#[test]
fn consume_has_health_readiness_and_metrics_like_serve() {
    let Some(mut broker) = broker_with("watched", 1) else {
        return;
    };
    let fx = Fixture::new();
    // A dynamic member: the broker is restarted below without its state, and a static member
    // (the default) may then be fenced by it, a librdkafka fatal error on which consume stops
    // with the cause, by design. This test is about the admin endpoints across the outage.
    let consumer = Consumer::start(
        &fx,
        &broker,
        "watched",
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--group-instance-id",
            "",
        ],
    );
    let admin = admin_of(&consumer);
    assert_eq!(http(admin, "GET", "/healthz", b"").status, 200);
    let metrics = http(admin, "GET", "/metrics", b"").body;
    for status in ["decrypted", "rejected", "validation", "offloaded"] {
        let series = format!("msgraph_notify_items_total{{status=\"{status}\"}}");
        assert_eq!(metric_line(&metrics, &series), Some("0"), "{metrics}");
    }
    for result in ["processed", "refused"] {
        let series = format!("msgraph_notify_records_total{{result=\"{result}\"}}");
        assert_eq!(metric_line(&metrics, &series), Some("0"), "{metrics}");
    }

    // Joined: ready, and the records are counted.
    let body = readyz_becomes(admin, 200);
    assert_eq!(body, "ready\n");
    produce(
        &producer(&broker),
        "watched",
        &[
            record(vec![
                fx.item(&Fixture::presence("w1")),
                fx.item(&Fixture::presence("w2")),
            ]),
            b"not JSON".to_vec(),
        ],
    );
    consumer.wait_for("two items", |l| l.len() >= 3);
    let metrics = http(admin, "GET", "/metrics", b"").body;
    let value = |series: &str| metric_line(&metrics, series).map(str::to_owned);
    assert_eq!(
        value("msgraph_notify_items_total{status=\"decrypted\"}").as_deref(),
        Some("2"),
        "{metrics}"
    );
    assert_eq!(
        value("msgraph_notify_records_total{result=\"processed\"}").as_deref(),
        Some("1")
    );
    assert_eq!(
        value("msgraph_notify_records_total{result=\"refused\"}").as_deref(),
        Some("1")
    );
    assert_eq!(
        value("msgraph_notify_assigned_partitions").as_deref(),
        Some("1")
    );

    // The broker gone: not ready, named.
    broker.stop();
    let body = readyz_becomes(admin, 503);
    assert!(body.contains("brokers"), "{body}");
    assert_eq!(http(admin, "GET", "/healthz", b"").status, 200);
    // Back (empty: tansu keeps its memory only while it runs): ready again once the group has
    // its partition, without a record to prove it.
    broker.spawn(PATIENCE);
    broker.create_topic("watched", 1);
    assert_eq!(readyz_becomes(admin, 200), "ready\n");

    // Every log line a JSON object.
    let mut consumer = consumer;
    assert_eq!(consumer.signal("-TERM"), Some(0));
    let messages: Vec<String> = consumer
        .stderr
        .snapshot()
        .iter()
        .map(|line| {
            let parsed: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            parsed["message"].as_str().expect(line).to_owned()
        })
        .collect();
    let key_line = format!("1 key loaded: key {CERT_ID} (no certificate: its expiry is unknown)");
    assert!(
        messages.iter().any(|m| m.ends_with(&key_line)),
        "{messages:#?}"
    );
}

#[test]
fn consume_is_not_ready_while_no_broker_answers() {
    let fx = Fixture::new();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = bin();
    command
        .args(["consume", "--brokers", &format!("127.0.0.1:{port}")])
        .args(["--topic", "nowhere", "--group", "g"])
        .args(["--key", &format!("{CERT_ID}={}", fx.key_path.display())])
        .args(["--admin-listen", "127.0.0.1:0", "--log-format", "text"]);
    let mut consumer = Consumer(Captured::spawn(&mut command, "consume"));
    let admin = admin_of(&consumer);
    assert_eq!(http(admin, "GET", "/healthz", b"").status, 200);
    let body = readyz_becomes(admin, 503);
    assert!(
        body.contains("joining") || body.contains("brokers"),
        "{body}"
    );
    // Still not ready a few seconds on, with the cause named: every broker is unreachable.
    std::thread::sleep(Duration::from_secs(3));
    let answer = http(admin, "GET", "/readyz", b"");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (503, "unavailable: brokers (all unreachable)\n")
    );
    assert_eq!(consumer.signal("-TERM"), Some(0));
}

#[test]
fn serve_forward_says_where_its_output_goes() {
    let Some(broker) = broker_with("said", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut served = crate::serve_forwarding(&fx, &broker, "said");
    assert_eq!(served.terminate(), Some(0));
    let stderr = served.stderr.snapshot().join("\n");
    for said in [
        format!(
            "output: each accepted POST is forwarded to kafka://{}/said",
            broker.address()
        ),
        "replay store: none here (the consumer of the topic keeps it)".to_owned(),
    ] {
        assert!(stderr.contains(&said), "{said:?} not in {stderr}");
    }
}
