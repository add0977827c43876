//! # msgraph-notify
//!
//! Verify and decrypt Microsoft Graph change notifications *with resource data*: Teams presence,
//! onlineMeeting call events and chat messages.
//!
//! Graph encrypts each changed resource for the subscriber's certificate: an AES key wrapped with
//! RSA-OAEP, an HMAC-SHA256 signature and AES-CBC ciphertext. This crate unwraps, verifies in
//! constant time, and only then decrypts and types the resource.
//!
//! ## Quick start
//!
//! A receiver in a real service: the crate with the `fetch` feature (Microsoft's token signing
//! keys over HTTPS) and tokio. In `Cargo.toml`, from a clone of this repository beside your
//! project:
//!
//! ```toml
//! [dependencies]
//! msgraph-notify = { path = "../msgraph-notify", features = ["fetch"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use msgraph_notify::receiver::{Outcome, Receiver, Reply};
//! use msgraph_notify::replay::ReplayGuard;
//! use msgraph_notify::token::Validation;
//! # #[cfg(feature = "fetch")]
//! use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
//! use msgraph_notify::{Decryptor, KeyRing, PrivateKey};
//!
//! # #[cfg(not(feature = "fetch"))]
//! # fn main() {}
//! # #[cfg(feature = "fetch")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The key of the certificate given to Graph (`msgraph-notify keygen --out keys` writes
//!     // keys/key.pem; PEM, DER and PKCS#12 load), under the subscription's
//!     // encryptionCertificateId. During a rotation, add the old and the new key.
//!     let (key, cert) = PrivateKey::load(&std::fs::read("keys/key.pem")?, None)?;
//!     let mut keys = KeyRing::new();
//!     keys.add("receiver-2026", key, cert)?;
//!
//!     // Microsoft's token signing keys: fetched once before the first notification, then kept
//!     // fresh in the background.
//!     let fetcher = Arc::new(KeyFetcher::new(FetchConfig::default())?);
//!     fetcher.refresh().await?;
//!     Arc::clone(&fetcher).spawn_refresher();
//!
//!     let receiver = Receiver::builder(Decryptor::new(keys))
//!         // The app that created the subscription (its "Application (client) ID").
//!         .validation(Validation::new([std::env::var("APP_ID")?]))
//!         // The clientState sent in POST /subscriptions.
//!         .client_state(std::env::var("CLIENT_STATE")?)
//!         .signing_keys(fetcher.signing_keys())
//!         // Replay protection: an item seen before (a captured POST sent again, even with its
//!         // metadata rewritten) is rejected as a duplicate. 100,000 items for 24 hours, in
//!         // memory; several replicas share one `replay::RedisReplayStore` (feature `redis`).
//!         .replay_guard(ReplayGuard::default())
//!         .build()?;
//!
//!     // For each request to your notificationUrl, your web framework gives the query string and
//!     // the body (here: a body saved to a file).
//!     let (query, body): (Option<&str>, Vec<u8>) = (None, std::fs::read("body.json")?);
//!
//!     // A token signed with a key Microsoft published since the last refresh: fetch that key
//!     // (by its `kid`) before `receive`, which never waits on the network.
//!     for kid in receiver.unknown_kids(&body) {
//!         fetcher.ensure_kid(&kid).await;
//!     }
//!     // `receive` is CPU work (RSA): in an async handler, run it with spawn_blocking.
//!     match receiver.receive(query, &body) {
//!         // The subscription handshake: answer 200, text/plain, with exactly this text.
//!         Ok(Reply::Handshake(token)) => println!("200 {token}"),
//!         // Answer 202 (within 3 seconds); each item says what became of it.
//!         Ok(Reply::Notifications(items)) => {
//!             for item in items {
//!                 match &item.outcome {
//!                     Outcome::Decrypted(d) => println!("{}: {:?}", d.resource.kind(), d.resource),
//!                     Outcome::Rejected(r) => eprintln!("item {} rejected: {}", item.index, r.error),
//!                     _ => println!("{}", item.to_json()),
//!                 }
//!             }
//!         }
//!         // `Reply` is non-exhaustive: a later version may add kinds of request.
//!         Ok(_) => {}
//!         // The replay store out of reach, say: answer 503 and Graph sends the body again.
//!         Err(e) if e.is_transient() => eprintln!("503: {e}"),
//!         // The body itself is unusable (not JSON, over the limits): answer 400.
//!         Err(e) => eprintln!("400: {e}"),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The repository's `examples/axum_receiver.rs` puts the same steps in an axum service; `msgraph-notify serve` is a ready-made one. Tests
//! make Graph-like notifications and tokens with the `testing` feature (`testing::GraphEncryptor`,
//! `testing::TokenIssuer`), which a service does not need.
//!
//! ## The protocol, in brief
//!
//! What this crate implements, gathered from Microsoft Graph's documentation and SDKs and checked
//! on a real Graph-produced notification:
//!
//! - A subscription with `includeResourceData: true` names an `encryptionCertificate` (base64 of
//!   the certificate's DER, [`Certificate::encryption_certificate`]) and the subscriber's own
//!   `encryptionCertificateId`. Graph then POSTs `{"value": [...], "validationTokens": [...]}`
//!   ([`ChangeNotificationCollection`]); unknown properties are kept, enumerations are open.
//! - Each item's `encryptedContent`: `dataKey` is a random AES key wrapped with RSA-OAEP
//!   (SHA-1, MGF1-SHA-1, empty label); `dataSignature` is HMAC-SHA256 over the ciphertext, keyed
//!   with that AES key, checked in constant time *before* anything is decrypted; `data` is
//!   AES-CBC with PKCS#7 padding, the IV being the key's first 16 bytes; the plaintext is UTF-8
//!   JSON of the resource. The key is chosen by `encryptionCertificateId` and checked against
//!   `encryptionCertificateThumbprint` (SHA-1 of the certificate's DER, any case).
//! - Anyone holding the public certificate can produce an `encryptedContent` that verifies, so
//!   an encrypted item is trusted only when a validation token covers its tenant ([`token`]):
//!   RS256 signed by a Microsoft identity platform key (by `kid`, from its OpenID metadata),
//!   `aud` one of your app ids, published by Graph's change-tracking app (`appid` in v1.0
//!   tokens, `azp` in v2.0), issuer exactly that of the token's `tid`, `exp`/`nbf` with 5 minutes
//!   of leeway.
//! - The endpoint answers the subscription handshake (`?validationToken=...`) with 200 and the
//!   decoded token as `text/plain` within 10 s, and every notification with 202 within 3 s
//!   ([`receiver`]).
//!
//! ## Features
//!
//! - `aws-lc` (default): RSA on aws-lc-rs.
//! - `rust-crypto`: RSA on the pure-Rust `rsa` crate (blinded), for targets without a C compiler.
//!   With both, `aws-lc` is used.
//! - `testing`: the `testing` module, a Graph-like sender for tests.
//! - `fetch`: `token::fetch`, Microsoft's token signing keys over HTTPS (async).
//! - `pkcs11`: keys that never leave a PKCS#11 token (HSMs, SoftHSM), in `keys::pkcs11`; any
//!   other key store plugs in through [`keys::Unwrap`].
//! - `redis`: `replay::RedisReplayStore`, the replay memory shared by replicas.
//! - `azure-blob`: `offload::azure::AzureBlobStore`, the payloads Graph offloads to Azure Blob
//!   storage (Event Hubs delivery, over 1 MB); any other store plugs in through
//!   [`offload::PayloadStore`].
//!
//! - `emulator`: `emulator::Emulator`, Microsoft Graph's subscription API, Entra ID's token
//!   endpoint and Graph's deliveries on 127.0.0.1, for tests of receivers and subscription clients.
//!
//! On docs.rs every feature is documented, each item marked with the feature it needs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod open_enum;

pub mod clock;
pub mod crypto;
pub mod decrypt;
pub mod error;
pub mod keys;
pub mod model;
pub mod offload;
pub mod receiver;
pub mod replay;
pub mod resource;
pub mod subscription;
pub mod token;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;

pub use decrypt::{Decrypted, Decryptor, Plaintext};
pub use error::{Error, Result};
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub use error::{GraphError, KeeperError};
pub use keys::{Certificate, KeyRing, PrivateKey};
pub use model::{ChangeNotification, ChangeNotificationCollection, EncryptedContent};
pub use resource::Resource;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
