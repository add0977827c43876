//! The admin listener cannot starve the public one (issue 23, point 6): `serve` started under a
//! limit of 256 open files, as `prlimit` types it; 1,100 half-open connections to
//! `--admin-listen` (connected, sending nothing or half a request head); a genuine POST on the
//! public listener is still answered 202, and `/healthz` answers during and after the flood.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// The address after `marker` in a log line (text or JSON).
fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = line.split(marker).nth(1)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ':')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn half_open_admin_connections_take_no_descriptor_the_public_listener_needs() {
    // The test holds the 1,100 connections itself.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let fx = Fixture::new();
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=256:256", "--"])
        .arg(env!("CARGO_BIN_EXE_msgraph-notify"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "text"])
        .args(fx.receiver_args());
    let mut served = Captured::spawn(&mut command, "serve under prlimit");
    let patience = Duration::from_secs(90);
    let public = served.wait_stderr("serve listening", patience, |l| {
        address_after(l, "listening on http://")
    });
    let admin = served.wait_stderr("the admin address", patience, |l| {
        address_after(l, "admin on http://")
    });
    assert!(
        served
            .stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("the open-file limit is 256")),
        "serve runs under the limit: {:?}",
        served.stderr.snapshot()
    );

    let flood_start = Instant::now();
    let flood: Vec<TcpStream> = (0..1100)
        .filter_map(|n| {
            let mut c = TcpStream::connect_timeout(&admin, Duration::from_secs(5)).ok()?;
            if n % 2 == 1 {
                let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAcc");
            }
            Some(c)
        })
        .collect();
    eprintln!(
        "{} admin connections opened in {:?}",
        flood.len(),
        flood_start.elapsed()
    );
    assert!(flood.len() > 1000, "{} connections opened", flood.len());
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    let body = fx.body(vec![fx.item(&Fixture::presence("flooded"))]);
    let answer = http(public, "POST", "/graph", &body);
    assert_eq!(answer.status, 202, "{}", answer.body);
    eprintln!("the genuine POST was answered in {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let line = served.wait_for("the genuine item", patience, |l| !l.is_empty());
    assert_eq!(line[0]["data"]["id"], "flooded");
    // The admin listener itself still answers: the newest connection is not the one closed.
    assert_eq!(http(admin, "GET", "/healthz", b"").status, 200);

    drop(flood);
    std::thread::sleep(Duration::from_millis(200));
    let health = http(admin, "GET", "/healthz", b"");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert_eq!(served.stop_with("-TERM", Duration::from_secs(20)), Some(0));
}
