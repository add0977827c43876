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
//! ## Features
//!
//! - `aws-lc` (default): RSA on aws-lc-rs.
//! - `rust-crypto`: RSA on the pure-Rust `rsa` crate (blinded), for targets without a C compiler.
//!   With both, `aws-lc` is used.
//! - `testing`: [`testing`], a Graph-like sender for tests.
//! - `fetch`: fetch Microsoft's token signing keys over HTTPS (async).
//! - `pkcs11`: keys that never leave a PKCS#11 token (HSMs, SoftHSM), in `keys::pkcs11`; any
//!   other key store plugs in through [`keys::Unwrap`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod open_enum;

pub mod crypto;
pub mod decrypt;
pub mod error;
pub mod keys;
pub mod model;
pub mod receiver;
pub mod replay;
pub mod resource;
pub mod token;

#[cfg(feature = "testing")]
pub mod testing;

pub use decrypt::{Decrypted, Decryptor, Plaintext};
pub use error::{Error, Result};
pub use keys::{Certificate, KeyRing, PrivateKey};
pub use model::{ChangeNotification, ChangeNotificationCollection, EncryptedContent};
pub use resource::Resource;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
