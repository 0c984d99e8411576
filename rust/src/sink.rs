//! A hashing file sink for uploads: the caller hands it received chunks and goes back to its
//! event loop; a native thread writes them and hashes them (SHA-256, optionally per part).
//! [`Sink::create`] writes a new file, which [`Sink::abort`] (or dropping an unclosed sink)
//! removes; [`Sink::at`] writes into a region of a shared file (one part of a binary), which an
//! abort leaves as it is. [`Sink::close`] fsyncs and returns the size and digests.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

use crate::error::{Error, Result};
use crate::hashing::{Digest, PartDigest, Sha256, WholeAndParts};

/// Chunks queued for the writer thread at most; a caller that outruns the disk waits here.
const QUEUE: usize = 16;

/// What a closed sink wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkResult {
    pub size: u64,
    pub sha256: Digest,
    pub parts: Option<Vec<PartDigest>>,
}

/// See the module doc.
#[derive(Debug)]
pub struct Sink {
    path: PathBuf,
    tx: Option<Sender<Vec<u8>>>,
    worker: Option<JoinHandle<Result<SinkResult>>>,
    written: u64,
    limit: Option<u64>,
    /// Whether the sink created the file (and so removes it on abort).
    owns_file: bool,
}

impl Sink {
    /// Creates `path` (which must not exist) and starts the writer thread. `limit` caps the
    /// bytes accepted; `part_size` asks for per-part digests.
    pub fn create(path: &Path, part_size: Option<u64>, limit: Option<u64>) -> Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Self::start(path, file, part_size, limit, true)
    }

    /// Writes into `path` (created if missing, never truncated) from byte `offset` on.
    pub fn at(
        path: &Path,
        offset: u64,
        part_size: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Self> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        Self::start(path, file, part_size, limit, false)
    }

    fn start(
        path: &Path,
        file: File,
        part_size: Option<u64>,
        limit: Option<u64>,
        owns_file: bool,
    ) -> Result<Self> {
        let hasher = match part_size {
            Some(ps) => Hasher::WithParts(WholeAndParts::new(ps)?),
            None => Hasher::Whole(Sha256::new()),
        };
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
        let owned = path.to_path_buf();
        let worker = std::thread::Builder::new()
            .name("ferryman-sink".into())
            .spawn(move || write_all(&owned, file, hasher, rx))
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tx: Some(tx),
            worker: Some(worker),
            written: 0,
            limit,
            owns_file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Queues a chunk, waiting while the queue is full. Fails with [`Error::TooLarge`]
    /// (accepting nothing of the chunk) if it would pass the limit, and with the writer's
    /// error if writing failed.
    pub fn write(&mut self, chunk: Vec<u8>) -> Result<()> {
        self.queue(chunk, true).map(|_| ())
    }

    /// Queues a chunk only if the queue has room, without waiting: `Ok(false)` (nothing
    /// accepted) when it is full. An event loop calls this and waits elsewhere when it fails.
    pub fn try_write(&mut self, chunk: Vec<u8>) -> Result<bool> {
        self.queue(chunk, false)
    }

    fn queue(&mut self, chunk: Vec<u8>, wait: bool) -> Result<bool> {
        let tx = self.tx.as_ref().ok_or(Error::Closed("sink"))?;
        let after = self.written + chunk.len() as u64;
        if let Some(limit) = self.limit {
            if after > limit {
                return Err(Error::TooLarge { limit });
            }
        }
        if chunk.is_empty() {
            return Ok(true);
        }
        let sent = if wait {
            tx.send(chunk).map_err(|_| ())
        } else {
            match tx.try_send(chunk) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => return Ok(false),
                Err(TrySendError::Disconnected(_)) => Err(()),
            }
        };
        if sent.is_err() {
            // The writer stopped early: it failed, and its error says why.
            self.tx = None;
            let err = self.join().err().unwrap_or(Error::Closed("sink"));
            self.remove_own_file();
            return Err(err);
        }
        self.written = after;
        Ok(true)
    }

    /// Waits for the writer, fsyncs the file and returns what was written. On error the
    /// partial file is removed.
    pub fn close(&mut self) -> Result<SinkResult> {
        self.tx.take().ok_or(Error::Closed("sink"))?;
        let out = self.join();
        if out.is_err() {
            self.remove_own_file();
        }
        out
    }

    /// Stops the writer and removes the partial file (if the sink created it). Idempotent.
    pub fn abort(&mut self) {
        let was_open = self.tx.take().is_some();
        if self.worker.is_some() {
            let _ = self.join();
        }
        if was_open {
            self.remove_own_file();
        }
    }

    fn remove_own_file(&self) {
        if self.owns_file {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn join(&mut self) -> Result<SinkResult> {
        match self.worker.take() {
            Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => Err(Error::Closed("sink")),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.abort();
    }
}

enum Hasher {
    Whole(Sha256),
    WithParts(WholeAndParts),
}

fn write_all(
    path: &Path,
    mut file: File,
    mut hasher: Hasher,
    rx: crossbeam_channel::Receiver<Vec<u8>>,
) -> Result<SinkResult> {
    let mut size = 0u64;
    for chunk in rx {
        file.write_all(&chunk).map_err(|e| Error::io(path, e))?;
        match &mut hasher {
            Hasher::Whole(h) => h.update(&chunk),
            Hasher::WithParts(h) => h.update(&chunk),
        }
        size += chunk.len() as u64;
    }
    file.sync_data().map_err(|e| Error::io(path, e))?;
    let (sha256, parts) = match hasher {
        Hasher::Whole(h) => (h.finalize(), None),
        Hasher::WithParts(h) => {
            let (whole, parts) = h.finish();
            (whole, Some(parts))
        }
    };
    Ok(SinkResult {
        size,
        sha256,
        parts,
    })
}

#[cfg(test)]
mod tests;
