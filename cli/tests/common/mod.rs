//! Helpers for driving the built binary: fixtures, a minimal HTTP/1.1 client, a served process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::{Value, json};

pub const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
pub const TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
pub const CERT_ID: &str = "cert-test";
pub const CLIENT_STATE: &str = "s3cret";

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msgraph-notify"))
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for the binary");
    let _ = writer.join();
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The server may answer (413) and close before reading the whole body: ignore write errors.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A running `serve`, killed on drop unless it was stopped.
pub struct Served {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Served {
    pub fn start(args: &[String]) -> Served {
        let mut child = bin()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = Vec::new();
        let addr = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).expect("read stderr") == 0 {
                let _ = child.kill();
                panic!("serve exited before listening: {first:?}");
            }
            // Text or JSON log lines: the address runs to the first character not in one.
            if let Some(rest) = line.trim().split("listening on http://").nth(1) {
                let end = rest
                    .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
                    .unwrap_or(rest.len());
                break rest[..end].parse().expect("address");
            }
            first.push(line);
        };
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(first));
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (o, e) = (Arc::clone(&out), Arc::clone(&err));
        let readers = vec![
            std::thread::spawn(move || {
                for line in stdout.lines().map_while(Result::ok) {
                    o.lock().unwrap().push(line);
                }
            }),
            std::thread::spawn(move || {
                for line in stderr.lines().map_while(Result::ok) {
                    e.lock().unwrap().push(line);
                }
            }),
        ];
        Served {
            child: Some(child),
            addr,
            stdout: out,
            stderr: err,
            readers,
        }
    }

    pub fn post(&self, target: &str, body: &[u8]) -> Answer {
        http(self.addr, "POST", target, body)
    }

    /// Waits until stdout has at least `n` lines (or the deadline passes).
    pub fn wait_lines(&self, n: usize, deadline: Duration) -> Vec<Value> {
        let start = Instant::now();
        while self.stdout.lock().unwrap().len() < n && start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.json_lines()
    }

    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code. Output is fully read after.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let start = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("serve did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        code
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A one-file HTTP server on 127.0.0.1 answering every GET with `body`; counts the requests.
pub fn static_server(body: String) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
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
    (addr, hits)
}

/// `../shared` beside the repository, or `$MSGRAPH_NOTIFY_SHARED`. `None` (with a note) when it is
/// absent, except under `CI=true`, where absence fails the test.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MSGRAPH_NOTIFY_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("vectors").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the shared test data is missing at {} (CI=true)",
        dir.display()
    );
    eprintln!(
        "skipping: the shared test data is absent at {} (set MSGRAPH_NOTIFY_SHARED)",
        dir.display()
    );
    None
}
