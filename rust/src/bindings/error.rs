//! The one place where core errors become Python exceptions. The exception classes live in
//! `ferryman/errors.py` so that Python code can define, document and subclass them.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::PyErr;

use crate::error::Error;

pyo3::import_exception!(ferryman.errors, InvalidSignature);
pyo3::import_exception!(ferryman.errors, InvalidKey);
pyo3::import_exception!(ferryman.errors, FileChangedError);
pyo3::import_exception!(ferryman.errors, SizeLimitExceeded);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::Io { path, source } => {
                // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError...).
                let errno = source.raw_os_error().unwrap_or(match source.kind() {
                    std::io::ErrorKind::NotFound => 2,
                    std::io::ErrorKind::PermissionDenied => 13,
                    std::io::ErrorKind::IsADirectory => 21,
                    std::io::ErrorKind::AlreadyExists => 17,
                    _ => 5,
                });
                let strerror = std::io::Error::from_raw_os_error(errno).to_string();
                let strerror = strerror
                    .split(" (os error")
                    .next()
                    .unwrap_or("")
                    .to_string();
                PyOSError::new_err((errno, strerror, path.display().to_string()))
            }
            Error::FileChanged { .. } => FileChangedError::new_err(msg),
            Error::InvalidKey(_) => InvalidKey::new_err(msg),
            Error::InvalidSignature(_) => InvalidSignature::new_err(msg),
            Error::TooLarge { .. } => SizeLimitExceeded::new_err(msg),
            Error::InvalidArgument(_) | Error::Closed(_) => PyValueError::new_err(msg),
            Error::Cancelled => pyo3::exceptions::PyRuntimeError::new_err(msg),
        }
    }
}
