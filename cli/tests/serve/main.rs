//! `serve` over real sockets: the webhook, its attackers, TLS, and replicas sharing Redis.
//!
//! One test binary for the area; each file below is a module.

#[path = "../common/mod.rs"]
mod common;

mod redis_faults;
mod replicas;
mod serve;
mod serve_attack;
mod tls;
