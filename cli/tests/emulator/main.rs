//! `msgraph-notify emulator` and `msgraph-notify serve`, both as processes over real sockets: a
//! subscription created with a certificate assertion handshakes with `serve`; triggered presence,
//! chatMessage and callEvent changes come out of `serve` decrypted, their tokens verified
//! against the emulator's published keys; lifecycle events come out as lifecycle items.

#[path = "../common/mod.rs"]
mod common;
#[cfg(feature = "manage")]
mod keeper_metrics;
#[cfg(feature = "manage")]
mod serve_keeper;
#[cfg(feature = "manage")]
mod subscriptions;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use test_support::emulator::{Endpoint, client_assertion};

const PATIENCE: Duration = Duration::from_secs(60);

/// A running `msgraph-notify emulator`, and its base URL.
struct Emulated {
    process: Captured,
    base: String,
}

impl Emulated {
    fn start(fx: &Fixture) -> Emulated {
        Self::start_with(fx, &[])
    }

    /// With further options (`--max-lifetime 20`).
    fn start_with(fx: &Fixture, extra: &[&str]) -> Emulated {
        let app_cert = fx.path("app-cert.pem");
        std::fs::write(&app_cert, test_support::other_keypair().1.to_pem()).unwrap();
        let process = Captured::spawn(
            bin()
                .args([
                    "emulator",
                    "--listen",
                    "127.0.0.1:0",
                    "--app",
                    &format!("{APP_ID}={}", app_cert.display()),
                    "--allow-http",
                    "--tenant",
                    TENANT,
                ])
                .args(extra),
            "emulator",
        );
        let base = process.wait_stderr("emulator listening", PATIENCE, |line| {
            line.split("emulator listening on ")
                .nth(1)
                .map(|s| s.trim().to_owned())
        });
        Emulated { process, base }
    }

    fn token_url(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.base)
    }

    /// An access token got with a PS256 certificate assertion.
    async fn access_token(&self) -> String {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let (key, cert) = test_support::other_keypair();
        let assertion = client_assertion(&self.token_url(), APP_ID, key, cert, false);
        let answer: Value = reqwest::Client::new()
            .post(self.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", APP_ID),
                ("scope", "https://graph.microsoft.com/.default"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"))
            .to_owned()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// Subscribes to `resource`, delivered to `url` (and `lifecycle`); (status, answer).
    async fn subscribe(
        &self,
        fx: &Fixture,
        token: &str,
        resource: &str,
        url: &str,
        lifecycle: Option<&str>,
    ) -> (u16, Value) {
        let minutes = if lifecycle.is_some() { 600 } else { 50 };
        let expiration = std::time::SystemTime::now() + Duration::from_secs(minutes * 60);
        let mut body = json!({
            "changeType": "updated",
            "notificationUrl": url,
            "resource": resource,
            "includeResourceData": true,
            "encryptionCertificate": fx.cert.encryption_certificate(),
            "encryptionCertificateId": CERT_ID,
            "expirationDateTime": msgraph_notify::subscription::format_date_time(expiration),
            "clientState": CLIENT_STATE,
        });
        if resource.contains("chats") {
            body["changeType"] = "created,updated".into();
        }
        if let Some(l) = lifecycle {
            body["lifecycleNotificationUrl"] = l.into();
        }
        self.post("/v1.0/subscriptions", Some(token), &body).await
    }
}

/// `serve` checking tokens against the emulator's published keys.
fn serve(fx: &Fixture, emulator: &Emulated) -> Served {
    Served::start(&[
        "--key".into(),
        format!("{CERT_ID}={}", fx.key_path.display()),
        "--jwks-url".into(),
        format!("{}/common/discovery/keys", emulator.base),
        "--app-id".into(),
        APP_ID.into(),
        "--tenant".into(),
        TENANT.into(),
        "--client-state".into(),
        CLIENT_STATE.into(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_in_the_emulator_come_out_of_serve_decrypted_and_verified() {
    let fx = Fixture::new();
    let emulator = Emulated::start(&fx);
    let served = serve(&fx, &emulator);
    let token = emulator.access_token().await;
    let url = format!("http://{}/notify", served.addr);
    let lifecycle = format!("http://{}/lifecycle", served.addr);
    let meeting = "communications/onlineMeetings(joinWebUrl='https://teams.example/l/meetup-join/1')/meetingCallEvents";

    // The handshake with serve: created.
    for (resource, lifecycle) in [
        ("/communications/presences/u1", None),
        ("/chats/getAllMessages", Some(lifecycle.as_str())),
        (meeting, Some(lifecycle.as_str())),
    ] {
        let (status, answer) = emulator
            .subscribe(&fx, &token, resource, &url, lifecycle)
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    // A receiver that does not echo the token: Graph's 400.
    let silent = Endpoint::start(|_| (202, "text/plain", String::new()));
    let (status, refused) = emulator
        .subscribe(
            &fx,
            &token,
            "/communications/presences/u2",
            &silent.url("/"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "ValidationError");

    let changes = [
        json!({"resource": "communications/presences/u1", "data": {"id": "u1", "availability": "Busy", "activity": "InACall"}}),
        json!({"resource": "chats('19:abc')/messages('1')", "changeType": "created", "count": 2}),
        json!({"resource": meeting, "count": 1}),
    ];
    for change in &changes {
        let (status, answer) = emulator.post("/_emulator/changes", None, change).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["subscriptionIds"].as_array().unwrap().len(), 1);
    }
    let lines = served.wait_for("four decrypted items", PATIENCE, |l| l.len() >= 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines.iter().all(|l| l["status"] == "decrypted"),
        "{lines:?}"
    );
    let mut types: Vec<String> = lines
        .iter()
        .map(|l| l["data"]["@odata.type"].as_str().unwrap_or("").to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "#microsoft.graph.callEvent",
            "#microsoft.graph.chatMessage",
            "#microsoft.graph.chatMessage",
            "#microsoft.graph.presence"
        ]
    );
    let presence = lines
        .iter()
        .find(|l| l["data"]["@odata.type"] == "#microsoft.graph.presence")
        .unwrap();
    assert_eq!(presence["data"]["availability"], "Busy");
    drop(served);
    drop(emulator.process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lifecycle_event_comes_out_of_serve_as_a_lifecycle_item() {
    let fx = Fixture::new();
    let emulator = Emulated::start(&fx);
    let served = serve(&fx, &emulator);
    let token = emulator.access_token().await;
    let url = format!("http://{}/notify", served.addr);
    let lifecycle = format!("http://{}/lifecycle", served.addr);
    let (status, created) = emulator
        .subscribe(&fx, &token, "/chats/getAllMessages", &url, Some(&lifecycle))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let events = ["reauthorizationRequired", "missed", "subscriptionRemoved"];
    for (n, event) in events.iter().enumerate() {
        let body = json!({"subscriptionId": id, "event": event});
        let (status, answer) = emulator.post("/_emulator/lifecycle", None, &body).await;
        assert_eq!(status, 202, "{answer}");
        // One at a time, so the order out of serve is the order sent.
        served.wait_for(event, PATIENCE, |l| l.len() > n);
    }
    let lines = served.json_lines();
    let got: Vec<&str> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["status"], "lifecycle", "{l}");
            assert_eq!(l["subscriptionId"], id, "{l}");
            l["lifecycleEvent"].as_str().unwrap()
        })
        .collect();
    assert_eq!(got, events);
    // The deliveries went to the lifecycle URL, each accepted.
    let log: Value = reqwest::get(format!("{}/_emulator/deliveries", emulator.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lifecycle_posts: Vec<&Value> = log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "lifecycle")
        .collect();
    assert_eq!(lifecycle_posts.len(), 3);
    assert!(
        lifecycle_posts
            .iter()
            .all(|d| d["url"] == lifecycle.as_str() && d["status"] == 202)
    );
    drop(served);
    drop(emulator.process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_standard_library_receiver_of_the_readme_gets_basic_notifications() {
    let Some(python) = process::tool("PYTHON3", "python3", "python3", "apt-get install python3")
    else {
        return;
    };
    let fx = Fixture::new();
    let emulator = Emulated::start(&fx);
    let port = test_support::net::free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/emulator_receiver.py"
    );
    let receiver = Captured::spawn(
        std::process::Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .env("CLIENT_STATE", CLIENT_STATE),
        "emulator_receiver.py",
    );
    test_support::net::wait_for_port(port, PATIENCE, "emulator_receiver.py", || {
        format!("{:?}", receiver.stderr.snapshot())
    });
    let token = emulator.access_token().await;
    let expiration = std::time::SystemTime::now() + Duration::from_secs(50 * 60);
    let body = json!({
        "changeType": "created,updated",
        "notificationUrl": format!("http://127.0.0.1:{port}/notify"),
        "resource": "/chats/c1/messages",
        "expirationDateTime": msgraph_notify::subscription::format_date_time(expiration),
        "clientState": CLIENT_STATE,
    });
    let (status, created) = emulator
        .post("/v1.0/subscriptions", Some(&token), &body)
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["includeResourceData"], false);
    let change = json!({"resource": "chats/c1/messages/7", "changeType": "created", "count": 2});
    let (status, _) = emulator.post("/_emulator/changes", None, &change).await;
    assert_eq!(status, 202);
    let lines = receiver.wait_for("two items printed", PATIENCE, |l| l.len() >= 2);
    for line in &lines {
        assert_eq!(line["subscriptionId"], created["id"], "{line}");
        assert_eq!(line["changeType"], "created");
        assert_eq!(line["resource"], "chats/c1/messages/7");
    }
    drop(receiver);
    drop(emulator.process);
}

#[test]
fn unusable_options_are_refused_with_what_to_do() {
    let fx = Fixture::new();
    let empty = fx.path("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let missing = fx.path("missing.pem");
    let cases = [
        (
            vec!["--app".to_owned(), "no-separator".to_owned()],
            "APP_ID=CERT_FILE or APP_ID:SECRET_FILE",
        ),
        (
            vec!["--app".to_owned(), format!("{APP_ID}:{}", empty.display())],
            "holds no secret",
        ),
        (
            vec![
                "--app".to_owned(),
                format!("{APP_ID}={}", missing.display()),
            ],
            "cannot read",
        ),
        (
            vec![
                "--app".to_owned(),
                format!("{APP_ID}={}", fx.key_path.display()),
            ],
            APP_ID,
        ),
        (
            vec!["--max-lifetime".to_owned(), "0".to_owned()],
            "at least 1 second",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec![
            "emulator".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        all.extend(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        assert_refused(&run(&all, b""), needle);
    }
}
