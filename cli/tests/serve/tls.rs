//! `serve --tls-cert --tls-key`: HTTPS on real sockets with a rustls client that checks the
//! certificate; SIGHUP swaps the certificate for new connections without dropping open ones; a
//! reload that fails keeps the certificate in use; bad files are refused at start.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::*;

fn tls_served(fx: &Fixture, cert: &std::path::Path, key: &std::path::Path) -> Served {
    let mut args = fx.receiver_args();
    args.extend([
        "--tls-cert".into(),
        s(cert),
        "--tls-key".into(),
        s(key),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--log-format".into(),
        "text".into(),
    ]);
    Served::start(&args)
}

/// Sends SIGHUP and waits for the log line that says how the reload went.
fn hangup(served: &Served, seen_before: usize) -> String {
    let pid = served.child.as_ref().expect("running").id();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let start = Instant::now();
    loop {
        let found = served
            .stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("SIGHUP"))
            .nth(seen_before)
            .cloned();
        if let Some(line) = found {
            return line;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no SIGHUP log line"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn https_handshake_and_posts_with_a_checked_certificate() {
    let fx = Fixture::new();
    let (root, der, cert, key) = tls_identity(fx.dir.path(), "a");
    let mut served = tls_served(&fx, &cert, &key).trusting(&root);

    let mut conn = TlsConn::connect(served.addr, &root).expect("handshake");
    assert_eq!(conn.peer_certificate(), der);
    // The validation handshake over TLS.
    let answer = conn
        .request("POST", "/?validationToken=hello%20tls", b"")
        .expect("handshake answer");
    assert_eq!((answer.status, answer.body.as_str()), (200, "hello tls"));
    // Two notification POSTs on the same keep-alive connection.
    for tag in ["t1", "t2"] {
        let body = fx.body(vec![fx.item(&Fixture::presence(tag))]);
        assert_eq!(conn.request("POST", "/", &body).expect("POST").status, 202);
    }
    let lines = served.wait_lines(2, Duration::from_secs(10));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["data"]["id"], "t1");
    assert_eq!(lines[1]["data"]["id"], "t2");

    // Plain HTTP to the TLS port gets no HTTP answer, and the server goes on.
    let mut plain = std::net::TcpStream::connect(served.addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = plain.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/1.1 2"), "{:?}", text(&got));
    assert_eq!(served.post("/", &fx.body(vec![])).status, 202);

    // A client that does not trust the certificate fails its handshake.
    let (other_root, ..) = tls_identity(fx.dir.path(), "other");
    assert!(TlsConn::connect(served.addr, &other_root).is_err());
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let fx = Fixture::new();
    let (root_a, der_a, cert, key) = tls_identity(fx.dir.path(), "live");
    let served = tls_served(&fx, &cert, &key);
    let admin = admin_addr(&served);

    let mut old = TlsConn::connect(served.addr, &root_a).expect("handshake");
    assert_eq!(old.peer_certificate(), der_a);
    let body = fx.body(vec![fx.item(&Fixture::presence("before"))]);
    assert_eq!(old.request("POST", "/", &body).expect("POST").status, 202);

    // Renew: new files in place, then SIGHUP.
    let (root_b, der_b, cert_b, key_b) = tls_identity(fx.dir.path(), "renewed");
    std::fs::copy(&cert_b, &cert).expect("copy");
    std::fs::copy(&key_b, &key).expect("copy");
    let line = hangup(&served, 0);
    assert!(line.contains("reloaded"), "{line}");

    // New connections get the new certificate; the old one goes on with its own.
    let mut new = TlsConn::connect(served.addr, &root_b).expect("handshake after reload");
    assert_eq!(new.peer_certificate(), der_b);
    assert!(TlsConn::connect(served.addr, &root_a).is_err());
    let body = fx.body(vec![fx.item(&Fixture::presence("new-conn"))]);
    assert_eq!(new.request("POST", "/", &body).expect("POST").status, 202);
    let body = fx.body(vec![fx.item(&Fixture::presence("old-conn"))]);
    assert_eq!(
        old.request("POST", "/", &body)
            .expect("the open connection survives the reload")
            .status,
        202
    );
    assert_eq!(old.peer_certificate(), der_a);

    // A broken renewal (a key that is not the certificate's) is refused; B stays.
    let (_, _, _, key_c) = tls_identity(fx.dir.path(), "mismatch");
    std::fs::copy(&key_c, &key).expect("copy");
    let line = hangup(&served, 1);
    assert!(line.contains("not reloaded"), "{line}");
    std::fs::write(&cert, b"not a certificate").expect("write");
    let line = hangup(&served, 2);
    assert!(line.contains("not reloaded"), "{line}");
    let mut after = TlsConn::connect(served.addr, &root_b).expect("B still served");
    assert_eq!(after.peer_certificate(), der_b);
    assert_eq!(after.request("GET", "/", b"").expect("answer").status, 405);

    let lines = served.wait_lines(3, Duration::from_secs(10));
    let ids: Vec<_> = lines.iter().map(|l| l["data"]["id"].clone()).collect();
    assert_eq!(ids, ["before", "new-conn", "old-conn"], "{lines:?}");
    let metrics = http(admin, "GET", "/metrics", b"").body;
    assert!(
        metrics.contains("msgraph_notify_tls_certificate_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("msgraph_notify_tls_certificate_reloads_total{result=\"error\"} 2"),
        "{metrics}"
    );
    // The key is never in the logs.
    let stderr = served.stderr.lock().unwrap().join("\n");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    let mut served = served;
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn unusable_tls_files_are_refused_at_start() {
    let fx = Fixture::new();
    let (_, _, cert, key) = tls_identity(fx.dir.path(), "a");
    let (_, _, _, other_key) = tls_identity(fx.dir.path(), "b");
    let missing = fx.path("missing.pem");
    let garbage = fx.path("garbage.pem");
    std::fs::write(&garbage, b"not PEM at all\n").expect("write");
    let cases: [(&std::path::Path, &std::path::Path, &str); 4] = [
        (&cert, &other_key, "--tls-key"),
        (&missing, &key, "--tls-cert"),
        (&garbage, &key, "no CERTIFICATE"),
        (&cert, &garbage, "no PEM private key"),
    ];
    for (c, k, expected) in cases {
        let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(fx.receiver_args());
        args.extend(["--tls-cert".into(), s(c), "--tls-key".into(), s(k)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args, b"");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }
    // Each needs the other.
    let mut args = vec!["serve".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(fx.receiver_args());
    args.extend(["--tls-cert".into(), s(&cert)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--tls-key"));
}
