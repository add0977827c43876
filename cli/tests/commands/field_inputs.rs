//! `decrypt` and the other commands on inputs as they arrive in the field: a single captured item,
//! JSON Lines of captured bodies, a byte-order mark, the wrong document, a closed stdout, no
//! network, and key files given in the wrong place.

use std::io::Write;
use std::process::{ExitStatus, Stdio};

use crate::common::*;
use serde_json::{Value, json};

fn write(fx: &Fixture, name: &str, bytes: &[u8]) -> String {
    let path = fx.path(name);
    std::fs::write(&path, bytes).unwrap();
    s(&path)
}

fn decrypt(fx: &Fixture, extra: &[&str], input: &str) -> std::process::Output {
    let mut args: Vec<String> = vec!["decrypt".into()];
    args.extend(fx.receiver_args());
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(input.into());
    run(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"")
}

#[test]
fn a_single_captured_item_and_a_bom_are_read() {
    let fx = Fixture::new();
    let item = fx.item(&Fixture::presence("u1"));
    let path = write(&fx, "item.json", item.to_string().as_bytes());
    // A lone item carries no validation token: decrypted only when tokens are skipped...
    let out = decrypt(&fx, &["--insecure-skip-tokens"], &path);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let l = lines(&out);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["status"], "decrypted");
    assert_eq!(l[0]["data"]["id"], "u1");
    // ...and otherwise rejected for it, as any item without tokens.
    let out = decrypt(&fx, &[], &path);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        lines(&out)[0]["error"]
            .as_str()
            .unwrap()
            .contains("no validation tokens")
    );

    // A body saved by an editor that writes a byte-order mark.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&fx.body(vec![fx.item(&Fixture::presence("u2"))]));
    let out = decrypt(&fx, &[], &write(&fx, "bom.json", &bom));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["data"]["id"], "u2");
}

#[test]
fn json_lines_of_captured_bodies_carry_their_line_numbers() {
    let fx = Fixture::new();
    let first = fx.body(vec![
        fx.item(&Fixture::presence("a")),
        fx.item(&Fixture::presence("b")),
    ]);
    let second = fx.body(vec![fx.item(&Fixture::presence("c"))]);
    let forged = fx.forged_body("d");
    let mut file = Vec::new();
    for (i, body) in [&first, &second, &forged].into_iter().enumerate() {
        file.extend_from_slice(body);
        file.extend_from_slice(if i == 0 { b"\r\n\n" } else { b"\n" });
    }
    let out = decrypt(&fx, &[], &write(&fx, "captured.jsonl", &file));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let got: Vec<(Value, Value, Value)> = lines(&out)
        .into_iter()
        .map(|l| (l["line"].clone(), l["index"].clone(), l["status"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!(1), json!(0), json!("decrypted")),
            (json!(1), json!(1), json!("decrypted")),
            (json!(3), json!(0), json!("decrypted")),
            (json!(4), json!(0), json!("rejected")),
        ]
    );

    // An unusable line is named with its number; the others are still processed; exit 2.
    let mut file = first.clone();
    file.extend_from_slice(b"\n[]\n");
    file.extend_from_slice(&second);
    let out = decrypt(&fx, &[], &write(&fx, "mixed.jsonl", &file));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(lines(&out).len(), 3);
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2:") && err.contains("found an empty JSON array"),
        "{err}"
    );
}

#[test]
fn the_wrong_document_is_named_without_internal_type_names() {
    let fx = Fixture::new();
    let item = fx.item(&Fixture::presence("u1"));
    for (name, body, found) in [
        ("jwks.json", fx.issuer.jwks_json(), "found a JWKS"),
        (
            "content.json",
            item["encryptedContent"].to_string(),
            "found a bare encryptedContent object",
        ),
        ("empty.json", "[]".to_owned(), "found an empty JSON array"),
    ] {
        let out = decrypt(&fx, &[], &write(&fx, name, body.as_bytes()));
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = text(&out.stderr);
        assert!(
            err.contains("expected a notification collection") && err.contains(found),
            "{err}"
        );
        for internal in [
            "RawCollection",
            "struct",
            "invalid length",
            "invalid value: missing",
        ] {
            assert!(!err.contains(internal), "{name}: {err}");
        }
        if name == "jwks.json" {
            assert!(err.contains("--jwks FILE"), "{err}");
        }
    }
}

/// Runs the binary with its stdout closed before it writes; returns the status and stderr.
fn with_closed_stdout(args: &[&str], stdin: &[u8]) -> (ExitStatus, String) {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone, as after `| head -1`
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.status, text(&out.stderr))
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let fx = Fixture::new();
    let items: Vec<Value> = (0..20)
        .map(|i| fx.item(&Fixture::presence(&format!("u{i}"))))
        .collect();
    let body = fx.body(items);
    let mut args = vec!["decrypt".to_owned()];
    args.extend(fx.receiver_args());
    args.push("-".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, err) = with_closed_stdout(&args, &body);
    assert_eq!(status.code(), Some(0), "decrypt: {err}");
    assert!(err.is_empty(), "decrypt: {err}");

    let out_dir = s(&fx.path("keys"));
    let resource = Fixture::presence("u1").to_string();
    let cert = s(&fx.cert_path);
    for (args, stdin) in [
        (vec!["keygen", "--out", out_dir.as_str()], &b""[..]),
        (
            vec!["encrypt", "--cert", cert.as_str(), "--cert-id", "c", "-"],
            resource.as_bytes(),
        ),
        (vec!["demo"], &b""[..]),
    ] {
        let (status, err) = with_closed_stdout(&args, stdin);
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

#[test]
fn offline_key_fetch_says_why_and_items_say_their_key_could_not_be_had() {
    let fx = Fixture::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = write(
        &fx,
        "body.json",
        &fx.body(vec![fx.item(&Fixture::presence("u1"))]),
    );
    let key = format!("{CERT_ID}={}", s(&fx.key_path));
    let url = format!("http://127.0.0.1:{port}/keys");
    let out = run(
        &[
            &["decrypt", "--key", &key][..],
            &checks("--jwks-url", &url),
            &[&path],
        ]
        .concat(),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("the connection was refused") && err.contains("--jwks FILE"),
        "{err}"
    );
    let line = &lines(&out)[0];
    assert!(
        line["error"].as_str().unwrap().contains("could not be had"),
        "{line}"
    );
}

#[test]
fn key_files_in_the_wrong_place_say_so() {
    let fx = Fixture::new();
    let key = s(&fx.key_path);
    let cert = s(&fx.cert_path);
    let body = write(&fx, "b.json", &fx.body(vec![]));
    let out = run(
        &[
            "decrypt",
            "--key",
            &key,
            "--cert",
            &key,
            "--insecure-skip-tokens",
            &body,
        ],
        b"",
    );
    assert_refused(&out, "this is a private key, not a certificate");
    let out = run(
        &["decrypt", "--key", &cert, "--insecure-skip-tokens", &body],
        b"",
    );
    assert_refused(&out, "this is a certificate, not a private key");
}
