//! `Sink` and `SinkResult`.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;

use super::buffer::with_bytes;
use super::filedigest::{part_digests, PyPartDigest};
use crate::hashing::to_hex;
use crate::sink::Sink;

/// What a closed sink wrote: size, SHA-256 (hex) and, when asked for, per-part digests.
#[pyclass(module = "ferryman._native", name = "SinkResult", frozen, get_all)]
pub struct PySinkResult {
    pub size: u64,
    pub sha256: String,
    pub parts: Option<Vec<Py<PyPartDigest>>>,
}

#[pymethods]
impl PySinkResult {
    fn __repr__(&self) -> String {
        format!("SinkResult(size={}, sha256='{}')", self.size, self.sha256)
    }
}

/// Writes and hashes received chunks on a native thread. Without `offset` it creates `path`
/// (which must not exist) and `abort()` (or leaving a `with` block unclosed) removes it; with
/// `offset` it writes into `path` from that byte on (creating it if missing, never truncating)
/// and an abort leaves the file. `close()` fsyncs and returns a `SinkResult`.
#[pyclass(module = "ferryman._native", name = "Sink", frozen)]
pub struct PySink(Mutex<Sink>);

impl PySink {
    fn locked(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PySink {
    #[new]
    #[pyo3(signature = (path, /, *, part_size = None, limit = None, offset = None))]
    fn new(
        path: PathBuf,
        part_size: Option<u64>,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> PyResult<Self> {
        let sink = match offset {
            None => Sink::create(&path, part_size, limit)?,
            Some(at) => Sink::at(&path, at, part_size, limit)?,
        };
        Ok(Self(Mutex::new(sink)))
    }

    /// Queues a chunk (any buffer; copied). Waits only if the writer is far behind.
    #[pyo3(signature = (data, /))]
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let chunk = with_bytes(py, data, <[u8]>::to_vec)?;
        Ok(py.detach(|| self.locked().write(chunk))?)
    }

    /// Queues a chunk if the writer's queue has room; False (nothing queued) if it is full,
    /// so an event loop can wait for room elsewhere instead of blocking.
    #[pyo3(signature = (data, /))]
    fn try_write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let chunk = with_bytes(py, data, <[u8]>::to_vec)?;
        Ok(self.locked().try_write(chunk)?)
    }

    /// Waits for the writer, fsyncs, and returns what was written.
    fn close(&self, py: Python<'_>) -> PyResult<PySinkResult> {
        let r = py.detach(|| self.locked().close())?;
        let parts = part_digests(py, r.parts.as_ref())?;
        Ok(PySinkResult {
            size: r.size,
            sha256: to_hex(&r.sha256),
            parts,
        })
    }

    /// Stops writing and removes the partial file. Safe to call more than once.
    fn abort(&self, py: Python<'_>) {
        py.detach(|| self.locked().abort())
    }

    /// Bytes accepted so far.
    #[getter]
    fn written(&self) -> u64 {
        self.locked().written()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.locked().path().to_path_buf()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.abort(py);
        false
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySink>()?;
    m.add_class::<PySinkResult>()?;
    Ok(())
}
