//! The command against the machine's RSA limit (issue 25): `decrypt` and `serve` on 5,000
//! encrypted 1 KiB items with a validation token, beside `openssl speed rsa2048` (one core) and
//! `openssl speed -multi 2 rsa2048` (two cores) run in the same rounds.
//!
//! One RSA-2048 private operation per item is the floor; the ratio printed is the command's
//! items per second over OpenSSL's signatures per second on the same cores: of the medians, and
//! in parentheses the median of each round's own ratio (the machine's slow phases touch both
//! runs of a round alike).
//!
//! - `decrypt` (whole process, start to exit) reads the 5,000 items twice over: as one
//!   collection (`--max-items 5000`) and as a JSON Lines capture of 1,000 bodies of 5 items.
//! - `serve --workers N` receives the 1,000 bodies as POSTs over 4 keep-alive connections (each
//!   connection sends its next POST when the previous one was answered), timed from the first byte
//!   sent to the 5,000th output line read; its start-up is not counted. A second row divides
//!   the items by the CPU time `serve` itself used (all threads, start-up included) and
//!   multiplies by the cores: on two cores the client shares the CPUs, and this row says what
//!   `serve` does with what it got.
//!
//! Each command is pinned with `taskset` to CPU 0 (one core) or CPUs 0-1 (two cores); the
//! client of `serve` is this process, unpinned (on one core it runs mostly on the other CPU).
//!
//! ```sh
//! cargo bench -p msgraph-notify-cli --bench limit            # 3 rounds
//! cargo bench -p msgraph-notify-cli --bench limit -- 5       # rounds
//! cargo bench -p msgraph-notify-cli --bench limit -- 5 serve two  # only serve, only on two cores
//! # keep the inputs (key, JWKS, collection.json, bodies.jsonl) for perf:
//! MSGRAPH_NOTIFY_BENCH_KEEP=/tmp/limit cargo bench -p msgraph-notify-cli --bench limit -- inputs
//! ```
//!
//! Timing is measured, never asserted: this is a program, not a test.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use msgraph_notify::testing::TokenIssuer;
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::json;

const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
const TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
const CLIENT_STATE: &str = "bench-secret";
const ITEMS: usize = 5000;
const PER_POST: usize = 5;
const CONNECTIONS: usize = 4;

mod support;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The command pinned to `cpus`.
fn pinned(cpus: &str) -> Command {
    let mut command = Command::new("taskset");
    command
        .args(["-c", cpus])
        .arg(env!("CARGO_BIN_EXE_msgraph-notify"));
    command
}

fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = match std::env::var_os("MSGRAPH_NOTIFY_BENCH_KEEP") {
        Some(keep) => {
            std::fs::create_dir_all(&keep).expect("create the kept directory");
            std::path::PathBuf::from(keep)
        }
        None => temp.path().to_owned(),
    };
    let key = PrivateKey::generate(2048).expect("key");
    let cert = Certificate::self_signed(&key, "bench", 1).expect("cert");
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem().as_bytes()).expect("write key");
    let issuer = TokenIssuer::new().expect("issuer");
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, issuer.jwks_json()).expect("write jwks");
    let token = issuer.token(TokenVersion::V2, APP_ID, TENANT);

    let items = support::presences(&cert, ITEMS, TENANT, CLIENT_STATE);
    let collection = dir.join("collection.json");
    std::fs::write(
        &collection,
        json!({"value": items, "validationTokens": [token]}).to_string(),
    )
    .expect("write collection");
    let bodies: Vec<Vec<u8>> = items
        .chunks(PER_POST)
        .map(|chunk| {
            json!({"value": chunk, "validationTokens": [token]})
                .to_string()
                .into_bytes()
        })
        .collect();
    let lines = dir.join("bodies.jsonl");
    std::fs::write(&lines, bodies.join(&b'\n')).expect("write bodies.jsonl");

    if std::env::args().any(|a| a == "inputs") {
        println!("inputs written to {}", dir.display());
        return;
    }
    let common: Vec<String> = vec![
        "--key".into(),
        format!("bench={}", key_path.display()),
        "--jwks".into(),
        jwks_path.display().to_string(),
        "--app-id".into(),
        APP_ID.into(),
    ];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{ITEMS} items of ~1 KiB (RSA-2048), one token; {rounds} rounds; load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Words narrow the run: `decrypt` or `serve` (the paths), `one` or `two` (cores).
    let words: Vec<String> = std::env::args().skip(1).collect();
    let wants = |word: &str| words.iter().any(|w| w == word);
    let (decrypts, serves) = match (wants("decrypt"), wants("serve")) {
        (false, false) => (true, true),
        chosen => chosen,
    };
    let core_counts: Vec<u32> = match (wants("one"), wants("two")) {
        (true, false) => vec![1],
        (false, true) => vec![2],
        _ => vec![1, 2],
    };
    for cores in core_counts {
        let cpus = if cores == 1 { "0" } else { "0,1" };
        let mut rows: [(&str, Vec<f64>); 5] = [
            ("openssl speed", Vec::new()),
            ("decrypt, one collection", Vec::new()),
            ("decrypt, JSON Lines of 1,000 bodies", Vec::new()),
            ("serve, 1,000 POSTs", Vec::new()),
            ("serve, per own CPU-second x cores", Vec::new()),
        ];
        for round in 0..rounds {
            let openssl = openssl_speed(cpus, cores);
            let (one_collection, json_lines) = if decrypts {
                let one = run_decrypt(cpus, &common, &collection, &["--max-items", "5000"]);
                (rate(one), rate(run_decrypt(cpus, &common, &lines, &[])))
            } else {
                (f64::NAN, f64::NAN)
            };
            let (serve, serve_cpu) = if serves {
                let (wall, cpu) = run_serve(cpus, cores, &common, &bodies);
                (rate(wall), rate(cpu) * f64::from(cores))
            } else {
                (f64::NAN, f64::NAN)
            };
            let rates = [openssl, one_collection, json_lines, serve, serve_cpu];
            let mut said = format!(
                "{cores} core(s), round {}: openssl {:.0} sign/s",
                round + 1,
                rates[0]
            );
            if decrypts {
                said += &format!("; decrypt {:.0} and {:.0} (JSON Lines)", rates[1], rates[2]);
            }
            if serves {
                said += &format!(
                    "; serve {:.0} items/s ({:.0} per own CPU-second x cores)",
                    rates[3], rates[4]
                );
            }
            println!("{said}");
            for (row, rate) in rows.iter_mut().zip(rates) {
                row.1.push(rate);
            }
        }
        let limit = median(rows[0].1.clone());
        println!(
            "{cores} core(s), medians of {rounds} (and the median of each round's ratio to the \
             openssl run beside it):"
        );
        for (name, rates) in rows.iter().filter(|(_, r)| !r[0].is_nan()) {
            let ratios = rates.iter().zip(&rows[0].1).map(|(r, o)| r / o).collect();
            let m = median(rates.clone());
            println!(
                "  {name:<38} {m:>7.0} /s  {:.3} of openssl ({:.3})",
                m / limit,
                median(ratios)
            );
        }
    }
}

fn rate(elapsed: Duration) -> f64 {
    ITEMS as f64 / elapsed.as_secs_f64()
}

/// `openssl speed rsa2048` (with `-multi 2` on two cores): RSA-2048 signatures per second.
fn openssl_speed(cpus: &str, cores: u32) -> f64 {
    let mut command = Command::new("taskset");
    command.args(["-c", cpus, "openssl", "speed", "-seconds", "3"]);
    if cores > 1 {
        command.args(["-multi", &cores.to_string()]);
    }
    let out = command.arg("rsa2048").output().expect("openssl speed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rsa 2048 bits") || l.starts_with("rsa  2048 bits"))
        .unwrap_or_else(|| panic!("openssl speed printed no rsa line: {text}"));
    // "rsa 2048 bits 0.000271s 0.000018s   3690.3  56225.0": sign/s is the third number.
    line.split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .nth(1)
        .expect("sign/s")
}

fn run_decrypt(cpus: &str, common: &[String], input: &Path, extra: &[&str]) -> Duration {
    let start = Instant::now();
    let out = pinned(cpus)
        .arg("decrypt")
        .args(common)
        .args(extra)
        .env("MSGRAPH_NOTIFY_CLIENT_STATE", CLIENT_STATE)
        .arg(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run decrypt");
    let elapsed = start.elapsed();
    let decrypted = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| memchr_str(l, b"\"decrypted\""))
        .count();
    assert!(
        out.status.success() && decrypted == ITEMS,
        "decrypt failed: {decrypted} decrypted, {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn memchr_str(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Starts serve, sends the bodies, returns the time from the first byte to the last output line
/// and the CPU time serve used (start-up included): on two cores the bench's client shares the
/// CPUs, and serve's own CPU time says what it would do with them to itself.
fn run_serve(
    cpus: &str,
    workers: u32,
    common: &[String],
    bodies: &[Vec<u8>],
) -> (Duration, Duration) {
    let mut command = pinned(cpus);
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--workers", &workers.to_string()])
        .args(["--log-format", "text"])
        .args(common)
        .env("MSGRAPH_NOTIFY_CLIENT_STATE", CLIENT_STATE);
    let serve = support::Serve::start(command, ITEMS);
    let (start, _) = serve.post(bodies, CONNECTIONS);
    let (end, cpu) = serve.finish();
    (end - start, cpu)
}
