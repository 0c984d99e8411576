//! The one error type of the native core. The bindings map each variant to a Python exception
//! in one place (`bindings/error.rs`).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the native core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file's size or modification time changed while it was being read, so the digest
    /// would describe bytes that never existed together on disk.
    #[error("{}: file changed while being read ({detail})", path.display())]
    FileChanged { path: PathBuf, detail: String },
    /// A public key (or certificate) could not be parsed or is not acceptable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A signature did not verify, or could not be decoded.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// An argument is out of range or inconsistent (sizes, chunking parameters, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// More bytes were written to a sink than its limit allows.
    #[error("too much data: limit is {limit} bytes")]
    TooLarge { limit: u64 },
    /// A progress callback asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// The object was already closed or aborted.
    #[error("{0} is closed")]
    Closed(&'static str),
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
