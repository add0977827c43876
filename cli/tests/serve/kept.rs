//! "202 means kept", over real sockets: a POST is answered 202 only when everything it needs is
//! there, otherwise 503 with `Retry-After` (Graph keeps it); an item accepted and then held up
//! by a passing failure waits, retried with back-off, and is never dropped. Microsoft's signing
//! keys out of reach at start (a JWKS endpoint on 127.0.0.1 the test starts after 20 s) and
//! Redis stopped for 90 s.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::*;
use test_support::redis::RedisServer;

/// The value of one series in a Prometheus text exposition (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// POSTs one genuine item tagged `tag`; the status.
fn post_tagged(served: &Served, fx: &Fixture, tag: &str) -> Answer {
    served.post("/", &fx.body(vec![fx.item(&Fixture::presence(tag))]))
}

#[test]
fn signing_keys_down_at_start_503_until_they_arrive_then_nothing_lost() {
    let fx = Fixture::new();
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{jwks_addr}/keys");
    let args: Vec<String> = [
        &["--key", &format!("{CERT_ID}={}", s(&fx.key_path))][..],
        &checks("--jwks-url", &url),
        &["--admin-listen", "127.0.0.1:0"],
    ]
    .concat()
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut served = Served::start(&args);
    let admin = admin_addr(&served);

    // 20 s without the keys: every POST is answered 503 with Retry-After, never 202.
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(20) {
        let answer = post_tagged(&served, &fx, &format!("early{sent}"));
        assert_eq!(answer.status, 503, "POST {sent} without signing keys");
        assert!(
            answer.head.to_ascii_lowercase().contains("retry-after:"),
            "{}",
            answer.head
        );
        let readyz = http(admin, "GET", "/readyz", b"");
        assert_eq!(
            (readyz.status, readyz.body.as_str()),
            (503, "unavailable: signing_keys\n")
        );
        sent += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let metrics = http(admin, "GET", "/metrics", b"").body;
    assert_eq!(
        sample(
            &metrics,
            "msgraph_notify_unavailable_answers_total{dependency=\"signing_keys\"}"
        ),
        sent as f64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "msgraph_notify_dependency_unavailable{dependency=\"signing_keys\"}"
        ),
        1.0,
        "{metrics}"
    );

    // The endpoint is back: within the fetcher's back-off (at most 30 s) POSTs are accepted.
    serve_jwks_on(jwks_addr, fx.issuer.jwks_json());
    let back = Instant::now();
    let mut accepted = Vec::new();
    let mut n = 0;
    while accepted.len() < 5 {
        assert!(
            back.elapsed() < Duration::from_secs(45),
            "still refused {:?} after the keys came back",
            back.elapsed()
        );
        let tag = format!("late{n}");
        n += 1;
        match post_tagged(&served, &fx, &tag).status {
            202 => accepted.push(tag),
            503 => std::thread::sleep(Duration::from_millis(250)),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(http(admin, "GET", "/readyz", b"").status, 200);
    served.wait_for("every accepted item", Duration::from_secs(20), |lines| {
        accepted
            .iter()
            .all(|t| lines.iter().any(|l| l["data"]["id"] == t.as_str()))
    });
    assert_eq!(served.terminate(), Some(0));
    let lines = served.json_lines();
    // Nothing refused before the keys was accepted, so nothing of it is output; every accepted
    // item is decrypted, none rejected.
    assert_eq!(lines.len(), accepted.len(), "{lines:?}");
    assert!(
        lines.iter().all(|l| l["status"] == "decrypted"),
        "{lines:?}"
    );
}

#[test]
fn redis_stopped_for_90_s_accepted_items_wait_and_come_out() {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let fx = Fixture::new();
    let mut args = fx.receiver_args();
    args.extend(
        [
            "--replay",
            &redis.url(),
            "--replay-timeout-ms",
            "300",
            "--admin-listen",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    let mut served = Served::start(&args);
    let admin = admin_addr(&served);
    assert_eq!(post_tagged(&served, &fx, "before").status, 202);
    served.wait_lines(1, Duration::from_secs(10));

    redis.stop();
    let stopped = Instant::now();
    let mut accepted = vec!["before".to_owned()];
    let mut refused = 0;
    let mut n = 0;
    while stopped.elapsed() < Duration::from_secs(90) {
        let tag = format!("down{n}");
        n += 1;
        match post_tagged(&served, &fx, &tag).status {
            202 => accepted.push(tag),
            503 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(refused > 0, "POSTs were refused while Redis was down");
    let readyz = http(admin, "GET", "/readyz", b"");
    assert_eq!(
        (readyz.status, readyz.body.as_str()),
        (503, "unavailable: replay_store (refused)\n"),
        "the cause is named: nothing listens at Redis's address"
    );
    // Whatever was acknowledged during the outage waited; nothing of it was output unchecked.
    assert!(
        served
            .json_lines()
            .iter()
            .all(|l| l["data"]["id"] == "before"),
        "{:?}",
        served.json_lines()
    );

    redis.spawn().unwrap();
    let back = Instant::now();
    while post_tagged(&served, &fx, &format!("back{n}")).status != 202 {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "never accepted again"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    accepted.push(format!("back{n}"));
    served.wait_for("every accepted item", Duration::from_secs(30), |lines| {
        accepted
            .iter()
            .all(|t| lines.iter().any(|l| l["data"]["id"] == t.as_str()))
    });
    assert_eq!(served.terminate(), Some(0));
    let lines = served.json_lines();
    assert_eq!(lines.len(), accepted.len(), "{lines:?}");
    assert!(
        lines.iter().all(|l| l["status"] == "decrypted"),
        "{lines:?}"
    );
}

#[test]
fn a_full_spool_answers_503_and_keeps_what_it_acknowledged() {
    let fx = Fixture::new();
    let spool = fx.path("spool");
    let one = fx.body(vec![fx.item(&Fixture::presence("s0"))]).len();
    let mut args = fx.receiver_args();
    // Room for two bodies; workers held up by a missing key would fill it, but here the spool
    // empties as items are output: a body larger than the room is refused outright.
    args.extend([
        "--spool".into(),
        s(&spool),
        "--spool-max-bytes".into(),
        (one * 2 + 10).to_string(),
    ]);
    let mut served = Served::start(&args);
    assert_eq!(post_tagged(&served, &fx, "s0").status, 202);
    let big = fx.body(
        (0..3)
            .map(|i| fx.item(&Fixture::presence(&format!("big{i}"))))
            .collect(),
    );
    let answer = served.post("/", &big);
    assert_eq!(answer.status, 503, "a body the spool cannot hold");
    assert!(answer.head.to_ascii_lowercase().contains("retry-after:"));
    served.wait_lines(1, Duration::from_secs(10));
    assert_eq!(served.terminate(), Some(0));
    let lines = served.json_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["data"]["id"], "s0");

    // An unwritable spool directory is refused at start, with its path.
    let file = fx.path("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = bin()
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--spool", &s(&file)])
        .args(fx.receiver_args())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("--spool"),
        "{}",
        text(&out.stderr)
    );
}
