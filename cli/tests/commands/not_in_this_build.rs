//! A command this build left out (issue 23, point 5): `consume` without the `kafka` feature
//! says which feature it needs and how to install a build that has it.

#[cfg(not(feature = "kafka"))]
#[test]
fn consume_without_kafka_names_the_feature_and_the_install_line() {
    use crate::common::*;
    let out = run(
        &["consume", "--brokers", "127.0.0.1:9092", "--topic", "graph"],
        b"",
    );
    assert_refused(&out, "needs the `kafka` feature");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cargo install --path cli --locked --features kafka"),
        "{stderr}"
    );
    assert!(!stderr.contains("unrecognized subcommand"), "{stderr}");
    // Any other unknown word is still clap's own answer.
    let out = run(&["consme"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unrecognized subcommand"));
}
