//! Ferryman's byte work: streaming SHA-256 and BLAKE3, one-pass file digests with per-part
//! digests and content-defined chunks, batch hashing on a shared thread pool, a hashing upload
//! sink, and signature verification (Ed25519 strict, RSA PKCS#1 v1.5 and PSS over SHA-256).
//!
//! Everything here is plain Rust and tested with `cargo test`; the Python extension
//! `ferryman._native` is a thin layer in `bindings`, compiled only with the `python` feature.

pub mod chunking;
pub mod error;
pub mod filedigest;
mod gear;
pub mod hashing;
pub mod pool;
mod prefetch;
pub mod rsa_pss;
pub mod sha256x2;
pub mod signature;
pub mod sink;

#[cfg(feature = "python")]
mod bindings;

pub use error::{Error, Result};
