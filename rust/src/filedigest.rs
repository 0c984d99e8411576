//! One-pass file digests: whole-file SHA-256 plus, on request, per-part SHA-256, FastCDC chunks
//! and BLAKE3, all from a single read of the file.
//!
//! [`hash_file`] overlaps reading with hashing: the calling thread reads fixed-size blocks into
//! a small ring of recycled buffers and hands each block (shared, not copied) to the whole-file
//! SHA-256 on a thread of its own, which passes it back for the other digests, done by the
//! calling thread between its reads. The SHA-256 thread also finds the chunk cuts where its
//! kernels can run the gear hash inside their rounds, so that the other lane has only BLAKE3
//! left to do. [`hash_files`]
//! runs many files on the shared pool instead, one file per worker, each read and hashed on that
//! worker alone, since the parallelism there comes from the files.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::chunking::{Chunk, ChunkHasher, ChunkParams, Cutter, Guide};
use crate::error::{Error, Result};
use crate::hashing::{Blake3, Digest, PartDigest, PartHasher, PartShare, Sha256, WholeAndParts};
use crate::pool;
use crate::sha256x2;

/// Read size. 1 MiB blocks stay in L2/L3 between the reader and the hashing threads.
const BLOCK: usize = 1 << 20;
/// Buffers in flight for a pipelined read: enough to ride out scheduling hiccups.
const RING: usize = 8;
/// The second lane's share of the parts where the lanes share them out ([`Front::plan`]), by
/// what else it carries. Besides that work it reads the file, while the first lane pairs its
/// parts with the whole file (on an Intel Xeon at 1.47x the cost of one stream). Measured
/// there with 8 MiB parts, against the SHA-256 alone (medians of three alternated processes):
/// parts alone, 3 of 4 parts 0.84-0.88x (every 2nd 0.81x, 4 of 5 0.86x); parts with FastCDC or
/// with BLAKE3, every 2nd 0.79-0.82x (every 3rd 0.77x, 2 of 3 0.71-0.74x); all digests, every
/// 3rd 0.76-0.77x (every 2nd 0.70x, every 4th 0.74x).
fn back_share(chunking: bool, blake3: bool) -> PartShare {
    match (chunking, blake3) {
        (false, false) => PartShare::AllBut(4),
        (true, true) => PartShare::Every(3),
        _ => PartShare::Every(2),
    }
}

/// Parts up to this size are shared out: the lanes' loads then alternate part by part, and
/// the ring, of two parts' size, lets the second lane fall behind by the part it hashes and
/// catch up on the next ones (with 8 MiB parts, when a third thread read, all digests ran at
/// 0.65x the SHA-256 alone with a ring of 8 MiB and at 0.73x with 16 MiB; now 24 or 32 MiB do
/// no better than 16).
const SHARE_MAX_PART: u64 = 16 << 20;
/// Below this size the thread hand-offs cost more than they save.
const PIPELINE_MIN: u64 = 4 * BLOCK as u64;

/// What to compute besides the whole-file SHA-256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestOptions {
    pub part_size: Option<u64>,
    pub chunking: Option<ChunkParams>,
    pub blake3: bool,
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
}

/// The first lane of a file's work: the whole-file SHA-256, with the parts' in the same pass
/// (about the cost of the whole-file digest alone), and, where the SHA kernels can run the
/// chunking's stream gear hash inside their rounds (see [`crate::gear`]), the chunk cut
/// candidates of each piece.
enum Front {
    Whole(Sha256),
    Pair(WholeAndParts),
}

/// The rest, on a second lane: the chunk cuts (from the first lane's candidates, or by its own
/// scan), the chunks' BLAKE3 and the whole file's. Chunks and BLAKE3 share a lane, the one that
/// also reads the file: it reads a block the first has just brought into cache, and no third
/// thread competes for the two cores (with a lane each, all digests ran about 3% slower; with
/// the reading on a thread of its own, 0.70-0.73x the SHA-256 alone instead of 0.76-0.77x).
/// Where pairing is costly, this lane also takes a share of the parts (see [`Front::plan`]).
struct Back {
    parts: Option<PartHasher>,
    chunks: Option<(Cutter, ChunkHasher)>,
    blake3: Option<Blake3>,
    cuts: Vec<u64>,
}

impl Front {
    /// The lanes of a file's work; the second is `None` when there is nothing for it to do.
    ///
    /// With `parts_apart`, the second lane takes a share of the parts ([`back_share`]) away
    /// from the pair with the whole file on the first: the callers ask for that when the lanes
    /// are threads of their own and the pair is not cheap on this CPU
    /// ([`sha256x2::pair_is_cheap`]). Parts larger than [`SHARE_MAX_PART`] are not shared: with
    /// nothing else to do, the second lane takes them all, otherwise none. Where the pair costs
    /// about one stream, no part moves and the first lane's load stays as light as it gets.
    fn plan(opts: &DigestOptions, parts_apart: bool) -> Result<(Front, Option<Back>)> {
        let scanning = match opts.chunking {
            Some(params) => WholeAndParts::scanning(opts.part_size, params.masks())?,
            None => None,
        };
        let alone = parts_apart && opts.chunking.is_none() && !opts.blake3;
        let (front, parts) = match (scanning, opts.part_size) {
            (None, Some(ps)) if alone && ps > SHARE_MAX_PART => {
                (Front::Whole(Sha256::new()), Some(PartHasher::new(ps)?))
            }
            (scanning, Some(ps)) => {
                let mut sha = match scanning {
                    Some(sha) => sha,
                    None => WholeAndParts::new(ps)?,
                };
                let shared = if parts_apart && ps <= SHARE_MAX_PART {
                    let share = back_share(opts.chunking.is_some(), opts.blake3);
                    sha.share_parts(share.others());
                    Some(PartHasher::sharing(ps, share)?)
                } else {
                    None
                };
                (Front::Pair(sha), shared)
            }
            (Some(sha), None) => (Front::Pair(sha), None),
            (None, None) => (Front::Whole(Sha256::new()), None),
        };
        let back = Back {
            parts,
            chunks: match opts.chunking {
                Some(params) => Some((Cutter::new(params)?, ChunkHasher::new())),
                None => None,
            },
            blake3: opts.blake3.then(Blake3::new),
            cuts: Vec::new(),
        };
        let busy = back.parts.is_some() || back.chunks.is_some() || back.blake3.is_some();
        Ok((front, busy.then_some(back)))
    }

    /// Takes `data`, and finds its cut candidates if this lane can.
    fn update(&mut self, data: &[u8]) -> Guide {
        match self {
            Front::Whole(h) => h.update(data),
            Front::Pair(h) => {
                let hash_before = h.candidates().map(|c| c.hash());
                h.update(data);
                if let (Some(hash_before), Some(c)) = (hash_before, h.candidates()) {
                    let hits = c.take();
                    return Guide { hash_before, hits };
                }
            }
        }
        Guide::default()
    }

    /// The whole-file digest, and the parts if this lane has them.
    fn finish(self, opts: &DigestOptions) -> (Digest, Option<Vec<PartDigest>>) {
        match self {
            Front::Whole(h) => (h.finalize(), None),
            Front::Pair(h) => {
                let (whole, parts) = h.finish();
                (whole, opts.part_size.map(|_| parts))
            }
        }
    }
}

impl Back {
    /// Takes `data` with what the first lane found in it.
    fn update(&mut self, data: &[u8], guide: Guide) {
        if let Some(h) = &mut self.parts {
            h.update(data);
        }
        if let Some((cutter, hasher)) = &mut self.chunks {
            self.cuts.clear();
            cutter.update(data, guide, &mut self.cuts);
            hasher.update(data, &self.cuts, cutter.holding());
        }
        if let Some(h) = &mut self.blake3 {
            h.update(data);
        }
    }

    fn finish(self) -> (Option<Vec<PartDigest>>, Option<Vec<Chunk>>, Option<Digest>) {
        (
            self.parts.map(PartHasher::finish),
            self.chunks.map(|(_, hasher)| hasher.finish()),
            self.blake3.map(|h| h.digest()),
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
    let (sha256, paired) = front.finish(opts);
    let (parts, chunks, blake3) = back.map_or((None, None, None), Back::finish);
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

/// The memory of the ring: its buffers start on a 2 MiB boundary and, on Linux, are backed by
/// transparent huge pages where the system allows it (`madvise` mode is the common default).
/// With 4 KiB pages the same all-digests run of a 1 GiB file took about 1.0 s instead of about
/// 0.75 s, the extra time being the kernel's copy into the buffers.
///
/// On Linux the ring is a mapping of its own, so that the advice always comes before the first
/// touch. Taken from the allocator, only a process's first ring was fresh: glibc then raises its
/// mmap threshold and serves later rings from reused heap memory (14 calls faulted in 8 huge
/// pages in all; as a mapping, every call faults in its 4 or 5).
struct RingMemory {
    #[cfg(target_os = "linux")]
    map: std::ptr::NonNull<u8>,
    #[cfg(not(target_os = "linux"))]
    map: Vec<u8>,
    map_len: usize,
    len: usize,
}

const HUGE_PAGE: usize = 2 << 20;

impl RingMemory {
    #[cfg(target_os = "linux")]
    fn new(len: usize) -> io::Result<Self> {
        let map_len = len + HUGE_PAGE;
        // SAFETY: a new private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = std::ptr::NonNull::new(p.cast::<u8>()).expect("mmap returned null");
        let ring = Self { map, map_len, len };
        // SAFETY: advice only, over the aligned part of the mapping; failure is harmless.
        unsafe { libc::madvise(ring.start().cast(), len, libc::MADV_HUGEPAGE) };
        Ok(ring)
    }

    #[cfg(not(target_os = "linux"))]
    fn new(len: usize) -> io::Result<Self> {
        let map_len = len + HUGE_PAGE;
        Ok(Self {
            map: vec![0; map_len],
            map_len,
            len,
        })
    }

    fn start(&self) -> *mut u8 {
        #[cfg(target_os = "linux")]
        let base = self.map.as_ptr();
        #[cfg(not(target_os = "linux"))]
        let base = self.map.as_ptr().cast_mut();
        let offset = base.align_offset(HUGE_PAGE).min(HUGE_PAGE);
        debug_assert!(offset + self.len <= self.map_len);
        base.wrapping_add(offset)
    }

    fn buffers(&mut self, size: usize) -> Vec<&mut [u8]> {
        // SAFETY: `start()..start() + len` lies inside memory this value owns (zeroed, so
        // initialised), and the `&mut self` borrow keeps it exclusive for the slices' life.
        let all = unsafe { std::slice::from_raw_parts_mut(self.start(), self.len) };
        all.chunks_exact_mut(size).collect()
    }
}

#[cfg(target_os = "linux")]
impl Drop for RingMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no slice of it outlives `self`.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
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
    digest_pipelined(src, opts, &mut reporter, !sha256x2::pair_is_cheap())
}

/// Digests one file in two lanes: the first on a thread of its own, the second on the calling
/// thread, between its reads.
fn digest_pipelined(
    mut src: Source,
    opts: &DigestOptions,
    reporter: &mut Reporter<'_>,
    parts_apart: bool,
) -> Result<FileDigest> {
    let (mut front, mut back) = Front::plan(opts, parts_apart)?;
    // Parts on both lanes: the ring holds two parts (see SHARE_MAX_PART).
    let shared = back
        .as_ref()
        .and_then(|b| b.parts.as_ref())
        .is_some_and(PartHasher::shares_out);
    let ring = match opts.part_size {
        Some(ps) if shared => RING.max((2 * ps).div_ceil(BLOCK as u64) as usize),
        _ => RING,
    };
    let mut memory = RingMemory::new(ring * BLOCK).map_err(|e| Error::io(&src.path, e))?;
    let (free_tx, free_rx) = crossbeam_channel::bounded::<&mut [u8]>(ring);
    for buf in memory.buffers(BLOCK) {
        free_tx.send(buf).expect("ring has room");
    }
    std::thread::scope(|s| {
        // Each block goes to the first lane, which passes it back with the cut candidates it
        // found in it. The ring bounds memory: a buffer comes back only when both lanes are
        // done with it.
        let (feed, front_rx) = crossbeam_channel::unbounded::<Arc<Block<'_>>>();
        let (back_tx, back_rx) = crossbeam_channel::unbounded::<(Arc<Block<'_>>, Guide)>();
        let two_lanes = back.is_some();
        let front = s.spawn(move || {
            // The candidates cost this lane a little and spare the other a scan, which costs
            // about eight times as much: letting the other lane scan whenever this one was
            // behind made all digests slower (0.83x the SHA-256 alone against 0.91x, medians
            // of 14 alternated rounds).
            for block in front_rx {
                let guide = front.update(&block.buf[..block.len]);
                if two_lanes {
                    back_tx
                        .send((block, guide))
                        .expect("second lane outlives the first");
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
    passed: &'r Receiver<(Arc<Block<'a>>, Guide)>,
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
                        let Ok((block, guide)) = passed else { return Ok(total) };
                        back.update(&block.buf[..block.len], guide);
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
            for (block, guide) in self.passed {
                back.update(&block.buf[..block.len], guide);
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
        let guide = front.update(&buf[..n]);
        if let Some(b) = &mut back {
            b.update(&buf[..n], guide);
        }
    }
    src.check_unchanged(total)?;
    Ok(assemble(&src.path, total, opts, front, back))
}

/// Digests many files in parallel on the shared pool; one result per path, in input order.
pub fn hash_files(paths: &[PathBuf], opts: &DigestOptions) -> Result<Vec<Result<FileDigest>>> {
    opts.validate()?;
    pool::map(paths, |p| {
        let mut quiet = Reporter {
            progress: None,
            reported: 0,
        };
        Source::open(p).and_then(|src| digest_inline(src, opts, &mut quiet))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::chunk_bytes;
    use crate::hashing::{blake3, sha256};
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 31) ^ (i >> 9)) as u8).collect()
    }

    fn all_opts(part_size: u64) -> DigestOptions {
        DigestOptions {
            part_size: Some(part_size),
            chunking: Some(ChunkParams::default()),
            blake3: true,
        }
    }

    fn check(bytes: &[u8], d: &FileDigest, opts: &DigestOptions) {
        assert_eq!(d.size, bytes.len() as u64);
        assert_eq!(d.sha256, sha256(bytes));
        assert_eq!(d.blake3, opts.blake3.then(|| blake3(bytes)));
        match opts.part_size {
            Some(ps) => {
                let parts = d.parts.as_ref().unwrap();
                let plan = crate::chunking::part_plan(bytes.len() as u64, ps).unwrap();
                assert_eq!(parts.len(), plan.len());
                for (p, want) in parts.iter().zip(plan) {
                    let s = want.offset as usize;
                    assert_eq!(p.sha256, sha256(&bytes[s..s + want.size as usize]));
                }
            }
            None => assert!(d.parts.is_none()),
        }
        let chunks = opts.chunking.map(|p| chunk_bytes(bytes, p).unwrap());
        assert_eq!(d.chunks, chunks);
    }

    #[test]
    fn every_plan_agrees_inline_and_pipelined() {
        // Chunks of 1–4 KiB, so that cuts fall near the blocks' edges.
        let small = ChunkParams {
            min_size: 1024,
            avg_size: 2048,
            max_size: 4096,
            normalization: 1,
        };
        let plans = [
            // Parts that are not whole SHA-256 blocks: the second lane finds the cuts by its
            // own scan.
            (Some(BLOCK as u64 + 3), Some(small), true, false),
            // Otherwise from the candidates the SHA-256 kernel finds on the first lane, with or
            // without parts.
            (Some(1 << 20), Some(small), true, true),
            (Some(64), Some(small), false, true),
            (None, Some(ChunkParams::default()), false, true),
            // Parts alone or with BLAKE3: the lanes share them in other proportions.
            (Some(1 << 20), None, false, false),
            (Some(4096), None, true, false),
            (None, Some(small), true, true),
            (None, None, true, false),
        ];
        let lens = [
            0,
            1,
            2,
            63,
            64,
            65,
            4097,
            BLOCK + 1,
            4 * BLOCK,
            4 * BLOCK + 63,
        ];
        for (part_size, chunking, blake3, guided) in plans {
            let opts = DigestOptions {
                part_size,
                chunking,
                blake3,
            };
            for parts_apart in [false, true] {
                let (mut front, _) = Front::plan(&opts, parts_apart).unwrap();
                let fused = crate::sha256x2::scan_is_fused();
                let scans = match &mut front {
                    Front::Pair(h) => h.candidates().is_some(),
                    Front::Whole(_) => false,
                };
                assert_eq!(scans, guided && fused, "{opts:?}");
            }
            for len in lens {
                let bytes = crate::chunking::tests::noise(len, len as u64);
                let f = file_with(&bytes);
                check(&bytes, &hash_file(f.path(), &opts).unwrap(), &opts);
                // Both ways of placing parts, at every length.
                for parts_apart in [false, true] {
                    let mut quiet = Reporter {
                        progress: None,
                        reported: 0,
                    };
                    let src = Source::open(f.path()).unwrap();
                    let d = digest_pipelined(src, &opts, &mut quiet, parts_apart).unwrap();
                    check(&bytes, &d, &opts);
                }
            }
        }
    }

    #[test]
    fn cuts_agree_with_candidates_for_all_some_or_no_pieces() {
        let small = ChunkParams {
            min_size: 256,
            avg_size: 1024,
            max_size: 4096,
            normalization: 2,
        };
        let bytes = crate::chunking::tests::noise(3 << 20, 5);
        for params in [ChunkParams::default(), small] {
            let opts = DigestOptions {
                part_size: Some(1 << 20),
                chunking: Some(params),
                blake3: false,
            };
            let want = chunk_bytes(&bytes, params).unwrap();
            // Pieces that end inside a SHA-256 block too; the second lane gets the candidates
            // of every piece, of none, or of some.
            for piece in [1000, 65_537, BLOCK] {
                for pattern in [0b1, 0b0, 0b110] {
                    let (mut front, back) = Front::plan(&opts, true).unwrap();
                    let mut back = back.unwrap();
                    for (i, p) in bytes.chunks(piece).enumerate() {
                        let mut guide = front.update(p);
                        if pattern >> (i % 3) & 1 == 0 {
                            // As when a piece has too many candidates to keep.
                            guide.hits = None;
                        }
                        back.update(p, guide);
                    }
                    assert_eq!(front.finish(&opts).0, sha256(&bytes));
                    let got = back.finish().1.unwrap();
                    assert_eq!(got, want, "piece {piece} pattern {pattern:b}");
                }
            }
        }
    }

    #[test]
    fn inline_and_pipelined_agree_at_boundaries() {
        let ps = BLOCK as u64 + 3;
        let big = PIPELINE_MIN as usize;
        for len in [
            0,
            1,
            63,
            64,
            65,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            big - 1,
            big,
            big + 1,
            3 * big + 7,
        ] {
            let bytes = data(len);
            let f = file_with(&bytes);
            let d = hash_file(f.path(), &all_opts(ps)).unwrap();
            check(&bytes, &d, &all_opts(ps));
            let plain = hash_file(f.path(), &DigestOptions::default()).unwrap();
            assert_eq!(plain.sha256, d.sha256);
            assert!(plain.parts.is_none() && plain.chunks.is_none() && plain.blake3.is_none());
        }
    }

    #[test]
    fn batch_matches_single_and_keeps_order() {
        let files: Vec<_> = [0, 10, 5 * BLOCK, 1000]
            .iter()
            .map(|&n| file_with(&data(n)))
            .collect();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_path_buf()).collect();
        let opts = all_opts(1 << 20);
        let out = hash_files(&paths, &opts).unwrap();
        for (p, r) in paths.iter().zip(out) {
            assert_eq!(r.unwrap(), hash_file(p, &opts).unwrap());
        }
    }

    #[test]
    fn errors_name_the_file() {
        let missing = PathBuf::from("/nonexistent/ferryman-test");
        let err = hash_file(&missing, &DigestOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert!(err.to_string().contains("/nonexistent/ferryman-test"));
        let dir = tempfile::tempdir().unwrap();
        let err = hash_file(dir.path(), &DigestOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::IsADirectory)
        );
        let bad = DigestOptions {
            part_size: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            hash_file(dir.path(), &bad),
            Err(Error::InvalidArgument(_))
        ));
        let out = hash_files(
            &[missing.clone(), dir.path().to_path_buf()],
            &DigestOptions::default(),
        )
        .unwrap();
        assert!(out.iter().all(|r| r.is_err()));
    }

    #[test]
    fn growth_during_read_is_reported() {
        // Simulate a writer that appends after the size was taken: open, then append, then read.
        let bytes = data(10_000);
        let f = file_with(&bytes);
        let src = Source::open(f.path()).unwrap();
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(f.path())
            .unwrap();
        w.write_all(b"more").unwrap();
        let mut quiet = Reporter {
            progress: None,
            reported: 0,
        };
        let err = digest_inline(src, &DigestOptions::default(), &mut quiet).unwrap_err();
        assert!(matches!(err, Error::FileChanged { .. }), "{err}");
    }

    #[test]
    fn progress_is_reported_and_can_cancel() {
        let bytes = data(3 * PROGRESS_STEP as usize + 5);
        let f = file_with(&bytes);
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |n: u64| {
            seen.lock().unwrap().push(n);
            true
        };
        let d =
            hash_file_with_progress(f.path(), &DigestOptions::default(), Some(&record)).unwrap();
        assert_eq!(d.sha256, sha256(&bytes));
        let seen = seen.into_inner().unwrap();
        assert_eq!(*seen.last().unwrap(), bytes.len() as u64);
        assert!(
            seen.len() >= 3 && seen.windows(2).all(|w| w[0] < w[1]),
            "{seen:?}"
        );
        let stop = |n: u64| n < PROGRESS_STEP;
        let err =
            hash_file_with_progress(f.path(), &DigestOptions::default(), Some(&stop)).unwrap_err();
        assert!(matches!(err, Error::Cancelled));
    }

    #[test]
    fn rewrite_in_place_is_reported() {
        let bytes = data(10 * BLOCK);
        let f = file_with(&bytes);
        let src = Source::open(f.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(f.path())
            .unwrap();
        w.write_all(b"XXXX").unwrap();
        let mut quiet = Reporter {
            progress: None,
            reported: 0,
        };
        let err = digest_inline(src, &DigestOptions::default(), &mut quiet).unwrap_err();
        assert!(matches!(err, Error::FileChanged { .. }), "{err}");
    }
}
