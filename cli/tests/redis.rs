//! `serve --replay redis://…` with a real `redis-server` on 127.0.0.1: two replicas share one
//! replay memory, so the same genuine POST sent to both is decrypted by exactly one; Redis
//! stopped under `--replay-unavailable closed` (503 until it is back) and `open` (processed, with
//! a warning). Skipped, with a note, when `redis-server` is not installed, except under `CI=true`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = RedisServer { child: None, port };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "redis-server is needed under CI=true: {e}"
                );
                eprintln!("skipping: redis-server is not installed ({e})");
                None
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

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
    let mut a = replica(&fx, &redis, &[]);
    let mut b = replica(&fx, &redis, &[]);
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
    // The first POST after the outage is queued; its item is rejected (never processed
    // unchecked), and from then on POSTs get 503 so that Graph retries.
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
    // Redis back: POSTs are accepted again.
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
    let start = Instant::now();
    while !served
        .json_lines()
        .iter()
        .any(|l| l["data"]["id"] == "back")
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served.terminate(), Some(0));
    let lines = served.json_lines();
    assert!(lines.iter().any(|l| l["data"]["id"] == "back"), "{lines:?}");
    // Nothing was decrypted while the duplicate check could not run.
    assert!(
        !lines.iter().any(|l| l["data"]["id"] == "down"),
        "{lines:?}"
    );
    assert!(lines.iter().filter(|l| l["status"] == "rejected").all(|l| {
        l["error"]
            .as_str()
            .unwrap()
            .contains("replay store is unavailable")
    }));
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
        &["--replay-unavailable", "open", "--replay-timeout-ms", "300"],
    );
    redis.stop();
    assert_eq!(
        served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("open"))]))
            .status,
        202
    );
    served.wait_lines(1, Duration::from_secs(10));
    assert_eq!(served.terminate(), Some(0));
    assert_eq!(served.json_lines()[0]["data"]["id"], "open");
    let stderr = served.stderr.lock().unwrap().join("\n");
    assert!(stderr.contains("without the duplicate check"), "{stderr}");
}
