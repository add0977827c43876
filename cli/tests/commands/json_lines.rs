//! `decrypt` on JSON Lines (issue 23, point 1): each line is its own body; the lines that can be
//! saved are saved, a bad line is named by its number, the exit status says some were not, and
//! one summary line on stderr counts the items by status.

use crate::common::*;
use msgraph_notify::token::TokenVersion;
use serde_json::json;

/// `n` genuine one-item bodies, one per line, under one token.
fn capture(fx: &Fixture, n: usize) -> String {
    let token = fx.issuer.token(TokenVersion::V2, APP_ID, TENANT);
    let mut text = String::new();
    for i in 0..n {
        let body = json!({
            "value": [fx.item(&Fixture::presence(&format!("user-{i}")))],
            "validationTokens": [token],
        });
        text.push_str(&body.to_string());
        text.push('\n');
    }
    text
}

fn decrypt(fx: &Fixture, path: &str) -> std::process::Output {
    let mut args = vec!["decrypt".to_owned()];
    args.extend(fx.receiver_args());
    args.push(path.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, b"")
}

#[test]
fn a_thousand_good_lines_and_a_truncated_last_one_are_saved_and_the_bad_one_named() {
    let fx = Fixture::new();
    let mut capture_text = capture(&fx, 1000);
    // The capture was cut short while the last body was being written.
    let last = String::from_utf8(fx.body(vec![fx.item(&Fixture::presence("cut"))])).unwrap();
    capture_text.push_str(&last[..last.len() / 2]);
    let path = fx.path("captured.jsonl");
    std::fs::write(&path, &capture_text).unwrap();

    let out = decrypt(&fx, &s(&path));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let items = lines(&out);
    assert_eq!(items.len(), 1000, "stderr: {stderr}");
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["status"], "decrypted", "{item}");
        assert_eq!(item["line"], i + 1);
        assert_eq!(item["data"]["id"], format!("user-{i}"));
    }
    assert!(
        stderr.contains("captured.jsonl line 1001:"),
        "the bad line by number: {stderr}"
    );
    assert!(
        stderr.contains("1000 items (1000 decrypted) from 1001 lines, 1 unusable, in "),
        "the summary: {stderr}"
    );
    assert!(
        stderr.contains("1 of 1001 lines unusable (line 1001)"),
        "{stderr}"
    );
}

#[test]
fn bad_lines_in_the_middle_are_named_and_the_others_decrypted() {
    let fx = Fixture::new();
    let good = capture(&fx, 3);
    let good: Vec<&str> = good.lines().collect();
    // Not JSON, JSON of the wrong shape (a key set), a collection with a forged token.
    let mixed = [
        good[0],
        "this is not json",
        good[1],
        r#"{"keys": []}"#,
        &String::from_utf8(fx.forged_body("forged")).unwrap(),
        "",
        good[2],
    ]
    .join("\n");
    let path = fx.path("mixed.jsonl");
    std::fs::write(&path, mixed).unwrap();

    let out = decrypt(&fx, &s(&path));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let items = lines(&out);
    let seen: Vec<(u64, &str)> = items
        .iter()
        .map(|i| (i["line"].as_u64().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "decrypted"),
            (3, "decrypted"),
            (5, "rejected"),
            (7, "decrypted")
        ]
    );
    assert!(stderr.contains("mixed.jsonl line 2: "), "{stderr}");
    assert!(stderr.contains("mixed.jsonl line 4: "), "{stderr}");
    assert!(
        stderr.contains("4 items (3 decrypted, 1 rejected) from 6 lines, 2 unusable"),
        "{stderr}"
    );
    assert!(stderr.contains("(lines 2, 4)"), "{stderr}");
}

#[test]
fn one_body_gets_the_summary_and_a_cut_pretty_printed_body_stays_one_document() {
    let fx = Fixture::new();
    let out = decrypt_stdin(&fx, &fx.body(vec![fx.item(&Fixture::presence("u1"))]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("msgraph-notify: decrypt -: 1 item (1 decrypted), in "),
        "{stderr}"
    );

    // A pretty-printed body cut short is one broken document, not lines: its parse error.
    let body: serde_json::Value =
        serde_json::from_slice(&fx.body(vec![fx.item(&Fixture::presence("u2"))])).unwrap();
    let pretty = serde_json::to_string_pretty(&body).unwrap();
    let out = decrypt_stdin(&fx, &pretty.as_bytes()[..pretty.len() / 2]);
    assert_refused(&out, "not JSON");
    assert!(out.stdout.is_empty());
    assert!(
        !text(&out.stderr).contains(" line 1:"),
        "{}",
        text(&out.stderr)
    );
}

fn decrypt_stdin(fx: &Fixture, body: &[u8]) -> std::process::Output {
    let mut args = vec!["decrypt".to_owned()];
    args.extend(fx.receiver_args());
    args.push("-".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, body)
}
