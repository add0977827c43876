//! `serve` with its key in a SoftHSM2 token whose directory is moved away and back while it runs:
//! the key is found again without a restart, and items posted once the token is back decrypt.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{APP_ID, CERT_ID, CLIENT_STATE, Fixture, s, text};
use msgraph_notify::Certificate;
use test_support::net::http;
use test_support::process::{self, Captured};
use test_support::softhsm::Hsm;

#[test]
fn serve_finds_a_token_again_after_it_went_away_and_came_back() {
    let Some(hsm) = Hsm::new(&["away"]) else {
        return;
    };
    let uri = hsm.uri_without_module("away", "receiver");
    let out_dir = hsm.dir.join("out");
    let out = process::run(
        hsm.command(env!("CARGO_BIN_EXE_msgraph-notify")).args([
            "keygen",
            "--pkcs11",
            &uri,
            "--cert-id",
            CERT_ID,
            "--out",
            &s(&out_dir),
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cert = Certificate::load(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();

    let fx = Fixture::new();
    let mut command = hsm.command(env!("CARGO_BIN_EXE_msgraph-notify"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--key"])
        .arg(format!("{CERT_ID}={uri}"))
        .args(["--jwks", &s(&fx.jwks_path), "--app-id", APP_ID])
        .args(["--client-state", CLIENT_STATE]);
    let served = Captured::spawn(&mut command, "serve");
    let addr: SocketAddr = served.wait_stderr("serve listening", Duration::from_secs(90), |l| {
        let rest = l.split("listening on http://").nth(1)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | ':')))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    });
    let post = |tag: &str| {
        let item = crate::item(&cert, CERT_ID, tag);
        let body = fx.body(vec![item]);
        http(addr, "POST", "/", &body).status
    };
    let decrypted = |prefix: &str| {
        served.json_lines().iter().any(|l| {
            l["status"] == "decrypted"
                && l["data"]["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(prefix))
        })
    };

    assert_eq!(post("before"), 202);
    let start = Instant::now();
    while !decrypted("before") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            served.stderr.snapshot()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The token goes away (nobody finalises the module for serve) and comes back.
    let tokens = hsm.dir.join("tokens");
    let away = hsm.dir.join("tokens.away");
    std::fs::rename(&tokens, &away).unwrap();
    let _ = post("away");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::rename(&away, &tokens).unwrap();

    // Items posted from now on decrypt once the back-off has passed: no restart.
    let start = Instant::now();
    let mut n = 0;
    while !decrypted("back") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the token came back but serve never used it again: {:?} {:?}",
            served.json_lines(),
            served.stderr.snapshot()
        );
        n += 1;
        let status = post(&format!("back-{n}"));
        assert!(status == 202 || status == 503, "{status}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
