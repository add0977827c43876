//! Typed resources by @odata.type and by path, and subscription request bodies.
//!
//! One test binary for the area; each file below is a module.

mod resource_paths;
mod subscription;
