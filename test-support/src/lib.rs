//! What every test of msgraph-notify shares (the library's and the command's alike): the one rule
//! for finding `../shared`, the real parts started on 127.0.0.1 (Redis, SoftHSM2, Azurite, tansu),
//! free ports, child processes with captured output lines, and the keys and token issuer the
//! tests build once per binary. Unpublished: `publish = false`.
//!
//! A real part that is not installed makes a test skip with a note, except under `CI=true`, where
//! its absence fails the test ([`missing`]); `.ci/run` installs every one.

pub mod azurite;
pub mod emulator;
pub mod fixtures;
pub mod net;
pub mod process;
pub mod redis;
pub mod shared;
pub mod softhsm;
pub mod tansu;

pub use fixtures::{
    NOT_THE_DOCUMENT, assert_too_many, copy_key, decryptor, flood, issuer, keypair, offload,
    other_keypair, webhook,
};

/// Whether this run is CI's (`CI=true`), where every real part and the shared data are required.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The one rule for a real part that is absent: under `CI=true` the test fails with `what` and
/// `hint`; elsewhere it says so on stderr and the caller skips (returns `None`).
pub fn missing<T>(what: &str, hint: &str) -> Option<T> {
    assert!(!ci(), "{what} (CI=true requires it; {hint})");
    eprintln!("NOTE: skipping: {what} ({hint})");
    None
}
pub use shared::{shared_dir, vector_dir};
