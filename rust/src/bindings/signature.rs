//! `PublicKey`, `Verdict`, `load_public_key` and `verify_many`.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::signature::{self as core, Algorithm, BatchItem, BatchMode, PublicKey};

fn algorithm(key: &PublicKey, name: Option<&str>) -> PyResult<Algorithm> {
    let alg = match name {
        Some(n) => Algorithm::parse(n)?,
        None => key.default_algorithm(),
    };
    key.check_algorithm(alg)?;
    Ok(alg)
}

/// A parsed public key trusted to verify signatures.
#[pyclass(module = "ferryman._native", name = "PublicKey", frozen)]
pub struct PyPublicKey(Arc<PublicKey>);

#[pymethods]
impl PyPublicKey {
    /// `"ed25519"` or `"rsa"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    #[getter]
    fn bits(&self) -> u32 {
        self.0.bits()
    }

    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
    #[getter]
    fn keyid(&self) -> &str {
        self.0.keyid()
    }

    #[getter]
    fn spki_der<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.spki_der())
    }

    #[getter]
    fn spki_pem(&self) -> String {
        self.0.spki_pem()
    }

    /// `(not_before, not_after)` in Unix seconds if the key came from a certificate.
    #[getter]
    fn validity(&self) -> Option<(i64, i64)> {
        self.0.validity()
    }

    #[getter]
    fn default_algorithm(&self) -> &'static str {
        self.0.default_algorithm().name()
    }

    #[getter]
    fn signature_length(&self) -> usize {
        self.0.signature_len()
    }

    /// Whether `algorithm` (an API name) can be used with this key.
    #[pyo3(signature = (algorithm, /))]
    fn supports(&self, algorithm: &str) -> bool {
        Algorithm::parse(algorithm).is_ok_and(|a| self.0.check_algorithm(a).is_ok())
    }

    /// Decodes a hex or base64 signature text, checking its length for this key.
    #[pyo3(signature = (text, /))]
    fn decode_signature<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.0.decode_signature(text)?))
    }

    /// Verifies `signature` over `data` (Ed25519: the message; RSA: its SHA-256 digest).
    /// Raises `InvalidSignature` if it does not verify.
    #[pyo3(signature = (data, signature, /, algorithm = None))]
    fn verify(
        &self,
        py: Python<'_>,
        data: &[u8],
        signature: &[u8],
        algorithm: Option<&str>,
    ) -> PyResult<()> {
        let alg = self::algorithm(&self.0, algorithm)?;
        Ok(py.detach(|| self.0.verify(alg, data, signature))?)
    }

    /// Verifies a binary signature given the binary's SHA-256 `digest`; returns which message
    /// form verified (`"digest"` or, for Ed25519 over the hex digest, `"hex"`).
    #[pyo3(signature = (digest, signature, /, algorithm = None))]
    fn verify_binary(
        &self,
        py: Python<'_>,
        digest: &[u8],
        signature: &[u8],
        algorithm: Option<&str>,
    ) -> PyResult<&'static str> {
        let alg = self::algorithm(&self.0, algorithm)?;
        let digest: &[u8; 32] = digest.try_into().map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "a SHA-256 digest has 32 bytes, got {}",
                digest.len()
            ))
        })?;
        Ok(py
            .detach(|| self.0.verify_binary(alg, digest, signature))?
            .name())
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0.keyid() == other.0.keyid()
    }

    fn __hash__(&self) -> u64 {
        u64::from_str_radix(&self.0.keyid()[..16], 16).unwrap_or(0)
    }

    fn __repr__(&self) -> String {
        format!(
            "PublicKey(kind='{}', bits={}, keyid='{}')",
            self.0.kind(),
            self.0.bits(),
            self.0.keyid()
        )
    }
}

/// Parses PEM/DER SubjectPublicKeyInfo, PKCS#1 RSA, raw 32-byte Ed25519 or an X.509 certificate.
#[pyfunction]
#[pyo3(signature = (data, /))]
fn load_public_key(data: &[u8]) -> PyResult<PyPublicKey> {
    Ok(PyPublicKey(Arc::new(PublicKey::parse(data)?)))
}

/// One item's outcome in `verify_many`: truthy when valid.
#[pyclass(module = "ferryman._native", name = "Verdict", frozen, get_all)]
pub struct PyVerdict {
    pub ok: bool,
    /// Why it failed, or None.
    pub error: Option<String>,
    /// For binary signatures that verified: `"digest"` or `"hex"`.
    pub message: Option<&'static str>,
}

#[pymethods]
impl PyVerdict {
    fn __bool__(&self) -> bool {
        self.ok
    }

    fn __repr__(&self) -> String {
        match &self.error {
            None => "Verdict(ok=True)".into(),
            Some(e) => format!("Verdict(ok=False, error={e:?})"),
        }
    }
}

/// Verifies many `(key, data, signature[, algorithm])` items in parallel; one `Verdict` each,
/// in order. With `binary=True` each `data` is a binary's SHA-256 digest (as `verify_binary`).
#[pyfunction]
#[pyo3(signature = (items, /, *, binary = false))]
fn verify_many(py: Python<'_>, items: &Bound<'_, PyAny>, binary: bool) -> PyResult<Vec<PyVerdict>> {
    let mut batch = Vec::new();
    for item in items.try_iter()? {
        let item = item?;
        type Four<'a> = (PyRef<'a, PyPublicKey>, Vec<u8>, Vec<u8>, Option<String>);
        type Three<'a> = (PyRef<'a, PyPublicKey>, Vec<u8>, Vec<u8>);
        let (key, data, signature, alg): Four<'_> = match item.extract::<Four<'_>>() {
            Ok(four) => four,
            Err(_) => match item.extract::<Three<'_>>() {
                Ok((k, d, s)) => (k, d, s, None),
                Err(_) => {
                    return Err(PyTypeError::new_err(
                        "each item must be (PublicKey, bytes, bytes[, algorithm])",
                    ))
                }
            },
        };
        batch.push(BatchItem {
            algorithm: algorithm(&key.0, alg.as_deref())?,
            key: key.0.clone(),
            data,
            signature,
        });
    }
    let mode = if binary {
        BatchMode::BinaryDigest
    } else {
        BatchMode::Message
    };
    let out = py.detach(|| core::verify_many(&batch, mode))?;
    Ok(out
        .into_iter()
        .map(|r| match r {
            Ok(form) => PyVerdict {
                ok: true,
                error: None,
                message: binary.then(|| form.name()),
            },
            Err(e) => PyVerdict {
                ok: false,
                error: Some(e.to_string()),
                message: None,
            },
        })
        .collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPublicKey>()?;
    m.add_class::<PyVerdict>()?;
    m.add_function(wrap_pyfunction!(load_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(verify_many, m)?)?;
    Ok(())
}
