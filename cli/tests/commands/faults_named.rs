//! Faults named where the operator looks (issue 23, point 2), each on the command as typed: a TLS
//! key that does not match its certificate, an encrypted TLS key, a host name given to
//! `--listen`, a key file every user can read, and Graph's `validationTokens: null`.

use crate::common::*;
use serde_json::json;

/// `serve` with the test receiver's options and `extra`; it is expected to refuse to start.
fn serve_refused(fx: &Fixture, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["serve".to_owned()];
    args.extend(fx.receiver_args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, b"")
}

#[test]
fn a_tls_key_of_another_certificate_is_named_in_words() {
    let fx = Fixture::new();
    let (_, _, cert, _) = tls_identity(fx.dir.path(), "site");
    let (_, _, _, other_key) = tls_identity(fx.dir.path(), "other");
    let out = serve_refused(
        &fx,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &s(&cert),
            "--tls-key",
            &s(&other_key),
        ],
    );
    assert_refused(&out, "does not match --tls-cert");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is not the one the certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains("KeyMismatch"), "{stderr}");
}

#[test]
fn an_encrypted_tls_key_is_named_as_such() {
    let fx = Fixture::new();
    let (_, _, cert, key) = tls_identity(fx.dir.path(), "site");
    let encrypted = fx.path("site-encrypted.key");
    // A real encrypted PKCS#8 key, as `openssl pkcs8 -topk8` writes it.
    let status = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:hunter2",
        ])
        .arg("-in")
        .arg(&key)
        .arg("-out")
        .arg(&encrypted)
        .status()
        .expect("openssl (the test makes an encrypted key with it)");
    assert!(status.success());
    let out = serve_refused(
        &fx,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &s(&cert),
            "--tls-key",
            &s(&encrypted),
        ],
    );
    assert_refused(&out, "is an encrypted private key");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("openssl pkey -in"), "{stderr}");
    assert!(!stderr.contains("no items found"), "{stderr}");
}

#[test]
fn listen_on_a_host_name_shows_the_address_form() {
    let fx = Fixture::new();
    let out = serve_refused(&fx, &["--listen", "localhost:8080"]);
    assert_refused(&out, "127.0.0.1:8080");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not a host name"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:8080"), "{stderr}");
    let out = serve_refused(&fx, &["--listen", "8080"]);
    assert_refused(&out, "a port alone is not an address");
}

#[cfg(unix)]
#[test]
fn a_key_file_every_user_can_read_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let body = fx.body(vec![fx.item(&Fixture::presence("u1"))]);
    let decrypt = |fx: &Fixture| {
        let mut args = vec!["decrypt".to_owned()];
        args.extend(fx.receiver_args());
        args.push("-".to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &body)
    };
    std::fs::set_permissions(&fx.key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = decrypt(&fx);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is readable by every user of this machine (mode 644)")
            && stderr.contains(&format!("chmod 600 {}", fx.key_path.display())),
        "{stderr}"
    );
    std::fs::set_permissions(&fx.key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = decrypt(&fx);
    assert_eq!(out.status.code(), Some(0));
    assert!(!text(&out.stderr).contains("readable by every user"));

    // The clientState file too.
    let state = fx.path("client-state");
    std::fs::write(&state, format!("{CLIENT_STATE}\n")).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o604)).unwrap();
    let out = run(
        &[
            "decrypt",
            "--key",
            &format!("{CERT_ID}={}", fx.key_path.display()),
            "--jwks",
            &s(&fx.jwks_path),
            "--app-id",
            APP_ID,
            "--client-state-file",
            &s(&state),
            "-",
        ],
        &body,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--client-state-file")
            && text(&out.stderr).contains("(mode 604)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn null_validation_tokens_get_graphs_documented_reason() {
    let fx = Fixture::new();
    // What Graph sends when the Change Tracking principal holds no app role of an app that
    // requires assignment.
    let body = json!({
        "value": [fx.item(&Fixture::presence("u1"))],
        "validationTokens": null,
    })
    .to_string();
    let mut args = vec!["decrypt".to_owned()];
    args.extend(fx.receiver_args());
    args.push("-".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, body.as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let item = &lines(&out)[0];
    assert_eq!(item["status"], "rejected");
    let error = item["error"].as_str().unwrap();
    assert!(error.contains("validationTokens is null"), "{error}");
    assert!(error.contains("app role assignment"), "{error}");
    assert!(
        error.contains("0bf30f3b-4a52-48df-9a82-234910c4a086"),
        "{error}"
    );
}

#[test]
fn https_proxy_carries_the_signing_key_fetch() {
    use std::io::{BufRead, BufReader};
    // A proxy that records the first request line it is sent, then hangs up.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = proxy.local_addr().unwrap();
    let seen = std::thread::spawn(move || {
        let (stream, _) = proxy.accept().unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    });
    let fx = Fixture::new();
    let body = fx.body(vec![fx.item(&Fixture::presence("u1"))]);
    let mut cmd = bin();
    cmd.args(["decrypt", "--key", &s(&fx.key_path)])
        .args(checks(
            "--jwks-url",
            "https://login.example.invalid/common/discovery/v2.0/keys",
        ))
        .arg("-")
        .env("HTTPS_PROXY", format!("http://{addr}"))
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = process::run(&mut cmd, &body);
    assert_eq!(
        seen.join().unwrap().trim_end(),
        "CONNECT login.example.invalid:443 HTTP/1.1",
        "stderr: {}",
        text(&out.stderr)
    );
    // The fetch failed at the proxy: the item is rejected, and the warning says why.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("fetching the token signing keys failed"));
}
