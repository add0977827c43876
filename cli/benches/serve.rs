//! `serve` against `decrypt` on the same items (issue 14, point 7), on real sockets.
//!
//! 1,000 encrypted items with a 1 KiB resource each and one valid token: `decrypt` reads them as
//! one collection from a file (the whole process timed, start to exit); `serve --workers W`
//! receives them as 200 POSTs of 5 items over 4 keep-alive connections (timed from the first byte
//! sent to the 1,000th output line read from its stdout; its start-up is not counted). Runs
//! alternate, `decrypt` first, and the medians are compared. Each round also runs `serve --spool`
//! (every body synced to an on-disk spool before its 202, removed after its lines), to measure
//! what durability costs. Also reports the slowest answer to a POST.
//!
//! ```sh
//! cargo bench -p msgraph-notify-cli --bench serve               # 5 rounds, --workers 2
//! cargo bench -p msgraph-notify-cli --bench serve -- 9 2         # rounds, workers
//! # the key in a throw-away SoftHSM2 token (made with `keygen --pkcs11`), both commands:
//! MSGRAPH_NOTIFY_BENCH_PKCS11=/usr/lib/softhsm/libsofthsm2.so cargo bench -p msgraph-notify-cli --bench serve
//! ```
//!
//! Timing is measured, never asserted: this is a program, not a test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use msgraph_notify::testing::TokenIssuer;
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::json;

const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
const TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
const CLIENT_STATE: &str = "bench-secret";
const ITEMS: usize = 1000;
const PER_POST: usize = 5;
const CONNECTIONS: usize = 4;

mod support;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgraph-notify"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; positional numbers are ours.
    let numbers: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = numbers.first().copied().unwrap_or(5).max(1) as usize;
    let workers = numbers.get(1).copied().unwrap_or(2).max(1);

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key_spec) = match std::env::var("MSGRAPH_NOTIFY_BENCH_PKCS11") {
        Ok(module) => token_key(dir.path(), &module),
        Err(_) => {
            let key = PrivateKey::generate(2048).expect("key");
            let cert = Certificate::self_signed(&key, "bench", 1).expect("cert");
            let key_path = dir.path().join("key.pem");
            std::fs::write(&key_path, key.to_pkcs8_pem().as_bytes()).expect("write key");
            (cert, format!("bench={}", key_path.display()))
        }
    };
    let issuer = TokenIssuer::new().expect("issuer");
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, issuer.jwks_json()).expect("write jwks");
    let token = issuer.token(TokenVersion::V2, APP_ID, TENANT);

    let items = support::presences(&cert, ITEMS, TENANT, CLIENT_STATE);
    let collection = dir.path().join("collection.json");
    std::fs::write(
        &collection,
        json!({"value": items, "validationTokens": [token]}).to_string(),
    )
    .expect("write collection");
    // decrypt's fixed cost (process start, key and JWKS loading, one token check), measured on
    // a collection with no items, is reported so that its rate can also be read without it.
    let empty = dir.path().join("empty.json");
    std::fs::write(
        &empty,
        json!({"value": [], "validationTokens": [token]}).to_string(),
    )
    .expect("write empty collection");
    let bodies: Vec<Vec<u8>> = items
        .chunks(PER_POST)
        .map(|chunk| {
            json!({"value": chunk, "validationTokens": [token]})
                .to_string()
                .into_bytes()
        })
        .collect();

    let common: Vec<String> = vec![
        "--key".into(),
        key_spec.clone(),
        "--jwks".into(),
        jwks_path.display().to_string(),
        "--app-id".into(),
        APP_ID.into(),
    ];

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let key_kind = if key_spec.contains("pkcs11:") {
        "key in a SoftHSM2 token"
    } else {
        "key in a file"
    };
    println!(
        "{key_kind}; serve vs decrypt: {ITEMS} items of ~1 KiB, one token; serve --workers {workers}, \
         {} POSTs of {PER_POST} over {CONNECTIONS} keep-alive connections; {rounds} rounds; \
         load average before: {}",
        ITEMS / PER_POST,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (mut decrypt_rates, mut net_rates, mut serve_rates, mut slowest) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut spool_rates, mut spool_slowest) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let d = run_decrypt(&common, &collection, ITEMS);
        let fixed = run_decrypt(&common, &empty, 0);
        let (s, worst) = run_serve(&common, &bodies, workers, None);
        let spool = dir.path().join(format!("spool-{round}"));
        let (sp, sp_worst) = run_serve(&common, &bodies, workers, Some(&spool));
        let net = d.saturating_sub(fixed).max(Duration::from_micros(1));
        println!(
            "round {}: decrypt {:.0} items/s ({:.0} without its {:.1} ms start-up), \
             serve {:.0} items/s ({:.2}x, {:.2}x), slowest answer {:.1} ms",
            round + 1,
            ITEMS as f64 / d.as_secs_f64(),
            ITEMS as f64 / net.as_secs_f64(),
            fixed.as_secs_f64() * 1e3,
            ITEMS as f64 / s.as_secs_f64(),
            d.as_secs_f64() / s.as_secs_f64(),
            net.as_secs_f64() / s.as_secs_f64(),
            worst.as_secs_f64() * 1e3
        );
        decrypt_rates.push(ITEMS as f64 / d.as_secs_f64());
        net_rates.push(ITEMS as f64 / net.as_secs_f64());
        serve_rates.push(ITEMS as f64 / s.as_secs_f64());
        slowest.push(worst.as_secs_f64() * 1e3);
        println!(
            "         serve --spool {:.0} items/s ({:.2}x serve), slowest answer {:.1} ms",
            ITEMS as f64 / sp.as_secs_f64(),
            s.as_secs_f64() / sp.as_secs_f64(),
            sp_worst.as_secs_f64() * 1e3
        );
        spool_rates.push(ITEMS as f64 / sp.as_secs_f64());
        spool_slowest.push(sp_worst.as_secs_f64() * 1e3);
    }
    let (d, n, s) = (
        median(decrypt_rates),
        median(net_rates),
        median(serve_rates),
    );
    println!(
        "median: decrypt {d:.0} items/s ({n:.0} without start-up), serve {s:.0} items/s; \
         serve/decrypt {:.2} ({:.2} against decrypt without start-up); \
         slowest answer: median {:.1} ms, worst {:.1} ms",
        s / d,
        s / n,
        median(slowest.clone()),
        slowest.iter().copied().fold(0.0, f64::max)
    );
    let sp = median(spool_rates);
    println!(
        "median: serve --spool {sp:.0} items/s ({:.2} of serve); slowest answer: median {:.1} ms, \
         worst {:.1} ms",
        sp / s,
        median(spool_slowest.clone()),
        spool_slowest.iter().copied().fold(0.0, f64::max)
    );
}

/// The process's throw-away SoftHSM2 token (test-support's), a key pair generated in it by
/// `keygen --pkcs11` into `dir`; returns its certificate and the `--key` value naming it.
fn token_key(dir: &std::path::Path, module: &str) -> (Certificate, String) {
    // SOFTHSM2_CONF is set for this process (and so for every command it starts) before any
    // thread is started and before any module is loaded.
    let hsm = test_support::softhsm::hsm(&["bench"]).expect("SoftHSM2");
    let uri = format!(
        "pkcs11:token=bench;object=bench?module-path={module}&pin-source=file:{}",
        hsm.dir.join("pin").display()
    );
    let out_dir = dir.join("keygen");
    let keygen = bin()
        .args(["keygen", "--pkcs11", &uri, "--cert-id", "bench", "--out"])
        .arg(&out_dir)
        .output()
        .expect("keygen --pkcs11");
    assert!(
        keygen.status.success(),
        "keygen --pkcs11: {}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let cert = Certificate::load(&std::fs::read(out_dir.join("cert.pem")).expect("cert.pem"))
        .expect("the token's certificate");
    (cert, format!("bench={uri}"))
}

fn run_decrypt(common: &[String], collection: &std::path::Path, expected: usize) -> Duration {
    let start = Instant::now();
    let out = bin()
        .arg("decrypt")
        .args(common)
        .env("MSGRAPH_NOTIFY_CLIENT_STATE", CLIENT_STATE)
        .arg(collection)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run decrypt");
    let elapsed = start.elapsed();
    let lines = out.stdout.iter().filter(|&&b| b == b'\n').count();
    assert!(
        out.status.success() && lines == expected,
        "decrypt failed: {} lines, {}",
        lines,
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Starts serve (with `--spool` when given), sends the bodies, returns (first byte to last output line, slowest answer).
fn run_serve(
    common: &[String],
    bodies: &[Vec<u8>],
    workers: u32,
    spool: Option<&std::path::Path>,
) -> (Duration, Duration) {
    let mut command = bin();
    if let Some(dir) = spool {
        command.arg("serve").arg("--spool").arg(dir);
    } else {
        command.arg("serve");
    }
    command
        .args(["--listen", "127.0.0.1:0", "--workers", &workers.to_string()])
        .args(["--log-format", "text"])
        .args(common)
        .env("MSGRAPH_NOTIFY_CLIENT_STATE", CLIENT_STATE);
    let serve = support::Serve::start(command, ITEMS);
    let (start, slowest) = serve.post(bodies, CONNECTIONS);
    (serve.finish().0 - start, slowest)
}
