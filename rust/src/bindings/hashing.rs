//! `Sha256` and `Blake3`: hashlib-style streaming hashers.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::buffer::with_bytes;
use crate::hashing::{to_hex, Blake3, Digest, Md5, Sha1, Sha256};

/// What the two hashers share; the macro below gives each its Python class.
trait Hasher: Clone + Default + Send {
    fn update(&mut self, data: &[u8]);
    fn digest(&self) -> Digest;
}

impl Hasher for Sha256 {
    fn update(&mut self, data: &[u8]) {
        Sha256::update(self, data)
    }
    fn digest(&self) -> Digest {
        Sha256::digest(self)
    }
}

impl Hasher for Blake3 {
    fn update(&mut self, data: &[u8]) {
        Blake3::update(self, data)
    }
    fn digest(&self) -> Digest {
        Blake3::digest(self)
    }
}

/// Feeds `data` to the hasher behind `state`; the lock is taken without the GIL for large
/// inputs, so concurrent updates of one object queue up instead of failing.
fn update<H: Hasher>(py: Python<'_>, state: &Mutex<H>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    with_bytes(py, data, |bytes| {
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(bytes)
    })
}

fn snapshot<H: Hasher>(state: &Mutex<H>) -> H {
    state.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

macro_rules! hasher_class {
    ($py_name:ident, $name:literal, $algo:literal, $core:ty, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "ferryman._native", name = $name, frozen)]
        pub struct $py_name(Mutex<$core>);

        #[pymethods]
        impl $py_name {
            #[new]
            #[pyo3(signature = (data = None, /))]
            fn new(py: Python<'_>, data: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
                let this = Self(Mutex::new(<$core>::default()));
                if let Some(d) = data {
                    update(py, &this.0, d)?;
                }
                Ok(this)
            }

            /// Feeds more bytes (any buffer); the GIL is released for large inputs.
            #[pyo3(signature = (data, /))]
            fn update(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
                update(py, &self.0, data)
            }

            /// The 32-byte digest of everything fed so far.
            fn digest<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
                PyBytes::new(py, &Hasher::digest(&snapshot(&self.0)))
            }

            /// The digest as lowercase hex.
            fn hexdigest(&self) -> String {
                to_hex(&Hasher::digest(&snapshot(&self.0)))
            }

            /// An independent copy of the current state.
            fn copy(&self) -> Self {
                Self(Mutex::new(snapshot(&self.0)))
            }

            #[getter]
            fn name(&self) -> &'static str {
                $algo
            }

            #[getter]
            fn digest_size(&self) -> usize {
                32
            }

            #[getter]
            fn block_size(&self) -> usize {
                64
            }
        }
    };
}

hasher_class!(
    PySha256,
    "Sha256",
    "sha256",
    Sha256,
    "Streaming SHA-256 (SHA extensions used when present)."
);
hasher_class!(
    PyBlake3,
    "Blake3",
    "blake3",
    Blake3,
    "Streaming BLAKE3 with 32-byte output."
);

/// Streaming SHA-1 and MD5 together, for hawkBit's DDI (which lists both besides SHA-256):
/// one object, one GIL release per update for the pair.
#[pyclass(module = "ferryman._native", name = "Sha1Md5", frozen)]
pub struct PySha1Md5(Mutex<(Sha1, Md5)>);

#[pymethods]
impl PySha1Md5 {
    #[new]
    fn new() -> Self {
        Self(Mutex::new((Sha1::new(), Md5::new())))
    }

    /// Feeds more bytes (any buffer); the GIL is released for large inputs.
    #[pyo3(signature = (data, /))]
    fn update(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        with_bytes(py, data, |bytes| {
            let mut both = self.0.lock().unwrap_or_else(|e| e.into_inner());
            both.0.update(bytes);
            both.1.update(bytes);
        })
    }

    /// The SHA-1 and MD5 of everything fed so far, as lowercase hex.
    fn hexdigests(&self) -> (String, String) {
        let both = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (to_hex(&both.0.digest()), to_hex(&both.1.digest()))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySha1Md5>()?;
    m.add_class::<PySha256>()?;
    m.add_class::<PyBlake3>()?;
    Ok(())
}
