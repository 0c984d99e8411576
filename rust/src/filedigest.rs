//! One-pass file digests: whole-file SHA-256 plus, on request, per-part SHA-256, FastCDC chunks
//! BLAKE3, and SHA-1 with MD5 (`legacy`), all from a single read of the file.
//!
//! [`hash_file`] runs two lanes on two threads. The calling thread reads fixed-size blocks into
//! a small ring of recycled buffers and hands each block (shared, not copied) to the first lane,
//! a thread of its own for the whole-file SHA-256 (with the parts' where they pair with it,
//! `crate::sha256x2`), which passes it back; between its reads, the calling thread does the
//! second lane's work: the chunk cuts, the chunks' BLAKE3, the whole file's, and a share of the
//! parts, so that the two lanes' loads come out about even. [`hash_files`] runs many files on
//! the shared pool instead, one file per worker, each read and hashed on that worker alone,
//! since the parallelism there comes from the files; a single file goes to [`hash_file`].

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::chunking::{Chunk, ChunkHasher, ChunkParams, Cutter};
use crate::error::{Error, Result};
use crate::hashing::{
    Blake3, Digest, Md5, PartDigest, PartHasher, PartShare, Sha1, Sha256, WholeAndParts,
};
use crate::pool;

/// Read size. 1 MiB blocks stay in L2/L3 between the reader and the hashing threads.
const BLOCK: usize = 1 << 20;
/// Buffers in flight for a pipelined read: enough to ride out scheduling hiccups.
const RING: usize = 8;

/// The second lane's share of the parts, by what else it carries (it also reads the file);
/// `None` when it has enough to do without them: chunking, or MD5 (`legacy`), which alone runs
/// at a third of SHA-256's speed, slower than the first lane's whole file, parts and SHA-1
/// together. Measured figures: `benches/README.md`.
fn back_share(chunking: bool, blake3: bool, legacy: bool) -> Option<PartShare> {
    match (chunking || legacy, blake3) {
        (false, false) => Some(PartShare::AllBut(4)),
        (true, _) => None,
        (false, true) => Some(PartShare::Every(2)),
    }
}

/// Parts up to this size are shared out: the lanes' loads then alternate part by part, and
/// the ring, of two parts' size, lets the second lane fall behind by the part it hashes and
/// catch up on the next ones.
const SHARE_MAX_PART: u64 = 16 << 20;
/// Below this size the thread hand-offs cost more than they save.
const PIPELINE_MIN: u64 = 4 * BLOCK as u64;

/// What to compute besides the whole-file SHA-256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestOptions {
    pub part_size: Option<u64>,
    pub chunking: Option<ChunkParams>,
    pub blake3: bool,
    /// SHA-1 and MD5 of the whole file (hawkBit's DDI lists them besides SHA-256).
    pub legacy: bool,
}

impl DigestOptions {
    fn validate(&self) -> Result<()> {
        if self.part_size == Some(0) {
            return Err(Error::InvalidArgument("part_size must be positive".into()));
        }
        match &self.chunking {
            Some(p) => p.validate(),
            None => Ok(()),
        }
    }
}

/// The digests of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: Digest,
    pub part_size: Option<u64>,
    pub parts: Option<Vec<PartDigest>>,
    pub chunking: Option<ChunkParams>,
    pub chunks: Option<Vec<Chunk>>,
    pub blake3: Option<Digest>,
    pub sha1: Option<[u8; 20]>,
    pub md5: Option<[u8; 16]>,
}

/// The first lane of a file's work: the whole-file SHA-256, with the parts' in the same pass
/// where it takes parts (about the cost of the whole-file digest alone on CPUs where the
/// pair is cheap), and the SHA-1 if asked: with the SHA extensions SHA-1 costs about what
/// SHA-256 does, while MD5 has no hardware help, so MD5 goes to the second lane and the two
/// lanes come out about even.
struct Front {
    sha: FrontSha,
    sha1: Option<Sha1>,
}

enum FrontSha {
    Whole(Sha256),
    Pair(WholeAndParts),
}

/// The rest, on the second lane: a share of the parts, the chunk cuts, the chunks' BLAKE3,
/// the whole file's, and its MD5.
struct Back {
    parts: Option<PartHasher>,
    chunks: Option<(Cutter, ChunkHasher)>,
    blake3: Option<Blake3>,
    md5: Option<Md5>,
    cuts: Vec<u64>,
}

impl Front {
    /// The lanes of a file's work; the second is `None` when there is nothing for it to do.
    /// With `two_threads`, the second lane takes a share of the parts ([`back_share`]); parts
    /// larger than [`SHARE_MAX_PART`] are not shared: with nothing else to do, the second lane
    /// takes them all, otherwise none.
    fn plan(opts: &DigestOptions, two_threads: bool) -> Result<(Front, Option<Back>)> {
        let alone = two_threads && opts.chunking.is_none() && !opts.blake3 && !opts.legacy;
        let (sha, parts) = match opts.part_size {
            Some(ps) if alone && ps > SHARE_MAX_PART => {
                (FrontSha::Whole(Sha256::new()), Some(PartHasher::new(ps)?))
            }
            Some(ps) => {
                let mut sha = WholeAndParts::new(ps)?;
                let share = back_share(opts.chunking.is_some(), opts.blake3, opts.legacy)
                    .filter(|_| two_threads && ps <= SHARE_MAX_PART);
                let shared = match share {
                    Some(share) => {
                        sha.share_parts(share.others());
                        Some(PartHasher::sharing(ps, share)?)
                    }
                    None => None,
                };
                (FrontSha::Pair(sha), shared)
            }
            None => (FrontSha::Whole(Sha256::new()), None),
        };
        let front = Front {
            sha,
            sha1: opts.legacy.then(Sha1::new),
        };
        let back = Back {
            parts,
            chunks: match opts.chunking {
                Some(params) => Some((Cutter::new(params)?, ChunkHasher::new())),
                None => None,
            },
            blake3: opts.blake3.then(Blake3::new),
            md5: opts.legacy.then(Md5::new),
            cuts: Vec::new(),
        };
        let busy = back.parts.is_some()
            || back.chunks.is_some()
            || back.blake3.is_some()
            || back.md5.is_some();
        Ok((front, busy.then_some(back)))
    }

    fn update(&mut self, data: &[u8]) {
        match &mut self.sha {
            FrontSha::Whole(h) => h.update(data),
            FrontSha::Pair(h) => h.update(data),
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
    }

    /// The whole-file digest, the parts if this lane has them, and the SHA-1 if asked.
    fn finish(self, opts: &DigestOptions) -> (Digest, Option<Vec<PartDigest>>, Option<[u8; 20]>) {
        let sha1 = self.sha1.map(|h| h.digest());
        match self.sha {
            FrontSha::Whole(h) => (h.finalize(), None, sha1),
            FrontSha::Pair(h) => {
                let (whole, parts) = h.finish();
                (whole, opts.part_size.map(|_| parts), sha1)
            }
        }
    }
}

impl Back {
    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.parts {
            h.update(data);
        }
        if let Some((cutter, hasher)) = &mut self.chunks {
            self.cuts.clear();
            cutter.update(data, &mut self.cuts);
            hasher.update(data, &self.cuts, cutter.holding());
        }
        if let Some(h) = &mut self.blake3 {
            h.update(data);
        }
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
    }

    #[allow(clippy::type_complexity)]
    fn finish(
        self,
    ) -> (
        Option<Vec<PartDigest>>,
        Option<Vec<Chunk>>,
        Option<Digest>,
        Option<[u8; 16]>,
    ) {
        (
            self.parts.map(PartHasher::finish),
            self.chunks.map(|(_, hasher)| hasher.finish()),
            self.blake3.map(|h| h.digest()),
            self.md5.map(|h| h.digest()),
        )
    }
}

fn assemble(
    path: &Path,
    size: u64,
    opts: &DigestOptions,
    front: Front,
    back: Option<Back>,
) -> FileDigest {
    let (sha256, paired, sha1) = front.finish(opts);
    let (parts, chunks, blake3, md5) = back.map_or((None, None, None, None), Back::finish);
    let parts = match (paired, parts) {
        (Some(mut paired), Some(shared)) => {
            paired.extend(shared);
            paired.sort_unstable_by_key(|p| p.index);
            Some(paired)
        }
        (paired, parts) => paired.or(parts),
    };
    FileDigest {
        path: path.to_path_buf(),
        size,
        sha256,
        part_size: opts.part_size,
        parts,
        chunking: opts.chunking,
        chunks,
        blake3,
        sha1,
        md5,
    }
}

/// An open regular file and what it looked like before reading.
struct Source {
    path: PathBuf,
    file: File,
    before: Metadata,
}

impl Source {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let before = file.metadata().map_err(|e| Error::io(path, e))?;
        if before.is_dir() {
            let e = io::Error::new(io::ErrorKind::IsADirectory, "Is a directory");
            return Err(Error::io(path, e));
        }
        if !before.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            before,
        })
    }

    /// Fills `buf` as far as the file allows; 0 means end of file.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
        Ok(filled)
    }

    /// Fails if the file is not, after reading, what it was before: same length as read, same
    /// modification and status-change times.
    fn check_unchanged(&self, read: u64) -> Result<()> {
        let after = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        let changed = |detail: String| {
            Err(Error::FileChanged {
                path: self.path.clone(),
                detail,
            })
        };
        if read != self.before.len() || after.len() != self.before.len() {
            return changed(format!(
                "size was {}, read {read}, now {}",
                self.before.len(),
                after.len()
            ));
        }
        if after.modified().ok() != self.before.modified().ok()
            || ctime(&after) != ctime(&self.before)
        {
            return changed("modified during the read".into());
        }
        Ok(())
    }
}

#[cfg(unix)]
fn ctime(m: &Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (m.ctime(), m.ctime_nsec())
}

#[cfg(not(unix))]
fn ctime(_: &Metadata) -> (i64, i64) {
    (0, 0)
}

/// A filled buffer shared by the consumer threads; dropping the last reference returns the
/// buffer to the reader's ring.
struct Block<'a> {
    buf: &'a mut [u8],
    len: usize,
    home: Sender<&'a mut [u8]>,
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // The reader may have stopped already; then the buffer is simply dropped.
        let _ = self.home.try_send(std::mem::take(&mut self.buf));
    }
}

/// Called with the bytes read so far, every [`PROGRESS_STEP`] bytes and at the end; returning
/// `false` cancels the digest ([`Error::Cancelled`]).
pub type Progress<'a> = &'a (dyn Fn(u64) -> bool + Sync);

/// How often a [`Progress`] callback hears from the reader.
pub const PROGRESS_STEP: u64 = 16 << 20;

struct Reporter<'a> {
    progress: Option<Progress<'a>>,
    reported: u64,
}

impl Reporter<'_> {
    fn read(&mut self, total: u64, last: bool) -> Result<()> {
        if let Some(p) = self.progress {
            if last || total - self.reported >= PROGRESS_STEP {
                self.reported = total;
                if !p(total) {
                    return Err(Error::Cancelled);
                }
            }
        }
        Ok(())
    }
}

/// Digests one file, reading it once with reading and hashing overlapped (see the module doc).
pub fn hash_file(path: &Path, opts: &DigestOptions) -> Result<FileDigest> {
    hash_file_with_progress(path, opts, None)
}

/// [`hash_file`], reporting progress.
pub fn hash_file_with_progress(
    path: &Path,
    opts: &DigestOptions,
    progress: Option<Progress<'_>>,
) -> Result<FileDigest> {
    opts.validate()?;
    let src = Source::open(path)?;
    let mut reporter = Reporter {
        progress,
        reported: 0,
    };
    if src.before.len() < PIPELINE_MIN {
        return digest_inline(src, opts, &mut reporter);
    }
    digest_pipelined(src, opts, &mut reporter)
}

/// Digests one file in two lanes: the first on a thread of its own, the second on the calling
/// thread, between its reads.
fn digest_pipelined(
    mut src: Source,
    opts: &DigestOptions,
    reporter: &mut Reporter<'_>,
) -> Result<FileDigest> {
    let (mut front, mut back) = Front::plan(opts, true)?;
    // Parts on both lanes: the ring holds two parts (see SHARE_MAX_PART).
    let shared = back
        .as_ref()
        .and_then(|b| b.parts.as_ref())
        .is_some_and(PartHasher::shares_out);
    let ring = match opts.part_size {
        Some(ps) if shared => RING.max((2 * ps).div_ceil(BLOCK as u64) as usize),
        _ => RING,
    };
    let mut memory = vec![0u8; ring * BLOCK];
    let (free_tx, free_rx) = crossbeam_channel::bounded::<&mut [u8]>(ring);
    for buf in memory.chunks_exact_mut(BLOCK) {
        free_tx.send(buf).expect("ring has room");
    }
    std::thread::scope(|s| {
        // Each block goes to the first lane, which passes it back. The ring bounds memory: a
        // buffer comes back only when both lanes are done with it.
        let (feed, front_rx) = crossbeam_channel::unbounded::<Arc<Block<'_>>>();
        let (back_tx, back_rx) = crossbeam_channel::unbounded::<Arc<Block<'_>>>();
        let two_lanes = back.is_some();
        let front = s.spawn(move || {
            for block in front_rx {
                front.update(&block.buf[..block.len]);
                if two_lanes {
                    back_tx.send(block).expect("second lane outlives the first");
                }
            }
            front
        });
        let lane = Lane {
            free: &free_rx,
            home: &free_tx,
            feed,
            passed: &back_rx,
        };
        let read = lane.run(&mut src, reporter, back.as_mut());
        let front = join(front);
        let total = read?;
        src.check_unchanged(total)?;
        Ok(assemble(&src.path, total, opts, front, back))
    })
}

/// The calling thread's side of [`digest_pipelined`]: the ring's free buffers, the feed to the
/// first lane, and the blocks it passes back.
struct Lane<'r, 'a> {
    free: &'r Receiver<&'a mut [u8]>,
    home: &'r Sender<&'a mut [u8]>,
    feed: Sender<Arc<Block<'a>>>,
    passed: &'r Receiver<Arc<Block<'a>>>,
}

impl<'a> Lane<'_, 'a> {
    /// Reads the file into the ring, doing the second lane's work (if any) while no buffer is
    /// free, then the rest of it; returns the bytes read. Reading comes first, so that the
    /// first lane, the one that costs most, never waits for data.
    fn run(
        self,
        src: &mut Source,
        reporter: &mut Reporter<'_>,
        mut back: Option<&mut Back>,
    ) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let buf = match back.as_deref_mut() {
                None => self.free.recv().expect("the ring holds a sender"),
                Some(back) => crossbeam_channel::select_biased! {
                    recv(self.free) -> buf => buf.expect("the ring holds a sender"),
                    recv(self.passed) -> passed => {
                        // Gone only if the first lane panicked: joining it tells.
                        let Ok(block) = passed else { return Ok(total) };
                        back.update(&block.buf[..block.len]);
                        continue;
                    }
                },
            };
            let n = src.read_block(buf)?;
            if n == 0 {
                reporter.read(total, true)?;
                break;
            }
            total += n as u64;
            reporter.read(total, false)?;
            let block = Arc::new(Block {
                buf,
                len: n,
                home: self.home.clone(),
            });
            if self.feed.send(block).is_err() {
                return Ok(total); // as above
            }
        }
        drop(self.feed);
        if let Some(back) = back {
            for block in self.passed {
                back.update(&block.buf[..block.len]);
            }
        }
        Ok(total)
    }
}

/// A lane's result; its panic, if it had one.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Digests one file on the calling thread alone.
fn digest_inline(
    mut src: Source,
    opts: &DigestOptions,
    reporter: &mut Reporter<'_>,
) -> Result<FileDigest> {
    let (mut front, mut back) = Front::plan(opts, false)?;
    let cap = (src.before.len() as usize).clamp(1, BLOCK);
    let mut buf = vec![0; cap];
    let mut total = 0u64;
    loop {
        let n = src.read_block(&mut buf)?;
        if n == 0 {
            reporter.read(total, true)?;
            break;
        }
        total += n as u64;
        reporter.read(total, false)?;
        front.update(&buf[..n]);
        if let Some(b) = &mut back {
            b.update(&buf[..n]);
        }
    }
    src.check_unchanged(total)?;
    Ok(assemble(&src.path, total, opts, front, back))
}

/// Digests many files in parallel on the shared pool; one result per path, in input order.
pub fn hash_files(paths: &[PathBuf], opts: &DigestOptions) -> Result<Vec<Result<FileDigest>>> {
    opts.validate()?;
    if let [path] = paths {
        // One file: both cores on it.
        return Ok(vec![hash_file(path, opts)]);
    }
    pool::map(paths, |p| {
        let mut quiet = Reporter {
            progress: None,
            reported: 0,
        };
        Source::open(p).and_then(|src| digest_inline(src, opts, &mut quiet))
    })
}

#[cfg(test)]
mod tests;
