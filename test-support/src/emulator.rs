//! For the tests against the Graph emulator: client assertions made independently of the
//! emulator (jsonwebtoken signs them), and a scripted HTTP endpoint on 127.0.0.1 that records
//! what the emulator POSTs to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use msgraph_notify::{Certificate, PrivateKey};
use serde_json::json;

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A client assertion for `app_id` at `token_url`, signed by `key` with PS256 and naming `cert`
/// by `x5t#S256` (or RS256 and `x5t` when `rs256`), living 5 minutes, with a fresh `jti`.
/// jsonwebtoken signs it: the caller installs jsonwebtoken's crypto provider first.
pub fn client_assertion(
    token_url: &str,
    app_id: &str,
    key: &PrivateKey,
    cert: &Certificate,
    rs256: bool,
) -> String {
    use sha2::Digest;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "aud": token_url, "iss": app_id, "sub": app_id,
        "jti": format!("{now}-{}", b64url(&sha2::Sha256::digest(format!("{:?}", std::time::Instant::now())))),
        "nbf": now, "iat": now, "exp": now + 300,
    });
    let mut header = if rs256 {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.x5t = Some(b64url(&sha1_digest(cert.der())));
        h
    } else {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        h.x5t_s256 = Some(b64url(&sha2::Sha256::digest(cert.der())));
        h
    };
    header.typ = Some("JWT".into());
    assertion_with(&header, &claims, key)
}

/// Signs `claims` under `header` with `key` (for assertions wrong in one way).
pub fn assertion_with(
    header: &jsonwebtoken::Header,
    claims: &serde_json::Value,
    key: &PrivateKey,
) -> String {
    let der = key.to_pkcs8_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).expect("PKCS#8");
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(info.private_key.as_bytes());
    jsonwebtoken::encode(header, claims, &encoding).expect("sign the assertion")
}

fn sha1_digest(bytes: &[u8]) -> Vec<u8> {
    // x509-parser has no SHA-1; the certificate's thumbprint (hex) is the SHA-1 of its DER.
    let hex = Certificate::from_der(bytes)
        .expect("certificate")
        .thumbprint();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One request an [`Endpoint`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    pub content_type: String,
    pub body: String,
}

impl Received {
    /// The decoded `validationToken` of a handshake, if this is one.
    pub fn validation_token(&self) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    }
}

/// What an [`Endpoint`] answers: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// An HTTP/1.1 endpoint on 127.0.0.1 answering each request as its script says, recording them.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    /// Starts an endpoint answering each request with `script(&request)`.
    pub fn start(script: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                let script = Arc::clone(&script);
                std::thread::spawn(move || serve_one(stream, &log, &*script));
            }
        });
        Endpoint { addr, received }
    }

    /// An endpoint that echoes handshakes and answers notifications 202: a well-behaved receiver.
    pub fn echoing() -> Endpoint {
        Endpoint::start(|r| match r.validation_token() {
            Some(token) => (200, "text/plain", token),
            None => (202, "text/plain", String::new()),
        })
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The notification POSTs (not handshakes) received so far, as JSON.
    pub fn notifications(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| r.validation_token().is_none())
            .map(|r| serde_json::from_str(&r.body).expect("a JSON body"))
            .collect()
    }

    /// Waits until `done(notifications)` holds, for up to `patience`; returns them.
    pub fn wait_notifications(
        &self,
        patience: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let start = std::time::Instant::now();
        loop {
            let got = self.notifications();
            if done(&got) || start.elapsed() > patience {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_one(
    stream: std::net::TcpStream,
    log: &Mutex<Vec<Received>>,
    script: &(dyn Fn(&Received) -> Answer + Send + Sync),
) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Received {
        method,
        target,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, ctype, answer) = script(&request);
    log.lock().unwrap().push(request);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}
