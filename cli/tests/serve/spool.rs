//! `serve --spool`: `kill -9` at 20 random moments under a stream of distinct POSTs, restarted
//! each time on the same spool: every item answered 202 is output, and an item is output twice
//! only inside the documented window (killed between writing a body's lines and removing it
//! from the spool): at most one body's items per kill.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;

/// One POST that may meet a dying server: the status, or `None` when no full answer came.
fn try_post(addr: SocketAddr, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, _) = raw.split_once("\r\n\r\n")?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// A small xorshift generator, seeded from the clock (the seed is printed on failure).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The decrypted items' tags in `lines`, skipping a line cut short by the kill.
fn tags(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["status"] == "decrypted")
        .filter_map(|l| l["data"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn kill_9_twenty_times_under_load_loses_no_acknowledged_item() {
    let fx = Arc::new(Fixture::new());
    let spool = fx.path("spool");
    let mut args = fx.receiver_args();
    args.extend(["--spool".into(), s(&spool), "--workers".into(), "2".into()]);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut random = Random(seed);
    let next = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut output: Vec<String> = Vec::new();
    const KILLS: usize = 20;
    for round in 0..=KILLS {
        let served = Served::start(&args);
        if round == KILLS {
            // The last start: no kill; what the spool kept comes out, then a clean stop.
            let want = acknowledged.lock().unwrap().clone();
            let mut served = served;
            let seen = |served: &Served| {
                let mut all = output.clone();
                all.extend(tags(&served.stdout.snapshot()));
                want.iter().all(|t| all.contains(t))
            };
            let start = Instant::now();
            while !seen(&served) && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert_eq!(served.terminate(), Some(0));
            output.extend(tags(&served.stdout.snapshot()));
            break;
        }
        // Two senders, distinct bodies, until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let (fx, next, acknowledged, stop, addr) = (
                    Arc::clone(&fx),
                    Arc::clone(&next),
                    Arc::clone(&acknowledged),
                    Arc::clone(&stop),
                    served.addr,
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let tag = format!("k{}", next.fetch_add(1, Ordering::Relaxed));
                        let body = fx.body(vec![fx.item(&Fixture::presence(&tag))]);
                        match try_post(addr, &body) {
                            Some(202) => acknowledged.lock().unwrap().push(tag),
                            Some(_) => {}
                            None => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + random.below(900)));
        let mut served = served;
        served.kill_9();
        stop.store(true, Ordering::Release);
        for sender in senders {
            sender.join().unwrap();
        }
        output.extend(tags(&served.stdout.snapshot()));
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "too few POSTs to mean anything (seed {seed}): {}",
        acknowledged.len()
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for tag in &output {
        *counts.entry(tag.as_str()).or_default() += 1;
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !counts.contains_key(t.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged and never output (seed {seed}): {lost:?}"
    );
    // One item per body: at most one repeated line per kill.
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        repeated <= KILLS,
        "{repeated} repeated lines for {KILLS} kills (seed {seed})"
    );
    eprintln!(
        "seed {seed}: {} acknowledged, {} lines, {repeated} repeated",
        acknowledged.len(),
        output.len()
    );
}

#[test]
fn items_waiting_at_sigterm_stay_in_the_spool_and_come_out_at_the_next_start() {
    let Some(mut redis) = test_support::redis::RedisServer::start_persistent() else {
        return;
    };
    let fx = Fixture::new();
    let spool = fx.path("spool");
    let mut args = fx.receiver_args();
    args.extend(
        [
            "--replay",
            &redis.url(),
            "--replay-timeout-ms",
            "300",
            "--spool",
            &s(&spool),
        ]
        .map(String::from),
    );
    let mut served = Served::start(&args);
    let both = fx.body(vec![
        fx.item(&Fixture::presence("first")),
        fx.item(&Fixture::presence("second")),
    ]);
    assert_eq!(served.post("/", &both).status, 202);
    served.wait_lines(2, Duration::from_secs(10));
    redis.stop();
    // The first POST after the outage began is accepted before the outage is seen; its item
    // waits for the replay store.
    assert_eq!(
        served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("held"))]))
            .status,
        202
    );
    served.wait_stderr("the item waits", Duration::from_secs(10), |l| {
        l.contains("accepted items wait").then_some(())
    });
    assert_eq!(served.terminate(), Some(0), "SIGTERM ends a waiting serve");
    assert!(
        served
            .json_lines()
            .iter()
            .all(|l| l["data"]["id"] != "held"),
        "{:?}",
        served.json_lines()
    );

    // Redis back, serve again on the same spool: the kept body is processed first.
    redis.spawn().unwrap();
    let mut again = Served::start(&args);
    let lines = again.wait_for("the held item", Duration::from_secs(20), |l| {
        l.iter().any(|l| l["data"]["id"] == "held")
    });
    assert_eq!(lines.len(), 1, "only what was kept: {lines:?}");
    assert_eq!(lines[0]["status"], "decrypted");
    assert_eq!(again.terminate(), Some(0));
    let stderr = again.stderr.snapshot().join("\n");
    assert!(stderr.contains("kept in the spool first"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn the_spool_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let spool = fx.path("spool");
    let mut args = fx.receiver_args();
    args.extend(["--spool".into(), s(&spool)]);
    let mut served = Served::start(&args);
    assert_eq!(
        served
            .post("/", &fx.body(vec![fx.item(&Fixture::presence("p"))]))
            .status,
        202
    );
    served.wait_lines(1, Duration::from_secs(10));
    assert_eq!(served.terminate(), Some(0));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&spool), 0o700);
    assert_eq!(mode(&spool.join("spool.redb")), 0o600);
}
