//! `msgraph-notify subscriptions list|ensure|renew|delete` against `msgraph-notify emulator`,
//! both processes: a certificate assertion from a key file, a client secret from the
//! environment, a delegated token from --graph-token-command; the state file makes a second
//! `ensure` adopt instead of creating twice; Graph's errors are printed with Graph's code.

use std::process::Output;

use test_support::emulator::Endpoint;

use super::*;

const PRESENCE: &str = "/communications/presences/4f3e8b2a-9c1d-4e5f-8a6b-7c8d9e0f1a2b";

/// The app's credential: its key and the certificate registered with the emulator, one PEM file.
pub(crate) fn credential_file(fx: &Fixture) -> String {
    let (key, cert) = test_support::other_keypair();
    let path = fx.path("app-credential.pem");
    std::fs::write(
        &path,
        format!("{}{}", key.to_pkcs8_pem().as_str(), cert.to_pem()),
    )
    .unwrap();
    s(&path)
}

fn graph_args(emulator: &Emulated, fx: &Fixture) -> Vec<String> {
    vec![
        "--graph-url".into(),
        format!("{}/v1.0", emulator.base),
        "--authority".into(),
        emulator.base.clone(),
        "--tenant".into(),
        TENANT.into(),
        "--client-id".into(),
        APP_ID.into(),
        "--client-credential".into(),
        credential_file(fx),
    ]
}

fn subscriptions(args: &[String]) -> Output {
    let mut all = vec!["subscriptions".to_owned()];
    all.extend(args.iter().cloned());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run(&refs, b"")
}

fn ok_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lines(out)
}

#[test]
fn ensure_creates_once_then_adopts_and_list_renew_delete_print_graphs_answers() {
    let fx = Fixture::new();
    let emulator = Emulated::start(&fx);
    let receiver = Endpoint::echoing();
    let desired = fx.path("subscriptions.json");
    std::fs::write(
        &desired,
        json!([
            {"resource": PRESENCE, "notificationUrl": receiver.url("/notify"),
             "encryptionCertificateId": CERT_ID},
            {"resource": "/chats/getAllMessages", "changeType": "created,updated",
             "notificationUrl": receiver.url("/notify"),
             "lifecycleNotificationUrl": receiver.url("/lifecycle"),
             "encryptionCertificateId": CERT_ID}
        ])
        .to_string(),
    )
    .unwrap();
    let mut ensure: Vec<String> = vec![
        "ensure".into(),
        "--subscriptions".into(),
        s(&desired),
        "--subscription-state".into(),
        s(&fx.path("state.json")),
        "--key".into(),
        format!("{CERT_ID}={}", fx.key_path.display()),
        "--cert".into(),
        s(&fx.cert_path),
        "--client-state".into(),
        CLIENT_STATE.into(),
    ];
    ensure.extend(graph_args(&emulator, &fx));

    let first = ok_lines(&subscriptions(&ensure));
    let created: Vec<&str> = first
        .iter()
        .filter(|l| l["keeper"] == "created")
        .map(|l| l["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), 2, "{first:?}");
    // Graph handshook with the receiver at both URLs before answering 201.
    let handshakes = receiver
        .requests()
        .iter()
        .filter(|r| r.validation_token().is_some())
        .count();
    assert_eq!(handshakes, 3, "notification URL twice, lifecycle URL once");

    // Run again (a cron job, a restart): the state file's ids are adopted, nothing is created.
    let second = ok_lines(&subscriptions(&ensure));
    assert!(
        second.iter().all(|l| l["keeper"] == "adopted"),
        "{second:?}"
    );
    assert_eq!(second.len(), 2);

    let mut list = vec!["list".to_owned()];
    list.extend(graph_args(&emulator, &fx));
    let listed = ok_lines(&subscriptions(&list));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().all(|l| l.get("clientState").is_none()),
        "no secret printed"
    );

    let presence = listed.iter().find(|l| l["resource"] == PRESENCE).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut renew = vec![
        "renew".into(),
        "--id".into(),
        presence.clone(),
        "--minutes".into(),
        "50".into(),
    ];
    renew.extend(graph_args(&emulator, &fx));
    let renewed = ok_lines(&subscriptions(&renew));
    assert_eq!(renewed[0]["id"], presence.as_str());
    let left = seconds_until(renewed[0]["expirationDateTime"].as_str().unwrap());
    assert!((49 * 60..=50 * 60).contains(&left), "{left}");

    let mut delete = vec!["delete".into(), "--id".into(), presence.clone()];
    delete.extend(graph_args(&emulator, &fx));
    assert_eq!(
        ok_lines(&subscriptions(&delete)),
        [json!({"deleted": presence})]
    );
    assert_eq!(ok_lines(&subscriptions(&list)).len(), 1);

    // Graph's own refusal comes back with its code and the request id, exit 2.
    let out = subscriptions(&renew);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("404 ResourceNotFound"), "{stderr}");
}

fn seconds_until(date_time: &str) -> i64 {
    let t = msgraph_notify::subscription::parse_date_time(date_time).expect("date-time");
    match t.duration_since(std::time::SystemTime::now()) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap(),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_command_gives_a_delegated_token_and_its_failure_is_named() {
    let fx = Fixture::new();
    let emulator = Emulated::start(&fx);
    let token = fx.path("token.txt");
    std::fs::write(&token, emulator.access_token().await).unwrap();
    let base = [
        "list".to_owned(),
        "--graph-url".into(),
        format!("{}/v1.0", emulator.base),
        "--graph-token-command".into(),
    ];
    let mut args = base.to_vec();
    args.push(format!("cat {}", token.display()));
    assert!(ok_lines(&subscriptions(&args)).is_empty());

    let mut args = base.to_vec();
    args.push("echo 'not logged in: run az login' >&2; exit 1".into());
    let out = subscriptions(&args);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("access-token command failed") && stderr.contains("run az login"),
        "{stderr}"
    );

    // Two credentials at once are refused, saying which are possible.
    let mut args = base.to_vec();
    args.push(format!("cat {}", token.display()));
    args.extend(["--client-secret-file".into(), s(&token)]);
    let out = subscriptions(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one credential"));
}
