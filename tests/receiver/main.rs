//! The receiver: bodies and their shapes, tokens per tenant, the transports, and the replay memory (in process and in Redis).
//!
//! One test binary for the area; each file below is a module.

mod body_shapes;
mod receiver;
mod redis;
mod redis_memory;
mod replay;
mod slices;
mod transport;
