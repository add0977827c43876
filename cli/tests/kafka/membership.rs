//! `consume`'s group membership as the operator sees it: the join, the assignment and each
//! rebalance logged on stderr; a static member (`--group-instance-id`) killed and restarted gets
//! its partitions back before its session timeout would have let the group move them; the
//! options in `--help`; TLS asked of a broker that speaks none, and a SASL login it refuses, fail
//! with a clear error (and the password never shown).

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::{PATIENCE, broker_with, produce, producer, record, tag};
use test_support::process::Captured;

/// `consume` as an operator types it, with `extra` options.
fn consume(fx: &Fixture, brokers: &str, topic: &str, extra: &[&str]) -> Captured {
    let mut command: Command = bin();
    command
        .args(["consume", "--brokers", brokers, "--topic", topic])
        .args(["--group", "members"])
        .args(["--key", &format!("{CERT_ID}={}", fx.key_path.display())])
        .args(["--client-state", CLIENT_STATE])
        .args(extra);
    Captured::spawn(&mut command, "consume")
}

/// Waits for a stderr line holding every one of `needles`; returns it.
fn logged(consumer: &Captured, what: &str, needles: &[&str]) -> String {
    consumer.wait_stderr(what, PATIENCE, |line| {
        needles
            .iter()
            .all(|n| line.contains(n))
            .then(|| line.to_owned())
    })
}

#[test]
fn consume_logs_the_join_the_assignment_and_each_rebalance() {
    let Some(broker) = broker_with("members", 2) else {
        return;
    };
    let fx = Fixture::new();
    let session = ["--session-timeout", "10"];
    let first = consume(
        &fx,
        &broker.address(),
        "members",
        &[&session[..], &["--group-instance-id", "first"]].concat(),
    );
    logged(
        &first,
        "the join announced",
        &["joining group members", "static member first"],
    );
    logged(
        &first,
        "the first assignment",
        &[
            "joined group members as static member first",
            "assigned partitions members[0, 1]",
        ],
    );

    // A second member: the first gives up its partitions and gets one back.
    let mut second = consume(
        &fx,
        &broker.address(),
        "members",
        &[&session[..], &["--group-instance-id", "second"]].concat(),
    );
    logged(
        &first,
        "the revocation",
        &[
            "rebalance in group members",
            "partitions members[0, 1] revoked",
        ],
    );
    let reassigned = logged(
        &first,
        "the new assignment",
        &["rebalance in group members", "assigned"],
    );
    let joined = logged(&second, "the second join", &["joined group members"]);
    let one_each = |line: &str| line.contains("members[0]") || line.contains("members[1]");
    assert!(one_each(&reassigned), "{reassigned}");
    assert!(one_each(&joined), "{joined}");
    assert_eq!(second.stop_with("-TERM", PATIENCE), Some(0));
}

#[test]
fn a_static_member_killed_and_restarted_resumes_before_its_session_timeout() {
    let Some(broker) = broker_with("static", 1) else {
        return;
    };
    let fx = Fixture::new();
    // A member that came back only through the expiry of the killed one's session would not
    // read within the bound below. (tansu holds a group's joins for about half the session
    // timeout, static or not: the bound is the session timeout itself.)
    const SESSION_SECS: u64 = 60;
    let options = [
        "--session-timeout",
        "60",
        "--group-instance-id",
        "decrypter-0",
    ];
    let kafka = producer(&broker);
    produce(
        &kafka,
        "static",
        &[record(vec![fx.item(&Fixture::presence("r1"))])],
    );
    let mut first = consume(&fx, &broker.address(), "static", &options);
    first.wait_for("consume: the first record", PATIENCE, |l| {
        l.iter().any(|l| tag(l) == Some("r1"))
    });
    // Committed (every 200 ms), then killed without leaving the group.
    std::thread::sleep(Duration::from_secs(1));
    first.stop_with("-KILL", PATIENCE);

    let started = std::time::Instant::now();
    let second = consume(&fx, &broker.address(), "static", &options);
    produce(
        &kafka,
        "static",
        &[record(vec![fx.item(&Fixture::presence("r2"))])],
    );
    let bound = Duration::from_secs(SESSION_SECS);
    let lines = second.wait_for("consume: the next record after the restart", bound, |l| {
        l.iter().any(|l| tag(l) == Some("r2"))
    });
    assert!(
        started.elapsed() < bound,
        "the restarted member waited for its session to expire"
    );
    // It resumed at the committed offset: the first record is not read again.
    assert!(lines.iter().all(|l| tag(l) != Some("r1")), "{lines:?}");
    logged(
        &second,
        "the rejoin",
        &["joined group members as static member decrypter-0"],
    );
}

#[test]
fn consume_help_lists_the_session_timeout_and_the_static_membership() {
    let out = run(&["consume", "--help"], b"");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for option in [
        "--session-timeout <SECS>",
        "--group-instance-id <ID>",
        "--kafka-security-protocol <PROTOCOL>",
        "--kafka-sasl-mechanism <MECHANISM>",
        "--kafka-sasl-password-file <FILE>",
        "--kafka-ssl-ca-location <FILE>",
        "--event-hubs-connection-string-env <VAR>",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    assert!(help.contains("[default: 45]"), "{help}");
    assert!(help.contains("msgraph-notify-HOST-GROUP"), "{help}");
}

#[test]
fn tls_asked_of_a_plaintext_broker_fails_with_a_clear_error() {
    let Some(broker) = broker_with("secured", 1) else {
        return;
    };
    let fx = Fixture::new();
    let mut consumer = consume(
        &fx,
        &broker.address(),
        "secured",
        &["--kafka-security-protocol", "ssl"],
    );
    // librdkafka gives up on the handshake after its socket.connection.setup.timeout.ms (30 s).
    consumer.wait_stderr("the TLS failure", PATIENCE, |line| {
        (line.contains("Kafka: ") && line.to_ascii_lowercase().contains("ssl_handshake"))
            .then_some(())
    });
    assert_eq!(consumer.stop_with("-TERM", PATIENCE), Some(0));
    assert!(consumer.json_lines().is_empty());

    // SASL without its password file is refused before anything is sent.
    let out = run(
        &[
            "consume",
            "--brokers",
            &broker.address(),
            "--topic",
            "secured",
            "--group",
            "g",
            "--kafka-security-protocol",
            "sasl_ssl",
        ],
        b"",
    );
    assert_refused(&out, "--kafka-sasl-username");
}

#[test]
fn sasl_is_attempted_with_the_password_file_and_a_refusal_is_named_without_it() {
    let Some(broker) = broker_with("sasl", 1) else {
        return;
    };
    let fx = Fixture::new();
    let password = "pa55-never-shown";
    let file = fx.path("kafka-password.txt");
    std::fs::write(&file, format!("{password}\n")).expect("password file");
    // tansu, started without SASL credentials, refuses the PLAIN handshake.
    let mut consumer = consume(
        &fx,
        &broker.address(),
        "sasl",
        &[
            "--kafka-security-protocol",
            "sasl_plaintext",
            "--kafka-sasl-username",
            "decrypter",
            "--kafka-sasl-password-file",
            &s(&file),
        ],
    );
    logged(
        &consumer,
        "the SASL refusal",
        &["Kafka: ", "SASL PLAIN mechanism handshake failed"],
    );
    assert_eq!(consumer.stop_with("-TERM", PATIENCE), Some(0));
    let stderr = consumer.stderr.snapshot().join("\n");
    assert!(!stderr.contains(password), "{stderr}");
    assert!(consumer.json_lines().is_empty());
}
