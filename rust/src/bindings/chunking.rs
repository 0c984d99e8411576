//! `ChunkParams`, `Chunk`, `Part`, `chunk_bytes` and `part_plan`.

use pyo3::prelude::*;
use pyo3::types::PyBool;

use super::buffer::with_bytes;
use crate::chunking::{self as core, ChunkParams};
use crate::hashing::to_hex;

/// FastCDC 2020 parameters (sizes in bytes, normalisation level 0-3).
#[pyclass(module = "ferryman._native", name = "ChunkParams", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct PyChunkParams {
    pub min_size: usize,
    pub avg_size: usize,
    pub max_size: usize,
    pub normalization: u8,
}

impl PyChunkParams {
    pub fn core(&self) -> ChunkParams {
        ChunkParams {
            min_size: self.min_size,
            avg_size: self.avg_size,
            max_size: self.max_size,
            normalization: self.normalization,
        }
    }

    pub fn from_core(p: ChunkParams) -> Self {
        Self {
            min_size: p.min_size,
            avg_size: p.avg_size,
            max_size: p.max_size,
            normalization: p.normalization,
        }
    }
}

#[pymethods]
impl PyChunkParams {
    #[new]
    #[pyo3(signature = (min_size = None, avg_size = None, max_size = None, normalization = None))]
    fn new(
        min_size: Option<usize>,
        avg_size: Option<usize>,
        max_size: Option<usize>,
        normalization: Option<u8>,
    ) -> PyResult<Self> {
        let d = ChunkParams::default();
        let p = ChunkParams {
            min_size: min_size.unwrap_or(d.min_size),
            avg_size: avg_size.unwrap_or(d.avg_size),
            max_size: max_size.unwrap_or(d.max_size),
            normalization: normalization.unwrap_or(d.normalization),
        };
        p.validate()?;
        Ok(Self::from_core(p))
    }

    fn __repr__(&self) -> String {
        format!(
            "ChunkParams(min_size={}, avg_size={}, max_size={}, normalization={})",
            self.min_size, self.avg_size, self.max_size, self.normalization
        )
    }
}

/// `chunking=` as the functions take it: `True` for the defaults, a `ChunkParams`, or
/// `None`/`False` for none.
pub fn chunking_arg(arg: Option<&Bound<'_, PyAny>>) -> PyResult<Option<ChunkParams>> {
    let Some(arg) = arg else { return Ok(None) };
    if let Ok(b) = arg.cast::<PyBool>() {
        return Ok(b.is_true().then(ChunkParams::default));
    }
    Ok(Some(arg.extract::<PyRef<'_, PyChunkParams>>()?.core()))
}

/// A content-defined chunk: offset, length and the BLAKE3 of its bytes (hex).
#[pyclass(module = "ferryman._native", name = "Chunk", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct PyChunk {
    pub offset: u64,
    pub length: u64,
    pub blake3: String,
}

#[pymethods]
impl PyChunk {
    fn __repr__(&self) -> String {
        format!(
            "Chunk(offset={}, length={}, blake3='{}')",
            self.offset, self.length, self.blake3
        )
    }
}

impl From<&core::Chunk> for PyChunk {
    fn from(c: &core::Chunk) -> Self {
        Self {
            offset: c.offset,
            length: c.length,
            blake3: to_hex(&c.blake3),
        }
    }
}

/// One part of a multipart upload: 1-based index, offset and size.
#[pyclass(module = "ferryman._native", name = "Part", frozen, eq, get_all)]
#[derive(Clone, PartialEq)]
pub struct PyPart {
    pub index: u32,
    pub offset: u64,
    pub size: u64,
}

#[pymethods]
impl PyPart {
    fn __repr__(&self) -> String {
        format!(
            "Part(index={}, offset={}, size={})",
            self.index, self.offset, self.size
        )
    }
}

/// Splits `data` into FastCDC chunks.
#[pyfunction]
#[pyo3(signature = (data, /, params = None))]
fn chunk_bytes(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    params: Option<PyRef<'_, PyChunkParams>>,
) -> PyResult<Vec<PyChunk>> {
    let params = params.map_or_else(ChunkParams::default, |p| p.core());
    let chunks = with_bytes(py, data, |b| core::chunk_bytes(b, params))??;
    Ok(chunks.iter().map(PyChunk::from).collect())
}

/// The parts of a `size`-byte binary uploaded in `part_size` pieces.
#[pyfunction]
#[pyo3(signature = (size, part_size, /))]
fn part_plan(size: u64, part_size: u64) -> PyResult<Vec<PyPart>> {
    Ok(core::part_plan(size, part_size)?
        .into_iter()
        .map(|p| PyPart {
            index: p.index,
            offset: p.offset,
            size: p.size,
        })
        .collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyChunkParams>()?;
    m.add_class::<PyChunk>()?;
    m.add_class::<PyPart>()?;
    m.add_function(wrap_pyfunction!(chunk_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(part_plan, m)?)?;
    Ok(())
}
