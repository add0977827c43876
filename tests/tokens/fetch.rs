//! Fetching the signing keys from a real HTTP server on 127.0.0.1: rotation, a server that is
//! down, one that serves garbage, one that is slow.
#![cfg(feature = "fetch")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgraph_notify::Decryptor;
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::fetch::{FetchConfig, FetchError, KeyFetcher};
use msgraph_notify::token::{TokenValidator, TokenVersion, Validation};

#[derive(Clone)]
enum Mode {
    Serve,
    Garbage,
    Status(u16),
    Slow(Duration),
}

struct Server {
    base: String,
    jwks: Arc<Mutex<String>>,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// A real HTTP/1.1 server on 127.0.0.1 serving `/.well-known/openid-configuration` and `/keys`.
    fn start(jwks: String) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(jwks));
        let mode = Arc::new(Mutex::new(Mode::Serve));
        let requests = Arc::new(AtomicUsize::new(0));
        let (j, m, r, b) = (jwks.clone(), mode.clone(), requests.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (j, m, r, b) = (j.clone(), m.clone(), r.clone(), b.clone());
                std::thread::spawn(move || handle(stream, &j, &m, &r, &b));
            }
        });
        Server {
            base,
            jwks,
            mode,
            requests,
        }
    }

    fn metadata_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn handle(
    stream: TcpStream,
    jwks: &Mutex<String>,
    mode: &Mutex<Mode>,
    requests: &AtomicUsize,
    base: &str,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mode = mode.lock().unwrap().clone();
    let (status, body) = match mode {
        Mode::Status(code) => (code, "error".to_owned()),
        Mode::Garbage => (200, "<html>definitely not json".to_owned()),
        Mode::Slow(delay) => {
            std::thread::sleep(delay);
            (200, jwks.lock().unwrap().clone())
        }
        Mode::Serve if path.ends_with("openid-configuration") => (
            200,
            format!(
                r#"{{"issuer":"https://login.example/{{tenantid}}/v2.0","jwks_uri":"{base}/keys"}}"#
            ),
        ),
        Mode::Serve if path == "/keys" => (200, jwks.lock().unwrap().clone()),
        Mode::Serve => (404, "not found".to_owned()),
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn config(server: &Server) -> FetchConfig {
    let mut c = FetchConfig::with_metadata_url(server.metadata_url());
    c.timeout = Duration::from_millis(500);
    c.min_refresh_interval = Duration::from_secs(60);
    c
}

const APP: &str = "app";

#[tokio::test]
async fn fetches_keys_through_the_metadata_and_validates() {
    let issuer = TokenIssuer::new().unwrap();
    let server = Server::start(issuer.jwks_json());
    let fetcher = KeyFetcher::new(config(&server)).unwrap();
    assert_eq!(fetcher.refresh().await.unwrap(), 1);
    assert_eq!(server.requests(), 2, "metadata, then keys");
    let v = TokenValidator::new(Validation::new([APP]), fetcher.signing_keys());
    assert!(
        v.validate(&issuer.token(TokenVersion::V2, APP, "t"))
            .is_ok()
    );
    // Fresh keys are not refetched before the TTL.
    fetcher.refresh_if_stale().await.unwrap();
    assert_eq!(server.requests(), 2);
    // A JWKS URL can be fetched directly.
    let direct =
        KeyFetcher::new(FetchConfig::with_jwks_url(format!("{}/keys", server.base))).unwrap();
    assert_eq!(direct.refresh().await.unwrap(), 1);
}

#[tokio::test]
async fn a_new_kid_is_fetched_once_per_interval() {
    let old = TokenIssuer::new().unwrap();
    let new = TokenIssuer::new().unwrap();
    let server = Server::start(old.jwks_json());
    let fetcher = KeyFetcher::new(config(&server)).unwrap();
    fetcher.refresh().await.unwrap();

    // Rotation: the server now publishes the new key.
    *server.jwks.lock().unwrap() = new.jwks_json();
    let (key, cert) = test_support::keypair(2048);
    let receiver = Receiver::builder(
        Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap(),
    )
    .validation(Validation::new([APP]))
    .signing_keys(fetcher.signing_keys())
    .build()
    .unwrap();
    let item = GraphEncryptor::new(cert, "c")
        .notification(
            &serde_json::json!({"@odata.type": "#microsoft.graph.presence", "availability": "Away"}),
            &NotificationSpec::new("t", "communications/presences/u"),
        )
        .unwrap();
    let body = serde_json::json!({"value": [item], "validationTokens": [new.token(TokenVersion::V1, APP, "t")]})
        .to_string();
    let reply = receiver
        .receive_fetching_keys(&fetcher, None, body.as_bytes())
        .await
        .unwrap();
    let Reply::Notifications(items) = reply else {
        panic!()
    };
    assert!(
        matches!(items[0].outcome, Outcome::Decrypted(_)),
        "{:?}",
        items[0].to_json()
    );
    assert_eq!(server.requests(), 4);

    // Invented kids: at most one fetch per interval, however many arrive.
    for i in 0..20 {
        assert!(!fetcher.ensure_kid(&format!("invented-{i}")).await);
    }
    assert_eq!(
        server.requests(),
        4,
        "the last fetch was less than min_refresh_interval ago"
    );
    assert_eq!(fetcher.last_error().await, Some(FetchError::RateLimited));
}

#[tokio::test]
async fn a_server_that_is_down_keeps_the_last_good_keys() {
    let issuer = TokenIssuer::new().unwrap();
    let server = Server::start(issuer.jwks_json());
    let fetcher = KeyFetcher::new(config(&server)).unwrap();
    fetcher.refresh().await.unwrap();
    // A port where nothing listens.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "http://{}/.well-known/openid-configuration",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let mut c = FetchConfig::with_metadata_url(dead);
    c.timeout = Duration::from_millis(500);
    let down = KeyFetcher::with_keys(c, fetcher.signing_keys()).unwrap();
    assert!(matches!(down.refresh().await, Err(FetchError::Http { .. })));
    assert!(matches!(
        down.last_error().await,
        Some(FetchError::Http { .. })
    ));
    let v = TokenValidator::new(Validation::new([APP]), down.signing_keys());
    assert!(
        v.validate(&issuer.token(TokenVersion::V1, APP, "t"))
            .is_ok(),
        "old keys kept"
    );
    // An error status too.
    server.set_mode(Mode::Status(503));
    assert!(matches!(
        fetcher.refresh().await,
        Err(FetchError::Status { status: 503, .. })
    ));
    assert!(fetcher.signing_keys().contains(issuer.kid()));
}

#[tokio::test]
async fn garbage_is_reported_and_the_keys_kept() {
    let issuer = TokenIssuer::new().unwrap();
    let server = Server::start(issuer.jwks_json());
    let fetcher = KeyFetcher::new(config(&server)).unwrap();
    fetcher.refresh().await.unwrap();
    server.set_mode(Mode::Garbage);
    assert!(
        matches!(fetcher.refresh().await, Err(FetchError::Parse { what, .. }) if what.contains("metadata"))
    );
    // Metadata fine, keys garbage.
    server.set_mode(Mode::Serve);
    *server.jwks.lock().unwrap() = "{\"keys\": \"nope\"}".into();
    assert!(
        matches!(fetcher.refresh().await, Err(FetchError::Parse { what, .. }) if what.contains("JWKS"))
    );
    // A JWKS with no RSA key is refused rather than emptying the set.
    *server.jwks.lock().unwrap() = "{\"keys\": []}".into();
    assert!(matches!(
        fetcher.refresh().await,
        Err(FetchError::Parse { .. })
    ));
    assert!(fetcher.signing_keys().contains(issuer.kid()));
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_keys_are_kept() {
    let issuer = TokenIssuer::new().unwrap();
    let server = Server::start(issuer.jwks_json());
    let fetcher = KeyFetcher::new(config(&server)).unwrap();
    fetcher.refresh().await.unwrap();
    server.set_mode(Mode::Slow(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    assert!(matches!(
        fetcher.refresh().await,
        Err(FetchError::Http { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout cut the request short"
    );
    assert!(fetcher.signing_keys().contains(issuer.kid()));
}

#[tokio::test]
async fn the_background_refresher_recovers_after_a_failed_start() {
    let issuer = TokenIssuer::new().unwrap();
    let server = Server::start(issuer.jwks_json());
    server.set_mode(Mode::Status(500));
    let mut c = config(&server);
    c.min_refresh_interval = Duration::from_millis(100);
    let fetcher = std::sync::Arc::new(KeyFetcher::new(c).unwrap());
    let task = fetcher.clone().spawn_refresher();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!fetcher.signing_keys().contains(issuer.kid()));
    server.set_mode(Mode::Serve);
    let mut waited = 0;
    while !fetcher.signing_keys().contains(issuer.kid()) && waited < 50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    task.abort();
    assert!(
        fetcher.signing_keys().contains(issuer.kid()),
        "the retry fetched the keys"
    );
    assert_eq!(fetcher.last_error().await, None);
}
