//! Key files in every format Graph's users hold them, and key rotation.
//!
//! One test binary for the area; each file below is a module.

mod key_files;
mod key_rotation;
