//! Decryption end to end: the test vectors (one file per case), Graph's real vector, the docs' samples, round trips, bad input, and the fuzz seeds and regressions.
//!
//! One test binary for the area; each file below is a module.

mod bad_input;
mod fuzz_regression;
mod real_vector;
mod roundtrip;
mod samples;
mod test_vectors;
