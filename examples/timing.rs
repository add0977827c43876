//! A dudect-style timing harness (run by hand, not part of the test suite: machine noise would
//! make it flaky):
//!
//! ```text
//! cargo run --release --example timing            # about a minute
//! cargo run --release --example timing -- 4       # four times the measurements
//! ```
//!
//! Method (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017): two classes of
//! inputs, chosen at random for each measurement so drift and noise hit both alike; each call timed
//! with `std::time::Instant`; the measurements cropped at a series of upper percentiles (outliers
//! from interrupts and scheduling); Welch's t-test between the classes on every cropped set. The
//! report is the largest |t|. Below 4.5: no leak detected. Above 10: a leak, certainly.
//!
//! Each comparison is checked for what matters here, the *position* of the first differing byte:
//! class 0 differs from the secret in its first byte, class 1 in its last byte. A comparison
//! that stops at the first difference is faster for class 0.
//!
//! Positive controls prove the harness can see such a leak at the same noise level: the same
//! inputs through a byte-by-byte comparison that exits early. Each line also prints the smallest
//! difference of means the run could have detected (4.5 standard errors): a pass only means "no
//! leak larger than that".

use std::hint::black_box;
use std::time::Instant;

use msgraph_notify::receiver::Receiver;
use msgraph_notify::testing::GraphEncryptor;
use msgraph_notify::token::Validation;
use msgraph_notify::{Certificate, Decryptor, EncryptedContent, PrivateKey};

/// dudect's threshold for "probably leaks".
const T_THRESHOLD: f64 = 4.5;
/// Cropping percentiles, as in dudect.
const PERCENTILES: usize = 100;

/// Welford's online mean and variance, per class.
#[derive(Clone, Default)]
struct Welch {
    n: [f64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
}

impl Welch {
    fn push(&mut self, class: usize, x: f64) {
        self.n[class] += 1.0;
        let delta = x - self.mean[class];
        self.mean[class] += delta / self.n[class];
        self.m2[class] += delta * (x - self.mean[class]);
    }

    fn var(&self, class: usize) -> f64 {
        if self.n[class] < 2.0 {
            return 0.0;
        }
        self.m2[class] / (self.n[class] - 1.0)
    }

    fn standard_error(&self) -> f64 {
        (self.var(0) / self.n[0] + self.var(1) / self.n[1]).sqrt()
    }

    fn t(&self) -> f64 {
        let se = self.standard_error();
        if se == 0.0 {
            return 0.0;
        }
        (self.mean[0] - self.mean[1]) / se
    }

    fn min_n(&self) -> f64 {
        self.n[0].min(self.n[1])
    }
}

/// A small xorshift generator for the class sequence (no cryptographic use).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

struct Report {
    name: String,
    measurements: usize,
    max_t: f64,
    /// The smallest detectable difference of means (ns) among the tests with enough samples.
    floor_ns: f64,
    mean_ns: [f64; 2],
}

impl Report {
    fn verdict(&self) -> &'static str {
        let seen = self.max_t.abs() >= T_THRESHOLD;
        if self.name.contains("control:") {
            // A positive control: the harness must see this one.
            if seen {
                "seen (harness works)"
            } else {
                "NOT SEEN: harness too coarse"
            }
        } else if self.name.contains("by design") {
            if seen {
                "differs, as designed"
            } else {
                "no difference seen"
            }
        } else if !seen {
            "no leak detected"
        } else if self.max_t.abs() < 10.0 {
            "POSSIBLE LEAK"
        } else {
            "LEAK"
        }
    }

    fn print(&self) {
        println!(
            "{:<58} n={:>9}  max|t|={:>7.2}  floor={:>8.1} ns  means {:>9.1} / {:>9.1} ns  {}",
            self.name,
            self.measurements,
            self.max_t.abs(),
            self.floor_ns,
            self.mean_ns[0],
            self.mean_ns[1],
            self.verdict()
        );
    }
}

/// Times `op` on the two inputs, `measurements` times in all, `batch` calls per measurement.
///
/// Before each measurement (outside the timed region) the chosen input is copied into one scratch
/// buffer, so both classes are read from the same address: otherwise the two inputs' different
/// heap alignments alone can make a difference of a few nanoseconds that is not the code's.
fn dudect(
    name: &str,
    measurements: usize,
    batch: usize,
    inputs: [&[u8]; 2],
    mut op: impl FnMut(&[u8]),
) -> Report {
    let mut rng = Rng::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(inputs[0].len().max(inputs[1].len()));
    let mut time = |class: usize, op: &mut dyn FnMut(&[u8])| -> f64 {
        scratch.clear();
        scratch.extend_from_slice(inputs[class]);
        let input = black_box(scratch.as_slice());
        let start = Instant::now();
        for _ in 0..batch {
            op(input);
        }
        start.elapsed().as_nanos() as f64 / batch as f64
    };

    // Warm up, and take the cropping thresholds from a first sample of both classes pooled.
    let calibration = (measurements / 10).clamp(1000, 20_000);
    let mut pooled: Vec<f64> = (0..calibration)
        .map(|_| {
            let class = (rng.next() & 1) as usize;
            time(class, &mut op)
        })
        .collect();
    pooled.sort_by(f64::total_cmp);
    let thresholds: Vec<f64> = (0..PERCENTILES)
        .map(|i| {
            let p = 1.0 - 0.5f64.powf(10.0 * (i + 1) as f64 / PERCENTILES as f64);
            let at = ((pooled.len() - 1) as f64 * p) as usize;
            pooled[at]
        })
        .collect();

    // Test 0 uncropped, tests 1..=PERCENTILES cropped at each threshold.
    let mut tests = vec![Welch::default(); PERCENTILES + 1];
    for _ in 0..measurements {
        let class = (rng.next() & 1) as usize;
        let x = time(class, &mut op);
        tests[0].push(class, x);
        for (test, &limit) in tests[1..].iter_mut().zip(&thresholds) {
            if x < limit {
                test.push(class, x);
            }
        }
    }

    let enough = (measurements as f64 / 20.0).max(100.0);
    let usable: Vec<&Welch> = tests.iter().filter(|w| w.min_n() >= enough).collect();
    let max_t = usable
        .iter()
        .map(|w| w.t())
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or(0.0);
    let floor_ns = usable
        .iter()
        .map(|w| T_THRESHOLD * w.standard_error())
        .fold(f64::INFINITY, f64::min);
    Report {
        name: name.to_owned(),
        measurements,
        max_t,
        floor_ns,
        mean_ns: tests[0].mean,
    }
}

/// The comparison a naive implementation would write: stops at the first difference.
fn early_exit_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for (x, y) in a.iter().zip(b) {
        if black_box(x) != black_box(y) {
            return false;
        }
    }
    true
}

fn with_byte_changed(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

/// A body whose one item is a basic notification (no encrypted content: no RSA, no token) with
/// this clientState.
fn client_state_body(client_state: &str) -> Vec<u8> {
    serde_json::json!({"value": [{
        "subscriptionId": "9f9c5ad9-1c0c-4d5c-9d4c-8b0c1f4e2a01",
        "tenantId": "22222222-aaaa-4bbb-8ccc-000000000002",
        "changeType": "updated",
        "resource": "communications/presences/u1",
        "clientState": client_state,
    }]})
    .to_string()
    .into_bytes()
}

fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scale: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1)
        .max(1);
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful numbers");
    }
    println!(
        "dudect-style timing harness: class 0 = first byte differs, class 1 = last byte differs; \
         |t| < {T_THRESHOLD} = no leak detected"
    );
    println!("RSA backend: {}", msgraph_notify::crypto::RSA_BACKEND);
    let fast = 400_000 * scale;

    // --- clientState: the longest Graph allows (255 characters), compared in the receiver. ---
    let secret: Vec<u8> = (0..255u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    let first = with_byte_changed(&secret, 0);
    let last = with_byte_changed(&secret, 254);
    let key = PrivateKey::generate(2048)?;
    let cert = Certificate::self_signed(&key, "timing", 1)?;
    let receiver = Receiver::builder(Decryptor::with_key(
        PrivateKey::from_der(&key.to_pkcs8_der())?,
        Some(cert.clone()),
    )?)
    .validation(Validation::new(["app"]))
    .client_state(&secret)
    .build()?;
    let bodies = [
        client_state_body(std::str::from_utf8(&first)?),
        client_state_body(std::str::from_utf8(&last)?),
    ];
    // Sanity: both are refused for their clientState, and the secret itself passes.
    for body in &bodies {
        let reply = format!("{:?}", receiver.receive(None, body)?);
        assert!(reply.contains("ClientState"), "{reply}");
    }
    let ok = format!(
        "{:?}",
        receiver.receive(None, &client_state_body(std::str::from_utf8(&secret)?))?
    );
    assert!(ok.contains("Basic"), "{ok}");

    let receive = |body: &[u8]| {
        black_box(receiver.receive(None, black_box(body)).is_ok());
    };
    let mut reports = vec![dudect(
        "clientState via Receiver::receive (255 bytes)",
        fast,
        1,
        [&bodies[0], &bodies[1]],
        receive,
    )];
    // The same path with an early-exit comparison of the clientState added: what a leak of the
    // position looks like at this noise level.
    let offset = bodies[0]
        .windows(first.len())
        .position(|w| w == first.as_slice())
        .ok_or("clientState not found in the body")?;
    assert_eq!(&bodies[0][offset..offset + secret.len()], &first[..]);
    reports.push(dudect(
        "  control: receive + early-exit compare (must leak)",
        fast,
        1,
        [&bodies[0], &bodies[1]],
        |body| {
            black_box(receiver.receive(None, black_box(body)).is_ok());
            let sent = body.get(offset..offset + secret.len()).unwrap_or_default();
            black_box(early_exit_eq(&secret, black_box(sent)));
        },
    ));
    // The primitive the receiver uses, alone: subtle's ConstantTimeEq on the bytes.
    reports.push(dudect(
        "clientState primitive: subtle ct_eq (255 bytes)",
        fast,
        8,
        [&first, &last],
        |candidate| {
            use subtle::ConstantTimeEq;
            black_box(bool::from(black_box(&secret[..]).ct_eq(candidate)));
        },
    ));
    reports.push(dudect(
        "  control: early-exit compare alone (must leak)",
        fast,
        8,
        [&first, &last],
        |candidate| {
            black_box(early_exit_eq(black_box(&secret), candidate));
        },
    ));
    for r in &reports {
        r.print();
    }

    // --- The MAC check, directly: the call `crypto::hmac_sha256_verify` makes. ---
    // HMAC-SHA256 under a 32-byte key over a 4 KiB ciphertext, then `verify_slice` (hmac's
    // constant-time tag comparison, via subtle).
    let mac_key = [0x5au8; 32];
    let message = vec![0xa5u8; 4096];
    let hmac = || {
        use hmac::{KeyInit, Mac};
        let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(black_box(&message));
        m
    };
    let verify = |tag: &[u8]| {
        use hmac::Mac;
        hmac().verify_slice(black_box(tag)).is_ok()
    };
    let tag: Vec<u8> = {
        use hmac::Mac;
        hmac().finalize().into_bytes().to_vec()
    };
    let (wrong_first, wrong_last) = (with_byte_changed(&tag, 0), with_byte_changed(&tag, 31));
    assert!(verify(&tag) && !verify(&wrong_first) && !verify(&wrong_last));
    let direct = [
        dudect(
            "MAC: HMAC-SHA256 verify_slice (4 KiB)",
            fast,
            1,
            [&wrong_first, &wrong_last],
            |t| {
                black_box(verify(t));
            },
        ),
        dudect(
            "  MAC: correct tag vs last byte wrong",
            fast,
            1,
            [&tag, &wrong_last],
            |t| {
                black_box(verify(t));
            },
        ),
        dudect(
            "  control: HMAC + early-exit tag compare (must leak)",
            fast,
            1,
            [&wrong_first, &wrong_last],
            |t| {
                use hmac::Mac;
                let computed = hmac().finalize().into_bytes();
                black_box(early_exit_eq(&computed, black_box(t)));
            },
        ),
    ];
    for r in &direct {
        r.print();
    }

    // --- The MAC check end to end, through the public path to it: Decryptor::decrypt. ---
    // Every call unwraps the key with RSA-OAEP first (blinded, so its time varies by microseconds),
    // which sets the floor far above a byte comparison's cost: this line bounds the whole path.
    let decryptor = Decryptor::with_key(key, Some(cert.clone()))?;
    let genuine = GraphEncryptor::new(&cert, "timing")
        .encrypt(br##"{"@odata.type":"#microsoft.graph.presence","availability":"Busy"}"##)?;
    let signature = b64_decode(genuine.data_signature.as_deref().unwrap_or_default())?;
    let (sig_first, sig_last) = (
        with_byte_changed(&signature, 0),
        with_byte_changed(&signature, 31),
    );
    let decrypt_with = |tag: &[u8]| {
        let content = EncryptedContent {
            data_signature: Some(b64_encode(tag)),
            ..genuine.clone()
        };
        decryptor.decrypt(black_box(&content)).is_ok()
    };
    assert!(decrypt_with(&signature) && !decrypt_with(&sig_first) && !decrypt_with(&sig_last));
    let slow = 20_000 * scale;
    let end_to_end = [
        dudect(
            "MAC via Decryptor::decrypt (RSA-2048 unwrap included)",
            slow,
            1,
            [&sig_first, &sig_last],
            |t| {
                black_box(decrypt_with(t));
            },
        ),
        dudect(
            "  correct vs wrong tag: AES runs after a valid MAC (by design)",
            slow,
            1,
            [&signature, &sig_last],
            |t| {
                black_box(decrypt_with(t));
            },
        ),
    ];
    for r in &end_to_end {
        r.print();
    }
    println!(
        "floor: the smallest difference of means this run could detect (4.5 standard errors). \
         The controls show what an early-exit comparison costs at the same noise level."
    );
    Ok(())
}
