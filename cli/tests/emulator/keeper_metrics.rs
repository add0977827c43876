//! Numbers from the start for the subscription keeper (issue 23, point 8): the `/metrics` of a
//! `serve --subscriptions` that has just started lists every keeper action and lifecycle event
//! at 0, before the first one happens.

use std::time::Duration;

use super::serve_keeper::{serve_keeping, with_state};
use super::*;

#[test]
fn the_keepers_series_exist_at_zero_from_the_start() {
    let fx = Fixture::new();
    let emulator = Emulated::start(&fx);
    let (port, admin) = (
        test_support::net::free_port(),
        test_support::net::free_port(),
    );
    std::fs::write(
        fx.path("subscriptions.json"),
        json!([{"resource": "/communications/presences/4f3e8b2a-9c1d-4e5f-8a6b-7c8d9e0f1a2b",
                "notificationUrl": format!("http://127.0.0.1:{port}/notify"),
                "encryptionCertificateId": CERT_ID}])
        .to_string(),
    )
    .unwrap();
    let mut served = serve_keeping(&fx, &emulator, port, &with_state(&fx, admin));
    served.wait_stderr("the admin listener", PATIENCE, |l| {
        l.contains("admin on http://").then_some(())
    });
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let metrics = http(admin, "GET", "/metrics", b"").body;
    let zero = |series: String| {
        assert!(
            metrics.lines().any(|l| l == format!("{series} 0")),
            "{series} 0 is not in:\n{metrics}"
        );
    };
    for action in ["renewed", "reauthorized", "recreated", "resync", "failed"] {
        zero(format!(
            "msgraph_notify_subscription_actions_total{{action=\"{action}\"}}"
        ));
    }
    for event in ["reauthorizationRequired", "subscriptionRemoved", "missed"] {
        zero(format!(
            "msgraph_notify_lifecycle_events_total{{event=\"{event}\"}}"
        ));
    }
    assert_eq!(served.stop_with("-TERM", Duration::from_secs(20)), Some(0));
}
