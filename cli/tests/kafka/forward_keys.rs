//! `serve --forward` while Microsoft's signing keys cannot be had (a JWKS endpoint on 127.0.0.1
//! that the test starts only after 10 s): every POST is answered 503, none 202 and nothing is
//! produced; once the keys arrive POSTs are forwarded and `consume` decrypts every one of them.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::common::*;
use super::{Consumer, broker_with, tag};

#[test]
fn forward_answers_503_until_the_signing_keys_arrive_and_loses_nothing() {
    let Some(broker) = broker_with("keys", 1) else {
        return;
    };
    let fx = Fixture::new();
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{jwks_addr}/keys");
    let args: Vec<String> = [
        &["--key", &format!("{CERT_ID}={}", fx.key_path.display())][..],
        &checks("--jwks-url", &url),
        &["--forward", &format!("kafka://{}/keys", broker.address())],
    ]
    .concat()
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut served = Served::start(&args);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(10) {
        let body = fx.body(vec![fx.item(&Fixture::presence(&format!("early{n}")))]);
        let answer = served.post("/", &body);
        assert_eq!(
            answer.status, 503,
            "POST {n} without signing keys: {answer:?}"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    serve_jwks_on(jwks_addr, fx.issuer.jwks_json());
    let back = Instant::now();
    let mut accepted = Vec::new();
    while accepted.len() < 3 {
        assert!(back.elapsed() < Duration::from_secs(45), "never accepted");
        let tag = format!("late{n}");
        n += 1;
        let body = fx.body(vec![fx.item(&Fixture::presence(&tag))]);
        match served.post("/", &body).status {
            202 => accepted.push(tag),
            503 => std::thread::sleep(Duration::from_millis(250)),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(served.terminate(), Some(0));
    // Nothing was refused on serve's side: no "rejected" line for the POSTs answered 503.
    assert!(served.json_lines().is_empty(), "{:?}", served.json_lines());
    let consumer = Consumer::start(&fx, &broker, "keys", &[]);
    let lines = consumer.wait_for("every accepted item", |l| {
        accepted.iter().all(|t| l.iter().any(|l| tag(l) == Some(t)))
    });
    assert_eq!(lines.len(), accepted.len(), "{lines:?}");
    assert!(
        lines.iter().all(|l| l["status"] == "decrypted"),
        "{lines:?}"
    );
}
