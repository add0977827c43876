//! What `serve` says at start, on stderr in the log format: the keys it loaded (each one's id,
//! thumbprint and certificate expiry), the replay store, and where its output goes. The
//! listening address is said by the start-up itself, once the listener is bound.

use msgraph_notify::KeyRing;

/// `url` without its user information (a password may be in it): `redis://:pw@host/0` gives
/// `redis://host/0`.
pub(crate) fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The keys, one phrase each: `ID (certificate THUMBPRINT, notAfter DATE)`.
pub(crate) fn keys(ring: &KeyRing) -> String {
    if ring.is_empty() {
        return "no key loaded".to_owned();
    }
    let each: Vec<String> = ring
        .entries()
        .map(|(id, cert)| {
            let id = id.map_or_else(
                || "a key without an id".to_owned(),
                |id| format!("key {id}"),
            );
            match cert {
                Some(cert) => format!(
                    "{id} (certificate {}, notAfter {})",
                    cert.thumbprint(),
                    cert.not_after()
                ),
                None => format!("{id} (no certificate: its expiry is unknown)"),
            }
        })
        .collect();
    let count = ring.len();
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} key{plural} loaded: {}", each.join("; "))
}

/// The replay store, as `--replay` named it (a Redis URL without its credentials).
pub(crate) fn replay_store(replay: &str, forwarding: bool) -> String {
    if forwarding {
        return "replay store: none here (the consumer of the topic keeps it)".to_owned();
    }
    match replay {
        "memory" => "replay store: memory (this process)".to_owned(),
        "off" => "replay store: off (replayed items are processed again)".to_owned(),
        url => format!("replay store: {}", without_credentials(url)),
    }
}

/// Says, on stderr, the keys, the replay store, where the output goes and the threads.
pub(crate) fn start(
    ring: &KeyRing,
    replay: &str,
    forward: Option<&str>,
    spool: Option<&std::path::Path>,
    (workers, io_threads): (usize, usize),
) {
    let output = match (forward, spool) {
        (Some(target), _) => format!(
            "output: each accepted POST is forwarded to {}",
            without_credentials(target)
        ),
        (None, Some(dir)) => format!(
            "output: JSON Lines on stdout (each body kept in the spool {} until written)",
            dir.display()
        ),
        (None, None) => "output: JSON Lines on stdout".to_owned(),
    };
    let threads = if forward.is_some() {
        format!(
            "threads: {io_threads} for connections (--io-threads); the screening runs on the \
             runtime's blocking threads"
        )
    } else {
        format!(
            "threads: {workers} verifying and decrypting (--workers), {io_threads} for \
             connections (--io-threads)"
        )
    };
    for line in [
        keys(ring),
        replay_store(replay, forward.is_some()),
        output,
        threads,
    ] {
        crate::log::info(&format!("msgraph-notify serve: {line}"));
    }
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn a_url_is_said_without_its_credentials() {
        assert_eq!(
            without_credentials("redis://:pw@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            without_credentials("rediss://user:p@ss@host/1?x=@"),
            "rediss://host/1?x=@"
        );
        assert_eq!(without_credentials("redis://host/0"), "redis://host/0");
        assert_eq!(without_credentials("memory"), "memory");
    }
}
