//! Link the library into your own axum service: answer Graph at once, verify and decrypt after.
//!
//! ```sh
//! APP_ID=... KEY=key.pem cargo run --example axum_receiver --features fetch
//! ```
//! For production, add a bounded queue and a shutdown drain: `msgraph-notify serve` does both.

use std::sync::Arc;

use axum::{Router, body::Bytes, extract::RawQuery, http::StatusCode, response::IntoResponse};
use msgraph_notify::receiver::{Outcome, Receiver, Reply};
use msgraph_notify::token::Validation;
use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
use msgraph_notify::{Decryptor, PrivateKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (key, cert) = PrivateKey::load(&std::fs::read(std::env::var("KEY")?)?, None)?;
    let fetcher = Arc::new(KeyFetcher::new(FetchConfig::default())?); // Microsoft's signing keys
    fetcher.refresh().await?;
    Arc::clone(&fetcher).spawn_refresher(); // keeps them fresh; rotation is also caught by kid
    let receiver = Arc::new(
        Receiver::builder(Decryptor::with_key(key, cert)?)
            .validation(Validation::new([std::env::var("APP_ID")?]))
            .signing_keys(fetcher.signing_keys())
            .build()?,
    );

    let app = Router::new().fallback(move |RawQuery(query): RawQuery, body: Bytes| {
        let (receiver, fetcher) = (Arc::clone(&receiver), Arc::clone(&fetcher));
        async move {
            // The subscription handshake: echo the decoded token as text/plain.
            if let Some(token) = query.as_deref().and_then(Receiver::handshake_token) {
                return (StatusCode::OK, [("content-type", "text/plain")], token).into_response();
            }
            // Answer 202 now; verify and decrypt off the async threads.
            tokio::spawn(async move {
                for kid in receiver.unknown_kids(&body) {
                    fetcher.ensure_kid(&kid).await;
                }
                let handled =
                    tokio::task::spawn_blocking(move || receiver.receive(None, &body)).await;
                if let Ok(Ok(Reply::Notifications(items))) = handled {
                    for item in items {
                        match &item.outcome {
                            Outcome::Decrypted(d) => {
                                println!("{}: {:?}", d.resource.kind(), d.resource)
                            }
                            _ => println!("{}", item.to_json()),
                        }
                    }
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
