//! The library tests' shared helpers: all in the `test-support` crate, shared with the command's
//! tests.
#![allow(unused_imports)]

pub use test_support::shared::{shared_dir, vector_dir};
pub use test_support::{copy_key, issuer, keypair, offload, other_keypair};
