//! `serve` with a Redis replay store that refuses our password, or that forgot: a real
//! `redis-server` on 127.0.0.1. A refused password (NOAUTH, WRONGPASS) stops the start with the
//! cause named, never suggesting that duplicate detection be turned off; a Redis restarted empty
//! (no persistence) is noticed, said, and a POST captured before it is not processed again.

use std::time::{Duration, Instant};

use crate::common::*;
use test_support::process::Captured;
use test_support::redis::RedisServer;

/// Runs `serve` until it exits by itself (at most 60 s): its exit code and stderr.
fn start_refused(
    fx: &Fixture,
    redis: &RedisServer,
    password: Option<&str>,
) -> (Option<i32>, String) {
    let mut command = bin();
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(fx.receiver_args())
        .args(["--replay", &redis.url(), "--replay-timeout-ms", "300"]);
    match password {
        Some(p) => command.env("MSGRAPH_NOTIFY_REDIS_PASSWORD", p),
        None => command.env_remove("MSGRAPH_NOTIFY_REDIS_PASSWORD"),
    };
    let mut served = Captured::spawn(&mut command, "serve");
    let start = Instant::now();
    let code = loop {
        let child = served.child.as_mut().expect("running");
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "serve started although Redis refuses our password: {:?}",
            served.stderr.snapshot()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let the readers take the last lines.
    std::thread::sleep(Duration::from_millis(200));
    (code, served.stderr.snapshot().join("\n"))
}

#[test]
fn serve_refuses_to_start_when_redis_refuses_the_password() {
    let Some(redis) = RedisServer::start_with(&["--requirepass", "the-right-one"]) else {
        return;
    };
    let fx = Fixture::new();
    for password in [None, Some("a-wrong-one")] {
        let (code, stderr) = start_refused(&fx, &redis, password);
        assert_ne!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("authentication"),
            "names the cause: {stderr}"
        );
        assert!(
            stderr.contains("MSGRAPH_NOTIFY_REDIS_PASSWORD"),
            "says the fix: {stderr}"
        );
        assert!(
            !stderr.contains("replay-unavailable"),
            "no weaker mode suggested: {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{stderr}");
        assert!(
            !stderr.contains("a-wrong-one") && !stderr.contains("the-right-one"),
            "{stderr}"
        );
    }
}

#[test]
fn serve_notices_a_redis_restarted_empty_and_does_not_process_a_replay() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let fx = Fixture::new();
    let mut args = fx.receiver_args();
    args.extend(["--replay".into(), redis.url()]);
    args.extend(["--replay-timeout-ms".into(), "300".into()]);
    let served = Served::start(&args);
    let captured = fx.body(vec![fx.item(&Fixture::presence("captured"))]);
    assert_eq!(served.post("/", &captured).status, 202);
    served.wait_lines(1, Duration::from_secs(20));

    // Redis restarted without persistence: the captured POST replayed until serve refuses.
    redis.restart_empty();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = served.post("/", &captured).status;
        if status == 503 {
            break;
        }
        assert_eq!(status, 202);
        assert!(
            Instant::now() < deadline,
            "never refused: {:?}",
            served.stderr.snapshot()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        served.post("/", &captured).status,
        503,
        "refused while the memory is lost"
    );
    // The probe of the unavailable store finds the loss, and serve says it.
    served.wait_stderr("the loss said", Duration::from_secs(10), |l| {
        l.contains("replay memory was lost").then_some(())
    });
    assert_eq!(
        served.post("/", &captured).status,
        503,
        "refused while the memory is lost"
    );
    // Not stopped with SIGTERM: items accepted in the moment of the restart wait for the replay
    // store (the drain would wait for them); what was printed is read as it is.
    let decrypted = served
        .json_lines()
        .iter()
        .filter(|l| l["status"] == "decrypted")
        .count();
    assert_eq!(
        decrypted,
        1,
        "the replay was never processed: {:?}",
        served.json_lines()
    );
    let stderr = served.stderr.snapshot().join("\n");
    assert!(stderr.contains("replay memory was lost"), "{stderr}");
    assert!(stderr.contains("appendonly yes"), "{stderr}");
}
