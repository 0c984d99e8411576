//! Borrowing the bytes of any Python buffer (bytes, bytearray, memoryview, mmap, numpy...).

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Inputs at least this long are hashed with the GIL released, as hashlib does: below it the
/// release costs more than the hashing.
pub const GIL_MINSIZE: usize = 2048;

/// Calls `f` on the bytes of `obj`, without the GIL when they are large.
///
/// A mutable buffer (bytearray) changed by another thread meanwhile yields a digest of
/// whatever bytes were read, as with hashlib; the buffer export keeps the memory alive.
pub fn with_bytes<R: Send>(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> R + Send,
) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        let data = b.as_bytes();
        return Ok(if data.len() >= GIL_MINSIZE {
            py.detach(|| f(data))
        } else {
            f(data)
        });
    }
    let buf = PyUntypedBuffer::get(obj)?;
    if !buf.is_c_contiguous() {
        return Err(PyBufferError::new_err("buffer is not C-contiguous"));
    }
    let len = buf.len_bytes();
    let data: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the buffer is C-contiguous, exported (so its memory stays valid and in place
        // until `buf` is released at the end of this function), and `len_bytes` is its size.
        unsafe { std::slice::from_raw_parts(buf.buf_ptr().cast::<u8>(), len) }
    };
    Ok(if len >= GIL_MINSIZE {
        py.detach(|| f(data))
    } else {
        f(data)
    })
}
