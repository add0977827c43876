//! One meaning for each clientState spelling (issue 23, point 3): every source is a list
//! separated by line breaks and commas, and `subscription` refuses a file the receiving side
//! would read as anything but the one secret it puts in the subscription.

use crate::common::*;
use serde_json::Value;

const URL: &str = "https://receiver.example/notify";

fn subscription(fx: &Fixture, state_file: &str) -> std::process::Output {
    run(
        &[
            "subscription",
            "--resource",
            "/communications/presences/u1",
            "--notification-url",
            URL,
            "--cert",
            &s(&fx.cert_path),
            "--cert-id",
            CERT_ID,
            "--client-state-file",
            state_file,
        ],
        b"",
    )
}

/// `decrypt` of one item carrying the tests' clientState, with the clientState options `states`
/// (and the environment `env`) instead of `--client-state`.
fn decrypt_with(fx: &Fixture, states: &[&str], env: Option<&str>) -> std::process::Output {
    let body = fx.body(vec![fx.item(&Fixture::presence("u1"))]);
    let mut cmd = bin();
    cmd.args([
        "decrypt",
        "--key",
        &format!("{CERT_ID}={}", fx.key_path.display()),
        "--jwks",
        &s(&fx.jwks_path),
        "--app-id",
        APP_ID,
    ])
    .args(states)
    .arg("-")
    .env_remove("MSGRAPH_NOTIFY_CLIENT_STATE");
    if let Some(value) = env {
        cmd.env("MSGRAPH_NOTIFY_CLIENT_STATE", value);
    }
    process::run(&mut cmd, &body)
}

fn status(out: &std::process::Output) -> String {
    lines(out)[0]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_two_secret_file_is_refused_by_subscription_and_read_as_two_by_the_receiver() {
    let fx = Fixture::new();
    let rotation = fx.path("client-state");
    std::fs::write(&rotation, format!("old-secret\n{CLIENT_STATE}\n")).unwrap();

    // subscription: which of the two would Graph carry? Refused, with the way out.
    let out = subscription(&fx, &s(&rotation));
    assert_refused(&out, "holds 2 secrets");
    assert!(text(&out.stderr).contains("--client-state-file OLD --client-state-file NEW"));
    assert!(!text(&out.stderr).contains("old-secret"), "a secret echoed");
    assert!(out.stdout.is_empty());

    // The receiver reads the same file as the rotation it is: the new secret is accepted.
    let out = decrypt_with(&fx, &["--client-state-file", &s(&rotation)], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(status(&out), "decrypted");

    // A comma separates secrets too: a clientState with one is refused by subscription.
    let comma = fx.path("comma");
    std::fs::write(&comma, format!("old-secret,{CLIENT_STATE}")).unwrap();
    assert_refused(&subscription(&fx, &s(&comma)), "holds 2 secrets");
    let empty = fx.path("empty");
    std::fs::write(&empty, "\n \n").unwrap();
    assert_refused(&subscription(&fx, &s(&empty)), "holds no secret");
}

#[test]
fn the_secret_subscription_sends_is_the_one_the_receiver_compares() {
    let fx = Fixture::new();
    // White space around the secret and a Windows line end: dropped on both sides.
    let file = fx.path("client-state");
    std::fs::write(&file, format!("  {CLIENT_STATE} \r\n")).unwrap();
    let out = subscription(&fx, &s(&file));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["clientState"], CLIENT_STATE);
    let out = decrypt_with(&fx, &["--client-state-file", &s(&file)], None);
    assert_eq!(status(&out), "decrypted", "{}", text(&out.stderr));
}

#[test]
fn the_variable_and_the_option_split_as_the_file_does() {
    let fx = Fixture::new();
    for env in [
        format!("old-secret,{CLIENT_STATE}"),
        format!("old-secret\n{CLIENT_STATE}\n"),
        format!(" old-secret , {CLIENT_STATE} "),
    ] {
        let out = decrypt_with(&fx, &[], Some(&env));
        assert_eq!(status(&out), "decrypted", "{env:?}: {}", text(&out.stderr));
    }
    let out = decrypt_with(
        &fx,
        &["--client-state", &format!("old,{CLIENT_STATE}")],
        None,
    );
    assert_eq!(status(&out), "decrypted", "{}", text(&out.stderr));
    // Neither holds the tests' secret: rejected, whatever the separator.
    let out = decrypt_with(&fx, &[], Some("old-secret,other"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status(&out), "rejected");
    let out = decrypt_with(&fx, &["--client-state", " , "], None);
    assert_refused(&out, "an empty clientState secret");
}
