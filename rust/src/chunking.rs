//! Content-defined chunking (FastCDC 2020, from the `fastcdc` crate) and the fixed part plan of
//! multipart uploads.
//!
//! [`Cutter`] accepts data in arbitrary pieces and cuts exactly where `fastcdc`'s own
//! whole-buffer iterator would. It uses the crate's gear table and masks but its own scan
//! (`crate::gear`), which is faster (see `benches/README.md`) and can stop at the end of a
//! piece and go on in the next without copying. [`ChunkHasher`] hashes the chunks between the
//! cuts, on the same thread ([`Chunker`]) or another.

use std::iter::Peekable;

use fastcdc::v2020::{self, Normalization};

use crate::error::{Error, Result};
use crate::gear;
use crate::hashing::Digest;

/// FastCDC parameters. They are part of every result so that chunk lists made with different
/// parameters are never compared by mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    pub min_size: usize,
    pub avg_size: usize,
    pub max_size: usize,
    /// Normalisation level 0–3 (FastCDC paper, section 3.5).
    pub normalization: u8,
}

impl Default for ChunkParams {
    /// 16 KiB / 64 KiB / 256 KiB, level 1: small enough for useful deltas of firmware images,
    /// large enough that a 1 GiB image has ~16k chunks.
    fn default() -> Self {
        Self {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
            normalization: 1,
        }
    }
}

impl ChunkParams {
    /// Checks the bounds `fastcdc` supports (it only debug-asserts them).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument(format!("chunking: {msg}")));
        let ranges = [
            (
                "min_size",
                self.min_size,
                v2020::MINIMUM_MIN,
                v2020::MINIMUM_MAX,
            ),
            (
                "avg_size",
                self.avg_size,
                v2020::AVERAGE_MIN,
                v2020::AVERAGE_MAX,
            ),
            (
                "max_size",
                self.max_size,
                v2020::MAXIMUM_MIN,
                v2020::MAXIMUM_MAX,
            ),
        ];
        for (name, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return bad(format!("{name} must be in {lo}..={hi}, got {value}"));
            }
            if value % 2 != 0 {
                return bad(format!("{name} must be even, got {value}"));
            }
        }
        if !(self.min_size <= self.avg_size && self.avg_size <= self.max_size) {
            return bad("need min_size <= avg_size <= max_size".into());
        }
        if self.normalization > 3 {
            return bad(format!(
                "normalization must be 0..=3, got {}",
                self.normalization
            ));
        }
        Ok(())
    }

    /// The crate's masks `(small, large)` for these parameters.
    pub fn masks(&self) -> (u64, u64) {
        v2020::select_masks(self.avg_size, self.level())
    }

    fn level(&self) -> Normalization {
        match self.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }
}

/// One content-defined chunk: where it is and the BLAKE3 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub length: u64,
    pub blake3: Digest,
}

/// Where FastCDC cuts a stream fed in any pieces: exactly where `fastcdc`'s whole-buffer
/// iterator would. [`Cutter::update`] gives the offsets at which chunks end (each the start of
/// the next); [`ChunkHasher`] hashes the chunks between them, on the same thread or another.
///
/// The one subtlety is the crate's two-bytes-per-step loop, which tests a byte at an even
/// offset in the chunk only if the byte after it exists; so such a byte, when it ends a piece, is
/// held back until the next piece (or the end) says whether it has a successor.
#[derive(Debug)]
pub struct Cutter {
    params: ChunkParams,
    masks: (u64, u64),
    /// Stream offset of the current chunk.
    start: u64,
    /// Bytes of the current chunk taken so far, the held byte not included.
    seen: usize,
    /// Gear hash of the chunk's bytes from `min_size` on.
    hash: u64,
    held: Option<u8>,
}

impl Cutter {
    pub fn new(params: ChunkParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            masks: params.masks(),
            params,
            start: 0,
            seen: 0,
            hash: 0,
            held: None,
        })
    }

    /// Takes `data` and appends to `cuts` the stream offsets where chunks end in it.
    pub fn update(&mut self, data: &[u8], cuts: &mut Vec<u64>) {
        if data.is_empty() {
            return;
        }
        if let Some(b) = self.held.take() {
            // Its successor is `data[0]`: now it may be tested, as the piece it ended says.
            self.feed(&[b], false, cuts);
        }
        self.feed(data, true, cuts);
    }

    /// Whether the last byte of the last update is held back (see the type's doc).
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    fn feed(&mut self, data: &[u8], more: bool, cuts: &mut Vec<u64>) {
        let mut at = 0;
        while at < data.len() {
            match self.step(&data[at..], more) {
                Step::Took(n) => at += n,
                Step::Ends(n) => {
                    at += n;
                    self.start += self.seen as u64;
                    cuts.push(self.start);
                    self.seen = 0;
                    self.hash = 0;
                }
            }
        }
    }

    /// Takes bytes from the front of `data` into the current chunk, up to the end of `data`,
    /// of a size class (below `min`, below `avg`, below `max`) or of the chunk. `more` says
    /// whether more input may follow `data`, so that its last byte has no known successor yet.
    fn step(&mut self, data: &[u8], more: bool) -> Step {
        let p = self.params;
        if self.seen < p.min_size {
            let n = data.len().min(p.min_size - self.seen);
            self.seen += n;
            return Step::Took(n);
        }
        let small = self.seen < p.avg_size;
        let end = if small { p.avg_size } else { p.max_size };
        let mut n = data.len().min(end - self.seen);
        let hold = more && n == data.len() && (self.seen + n - 1).is_multiple_of(2);
        if hold {
            n -= 1;
        }
        match self.find(&data[..n], small) {
            // The matching byte starts the next chunk.
            gear::Scan::Cut(i) => {
                self.seen += i;
                Step::Ends(i)
            }
            gear::Scan::Through(h) => {
                self.hash = h;
                self.seen += n;
                if hold {
                    self.held = Some(data[n]);
                    Step::Took(n + 1)
                } else if self.seen == p.max_size {
                    Step::Ends(n)
                } else {
                    Step::Took(n)
                }
            }
        }
    }

    /// The first byte of `data` (which lies past `min_size`) whose chunk hash matches the mask
    /// of its size class.
    fn find(&mut self, data: &[u8], small: bool) -> gear::Scan {
        let mask = if small { self.masks.0 } else { self.masks.1 };
        gear::scan(self.hash, data, mask)
    }
}

/// How far one [`Cutter::step`] went: `n` bytes taken, and whether the chunk ends after them.
enum Step {
    Took(usize),
    Ends(usize),
}

/// The chunks' BLAKE3 digests, given a [`Cutter`]'s cuts. Nothing is copied: each chunk's bytes
/// in a piece go to BLAKE3 in one call (every extra split costs a compression outside the wide
/// SIMD path).
#[derive(Debug, Default)]
pub struct ChunkHasher {
    /// Stream offset of the current chunk.
    start: u64,
    /// Stream offset of the next byte.
    at: u64,
    /// Held back as the cutter held it.
    held: Option<u8>,
    blake3: blake3::Hasher,
    chunks: Vec<Chunk>,
}

impl ChunkHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `data` with the `cuts` a cutter gave for it, and whether it then held a byte.
    pub fn update(&mut self, data: &[u8], cuts: &[u64], hold: bool) {
        let mut cuts = cuts.iter().copied().peekable();
        if let Some(b) = self.held.take() {
            self.take(&[b], &mut cuts);
        }
        let body = &data[..data.len() - usize::from(hold)];
        self.take(body, &mut cuts);
        if hold {
            self.held = data.last().copied();
        }
        debug_assert!(cuts.next().is_none(), "a cut beyond the data");
    }

    /// All chunks in order; the last one ends at the end of the stream.
    pub fn finish(mut self) -> Vec<Chunk> {
        if let Some(b) = self.held.take() {
            // The last byte of the input, at an even offset: the crate never tests it.
            self.take(&[b], &mut std::iter::empty().peekable());
        }
        if self.at > self.start {
            self.end(self.at);
        }
        self.chunks
    }

    fn take(&mut self, data: &[u8], cuts: &mut Peekable<impl Iterator<Item = u64>>) {
        let base = self.at;
        let mut fed = 0;
        while let Some(cut) = cuts.next_if(|&c| c <= base + data.len() as u64) {
            let end = (cut - base) as usize;
            self.blake3.update(&data[fed..end]);
            fed = end;
            self.end(cut);
        }
        self.blake3.update(&data[fed..]);
        self.at = base + data.len() as u64;
    }

    fn end(&mut self, cut: u64) {
        self.chunks.push(Chunk {
            offset: self.start,
            length: cut - self.start,
            blake3: self.blake3.finalize().into(),
        });
        self.blake3.reset();
        self.start = cut;
    }
}

/// A [`Cutter`] and a [`ChunkHasher`] together, for data fed on one thread.
#[derive(Debug)]
pub struct Chunker {
    cutter: Cutter,
    hasher: ChunkHasher,
    cuts: Vec<u64>,
}

impl Chunker {
    pub fn new(params: ChunkParams) -> Result<Self> {
        Ok(Self {
            cutter: Cutter::new(params)?,
            hasher: ChunkHasher::new(),
            cuts: Vec::new(),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        self.cuts.clear();
        self.cutter.update(data, &mut self.cuts);
        self.hasher.update(data, &self.cuts, self.cutter.holding());
    }

    /// Cuts the rest and returns all chunks in order.
    pub fn finish(self) -> Vec<Chunk> {
        self.hasher.finish()
    }
}

/// The chunks of one buffer.
pub fn chunk_bytes(data: &[u8], params: ChunkParams) -> Result<Vec<Chunk>> {
    let mut c = Chunker::new(params)?;
    c.update(data);
    Ok(c.finish())
}

/// One part of a multipart upload: 1-based `index`, byte `offset` and `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub index: u32,
    pub offset: u64,
    pub size: u64,
}

/// How a binary of `size` bytes splits into parts of `part_size`: every part full but the last.
/// An empty binary has one empty part, so that every upload has at least one part to send.
pub fn part_plan(size: u64, part_size: u64) -> Result<Vec<Part>> {
    if part_size == 0 {
        return Err(Error::InvalidArgument("part_size must be positive".into()));
    }
    let count = size.div_ceil(part_size).max(1);
    let count = u32::try_from(count)
        .map_err(|_| Error::InvalidArgument(format!("{count} parts is too many")))?;
    Ok((0..count)
        .map(|i| {
            let offset = u64::from(i) * part_size;
            Part {
                index: i + 1,
                offset,
                size: part_size.min(size - offset),
            }
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests;
