//! Helpers for driving the built binary: fixtures, a minimal HTTP/1.1 client, a served process.

#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::{Value, json};
pub use test_support::net::{Answer, http, read_answer};
pub use test_support::process::{self, Captured, text};
pub use test_support::shared::shared_dir;

pub const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
pub const TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
pub const CERT_ID: &str = "cert-test";
pub const CLIENT_STATE: &str = "s3cret";

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgraph-notify"))
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    process::run(bin().args(args), stdin)
}

/// The JSON lines of stdout.
pub fn lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l}: {e}")))
        .collect()
}

/// A receiver's key and certificate on disk, and a token issuer with its JWKS on disk.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub key_path: PathBuf,
    pub cert_path: PathBuf,
    pub jwks_path: PathBuf,
    pub cert: Certificate,
    pub issuer: TokenIssuer,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = PrivateKey::generate(2048).expect("key");
        let cert = Certificate::self_signed(&key, "test", 1).expect("cert");
        let key_path = dir.path().join("key.pem");
        let cert_path = dir.path().join("cert.pem");
        let jwks_path = dir.path().join("jwks.json");
        std::fs::write(&key_path, key.to_pkcs8_pem().as_bytes()).expect("write key");
        // Owner-only, as `keygen` writes it (a key every user can read gets a warning).
        #[cfg(unix)]
        std::fs::set_permissions(
            &key_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod 600 key.pem");
        std::fs::write(&cert_path, cert.to_pem()).expect("write cert");
        let issuer = TokenIssuer::new().expect("issuer");
        std::fs::write(&jwks_path, issuer.jwks_json()).expect("write jwks");
        Fixture {
            dir,
            key_path,
            cert_path,
            jwks_path,
            cert,
            issuer,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--key ID=PATH --jwks FILE --app-id APP --client-state S`.
    pub fn receiver_args(&self) -> Vec<String> {
        vec![
            "--key".into(),
            format!("{CERT_ID}={}", self.key_path.display()),
            "--jwks".into(),
            s(&self.jwks_path),
            "--app-id".into(),
            APP_ID.into(),
            "--client-state".into(),
            CLIENT_STATE.into(),
        ]
    }

    /// A presence resource tagged with `tag`.
    pub fn presence(tag: &str) -> Value {
        json!({"@odata.type": "#microsoft.graph.presence", "id": tag, "availability": "Busy", "activity": "InACall"})
    }

    /// An item encrypted for the fixture's certificate, carrying the right clientState.
    pub fn item(&self, resource: &Value) -> Value {
        let id = resource["id"].as_str().unwrap_or("x");
        let mut spec = NotificationSpec::new(TENANT, &format!("communications/presences/{id}"));
        spec.client_state = Some(CLIENT_STATE.into());
        let n = GraphEncryptor::new(&self.cert, CERT_ID)
            .notification(resource, &spec)
            .expect("encrypt");
        serde_json::to_value(n).expect("json")
    }

    /// A genuine body: the items and a valid token.
    pub fn body(&self, items: Vec<Value>) -> Vec<u8> {
        json!({
            "value": items,
            "validationTokens": [self.issuer.token(TokenVersion::V2, APP_ID, TENANT)],
        })
        .to_string()
        .into_bytes()
    }

    /// A forged body: encrypted for the right certificate, but the token is signed by another key.
    pub fn forged_body(&self, tag: &str) -> Vec<u8> {
        let forger = TokenIssuer::new().expect("issuer");
        json!({
            "value": [self.item(&Self::presence(tag))],
            "validationTokens": [forger.token(TokenVersion::V2, APP_ID, TENANT)],
        })
        .to_string()
        .into_bytes()
    }
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A running `serve` (its output captured line by line), killed on drop unless it was stopped.
pub struct Served {
    process: Captured,
    pub addr: SocketAddr,
    /// Set by [`Served::trusting`]: POSTs go over TLS, checked against this certificate.
    pub tls_root: Option<Vec<u8>>,
}

/// The child, its pid and its captured `stdout` and `stderr` lines.
impl std::ops::Deref for Served {
    type Target = Captured;

    fn deref(&self) -> &Captured {
        &self.process
    }
}

impl Served {
    pub fn start(args: &[String]) -> Served {
        Served::start_with(args, |_| {})
    }

    /// [`Served::start`], with `adjust` given the command first (its environment, say).
    pub fn start_with(args: &[String], adjust: impl FnOnce(&mut Command)) -> Served {
        let mut command = bin();
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        adjust(&mut command);
        let process = Captured::spawn(&mut command, "serve");
        let addr = process.wait_stderr("serve listening", Duration::from_secs(90), |line| {
            // Text or JSON log lines: the address runs to the first character not in one.
            let rest = ["listening on http://", "listening on https://"]
                .iter()
                .find_map(|m| line.trim().split(m).nth(1))?;
            let end = rest
                .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
                .unwrap_or(rest.len());
            Some(rest[..end].parse().expect("address"))
        });
        Served {
            process,
            addr,
            tls_root: None,
        }
    }

    /// Speaks HTTPS to this server from now on, trusting the PEM certificate `root`.
    pub fn trusting(mut self, root: &[u8]) -> Served {
        self.tls_root = Some(root.to_vec());
        self
    }

    pub fn post(&self, target: &str, body: &[u8]) -> Answer {
        match &self.tls_root {
            None => http(self.addr, "POST", target, body),
            Some(root) => {
                let mut conn = TlsConn::connect(self.addr, root).expect("TLS handshake");
                conn.request("POST", target, body).expect("HTTPS request")
            }
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code. Output is fully read after.
    pub fn terminate(&mut self) -> Option<i32> {
        self.process.stop_with("-TERM", Duration::from_secs(20))
    }

    /// Sends SIGKILL (no drain, no flush) and waits for the end; its output is fully read after.
    pub fn kill_9(&mut self) {
        self.process.stop_with("-KILL", Duration::from_secs(20));
    }
}

/// A one-file HTTP server on 127.0.0.1 answering every GET with `body`; counts the requests.
pub fn static_server(body: String) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    (addr, serve_static(listener, body))
}

/// Serves `body` to every GET on `addr` (a port the test reserved) from now on: a key endpoint
/// that comes up late.
pub fn serve_jwks_on(addr: SocketAddr, body: String) {
    serve_static(
        TcpListener::bind(addr).expect("bind the JWKS port again"),
        body,
    );
}

/// Answers every request on `listener` with `body`; counts them.
fn serve_static(listener: TcpListener, body: String) -> Arc<Mutex<usize>> {
    let hits = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            // Read the request head.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            *counter.lock().unwrap() += 1;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    hits
}

/// An HTTPS client connection (rustls on aws-lc-rs) to 127.0.0.1, kept alive across requests.
pub struct TlsConn {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    addr: SocketAddr,
}

impl TlsConn {
    /// Connects and completes the handshake, trusting only the PEM certificate `root` and
    /// checking that it names 127.0.0.1.
    pub fn connect(addr: SocketAddr, root: &[u8]) -> Result<TlsConn, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(root) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(TlsConn { stream, addr })
    }

    /// The DER of the certificate the server presented.
    pub fn peer_certificate(&self) -> Vec<u8> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .expect("a peer certificate")
    }

    /// One keep-alive request; reads exactly the answer (by its Content-Length).
    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Result<Answer, String> {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.stream
            .write_all(head.as_bytes())
            .and_then(|()| self.stream.write_all(body))
            .and_then(|()| self.stream.flush())
            .map_err(|e| e.to_string())?;
        read_answer(&mut self.stream)
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, both PEM, written to `dir/NAME.pem` and
/// `dir/NAME.key`; returns (certificate PEM, certificate DER, cert path, key path).
pub fn tls_identity(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>, PathBuf, PathBuf) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("write the key");
    (
        cert.pem().into_bytes(),
        cert.der().to_vec(),
        cert_path,
        key_path,
    )
}

/// The admin address `serve` printed on stderr.
pub fn admin_addr(served: &Served) -> SocketAddr {
    served
        .stderr
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| l.split("admin on http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the admin address on stderr")
}

/// Asserts that the command exited 2 (refused) and said `needle` on stderr.
pub fn assert_refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(needle),
        "stderr: {}",
        text(&out.stderr)
    );
}

/// `SOURCE VALUE --app-id APP --client-state S`: tokens checked against the signing keys from
/// SOURCE (`--jwks FILE`, `--jwks-url URL`), for the app and with the clientState of the tests.
pub fn checks<'a>(source: &'a str, value: &'a str) -> [&'a str; 6] {
    [
        source,
        value,
        "--app-id",
        APP_ID,
        "--client-state",
        CLIENT_STATE,
    ]
}
