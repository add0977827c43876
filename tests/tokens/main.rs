//! Validation tokens: claims, the JWKS, the cache, and fetching signing keys (feature fetch).
//!
//! One test binary for the area; each file below is a module.

mod fetch;
mod fetch_field;
mod tokens;
