//! The Python extension `ferryman._native`: the only code that touches PyO3. Each file wraps
//! the core module of the same name; wrappers convert, call and convert back.

// Python sees these classes through their __repr__; Debug would add nothing.
#![allow(missing_debug_implementations)]

use pyo3::prelude::*;

mod buffer;
mod chunking;
mod error;
mod filedigest;
mod hashing;
mod signature;
mod sink;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    hashing::register(m)?;
    chunking::register(m)?;
    filedigest::register(m)?;
    sink::register(m)?;
    signature::register(m)?;
    Ok(())
}
