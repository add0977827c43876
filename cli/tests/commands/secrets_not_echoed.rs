//! No secret echoed (issue 23, point 4): a connection string pasted where an option takes the
//! NAME of an environment variable is recognised, and none of it is printed back. The `*-env`
//! options belong to `consume` (feature `kafka`); the check itself (`secret::env_named_by`) is
//! unit-tested in every build. The command stops before it reaches any broker or store.

#[cfg(feature = "kafka")]
#[test]
fn a_connection_string_given_for_a_variable_name_is_refused_unprinted() {
    use crate::common::*;
    const KEY: &str = "c2VjcmV0LXNoYXJlZC1hY2Nlc3Mta2V5LXZhbHVlLTQy";
    let pasted = format!(
        "Endpoint=sb://graph-ns.servicebus.windows.net/;SharedAccessKeyName=listen;\
         SharedAccessKey={KEY}"
    );
    for option in [
        "--event-hubs-connection-string-env",
        "--blob-connection-string-env",
    ] {
        let out = run(
            &[
                "consume",
                "--brokers",
                "127.0.0.1:9",
                "--topic",
                "graph",
                "--group",
                "receivers",
                option,
                &pasted,
            ],
            b"",
        );
        assert_refused(&out, "takes the NAME of an environment variable");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(all.contains("connection string"), "{all}");
        for part in [KEY, "SharedAccessKey", "graph-ns", "Endpoint="] {
            assert!(!all.contains(part), "{option}: {part} printed back: {all}");
        }
    }
}
