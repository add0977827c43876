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
//! ```
//! # fn main() -> Result<(), msgraph_notify::Error> {
//! use msgraph_notify::{Certificate, Decryptor, PrivateKey, Resource};
//! use msgraph_notify::testing::GraphEncryptor;
//!
//! // In a service: the key of the certificate you gave Graph, from PEM, DER or PKCS#12:
//! // let (key, cert) = PrivateKey::load(&std::fs::read("graph.pfx")?, Some("password"))?;
//! let key = PrivateKey::generate(2048)?;
//! let cert = Certificate::self_signed(&key, "receiver.example", 30)?;
//!
//! // What Graph sends in `encryptedContent` (made here by the test kit, exactly as Graph does):
//! let content = GraphEncryptor::new(&cert, "my-cert-id")
//!     .encrypt(br##"{"@odata.type":"#microsoft.graph.presence","availability":"Away"}"##)?;
//!
//! let decryptor = Decryptor::with_key(key, Some(cert))?;
//! let plaintext = decryptor.decrypt(&content)?; // unwrap, verify, then decrypt
//! match Resource::from_json(plaintext.as_bytes(), None)? {
//!     Resource::Presence(p) => println!("now {:?}", p.availability),
//!     other => println!("{}", other.kind()),
//! }
//! # Ok(()) }
//! ```
//!
//! Whole POST bodies, with their validation tokens, go through the receiver.
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
