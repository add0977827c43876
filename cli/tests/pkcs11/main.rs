//! `keygen --pkcs11` and `decrypt --key [ID=]pkcs11:…` against a throw-away SoftHSM2 token,
//! driven through the built binary; OpenSC's `pkcs11-tool` checks what the token holds.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{CLIENT_STATE, Fixture, TENANT, assert_refused, checks, lines, s, text};
use msgraph_notify::Certificate;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use serde_json::Value;
use test_support::process;
use test_support::softhsm::{Hsm, PIN};

#[cfg(all(feature = "manage", feature = "emulator"))]
mod client_credential;
mod token_away;

/// The binary, run with `args` and `stdin`, in `hsm`'s environment.
fn run(hsm: &Hsm, args: &[&str], stdin: &[u8]) -> Output {
    process::run(
        hsm.command(env!("CARGO_BIN_EXE_msgraph-notify")).args(args),
        stdin,
    )
}

fn item(cert: &Certificate, cert_id: &str, tag: &str) -> Value {
    let mut spec = NotificationSpec::new(TENANT, &format!("communications/presences/{tag}"));
    spec.client_state = Some(CLIENT_STATE.into());
    let n = GraphEncryptor::new(cert, cert_id)
        .notification(&Fixture::presence(tag), &spec)
        .unwrap();
    serde_json::to_value(n).unwrap()
}

#[test]
fn keygen_in_the_token_then_decrypt_with_a_token_key_and_a_file_key_under_one_id() {
    let Some(hsm) = Hsm::new(&["cli"]) else {
        return;
    };
    // An id with `=` in it: the CLI's --key rule must keep it whole.
    let cert_id = "receiver=2026";
    let out_dir = hsm.dir.join("out");
    let uri = hsm.uri_without_module("cli", "receiver-2026");
    let out = run(
        &hsm,
        &[
            "keygen",
            "--pkcs11",
            &uri,
            "--cert-id",
            cert_id,
            "--out",
            &s(&out_dir),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["encryptionCertificateId"], cert_id);
    let token_cert = Certificate::load(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();
    assert_eq!(printed["thumbprint"], token_cert.thumbprint());
    assert_eq!(
        printed["encryptionCertificate"],
        token_cert.encryption_certificate()
    );
    assert!(
        !out_dir.join("key.pem").exists(),
        "no key file for a token key"
    );

    // OpenSC sees a private key that is sensitive and was never extractable.
    match hsm
        .command("pkcs11-tool")
        .args([
            "--module",
            &s(&hsm.module),
            "--token-label",
            "cli",
            "--login",
        ])
        .args(["--pin", PIN, "--list-objects", "--type", "privkey"])
        .output()
    {
        Ok(listed) => {
            let listing = text(&listed.stdout);
            assert!(listed.status.success(), "{}", text(&listed.stderr));
            assert!(listing.contains("receiver-2026"), "{listing}");
            assert!(listing.contains("never extractable"), "{listing}");
            assert!(listing.contains("sensitive"), "{listing}");
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the OpenSC check: pkcs11-tool: {e}");
        }
        Err(e) => panic!("pkcs11-tool (OpenSC) is needed under CI=true: {e}"),
    }

    // Rotation: the old certificate in a file, the new one in the token, both under one id.
    let fx = Fixture::new();
    let body = fx.body(vec![
        item(&token_cert, cert_id, "new"),
        item(&fx.cert, cert_id, "old"),
    ]);
    let token_spec = format!("{cert_id}={uri}");
    let file_spec = format!("{cert_id}={}", fx.key_path.display());
    let out = run(
        &hsm,
        &[
            &[
                "decrypt",
                "--key",
                &token_spec,
                "--key",
                &file_spec,
                "--cert",
                &s(&fx.cert_path),
            ][..],
            &checks("--jwks", &s(&fx.jwks_path)),
            &["-"],
        ]
        .concat(),
        &body,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let items = lines(&out);
    assert_eq!(items.len(), 2);
    for (item, tag) in items.iter().zip(["new", "old"]) {
        assert_eq!(item["status"], "decrypted", "{item}");
        assert_eq!(item["data"]["id"], tag);
    }

    // The same object again: refused, the key is not replaced.
    let again = run(&hsm, &["keygen", "--pkcs11", &uri], b"");
    assert_refused(&again, "exists");
}

#[test]
fn a_wrong_pin_exits_2_naming_the_pin_but_never_its_value() {
    let Some(hsm) = Hsm::new(&["pins"]) else {
        return;
    };
    let out = run(
        &hsm,
        &["keygen", "--pkcs11", &hsm.uri_without_module("pins", "k")],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let wrong = hsm.dir.join("wrong-pin");
    std::fs::write(&wrong, "13579\n").unwrap();
    let uri = format!(
        "pkcs11:token=pins;object=k?pin-source=file:{}",
        wrong.display()
    );
    let out = run(
        &hsm,
        &[
            "decrypt",
            "--key",
            &format!("id={uri}"),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("PIN is incorrect"), "{err}");
    assert!(!err.contains("13579"), "{err}");

    // The PIN from the environment, off the command line.
    let out = hsm
        .command(env!("CARGO_BIN_EXE_msgraph-notify"))
        .env("MSGRAPH_NOTIFY_PKCS11_PIN", PIN)
        .args([
            "decrypt",
            "--key",
            "pkcs11:token=pins;object=k",
            "--insecure-skip-tokens",
        ])
        .arg(s(&write(&hsm.dir.join("empty.json"), b"{\"value\":[]}")))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_missing_module_or_object_exits_2_and_says_which() {
    let Some(hsm) = Hsm::new(&["objects"]) else {
        return;
    };
    let out = run(
        &hsm,
        &[
            "decrypt",
            "--key",
            "pkcs11:token=objects;object=k?module-path=/nonexistent/pkcs11.so&pin-value=1",
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_refused(&out, "/nonexistent/pkcs11.so");
    assert!(text(&out.stderr).contains("does not exist"));

    let out = run(
        &hsm,
        &[
            "decrypt",
            "--key",
            &hsm.uri_without_module("objects", "absent"),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no RSA private key matches") && err.contains("absent"),
        "{err}"
    );
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_owned()
}

#[test]
fn key_specs_with_ids_containing_equals_signs() {
    // Two file keys under ids with `=`, one of them with `=` in its path too.
    let fx = Fixture::new();
    let odd_path = fx.path("key=v2.pem");
    std::fs::copy(&fx.key_path, &odd_path).unwrap();
    let body = fx.body(vec![item(&fx.cert, "a=b", "one")]);
    for spec in [
        format!("a=b={}", fx.key_path.display()),
        format!("a=b={}", odd_path.display()),
    ] {
        let out = common::run(
            &[
                &["decrypt", "--key", &spec][..],
                &checks("--jwks", &s(&fx.jwks_path)),
                &["-"],
            ]
            .concat(),
            &body,
        );
        assert_eq!(out.status.code(), Some(0), "{spec}: {}", text(&out.stderr));
        assert_eq!(lines(&out)[0]["status"], "decrypted");
    }
    // Two keys under one id, neither with a certificate: refused, with the reason.
    let other = fx.path("other.pem");
    let key = msgraph_notify::PrivateKey::generate(2048).unwrap();
    std::fs::write(&other, key.to_pkcs8_pem().as_bytes()).unwrap();
    let out = common::run(
        &[
            "decrypt",
            "--key",
            &format!("x={}", fx.key_path.display()),
            "--key",
            &format!("x={}", other.display()),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_refused(&out, "neither has a certificate");
    // No file after any `=`: said plainly.
    let out = common::run(
        &[
            "decrypt",
            "--key",
            "a=b=/nonexistent/k.pem",
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_refused(&out, "no such key file");
}
