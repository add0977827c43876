//! Fetching the signing keys as it fails in the field, against real sockets on 127.0.0.1: nothing
//! listening, a server that never answers, a server that does not speak TLS, a host that does not
//! resolve, an answer over 1 MiB. Each failure is named, and an item whose token could not be
//! checked for want of keys says so, unlike a forgery.
#![cfg(feature = "fetch")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::fetch::{
    FetchConfig, FetchError, HttpFailure, KeyFetcher, MAX_DOCUMENT_BYTES,
};
use msgraph_notify::token::{TokenError, TokenVersion, Validation};
use msgraph_notify::{Decryptor, Error};

const APP: &str = "app-1";
const TENANT: &str = "tenant-1";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn refresh(config: FetchConfig) -> Result<usize, FetchError> {
    let fetcher = KeyFetcher::new(config).unwrap();
    runtime().block_on(fetcher.refresh())
}

fn cause(result: Result<usize, FetchError>) -> (HttpFailure, String) {
    match result {
        Err(e @ FetchError::Http { cause, .. }) => (cause, e.to_string()),
        other => panic!("expected an HTTP failure, got {other:?}"),
    }
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads one request head.
fn read_head(stream: &TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
}

/// A server answering each request with `answer(request_number)`.
fn serve(answer: impl Fn() -> Vec<u8> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            read_head(&stream);
            let _ = stream.write_all(&answer());
        }
    });
    format!("127.0.0.1:{}", addr.port())
}

fn with_length(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_vec();
    for chunk in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A JWKS of the issuer's key, padded with white space to `size` bytes: still a valid document.
fn padded_jwks(issuer: &TokenIssuer, size: usize) -> Vec<u8> {
    let jwks = issuer.jwks_json();
    let mut body = jwks.as_bytes()[..jwks.len() - 1].to_vec();
    body.resize(size - 1, b' ');
    body.push(b'}');
    body
}

#[test]
fn nothing_listening_is_named_connection_refused() {
    let url = format!("http://127.0.0.1:{}/keys", closed_port());
    let (cause, text) = cause(refresh(FetchConfig::with_jwks_url(url)));
    assert_eq!(cause, HttpFailure::ConnectionRefused, "{text}");
    assert!(text.contains("the connection was refused"), "{text}");
}

#[test]
fn a_server_that_never_answers_is_named_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let config = FetchConfig::with_jwks_url(url).timeout(Duration::from_millis(300));
    let (cause, text) = cause(refresh(config));
    assert_eq!(cause, HttpFailure::Timeout, "{text}");
    assert!(text.contains("timed out"), "{text}");
    drop(held);
}

#[test]
fn a_server_that_does_not_speak_tls_is_named_a_tls_failure() {
    let issuer = TokenIssuer::new().unwrap();
    let jwks = issuer.jwks_json().into_bytes();
    let host = serve(move || with_length(&jwks));
    let (cause, text) = cause(refresh(FetchConfig::with_jwks_url(format!(
        "https://{host}/keys"
    ))));
    assert_eq!(cause, HttpFailure::Tls, "{text}");
    assert!(text.contains("TLS"), "{text}");
}

#[test]
fn a_host_that_does_not_resolve_is_named_a_name_resolution_failure() {
    // `.invalid` never resolves (RFC 6761); without network the lookup fails as well.
    let config = FetchConfig::with_jwks_url("http://signing-keys.invalid/keys")
        .timeout(Duration::from_secs(20));
    let (cause, text) = cause(refresh(config));
    assert_eq!(cause, HttpFailure::NameResolution, "{text}");
    assert!(text.contains("name resolution failed"), "{text}");
}

#[test]
fn a_key_set_over_one_mebibyte_is_refused_whether_its_length_is_told_or_not() {
    let issuer = TokenIssuer::new().unwrap();
    let under = padded_jwks(&issuer, MAX_DOCUMENT_BYTES);
    let over = padded_jwks(&issuer, MAX_DOCUMENT_BYTES + 1);
    assert_eq!(MAX_DOCUMENT_BYTES, 1024 * 1024);

    let (u, o) = (under.clone(), over.clone());
    let told = serve(move || with_length(&o));
    let fits = serve(move || with_length(&u));
    let (u, o) = (under, over);
    let streamed = serve(move || chunked(&o));
    let streamed_fits = serve(move || chunked(&u));

    for host in [&told, &streamed] {
        match refresh(FetchConfig::with_jwks_url(format!("http://{host}/keys"))) {
            Err(e @ FetchError::TooLarge { limit, .. }) => {
                assert_eq!(limit, MAX_DOCUMENT_BYTES);
                assert!(e.to_string().contains("more than 1048576 bytes"), "{e}");
            }
            other => panic!("{host}: expected TooLarge, got {other:?}"),
        }
    }
    for host in [&fits, &streamed_fits] {
        assert_eq!(
            refresh(FetchConfig::with_jwks_url(format!("http://{host}/keys"))).unwrap(),
            1,
            "{host}: a key set of exactly 1 MiB loads"
        );
    }
    // The metadata document is held to the same limit.
    let big_metadata = {
        let mut m = br#"{"jwks_uri":"http://127.0.0.1:1/keys"}"#.to_vec();
        m.resize(MAX_DOCUMENT_BYTES + 10, b' ');
        m
    };
    let meta = serve(move || chunked(&big_metadata));
    assert!(matches!(
        refresh(FetchConfig::with_metadata_url(format!(
            "http://{meta}/.well-known/openid-configuration"
        ))),
        Err(FetchError::TooLarge { .. })
    ));
}

fn token_rejection(receiver: &Receiver, fetcher: &KeyFetcher, body: &[u8]) -> TokenError {
    let reply = runtime()
        .block_on(receiver.receive_fetching_keys(fetcher, None, body))
        .unwrap();
    let Reply::Notifications(items) = reply else {
        panic!("not notifications")
    };
    match &items[0].outcome {
        Outcome::Rejected(r) => match &r.error {
            Error::Token(e) => e.clone(),
            other => panic!("rejected for {other}"),
        },
        other => panic!("not rejected: {}", other.status()),
    }
}

#[test]
fn an_item_whose_keys_could_not_be_fetched_says_so_unlike_a_forgery() {
    let (key, cert) = test_support::keypair(2048);
    let issuer = TokenIssuer::new().unwrap();
    let spec = NotificationSpec::new(TENANT, "communications/presences/u1");
    let item = GraphEncryptor::new(cert, "cert-1")
        .notification(&serde_json::json!({}), &spec)
        .unwrap();
    let body = serde_json::json!({
        "value": [item],
        "validationTokens": [issuer.token(TokenVersion::V2, APP, TENANT)],
    })
    .to_string();
    let build = |fetcher: &KeyFetcher| {
        Receiver::builder(
            Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap(),
        )
        .validation(Validation::new([APP]))
        .signing_keys(fetcher.signing_keys())
        .build()
        .unwrap()
    };

    // Offline: the fetch is refused, and the item says its key could not be had, and why.
    let offline = KeyFetcher::new(FetchConfig::with_jwks_url(format!(
        "http://127.0.0.1:{}/keys",
        closed_port()
    )))
    .unwrap();
    let e = token_rejection(&build(&offline), &offline, body.as_bytes());
    assert!(
        matches!(e, TokenError::KeysUnavailable { ref kid, .. } if kid == issuer.kid()),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("could not be had") && text.contains("the connection was refused"),
        "{text}"
    );

    // Online, but the token is signed by a key Microsoft does not publish: a forgery's message.
    let stranger = TokenIssuer::new().unwrap();
    let jwks = stranger.jwks_json().into_bytes();
    let host = serve(move || with_length(&jwks));
    let online =
        KeyFetcher::new(FetchConfig::with_jwks_url(format!("http://{host}/keys"))).unwrap();
    let e = token_rejection(&build(&online), &online, body.as_bytes());
    assert_eq!(e, TokenError::UnknownKey(issuer.kid().to_owned()));
}
