//! Numbers from the start (issue 23, point 8): a freshly started `serve` says on stderr, in its
//! log format, what it listens on, the keys it loaded (id, certificate, notAfter), the replay
//! store, where its output goes and its threads; its `/metrics` lists every known series at 0
//! before any event, and each certificate's expiry.

use serde_json::Value;

use crate::common::*;

#[test]
fn a_fresh_serve_says_what_it_runs_with_and_counts_from_zero() {
    let fx = Fixture::new();
    let mut args = fx.receiver_args();
    args.extend(
        [
            "--cert",
            &s(&fx.cert_path),
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ]
        .map(String::from),
    );
    let mut served = Served::start(&args);
    let admin = admin_addr(&served);
    let metrics = http(admin, "GET", "/metrics", b"");
    assert_eq!(metrics.status, 200);

    let zero = |series: &str| {
        assert!(
            metrics.body.lines().any(|l| l == format!("{series} 0")),
            "{series} 0 is not in:\n{}",
            metrics.body
        );
    };
    for status in [
        "decrypted",
        "basic",
        "lifecycle",
        "rejected",
        "validation",
        "offloaded",
    ] {
        zero(&format!(
            "msgraph_notify_items_total{{status=\"{status}\"}}"
        ));
    }
    for reason in [
        "token",
        "client_state",
        "signature",
        "duplicate",
        "key",
        "replay_store",
    ] {
        zero(&format!(
            "msgraph_notify_rejected_items_total{{reason=\"{reason}\"}}"
        ));
    }
    for code in [200, 202, 400, 413, 503] {
        zero(&format!("msgraph_notify_requests_total{{code=\"{code}\"}}"));
    }
    for dependency in [
        "signing_keys",
        "replay_store",
        "decryption_key",
        "payload_store",
    ] {
        let label = format!("{{dependency=\"{dependency}\"}}");
        zero(&format!("msgraph_notify_dependency_unavailable{label}"));
        zero(&format!("msgraph_notify_waiting_items{label}"));
        zero(&format!("msgraph_notify_unavailable_answers_total{label}"));
    }
    for result in ["ok", "error"] {
        zero(&format!(
            "msgraph_notify_tls_certificate_reloads_total{{result=\"{result}\"}}"
        ));
    }
    zero("msgraph_notify_private_key_operations_total");
    let expiry = format!(
        "msgraph_notify_certificate_expiry_timestamp_seconds{{key_id=\"{CERT_ID}\",thumbprint=\"{}\"}} {}",
        fx.cert.thumbprint(),
        fx.cert.not_after_timestamp()
    );
    assert!(
        metrics.body.lines().any(|l| l == expiry),
        "{expiry} is not in:\n{}",
        metrics.body
    );

    // One POST: its series move from 0.
    let body = fx.body(vec![fx.item(&Fixture::presence("counted"))]);
    assert_eq!(served.post("/", &body).status, 202);
    served.wait_lines(1, std::time::Duration::from_secs(10));
    let after = http(admin, "GET", "/metrics", b"").body;
    assert!(
        after
            .lines()
            .any(|l| l == "msgraph_notify_items_total{status=\"decrypted\"} 1"),
        "{after}"
    );
    assert_eq!(served.terminate(), Some(0));

    // The start-up lines, each a JSON object (--log-format json).
    let messages: Vec<String> = served
        .stderr
        .snapshot()
        .iter()
        .map(|l| {
            let line: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            line["message"].as_str().expect("message").to_owned()
        })
        .collect();
    let said = |needle: &str| {
        assert!(
            messages.iter().any(|m| m.contains(needle)),
            "{needle:?} not said: {messages:#?}"
        );
    };
    said("listening on http://127.0.0.1:");
    said("admin on http://127.0.0.1:");
    said(&format!(
        "1 key loaded: key {CERT_ID} (certificate {}, notAfter {})",
        fx.cert.thumbprint(),
        fx.cert.not_after()
    ));
    said("replay store: memory (this process)");
    said("output: JSON Lines on stdout");
    said("threads: ");
}

#[test]
fn the_replay_store_is_said_without_its_password() {
    let Some(redis) =
        test_support::redis::RedisServer::start_with(&["--requirepass", "pw-never-printed"])
    else {
        return;
    };
    let fx = Fixture::new();
    let plain = redis.url();
    let with_password = plain.replacen("redis://", "redis://:pw-never-printed@", 1);
    let mut args = fx.receiver_args();
    args.extend([
        "--replay".into(),
        with_password,
        "--log-format".into(),
        "text".into(),
    ]);
    let mut served = Served::start(&args);
    let body = fx.body(vec![fx.item(&Fixture::presence("checked"))]);
    assert_eq!(served.post("/", &body).status, 202);
    served.wait_lines(1, std::time::Duration::from_secs(10));
    assert_eq!(served.terminate(), Some(0));
    let stderr = served.stderr.snapshot().join("\n");
    assert!(
        stderr.contains(&format!("replay store: {plain}")),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-never-printed"), "{stderr}");
}

/// The thread names of a running process, counted (`/proc/PID/task/*/comm`).
fn threads_named(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut names = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task") {
        let comm =
            std::fs::read_to_string(task.expect("task").path().join("comm")).unwrap_or_default();
        // Workers are told apart by their number: count them under one name.
        let name = match comm.trim() {
            worker if worker.starts_with("serve-work-") => "serve-work-N".to_owned(),
            other => other.to_owned(),
        };
        *names.entry(name).or_insert(0) += 1;
    }
    names
}

#[test]
fn the_threads_are_those_asked_for_and_told_apart_by_name() {
    let fx = Fixture::new();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    for (options, workers, io_threads) in [
        (vec![], cpus, (cpus / 4).max(1)),
        (
            vec![
                "--workers",
                "3",
                "--io-threads",
                "2",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            3,
            2,
        ),
    ] {
        let mut args = fx.receiver_args();
        args.extend(options.iter().map(|o| o.to_string()));
        args.extend(["--log-format".into(), "text".into()]);
        let mut served = Served::start_with(&args, |command| {
            // What the environment could set instead of the options.
            command
                .env_remove("MSGRAPH_NOTIFY_WORKERS")
                .env_remove("MSGRAPH_NOTIFY_IO_THREADS");
        });
        let body = fx.body(vec![fx.item(&Fixture::presence("threaded"))]);
        assert_eq!(served.post("/", &body).status, 202);
        served.wait_lines(1, std::time::Duration::from_secs(10));
        // Every thread is up and named once an item was written (POSTs are taken only after the
        // workers start). Within Linux's 15 bytes, so `top -H` and `perf` tell them apart.
        let names = threads_named(served.id());
        assert_eq!(names.get("serve-work-N"), Some(&workers), "{names:?}");
        assert_eq!(names.get("serve-io"), Some(&io_threads), "{names:?}");
        // The admin listener on a thread of its own: a probe is answered while the connections'
        // threads are busy.
        let admin = usize::from(options.contains(&"--admin-listen"));
        assert_eq!(
            names.get("serve-admin").copied().unwrap_or(0),
            admin,
            "{names:?}"
        );
        assert_eq!(served.terminate(), Some(0));
        let stderr = served.stderr.snapshot().join("\n");
        let said = format!(
            "threads: {workers} verifying and decrypting (--workers), {io_threads} for \
             connections (--io-threads)"
        );
        assert!(stderr.contains(&said), "{said:?} not in:\n{stderr}");
    }
}
