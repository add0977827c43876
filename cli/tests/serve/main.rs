//! `serve` over real sockets: the webhook, its attackers, TLS, replicas sharing Redis, what a 202
//! promises (503 while a dependency is missing, waiting items) and the spool under `kill -9`.
//!
//! One test binary for the area; each file below is a module.

#[path = "../common/mod.rs"]
mod common;

mod redis_faults;

mod admin_flood;
mod kept;
mod replicas;
mod serve;
mod serve_attack;
mod spool;
mod startup;
mod tls;
