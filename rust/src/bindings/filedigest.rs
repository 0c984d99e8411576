//! `hash_file`, `hash_files`, `FileDigest`, `PartDigest` and the pool size.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;

use super::chunking::{chunking_arg, PyChunk, PyChunkParams};
use crate::filedigest::{self as core, DigestOptions};
use crate::hashing::{to_hex, PartDigest};
use crate::pool;

/// The SHA-256 of one upload part (hex), with its 1-based index, offset and size.
#[pyclass(module = "ferryman._native", name = "PartDigest", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct PyPartDigest {
    pub index: u32,
    pub offset: u64,
    pub size: u64,
    pub sha256: String,
}

#[pymethods]
impl PyPartDigest {
    fn __repr__(&self) -> String {
        format!(
            "PartDigest(index={}, offset={}, size={}, sha256='{}')",
            self.index, self.offset, self.size, self.sha256
        )
    }
}

impl From<&PartDigest> for PyPartDigest {
    fn from(p: &PartDigest) -> Self {
        Self {
            index: p.index,
            offset: p.offset,
            size: p.size,
            sha256: to_hex(&p.sha256),
        }
    }
}

/// The digests of one file; digests are lowercase hex.
#[pyclass(module = "ferryman._native", name = "FileDigest", frozen, get_all)]
pub struct PyFileDigest {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub part_size: Option<u64>,
    pub parts: Option<Vec<Py<PyPartDigest>>>,
    pub chunking: Option<Py<PyChunkParams>>,
    pub chunks: Option<Vec<Py<PyChunk>>>,
    pub blake3: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
}

#[pymethods]
impl PyFileDigest {
    fn __repr__(&self) -> String {
        format!(
            "FileDigest(path={:?}, size={}, sha256='{}')",
            self.path, self.size, self.sha256
        )
    }
}

/// Python objects for optional per-part digests (file digests and sink results share it).
pub fn part_digests(
    py: Python<'_>,
    parts: Option<&Vec<PartDigest>>,
) -> PyResult<Option<Vec<Py<PyPartDigest>>>> {
    parts
        .map(|ps| {
            ps.iter()
                .map(|p| Py::new(py, PyPartDigest::from(p)))
                .collect()
        })
        .transpose()
}

impl PyFileDigest {
    fn new(py: Python<'_>, d: &core::FileDigest) -> PyResult<Self> {
        let parts = part_digests(py, d.parts.as_ref())?;
        let chunks = d
            .chunks
            .as_ref()
            .map(|cs| cs.iter().map(|c| Py::new(py, PyChunk::from(c))).collect())
            .transpose()?;
        Ok(Self {
            path: d.path.display().to_string(),
            size: d.size,
            sha256: to_hex(&d.sha256),
            part_size: d.part_size,
            parts,
            chunking: d
                .chunking
                .map(|p| Py::new(py, PyChunkParams::from_core(p)))
                .transpose()?,
            chunks,
            blake3: d.blake3.map(|h| to_hex(&h)),
            sha1: d.sha1.map(|h| to_hex(&h)),
            md5: d.md5.map(|h| to_hex(&h)),
        })
    }
}

fn options(
    part_size: Option<u64>,
    chunking: Option<&Bound<'_, PyAny>>,
    blake3: bool,
    legacy: bool,
) -> PyResult<DigestOptions> {
    Ok(DigestOptions {
        part_size,
        chunking: chunking_arg(chunking)?,
        blake3,
        legacy,
    })
}

/// Digests one file in a single read, reading overlapped with hashing. `progress(bytes_read)`
/// is called every 16 MiB and at the end (with the GIL); if it raises, hashing stops and the
/// exception propagates. `legacy` adds the whole file's SHA-1 and MD5.
#[pyfunction]
#[pyo3(signature = (path, /, *, part_size = None, chunking = None, blake3 = false, legacy = false, progress = None))]
#[allow(clippy::too_many_arguments)]
fn hash_file(
    py: Python<'_>,
    path: PathBuf,
    part_size: Option<u64>,
    chunking: Option<&Bound<'_, PyAny>>,
    blake3: bool,
    legacy: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<PyFileDigest> {
    let opts = options(part_size, chunking, blake3, legacy)?;
    let Some(callback) = progress else {
        let d = py.detach(|| core::hash_file(&path, &opts))?;
        return PyFileDigest::new(py, &d);
    };
    let failure: Mutex<Option<PyErr>> = Mutex::new(None);
    let report = |done: u64| {
        Python::attach(|py| match callback.call1(py, (done,)) {
            Ok(_) => true,
            Err(e) => {
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                false
            }
        })
    };
    let result = py.detach(|| core::hash_file_with_progress(&path, &opts, Some(&report)));
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    PyFileDigest::new(py, &result?)
}

/// Digests many files in parallel on the shared pool; results in input order. The first
/// failing file (in input order) raises.
#[pyfunction]
#[pyo3(signature = (paths, /, *, threads = None, part_size = None, chunking = None, blake3 = false, legacy = false))]
fn hash_files(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    threads: Option<usize>,
    part_size: Option<u64>,
    chunking: Option<&Bound<'_, PyAny>>,
    blake3: bool,
    legacy: bool,
) -> PyResult<Vec<PyFileDigest>> {
    let opts = options(part_size, chunking, blake3, legacy)?;
    if let Some(n) = threads {
        if n != pool::threads()? {
            pool::set_threads(n)?;
        }
    }
    let results = py.detach(|| core::hash_files(&paths, &opts))?;
    results
        .into_iter()
        .map(|r| PyFileDigest::new(py, &r?))
        .collect()
}

/// Resizes the shared thread pool used by batch operations.
#[pyfunction]
#[pyo3(signature = (threads, /))]
fn set_threads(threads: usize) -> PyResult<()> {
    Ok(pool::set_threads(threads)?)
}

/// The size of the shared thread pool (built on first use, one thread per core).
#[pyfunction]
fn get_threads() -> PyResult<usize> {
    Ok(pool::threads()?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPartDigest>()?;
    m.add_class::<PyFileDigest>()?;
    m.add_function(wrap_pyfunction!(hash_file, m)?)?;
    m.add_function(wrap_pyfunction!(hash_files, m)?)?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_threads, m)?)?;
    Ok(())
}
