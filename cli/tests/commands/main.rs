//! The command's one-shot commands driven through the built binary: keygen, encrypt, decrypt, demo, subscription, and their inputs.
//!
//! One test binary for the area; each file below is a module.

#[path = "../common/mod.rs"]
mod common;

mod client_state_rule;
mod commands;
mod faults_named;
mod field_inputs;
mod json_lines;
mod large_collection;
mod not_in_this_build;
mod pasted_docs;
mod secrets_not_echoed;
mod subscription;
