//! Content-defined chunking (FastCDC 2020, from the `fastcdc` crate) and the fixed part plan of
//! multipart uploads.
//!
//! [`Cutter`] accepts data in arbitrary pieces and cuts exactly where `fastcdc`'s own
//! whole-buffer iterator would. It uses the crate's gear table and masks but its own scan
//! (`crate::gear`), which is faster and can stop at the end of a piece and go on in the next,
//! or takes its cuts from the candidates a SHA-256 pass found for it. [`ChunkHasher`] hashes the
//! chunks between the cuts, on the same thread ([`Chunker`]) or another.

use std::collections::VecDeque;
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
/// A cutter scans with its own gear hash (`gear::scan`), or, for a piece that comes with a
/// [`Guide`], takes the cuts from the candidates a stream hash found in it (see
/// `crate::gear`; the SHA-256 kernels compute them nearly for free), scanning only the 64
/// bytes after each chunk's `min_size`, where the chunk's own hash still differs from the
/// stream's. Pieces of either kind may follow each other in any order.
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
    /// Gear hash of the chunk's bytes from `min_size` on (in a guided cutter, only as far as
    /// it scans).
    hash: u64,
    held: Option<u8>,
    /// Whether the last piece came with candidates.
    guided: bool,
    /// Candidates not yet passed.
    hits: VecDeque<gear::Hit>,
}

/// What a stream hash (`gear::Candidates`) found in a piece, for a [`Cutter`].
#[derive(Clone, Debug, Default)]
pub struct Guide {
    /// The stream hash before the piece's first byte.
    pub hash_before: u64,
    /// Every byte of the piece that matches a mask; `None` leaves the piece to the cutter's
    /// own scan.
    pub hits: Option<Vec<gear::Hit>>,
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
            guided: false,
            hits: VecDeque::new(),
        })
    }

    /// Takes `data`, with what a stream hash over everything so far found in it, and appends
    /// to `cuts` the stream offsets where chunks end in it.
    pub fn update(&mut self, data: &[u8], guide: Guide, cuts: &mut Vec<u64>) {
        if data.is_empty() {
            return;
        }
        if let Some(b) = self.held.take() {
            // Its successor is `data[0]`: now it may be tested, as the piece it ended says.
            self.feed(&[b], false, cuts);
        }
        let guided = guide.hits.is_some();
        if self.guided && !guided && self.seen >= self.params.min_size + gear::WARM {
            // Guided, the chunk's hash was not kept past the warm-up; it equals the stream's.
            self.hash = guide.hash_before;
        }
        self.hits.extend(guide.hits.into_iter().flatten());
        self.guided = guided;
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
        if !self.guided {
            return gear::scan(self.hash, data, mask);
        }
        // The chunk's hash starts at `min_size`; `WARM` bytes on, it equals the stream's.
        let warm = (self.params.min_size + gear::WARM)
            .saturating_sub(self.seen)
            .min(data.len());
        if warm > 0 {
            match gear::scan(self.hash, &data[..warm], mask) {
                gear::Scan::Cut(i) => return gear::Scan::Cut(i),
                gear::Scan::Through(h) => self.hash = h,
            }
        }
        let at = self.start + self.seen as u64;
        let (from, to) = (at + warm as u64, at + data.len() as u64);
        while let Some(&hit) = self.hits.front() {
            if hit.at() >= to {
                break;
            }
            if hit.at() >= from && hit.matches(small) {
                return gear::Scan::Cut((hit.at() - at) as usize);
            }
            self.hits.pop_front();
        }
        gear::Scan::Through(self.hash)
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
        self.cutter.update(data, Guide::default(), &mut self.cuts);
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
        // xorshift: cheap, deterministic, incompressible enough for chunking.
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// How the pieces of a test come to the cutter.
    #[derive(Clone, Copy, Debug)]
    enum Mode {
        Scan,
        /// With candidates from a byte-by-byte stream hash, as the SHA-256 kernels give.
        Guided,
        /// Guided pieces, and every third without its candidates, as when a piece has too many
        /// to keep.
        Mixed,
    }

    const MODES: [Mode; 3] = [Mode::Scan, Mode::Guided, Mode::Mixed];

    /// Chunks `data` fed in pieces of `piece` bytes.
    fn chunked(data: &[u8], p: ChunkParams, piece: usize, mode: Mode) -> Vec<Chunk> {
        let mut cutter = Cutter::new(p).unwrap();
        let mut stream = crate::gear::Candidates::new(p.masks());
        let mut hasher = ChunkHasher::new();
        let mut cuts = Vec::new();
        for (i, part) in data.chunks(piece.max(1)).enumerate() {
            let guide = match mode {
                Mode::Scan => Guide::default(),
                Mode::Guided | Mode::Mixed => {
                    let hash_before = stream.hash();
                    stream.scan(part);
                    let hits = stream.take();
                    let dropped = matches!(mode, Mode::Mixed) && i % 3 == 1;
                    Guide {
                        hash_before,
                        hits: hits.filter(|_| !dropped),
                    }
                }
            };
            cuts.clear();
            cutter.update(part, guide, &mut cuts);
            hasher.update(part, &cuts, cutter.holding());
        }
        hasher.finish()
    }

    fn reference(data: &[u8], p: ChunkParams) -> Vec<(u64, u64)> {
        v2020::FastCDC::with_level(data, p.min_size, p.avg_size, p.max_size, p.level())
            .map(|c| (c.offset as u64, c.length as u64))
            .collect()
    }

    #[test]
    fn streaming_matches_whole_buffer_iterator() {
        let small = ChunkParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
            normalization: 2,
        };
        for params in [ChunkParams::default(), small] {
            let mut data = noise(3 * 1024 * 1024 + 17, 42);
            // A run that never matches a mask: chunks of exactly max_size.
            data[1_000_000..1_700_000].fill(0);
            let want = reference(&data, params);
            let pieces = [1, 4095, 4096, 65536, 262_143, 262_145, 1 << 20, data.len()];
            for (piece, mode) in pieces.into_iter().flat_map(|p| MODES.map(|m| (p, m))) {
                let got = chunked(&data, params, piece, mode);
                let spans: Vec<_> = got.iter().map(|c| (c.offset, c.length)).collect();
                assert_eq!(spans, want, "piece {piece} {mode:?}");
                for ch in &got {
                    let s = ch.offset as usize;
                    assert_eq!(
                        ch.blake3,
                        crate::hashing::blake3(&data[s..s + ch.length as usize])
                    );
                }
            }
        }
    }

    #[test]
    fn tiny_chunks_in_tiny_pieces() {
        // Chunks of a few hundred bytes, so that cuts fall on piece ends, on held bytes and on
        // the last byte of the input, at both parities.
        let data = noise(20_000, 7);
        for normalization in 0..=3 {
            let p = ChunkParams {
                min_size: 64,
                avg_size: 256,
                max_size: 1024,
                normalization,
            };
            for len in 19_000..20_000 {
                let d = &data[..len];
                let want = reference(d, p);
                let pieces: &[usize] = if len % 50 == 0 {
                    &[1, 2, 3, 5, 64, 333, len]
                } else {
                    &[7, len]
                };
                for (&piece, mode) in pieces.iter().flat_map(|p| MODES.map(|m| (p, m))) {
                    let got = chunked(d, p, piece, mode);
                    let spans: Vec<_> = got.iter().map(|c| (c.offset, c.length)).collect();
                    assert_eq!(
                        spans, want,
                        "level {normalization} len {len} piece {piece} {mode:?}"
                    );
                    let last = got.last().unwrap();
                    let s = last.offset as usize;
                    assert_eq!(last.blake3, crate::hashing::blake3(&d[s..]));
                }
            }
        }
    }

    /// Not a test: prints what our streaming chunker costs against the crate's cut plus a
    /// one-shot BLAKE3 per chunk, over data in cache (as the blocks of `hash_file` are).
    #[test]
    #[ignore]
    fn chunker_cost() {
        // 4 MiB stays in cache; it is chunked 16 times over.
        let data = noise(4 << 20, 11);
        let p = ChunkParams::default();
        let (ms, ml) = v2020::select_masks(p.avg_size, p.level());
        let crate_cuts = || {
            for _ in 0..16 {
                let mut at = 0;
                while at < data.len() {
                    let (_, len) = v2020::cut(
                        &data[at..],
                        p.min_size,
                        p.avg_size,
                        p.max_size,
                        ms,
                        ml,
                        ms << 1,
                        ml << 1,
                    );
                    std::hint::black_box(crate::hashing::blake3(&data[at..at + len]));
                    at += len;
                }
            }
        };
        let ours = || {
            let mut c = Chunker::new(p).unwrap();
            for _ in 0..16 {
                for block in data.chunks(1 << 20) {
                    c.update(block);
                }
            }
            std::hint::black_box(c.finish());
        };
        let time = |f: &dyn Fn()| {
            let mut runs: Vec<f64> = (0..7)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            runs[3]
        };
        let (theirs, ours) = (time(&crate_cuts), time(&ours));
        let gib = 16.0 * data.len() as f64 / f64::from(1u32 << 30);
        println!(
            "crate cut + BLAKE3 {:.3} s/GiB, ours {:.3} s/GiB: {:.2}x faster",
            theirs / gib,
            ours / gib,
            theirs / ours
        );
    }

    #[test]
    fn edge_inputs() {
        let p = ChunkParams::default();
        assert!(chunk_bytes(&[], p).unwrap().is_empty());
        let one = chunk_bytes(&[7], p).unwrap();
        assert_eq!((one[0].offset, one[0].length), (0, 1));
        // All zeroes never matches a mask: every chunk is max_size but the last.
        let zeros = vec![0u8; p.max_size * 3 + 5];
        let lens: Vec<_> = chunk_bytes(&zeros, p)
            .unwrap()
            .iter()
            .map(|c| c.length)
            .collect();
        let m = p.max_size as u64;
        assert_eq!(lens, vec![m, m, m, 5]);
    }

    #[test]
    fn params_are_validated() {
        let p = ChunkParams {
            avg_size: 63,
            ..ChunkParams::default()
        };
        assert!(Chunker::new(p).is_err());
        let p = ChunkParams {
            min_size: 65536,
            avg_size: 16384,
            ..ChunkParams::default()
        };
        assert!(p.validate().is_err());
        let p = ChunkParams {
            normalization: 4,
            ..ChunkParams::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn part_plan_boundaries() {
        let ps = 1000;
        for (size, want) in [
            (0, vec![0]),
            (1, vec![1]),
            (999, vec![999]),
            (1000, vec![1000]),
            (1001, vec![1000, 1]),
            (2999, vec![1000, 1000, 999]),
            (3000, vec![1000, 1000, 1000]),
        ] {
            let plan = part_plan(size, ps).unwrap();
            let sizes: Vec<_> = plan.iter().map(|p| p.size).collect();
            assert_eq!(sizes, want, "size {size}");
            for (i, p) in plan.iter().enumerate() {
                assert_eq!(p.index as usize, i + 1);
                assert_eq!(p.offset, i as u64 * ps);
            }
        }
        assert!(part_plan(10, 0).is_err());
        assert!(part_plan(u64::MAX, 1).is_err());
    }
}
