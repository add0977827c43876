//! The command's one-shot commands driven through the built binary: keygen, encrypt, decrypt, demo, subscription, and their inputs.
//!
//! One test binary for the area; each file below is a module.

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod field_inputs;
mod subscription;
