//! Link the library into your own axum service: answer Graph at once, verify and decrypt after.
//!
//! ```sh
//! APP_ID=... KEY=key.pem cargo run --example axum_receiver --features fetch
//! # offline, with signing keys from a file instead of Microsoft's endpoint:
//! APP_ID=... KEY=key.pem JWKS=jwks.json cargo run --example axum_receiver --features fetch
//! ```
//! Replayed items are reported as duplicates (a day's memory, in process). A 202 means kept: a
//! POST is answered 503 while the signing keys are not loaded (Graph retries it), and an item
//! that meets a passing failure (`Error::is_transient()`, the one policy) is retried with
//! back-off, never dropped. For production, add a bounded queue, a byte budget for bodies,
//! connection limits, a shutdown drain and a durable spool: `msgraph-notify serve` does all of
//! them.

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, body::Bytes, extract::RawQuery, http::StatusCode, response::IntoResponse};
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
use msgraph_notify::token::{Jwks, SigningKeys, Validation};
use msgraph_notify::{Decryptor, PrivateKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (key, cert) = PrivateKey::load(&std::fs::read(std::env::var("KEY")?)?, None)?;
    // Microsoft's signing keys, or a JWKS file (JWKS=...) to run offline.
    let fetcher = match std::env::var_os("JWKS") {
        Some(path) => Arc::new(KeyFetcher::with_keys(
            FetchConfig::default(),
            SigningKeys::new(Jwks::from_file(path)?),
        )?),
        None => {
            let fetcher = Arc::new(KeyFetcher::new(FetchConfig::default())?);
            fetcher.refresh().await?;
            Arc::clone(&fetcher).spawn_refresher(); // keeps them fresh; rotation is also caught by kid
            fetcher
        }
    };
    let receiver = Arc::new(
        Receiver::builder(Decryptor::with_key(key, cert)?)
            .validation(Validation::new([std::env::var("APP_ID")?]))
            .signing_keys(fetcher.signing_keys())
            // A captured POST replayed (even with its metadata rewritten) is a duplicate.
            .replay_guard(ReplayGuard::default())
            .build()?,
    );

    let app = Router::new().fallback(move |RawQuery(query): RawQuery, body: Bytes| {
        let (receiver, fetcher) = (Arc::clone(&receiver), Arc::clone(&fetcher));
        async move {
            // The subscription handshake: echo the decoded token as text/plain.
            if let Some(token) = query.as_deref().and_then(Receiver::handshake_token) {
                let headers = [
                    ("content-type", "text/plain; charset=utf-8"),
                    ("x-content-type-options", "nosniff"),
                ];
                return (StatusCode::OK, headers, token).into_response();
            }
            // Acknowledge only what can be finished: without signing keys, Graph keeps it.
            if fetcher.signing_keys().snapshot().is_empty() {
                return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")]).into_response();
            }
            // Answer 202 now; verify and decrypt off the async threads.
            tokio::spawn(async move {
                let tokens = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("validationTokens").cloned());
                let (mut body, mut pause) = (body.to_vec(), Duration::from_millis(250));
                loop {
                    for kid in receiver.unknown_kids(&body) {
                        fetcher.ensure_kid(&kid).await;
                    }
                    let (r, b) = (Arc::clone(&receiver), body.clone());
                    let handled = tokio::task::spawn_blocking(move || r.receive(None, &b)).await;
                    let Ok(Ok(Reply::Notifications(items))) = handled else {
                        return;
                    };
                    // Items that met a passing failure wait; every other outcome is final.
                    let mut waiting = Vec::new();
                    for item in items {
                        match &item.outcome {
                            Outcome::Decrypted(d) => {
                                println!("{}: {:?}", d.resource.kind(), d.resource)
                            }
                            Outcome::Rejected(r) if r.error.is_transient() => {
                                waiting.extend(r.notification.clone())
                            }
                            _ => println!("{}", item.to_json()),
                        }
                    }
                    if waiting.is_empty() {
                        return;
                    }
                    let rest = serde_json::json!({"value": waiting, "validationTokens": tokens});
                    body = rest.to_string().into_bytes();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
