//! `serve` as replicas behind a load balancer: `--replay redis://…` with a real `redis-server` on
//! 127.0.0.1, so the same genuine POST sent to two replicas is decrypted by exactly one; Redis
//! stopped under `--replay-unavailable closed` (503 until it is back) and `open` (processed, with
//! a warning); the admin listener's `/healthz`, `/readyz` and `/metrics`. The Redis tests are
//! skipped, with a note, when `redis-server` is not installed, except under `CI=true`.

use std::time::{Duration, Instant};

use crate::common::*;
use test_support::redis::RedisServer;

fn replica(fx: &Fixture, redis: &RedisServer, extra: &[&str]) -> Served {
    let mut args = fx.receiver_args();
    args.extend(["--replay".into(), redis.url()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Served::start(&args)
}

#[test]
fn two_replicas_sharing_redis_decrypt_a_post_exactly_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fx = Fixture::new();
    // One replica over plain HTTP (behind a TLS-terminating balancer), one serving HTTPS itself.
    let (root, _, tls_cert, tls_key) = tls_identity(fx.dir.path(), "tls");
    let mut a = replica(&fx, &redis, &[]);
    let mut b = replica(
        &fx,
        &redis,
        &["--tls-cert", &s(&tls_cert), "--tls-key", &s(&tls_key)],
    )
    .trusting(&root);
    assert!(
        b.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("listening on https://")),
        "the TLS replica announces https"
    );
    for round in 0..5 {
        let body = fx.body(vec![fx.item(&Fixture::presence(&format!("r{round}")))]);
        // The same genuine POST to both replicas at once (a replay, or Graph's retry landing on
        // the other one).
        std::thread::scope(|s| {
            let (a, b, body) = (&a, &b, &body);
            let one = s.spawn(move || a.post("/", body).status);
            let two = s.spawn(move || b.post("/", body).status);
            assert_eq!((one.join().unwrap(), two.join().unwrap()), (202, 202));
        });
    }
    let total =
        |a: &Served, b: &Served| a.stdout.lock().unwrap().len() + b.stdout.lock().unwrap().len();
    let start = Instant::now();
    while total(&a, &b) < 10 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
    let lines: Vec<_> = a.json_lines().into_iter().chain(b.json_lines()).collect();
    assert_eq!(lines.len(), 10, "{lines:?}");
    for round in 0..5 {
        let tag = format!("r{round}");
        let decrypted = lines
            .iter()
            .filter(|l| l["data"]["id"] == tag.as_str())
            .count();
        assert_eq!(decrypted, 1, "round {round}: {lines:?}");
    }
    let duplicates = lines
        .iter()
        .filter(|l| l["error"].as_str().is_some_and(|e| e.contains("duplicate")))
        .count();
    assert_eq!(duplicates, 5);
}

#[test]
fn redis_down_fail_closed_answers_503_until_it_is_back() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let fx = Fixture::new();
    let mut served = replica(&fx, &redis, &["--replay-timeout-ms", "300"]);
    assert_eq!(
        served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("up"))]))
            .status,
        202
    );
    served.wait_lines(1, Duration::from_secs(10));
    redis.stop();
    // The first POST after the outage may be queued (202) before the outage is seen; its item
    // cannot be checked, so it waits and is retried, never processed unchecked and never lost;
    // from then on POSTs get 503 so that Graph retries.
    let start = Instant::now();
    let mut statuses = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let status = served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("down"))]))
            .status;
        statuses.push(status);
        if status == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    let acknowledged = statuses.iter().filter(|&&s| s == 202).count();
    assert!(acknowledged >= 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !served
            .json_lines()
            .iter()
            .any(|l| l["data"]["id"] == "down"),
        "decrypted without the duplicate check"
    );
    // Redis back: POSTs are accepted again, and the held items come out, once each.
    redis.spawn().unwrap();
    let start = Instant::now();
    let mut status = 503;
    while status == 503 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        status = served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("back"))]))
            .status;
    }
    assert_eq!(status, 202);
    let done = |lines: &[serde_json::Value]| {
        lines.iter().any(|l| l["data"]["id"] == "back")
            && lines.iter().filter(|l| l["data"]["id"] == "down").count() >= acknowledged
    };
    let start = Instant::now();
    while !done(&served.json_lines()) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served.terminate(), Some(0));
    let lines = served.json_lines();
    assert!(done(&lines), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l["data"]["id"] == "down").count(),
        acknowledged,
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l["status"] == "decrypted"),
        "{lines:?}"
    );
}

#[test]
fn redis_down_fail_open_processes_with_a_warning() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let fx = Fixture::new();
    let mut served = replica(
        &fx,
        &redis,
        &[
            "--replay-unavailable",
            "open",
            "--replay-timeout-ms",
            "300",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let admin = admin_addr(&served);
    redis.stop();
    assert_eq!(
        served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("open"))]))
            .status,
        202
    );
    served.wait_lines(1, Duration::from_secs(10));
    // What fail-open let through unchecked is counted.
    let metrics = http(admin, "GET", "/metrics", b"").body;
    assert_eq!(
        sample(&metrics, "msgraph_notify_replay_unchecked_items_total"),
        1.0,
        "{metrics}"
    );
    assert_eq!(served.terminate(), Some(0));
    assert_eq!(served.json_lines()[0]["data"]["id"], "open");
    let stderr = served.stderr.lock().unwrap().join("\n");
    assert!(stderr.contains("without the duplicate check"), "{stderr}");
}

/// The value of one sample line of a Prometheus text exposition, e.g.
/// `msgraph_notify_items_total{status="decrypted"}`.
/// Asserts each series' value in the Prometheus text `metrics`.
fn assert_samples(metrics: &str, expected: &[(&str, f64)]) {
    for (series, value) in expected {
        assert_eq!(sample(metrics, series), *value, "{series}: {metrics}");
    }
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn replicas_report_their_counts_on_the_admin_listener() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fx = Fixture::new();
    let mut a = replica(&fx, &redis, &["--admin-listen", "127.0.0.1:0"]);
    let mut b = replica(&fx, &redis, &["--admin-listen", "127.0.0.1:0"]);
    let (admin_a, admin_b) = (admin_addr(&a), admin_addr(&b));
    assert_eq!(http(admin_a, "GET", "/healthz", b"").status, 200);
    let start = Instant::now();
    while http(admin_a, "GET", "/readyz", b"").status != 200 {
        assert!(start.elapsed() < Duration::from_secs(10), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The admin endpoints are not on the public listener.
    assert_ne!(a.post("/metrics", b"").status, 200);

    let body = fx.body(vec![
        fx.item(&Fixture::presence("m1")),
        fx.item(&Fixture::presence("m2")),
    ]);
    assert_eq!(a.post("/", &body).status, 202);
    a.wait_lines(2, Duration::from_secs(10));
    assert_eq!(b.post("/", &body).status, 202);
    b.wait_lines(2, Duration::from_secs(10));
    assert_eq!(b.post("/", &fx.forged_body("forged")).status, 202);
    b.wait_lines(3, Duration::from_secs(10));

    let scrape = |addr| {
        let answer = http(addr, "GET", "/metrics", b"");
        assert_eq!(answer.status, 200);
        answer.body
    };
    let (ma, mb) = (scrape(admin_a), scrape(admin_b));
    // The POST to /metrics on the public listener was a (bodiless) notification POST: 202.
    assert_samples(
        &ma,
        &[
            ("msgraph_notify_items_total{status=\"decrypted\"}", 2.0),
            ("msgraph_notify_private_key_operations_total", 2.0),
            ("msgraph_notify_requests_total{code=\"202\"}", 2.0),
        ],
    );
    assert_samples(
        &mb,
        &[
            ("msgraph_notify_items_total{status=\"rejected\"}", 3.0),
            (
                "msgraph_notify_rejected_items_total{reason=\"duplicate\"}",
                2.0,
            ),
            ("msgraph_notify_rejected_items_total{reason=\"token\"}", 1.0),
            ("msgraph_notify_private_key_operations_total", 0.0),
            ("msgraph_notify_queue_depth", 0.0),
        ],
    );
    assert!(
        sample(&mb, "msgraph_notify_item_latency_seconds_count") >= 3.0,
        "{mb}"
    );
    assert!(
        sample(&mb, "msgraph_notify_request_duration_seconds_count") >= 2.0,
        "{mb}"
    );
    // No secret in the metrics.
    assert!(!ma.contains(CLIENT_STATE) && !mb.contains(CLIENT_STATE));
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
}

#[test]
fn readyz_waits_for_the_signing_keys() {
    let fx = Fixture::new();
    // Signing keys from a URL where nothing listens: alive, but not ready.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", dead.local_addr().unwrap());
    drop(dead);
    let args: Vec<String> = [
        &["--key", &s(&fx.key_path)][..],
        &checks("--jwks-url", &url),
        &["--admin-listen", "127.0.0.1:0"],
    ]
    .concat()
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut served = Served::start(&args);
    let admin = admin_addr(&served);
    assert_eq!(http(admin, "GET", "/healthz", b"").status, 200);
    let readyz = http(admin, "GET", "/readyz", b"");
    assert_eq!(
        (readyz.status, readyz.body.as_str()),
        (503, "unavailable: signing_keys\n")
    );
    assert_eq!(http(admin, "POST", "/readyz", b"").status, 405);
    assert_eq!(http(admin, "GET", "/other", b"").status, 404);
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn every_option_reads_its_environment_variable() {
    let fx = Fixture::new();
    let body = fx.path("body.json");
    std::fs::write(&body, fx.body(vec![fx.item(&Fixture::presence("env"))])).unwrap();
    // No option on the command line but the input: keys, signing keys, app and secret from the
    // environment (several app ids separated by commas).
    let out = bin()
        .args(["decrypt", &s(&body)])
        .env(
            "MSGRAPH_NOTIFY_KEY",
            format!("{CERT_ID}={}", s(&fx.key_path)),
        )
        .env("MSGRAPH_NOTIFY_JWKS", s(&fx.jwks_path))
        .env(
            "MSGRAPH_NOTIFY_APP_ID",
            format!("11111111-1111-1111-1111-111111111111,{APP_ID}"),
        )
        .env("MSGRAPH_NOTIFY_CLIENT_STATE", CLIENT_STATE)
        .env("MSGRAPH_NOTIFY_MAX_ITEMS", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["data"]["id"], "env");
    // A bad value from the environment is refused as the option's would be.
    let out = bin()
        .args(["decrypt", &s(&body)])
        .env("MSGRAPH_NOTIFY_MAX_ITEMS", "zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --help names the variables.
    let help = text(&bin().args(["serve", "--help"]).output().unwrap().stdout);
    for var in [
        "MSGRAPH_NOTIFY_LISTEN",
        "MSGRAPH_NOTIFY_REPLAY",
        "MSGRAPH_NOTIFY_ADMIN_LISTEN",
        "MSGRAPH_NOTIFY_CLIENT_STATE_FILE",
        "MSGRAPH_NOTIFY_KEY_PASSWORD",
    ] {
        assert!(help.contains(var), "{var} missing from serve --help");
    }
}

#[test]
fn logs_are_json_lines_with_fields_and_no_secret() {
    let fx = Fixture::new();
    let mut args = fx.receiver_args();
    args.extend(["--log-format".into(), "json".into()]);
    let mut served = Served::start(&args);
    assert_eq!(served.post("/", &fx.forged_body("forged")).status, 202);
    assert_eq!(served.post("/", b"not json").status, 202);
    served.wait_lines(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(served.terminate(), Some(0));
    let stderr = served.stderr.lock().unwrap().clone();
    let events: Vec<serde_json::Value> = stderr
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l}: {e}")))
        .collect();
    for event in &events {
        for key in ["timestamp", "level", "message"] {
            assert!(event.get(key).is_some(), "{key} missing: {event}");
        }
    }
    let rejected = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("item rejected"))
        })
        .expect("a rejected item is logged");
    assert_eq!(rejected["reason"], "token");
    assert_eq!(rejected["tenant"], TENANT);
    assert_eq!(rejected["item_index"], 0);
    assert!(rejected["request_id"].as_u64().is_some());
    let refused = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("body refused"))
        })
        .expect("a refused body is logged");
    assert_eq!(refused["level"], "WARN");
    // No secret and no data in the logs.
    let all = stderr.join("\n");
    assert!(!all.contains(CLIENT_STATE), "{all}");
    assert!(!all.contains("InACall"), "{all}");
    // Text on request.
    let mut args = fx.receiver_args();
    args.extend(["--log-format".into(), "text".into()]);
    let mut served = Served::start(&args);
    assert_eq!(served.terminate(), Some(0));
    assert!(
        served
            .stderr
            .lock()
            .unwrap()
            .iter()
            .all(|l| !l.starts_with('{'))
    );
}
