//! The README's steps, each on the command as a person pastes it (issue 23, point 7): `keygen`
//! writes a `.pfx` with a password from a file and `decrypt` opens it, `encrypt` sets the
//! token's lifetime, and `subscription --minutes 4320` is Graph's Teams maximum.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::Value;

#[test]
fn keygen_writes_a_pfx_from_a_password_file_and_decrypt_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let password = dir.path().join("pfx-password.txt");
    std::fs::write(&password, "correct horse battery staple\n").unwrap();
    let out = run(
        &[
            "keygen",
            "--out",
            &s(&keys),
            "--cert-id",
            "receiver-2026",
            "--pfx-password-file",
            &s(&password),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pfx = keys.join("key.pfx");
    assert_eq!(printed["pfx"], s(&pfx));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pfx).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key.pfx mode {mode:o}");
    }
    // The password is nowhere in the file, the output or the errors.
    let bytes = std::fs::read(&pfx).unwrap();
    assert!(!bytes.windows(7).any(|w| w == b"correct"));

    // A notification encrypted for cert.pem opens with key.pfx and the same password file.
    let resource = dir.path().join("presence.json");
    std::fs::write(
        &resource,
        r##"{"@odata.type":"#microsoft.graph.presence","id":"u1","availability":"Busy"}"##,
    )
    .unwrap();
    let cert = keys.join("cert.pem");
    let out = run(
        &[
            "encrypt",
            "--cert",
            &s(&cert),
            "--cert-id",
            "receiver-2026",
            &s(&resource),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(
        &[
            "decrypt",
            "--key",
            &format!("receiver-2026={}", pfx.display()),
            "--password-file",
            &s(&password),
            "--insecure-skip-tokens",
            "-",
        ],
        &out.stdout,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["data"]["availability"], "Busy");

    // A wrong password is refused, and the password is not printed.
    std::fs::write(&password, "wrong\n").unwrap();
    let out = run(
        &[
            "decrypt",
            "--key",
            &s(&pfx),
            "--password-file",
            &s(&password),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("wrong\n"));
}

#[test]
fn encrypt_sets_the_tokens_lifetime() {
    let fx = Fixture::new();
    let resource = fx.path("presence.json");
    std::fs::write(&resource, Fixture::presence("u1").to_string()).unwrap();
    let token_key = fx.path("token-key.pem");
    std::fs::copy(&fx.key_path, &token_key).unwrap();
    let exp = |minutes: Option<&str>| {
        let mut args = vec![
            "encrypt".to_owned(),
            "--cert".into(),
            s(&fx.cert_path),
            "--cert-id".into(),
            CERT_ID.into(),
            "--token-key".into(),
            s(&token_key),
            "--app-id".into(),
            APP_ID.into(),
        ];
        if let Some(m) = minutes {
            args.extend(["--token-minutes".into(), m.into()]);
        }
        args.push(s(&resource));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = body["validationTokens"][0].as_str().unwrap().to_owned();
        let claims: Value =
            serde_json::from_slice(&base64url(token.split('.').nth(1).unwrap())).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        claims["exp"].as_u64().unwrap() as i64 - now as i64
    };
    let hour = exp(None);
    assert!((3590..=3600).contains(&hour), "{hour}");
    let week = exp(Some("10080"));
    assert!((604_790..=604_800).contains(&week), "{week}");
    let out = run(
        &[
            "encrypt",
            "--cert",
            &s(&fx.cert_path),
            "--cert-id",
            CERT_ID,
            "--token-minutes",
            "0",
            "--token-key",
            &s(&token_key),
            "--app-id",
            APP_ID,
            &s(&resource),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn subscription_accepts_graphs_4320_minutes_for_teams_resources() {
    let fx = Fixture::new();
    let sub = |minutes: &str| {
        run(
            &[
                "subscription",
                "--resource",
                "/chats/getAllMessages",
                "--notification-url",
                "https://receiver.example/notify",
                "--lifecycle-url",
                "https://receiver.example/lifecycle",
                "--cert",
                &s(&fx.cert_path),
                "--cert-id",
                "receiver-2026",
                "--minutes",
                minutes,
            ],
            b"",
        )
    };
    let out = sub("4320");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_refused(&sub("4321"), "at most 4320 minutes");
}

/// Base64url without padding (a JWT's parts).
fn base64url(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The README's quick start is marked `ignore` (it needs the `fetch` feature, which not every
/// doctest run has); the crate documentation's quick start is the same code, compiled by
/// `cargo test --doc` with hidden `cfg` lines. They must not drift apart.
#[test]
fn the_readme_quick_start_is_the_compiled_one() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let in_readme = readme
        .split_once("```rust,ignore\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(code, _)| code.to_owned())
        .expect("the README's quick start");
    let docs: Vec<&str> = lib
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = docs
        .iter()
        .position(|l| *l == "```no_run")
        .expect("the quick start")
        + 1;
    let end = start + docs[start..].iter().position(|l| *l == "```").unwrap();
    let in_docs: Vec<&str> = docs[start..end]
        .iter()
        .copied()
        .filter(|l| !l.starts_with("# "))
        .collect();
    assert_eq!(in_readme, in_docs.join("\n"));
    assert!(in_readme.contains(".replay_guard(") && in_readme.contains("ensure_kid"));
    assert!(!in_readme.contains("testing"));
}
