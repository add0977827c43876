//! `serve` over real HTTP on 127.0.0.1: handshake, valid and forged batches, oversized bodies,
//! many concurrent senders, signing keys from a URL, and SIGTERM draining the queue.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn handshake_batches_oversized_body_and_sigterm() {
    let fx = Fixture::new();
    let mut args = fx.receiver_args();
    args.extend(["--max-body".into(), "20000".into()]);
    let mut served = Served::start(&args);

    // The handshake: 200, text/plain, the decoded token verbatim.
    let answer = served.post(
        "/api/graph?validationToken=Validation%3A%20Testing%20client%20application%20reachability+%2B%26",
        b"",
    );
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{}",
        answer.head
    );
    assert_eq!(
        answer.body,
        "Validation: Testing client application reachability +&"
    );

    // A valid batch of three, on another path.
    let items = ["a", "b", "c"]
        .map(|t| fx.item(&Fixture::presence(t)))
        .to_vec();
    let answer = served.post("/notifications", &fx.body(items));
    assert_eq!(answer.status, 202);
    let lines = served.wait_lines(3, Duration::from_secs(10));
    assert_eq!(lines.len(), 3, "{lines:?}");
    let ids: Vec<_> = lines
        .iter()
        .map(|l| l["data"]["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(lines.iter().all(|l| l["status"] == "decrypted"));

    // A forged batch is also answered 202 at once (the forger learns nothing), then rejected.
    let answer = served.post("/notifications", &fx.forged_body("forged"));
    assert_eq!(answer.status, 202);
    let lines = served.wait_lines(4, Duration::from_secs(10));
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["status"], "rejected");
    assert!(
        lines[3]["error"].as_str().unwrap().contains("kid"),
        "{}",
        lines[3]
    );

    // Over the limit: 413, and nothing is printed for it.
    let big = vec![b' '; 50_000];
    assert_eq!(served.post("/notifications", &big).status, 413);
    // Not JSON: accepted (202: decided after answering), reported on stderr only.
    assert_eq!(served.post("/", b"garbage").status, 202);
    // Not a POST.
    assert_eq!(http(served.addr, "GET", "/", b"").status, 405);

    assert_eq!(served.terminate(), Some(0));
    assert_eq!(served.json_lines().len(), 4);
    let stderr = served.stderr.lock().unwrap().join("\n");
    assert!(stderr.contains("body refused"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn many_concurrent_senders_lose_nothing_and_get_fast_answers_then_sigterm_drains() {
    const SENDERS: usize = 20;
    const POSTS: usize = 10;
    let fx = std::sync::Arc::new(Fixture::new());
    let mut served = Served::start(&fx.receiver_args());
    let addr = served.addr;

    // Bodies are built before the clock starts: each POST carries two items.
    let bodies: Vec<Vec<(String, Vec<u8>)>> = (0..SENDERS)
        .map(|s| {
            (0..POSTS)
                .map(|p| {
                    let tags = [format!("s{s}-p{p}-0"), format!("s{s}-p{p}-1")];
                    let items = tags
                        .iter()
                        .map(|t| fx.item(&Fixture::presence(t)))
                        .collect();
                    (tags.join(","), fx.body(items))
                })
                .collect()
        })
        .collect();
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|posts| {
            std::thread::spawn(move || {
                let mut slowest = Duration::ZERO;
                for (_, body) in posts {
                    let start = Instant::now();
                    let answer = http(addr, "POST", "/graph", &body);
                    slowest = slowest.max(start.elapsed());
                    assert_eq!(answer.status, 202);
                }
                slowest
            })
        })
        .collect();
    let slowest = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    assert!(
        slowest < Duration::from_millis(1500),
        "slowest answer took {slowest:?}"
    );

    // SIGTERM right away: whatever is still queued is processed before the exit.
    assert_eq!(served.terminate(), Some(0));
    let lines = served.json_lines();
    assert_eq!(lines.len(), SENDERS * POSTS * 2);
    let mut seen = HashSet::new();
    for line in &lines {
        assert_eq!(line["status"], "decrypted", "{line}");
        assert!(
            seen.insert(line["data"]["id"].as_str().unwrap().to_owned()),
            "duplicate {line}"
        );
    }
}

#[test]
fn signing_keys_from_a_jwks_url() {
    let fx = Fixture::new();
    let (jwks_addr, hits) = static_server(fx.issuer.jwks_json());
    let mut served = Served::start(&[
        "--key".into(),
        s(&fx.key_path),
        "--jwks-url".into(),
        format!("http://{jwks_addr}/common/discovery/v2.0/keys"),
        "--app-id".into(),
        APP_ID.into(),
        "--tenant".into(),
        TENANT.into(),
    ]);
    let answer = served.post("/", &fx.body(vec![fx.item(&Fixture::presence("k1"))]));
    assert_eq!(answer.status, 202);
    let lines = served.wait_lines(1, Duration::from_secs(10));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], "decrypted", "{}", lines[0]);
    assert!(*hits.lock().unwrap() >= 1);
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn serve_refuses_unusable_options() {
    let fx = Fixture::new();
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key",
            &s(&fx.cert_path),
            "--insecure-skip-tokens",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does not load"));
    let out = run(
        &[
            "serve",
            "--listen",
            "not-an-address",
            "--insecure-skip-tokens",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
}
