//! An attacker's view of the receiver: replays, floods, forged tokens, and properties over generated input.
//!
//! One test binary for the area; each file below is a module.

mod attack;
mod properties;
