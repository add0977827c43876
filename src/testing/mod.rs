//! A Graph-like sender for tests (feature `testing`): encrypt any JSON exactly as Graph does for a
//! certificate, so receivers can be tested end to end with no network.
//!
//! Never use these in production code paths: they exist to build fixtures.

mod doc_samples;
mod encryptor;
mod tokens;

pub use doc_samples::{DocSample, doc_samples};
pub use encryptor::{GraphEncryptor, KeyWrap, NotificationSpec};
pub use tokens::{TokenFlaw, TokenIssuer};
