//! `subscription`, driven through the built binary: the printed body is what Graph documents, and
//! what Graph would refuse is refused with a reason and exit code 2.

use std::time::{Duration, SystemTime};

use crate::common::*;
use msgraph_notify::subscription::parse_date_time;
use serde_json::Value;

const URL: &str = "https://receiver.example/notify";
const LIFECYCLE: &str = "https://receiver.example/lifecycle";

fn subscription(fx: &Fixture, extra: &[&str]) -> std::process::Output {
    let cert = s(&fx.cert_path);
    let mut args = vec![
        "subscription",
        "--notification-url",
        URL,
        "--cert",
        &cert,
        "--cert-id",
        "receiver-2026",
    ];
    args.extend_from_slice(extra);
    run(&args, b"")
}

/// The body, and the lifetime its expirationDateTime gives, measured around the run.
fn body_and_lifetime(out: &std::process::Output, before: SystemTime) -> (Value, Duration) {
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let after = SystemTime::now();
    let body: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let expiration = body["expirationDateTime"]
        .as_str()
        .expect("expirationDateTime");
    assert_eq!(expiration.len(), 28, "{expiration}");
    assert!(
        expiration.ends_with('Z') && expiration.as_bytes()[19] == b'.',
        "{expiration}"
    );
    let at = parse_date_time(expiration).expect("Graph's date format");
    // Whole seconds are not guaranteed: allow the run's duration around the expected lifetime.
    let from_before = at.duration_since(before).unwrap_or_default();
    let from_after = at.duration_since(after).unwrap_or_default();
    (
        body,
        Duration::from_secs((from_before.as_secs() + from_after.as_secs()).div_ceil(2)),
    )
}

#[test]
fn presence_body_lasts_60_minutes_with_every_documented_field() {
    let fx = Fixture::new();
    std::fs::write(fx.path("state"), "s3cret-state\n").unwrap();
    let state = s(&fx.path("state"));
    let before = SystemTime::now();
    let out = subscription(
        &fx,
        &[
            "--resource",
            "/communications/presences/{id}",
            "--client-state-file",
            &state,
        ],
    );
    let (body, lifetime) = body_and_lifetime(&out, before);
    assert!((3590..=3600).contains(&lifetime.as_secs()), "{lifetime:?}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "changeType",
            "clientState",
            "encryptionCertificate",
            "encryptionCertificateId",
            "expirationDateTime",
            "includeResourceData",
            "notificationUrl",
            "resource",
        ]
    );
    assert_eq!(body["changeType"], "updated");
    assert_eq!(body["includeResourceData"], true);
    assert_eq!(body["resource"], "/communications/presences/{id}");
    assert_eq!(body["notificationUrl"], URL);
    assert_eq!(
        body["encryptionCertificate"],
        fx.cert.encryption_certificate()
    );
    assert_eq!(body["encryptionCertificateId"], "receiver-2026");
    assert_eq!(
        body["clientState"], "s3cret-state",
        "one trailing newline dropped"
    );
    // No secret on the command line: the state came from the file.
    // Over 60 minutes is refused with the reason.
    let out = subscription(
        &fx,
        &[
            "--resource",
            "/communications/presences/{id}",
            "--minutes",
            "61",
        ],
    );
    assert_refused(&out, "at most 60 minutes");
    assert!(out.stdout.is_empty());
}

#[test]
fn all_chat_messages_need_a_lifecycle_url_beyond_an_hour() {
    let fx = Fixture::new();
    let out = subscription(&fx, &["--resource", "/chats/getAllMessages"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("lifecycleNotificationUrl") && err.contains("4320"),
        "{err}"
    );

    let before = SystemTime::now();
    let out = subscription(
        &fx,
        &[
            "--resource",
            "/chats/getAllMessages",
            "--lifecycle-url",
            LIFECYCLE,
            "--change-type",
            "created,updated",
        ],
    );
    let (body, lifetime) = body_and_lifetime(&out, before);
    assert!(
        (4320 * 60 - 10..=4320 * 60).contains(&lifetime.as_secs()),
        "{lifetime:?}"
    );
    assert_eq!(body["changeType"], "created,updated");
    assert_eq!(body["lifecycleNotificationUrl"], LIFECYCLE);
    assert_eq!(body["resource"], "/chats/getAllMessages");
    assert_eq!(body["includeResourceData"], true);
    assert!(body.get("clientState").is_none());

    // 60 minutes need no lifecycle URL.
    let before = SystemTime::now();
    let out = subscription(
        &fx,
        &["--resource", "/chats/getAllMessages", "--minutes", "60"],
    );
    let (body, lifetime) = body_and_lifetime(&out, before);
    assert!((3590..=3600).contains(&lifetime.as_secs()), "{lifetime:?}");
    assert_eq!(body["changeType"], "created,updated,deleted");
}

#[test]
fn what_graph_would_refuse_exits_2_with_the_reason() {
    let fx = Fixture::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--resource", "/users/u/drive/root"], "resource data"),
        (
            &[
                "--resource",
                "/communications/onlineMeetings/getAllRecordings",
                "--minutes",
                "30",
                "--change-type",
                "updated",
            ],
            "created",
        ),
        (&["--resource", "/users/u/messages"], "$select"),
        (
            &[
                "--resource",
                "/chats/getAllMessages",
                "--minutes",
                "60",
                "--lifecycle-url",
                "http://insecure.example/l",
            ],
            "lifecycleNotificationUrl must be an https",
        ),
        (
            &[
                "--resource",
                "/chats/getAllMessages",
                "--minutes",
                "5000",
                "--lifecycle-url",
                LIFECYCLE,
            ],
            "at most 4320 minutes",
        ),
    ];
    for (args, reason) in cases {
        let out = subscription(&fx, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(reason),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A certificate that is not one.
    std::fs::write(fx.path("junk.pem"), "not a certificate").unwrap();
    let junk = s(&fx.path("junk.pem"));
    let out = run(
        &[
            "subscription",
            "--resource",
            "/chats/getAllMessages",
            "--notification-url",
            URL,
            "--cert",
            &junk,
            "--cert-id",
            "c",
        ],
        b"",
    );
    assert_refused(&out, "junk.pem");
    // A clientState over 128 characters.
    std::fs::write(fx.path("long"), "x".repeat(129)).unwrap();
    let long = s(&fx.path("long"));
    let out = subscription(
        &fx,
        &[
            "--resource",
            "/communications/presences/u",
            "--client-state-file",
            &long,
        ],
    );
    assert_refused(&out, "clientState");
}
