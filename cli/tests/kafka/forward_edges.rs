//! `serve --forward` at its edges: an item with `additionalPayloadStorageId` (which Graph sends
//! only to Event Hubs) is not forwarded while the rest of its body is; a body of the default
//! --max-body goes through a broker with Kafka's default message size and one byte more is 413;
//! a broker restarted without its state (tansu's memory storage) takes POSTs again without a
//! restart of `serve`; TLS asked of a broker that speaks none is named in the log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::{Consumer, PATIENCE, broker_with, serve_forwarding, tag};

/// The default --max-body under --forward: Kafka's default message.max.bytes (1,048,588) less
/// a one-record batch's overhead (84 bytes).
const FORWARD_MAX_BODY: usize = 1_048_504;

#[test]
fn an_item_with_additional_payload_storage_id_is_not_forwarded_and_the_rest_is() {
    let Some(broker) = broker_with("offloaded", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut served = serve_forwarding(&fx, &broker, "offloaded");
    let mut offloaded = fx.item(&Fixture::presence("big"));
    offloaded["additionalPayloadStorageId"] = json!("0a1b2c3d-blob");
    let body = fx.body(vec![offloaded, fx.item(&Fixture::presence("small"))]);
    let answer = served.post("/", &body);
    assert_eq!(answer.status, 202, "{answer:?}");

    // serve reports the item it kept back, with its position in the POST and the reason.
    let lines = served.wait_lines(1, PATIENCE);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "rejected");
    assert_eq!(lines[0]["index"], 0);
    assert_eq!(lines[0]["additionalPayloadStorageId"], "0a1b2c3d-blob");
    let reason = lines[0]["error"].as_str().unwrap();
    assert!(reason.contains("only for Event Hubs"), "{reason}");
    served.wait_stderr("the warning", PATIENCE, |l| {
        l.contains("with additionalPayloadStorageId not forwarded")
            .then_some(())
    });

    // The other item reached the topic, alone.
    let mut consumer = Consumer::start(&fx, &broker, "offloaded", &[]);
    let read = consumer.wait_for("the forwarded item", |l| !l.is_empty());
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0]["status"], "decrypted", "{}", read[0]);
    assert_eq!(tag(&read[0]), Some("small"));
    assert_eq!(
        read[0]["index"], 0,
        "the record holds the forwarded item only"
    );
    assert_eq!(consumer.signal("-TERM"), Some(0));
    assert_eq!(served.terminate(), Some(0));
}

/// A genuine body padded with JSON whitespace to exactly `len` bytes.
fn body_of(fx: &Fixture, tag: &str, len: usize) -> Vec<u8> {
    let mut body = fx.body(vec![fx.item(&Fixture::presence(tag))]);
    assert!(body.len() < len);
    body.resize(len, b' ');
    body
}

#[test]
fn the_default_max_body_under_forward_fits_a_default_broker_message() {
    let Some(broker) = broker_with("sized", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut served = serve_forwarding(&fx, &broker, "sized");
    let over = served.post("/", &body_of(&fx, "over", FORWARD_MAX_BODY + 1));
    assert_eq!(over.status, 413, "{over:?}");
    let largest = served.post("/", &body_of(&fx, "largest", FORWARD_MAX_BODY));
    assert_eq!(largest.status, 202, "{largest:?}");

    let mut consumer = Consumer::start(&fx, &broker, "sized", &[]);
    let read = consumer.wait_for("the largest body", |l| !l.is_empty());
    assert_eq!(tag(&read[0]), Some("largest"), "{}", read[0]);
    assert_eq!(consumer.signal("-TERM"), Some(0));
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn a_broker_restarted_without_its_state_takes_posts_again() {
    let Some(mut broker) = broker_with("restarted", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut served = serve_forwarding(&fx, &broker, "restarted");
    for n in 0..3 {
        let body = fx.body(vec![fx.item(&Fixture::presence(&format!("before{n}")))]);
        assert_eq!(served.post("/", &body).status, 202);
    }
    // The broker comes back empty: no topic, no idempotent producer's state, offsets from 0.
    broker.stop();
    broker.spawn(PATIENCE);
    broker.create_topic("restarted", 1);

    // Graph retries a POST answered 503; the same POST must be taken within a few retries, not
    // answered 503 for ever.
    let body = fx.body(vec![fx.item(&Fixture::presence("after"))]);
    let start = Instant::now();
    let mut answers = Vec::new();
    loop {
        let answer = served.post("/", &body);
        answers.push(answer.status);
        if answer.status == 202 {
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            start.elapsed() < PATIENCE,
            "still 503 after {PATIENCE:?}: {answers:?}; stderr {:?}",
            served.stderr.snapshot()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // librdkafka reports no fatal error here: its idempotent producer just waits; serve replaces
    // it after 10 s without an acknowledgement, and says so.
    served.wait_stderr("the producer replaced", PATIENCE, |l| {
        l.contains("the Kafka producer is replaced by a new one")
            .then_some(())
    });
    let mut consumer = Consumer::start(&fx, &broker, "restarted", &[]);
    let read = consumer.wait_for("the POST after the restart", |l| {
        l.iter().any(|l| tag(l) == Some("after"))
    });
    let tags: Vec<Option<&str>> = read.iter().map(tag).collect();
    assert_eq!(tags, [Some("after")], "{read:?}");
    assert_eq!(consumer.signal("-TERM"), Some(0));
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn tls_asked_of_a_plaintext_broker_is_named_in_the_log_and_answered_503() {
    let Some(broker) = broker_with("secured", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut args = fx.receiver_args();
    args.extend([
        "--forward".to_owned(),
        format!("kafka://{}/secured", broker.address()),
        "--kafka-security-protocol".to_owned(),
        "ssl".to_owned(),
    ]);
    let mut served = Served::start(&args);
    served.wait_stderr("the start-up line", PATIENCE, |l| {
        l.contains("forwarding to topic secured").then_some(())
    });
    let answer = served.post("/", &fx.body(vec![fx.item(&Fixture::presence("t"))]));
    assert_eq!(answer.status, 503, "{answer:?}");
    // librdkafka gives up on the handshake after its socket.connection.setup.timeout.ms (30 s).
    served.wait_stderr("the TLS failure", PATIENCE, |line| {
        (line.contains("--forward: Kafka: ") && line.to_ascii_lowercase().contains("ssl_handshake"))
            .then_some(())
    });
    assert!(
        served
            .json_lines()
            .iter()
            .all(|l: &Value| l["status"] != "decrypted")
    );
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn serve_help_gives_the_forward_max_body_and_the_connection_options() {
    let out = run(&["serve", "--help"], b"");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--forward <kafka://HOST:PORT/TOPIC>",
        "1,048,504",
        "message.max.bytes",
        "--kafka-security-protocol <PROTOCOL>",
        "--kafka-sasl-username <USER>",
        "--kafka-ssl-ca-location <FILE>",
        "--event-hubs-connection-string-env <VAR>",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
