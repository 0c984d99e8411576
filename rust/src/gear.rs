//! The gear hash of FastCDC 2020 and the scan that looks for cut points with it.
//!
//! After byte `b` the hash is `h = (h << 1) + GEAR[b]`, and the byte is a cut candidate when
//! `h & mask == 0`. Each byte's term is shifted out after 64 more bytes, so once 64 bytes have
//! been hashed, the hash at a position depends only on the 64 bytes ending there. [`scan`] uses
//! that to run three stretches of a window as three independent chains: one chain is bound by
//! its `shl -> add` latency (the `fastcdc` crate's loop, about 1.5 cycles per byte here), three in
//! step ran about 1.5x faster on data in cache.
//!
//! The same fact lets one hash run over a whole stream, never restarted at a chunk: 64 bytes
//! past where a chunk's hash starts (its `min_size`), the chunk's hash equals the stream's.
//! [`Candidates`] notes every byte whose stream hash matches either mask, and a cutter takes
//! its cuts from that list. The stream hash is cheap to fuse into another pass over the same
//! bytes: [`crate::sha256x2`] runs it between its SHA rounds, which leave the integer units
//! idle while they wait on each other.

use std::sync::OnceLock;

use fastcdc::v2020;

/// Bytes per chain in a window; each of the last two chains first hashes the 64 bytes before its
/// start, so this keeps that warm-up near 2% of the window.
const LANE: usize = 2048;
/// The shortest chains worth their warm-up: what is left of a stretch goes into one last,
/// shorter window, so that at most a few bytes take the single chain (twice the cost per byte).
const MIN_LANE: usize = 256;
/// Bytes after which the hash no longer depends on what came before them.
pub(crate) const WARM: usize = 64;

/// What a scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The index of the first byte whose hash matched the mask.
    Cut(usize),
    /// No byte matched; the hash after the last byte.
    Through(u64),
}

pub(crate) struct Tables {
    gear: [u64; 256],
    /// `gear << 1`: two bytes per step, as the crate does (`(h << 2) + (g[a] << 1)` is twice the
    /// hash after `a`, tested against `mask << 1`).
    shifted: [u64; 256],
}

pub(crate) fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        // Seed 0 is the crate's own table; taking it from the crate keeps the cut points
        // identical to `fastcdc::v2020` by construction.
        let (gear, _) = v2020::get_gear_with_seed(0);
        let gear: [u64; 256] = gear.as_ref().try_into().expect("256 gear entries");
        Tables {
            gear,
            shifted: gear.map(|g| g << 1),
        }
    })
}

/// Hashes `data` on from `h` (the hash before `data[0]`), testing every byte against `mask`,
/// whose top bit must be clear.
pub fn scan(h: u64, data: &[u8], mask: u64) -> Scan {
    debug_assert!(mask >> 63 == 0);
    let t = tables();
    let mut h = h;
    let mut done = 0;
    while data.len() - done >= 3 * MIN_LANE {
        let lane = ((data.len() - done) / 3).min(LANE) & !1;
        match t.window(h, &data[done..done + 3 * lane], mask) {
            Scan::Cut(i) => return Scan::Cut(done + i),
            Scan::Through(next) => h = next,
        }
        done += 3 * lane;
    }
    match t.one_chain(h, &data[done..], mask) {
        Scan::Cut(i) => Scan::Cut(done + i),
        through => through,
    }
}

impl Tables {
    fn one_chain(&self, mut h: u64, data: &[u8], mask: u64) -> Scan {
        for (i, &b) in data.iter().enumerate() {
            h = (h << 1).wrapping_add(self.gear[usize::from(b)]);
            if h & mask == 0 {
                return Scan::Cut(i);
            }
        }
        Scan::Through(h)
    }

    fn warm(&self, data: &[u8]) -> u64 {
        data.iter()
            .fold(0, |h, &b| (h << 1).wrapping_add(self.gear[usize::from(b)]))
    }

    /// One window of three equal, even stretches (at least `WARM` bytes each): chain 0 goes on
    /// from `h`, chains 1 and 2 start from the hash of the 64 bytes before their stretch, which
    /// equals the running hash there.
    fn window(&self, h: u64, w: &[u8], mask: u64) -> Scan {
        let lane = w.len() / 3;
        debug_assert!(lane.is_multiple_of(2) && lane >= WARM && w.len() == 3 * lane);
        let (a, rest) = w.split_at(lane);
        let (b, c) = rest.split_at(lane);
        let mut h = [
            h,
            self.warm(&a[lane - WARM..]),
            self.warm(&b[lane - WARM..]),
        ];
        let (a, b, c) = (
            a.as_chunks::<2>().0,
            b.as_chunks::<2>().0,
            c.as_chunks::<2>().0,
        );
        let wide = mask << 1;
        // The first hit of chains 1 and 2; chain 0's first hit ends the window at once, as
        // nothing after it can come first.
        let mut hits = [usize::MAX; 2];
        for (i, ((x, y), z)) in a.iter().zip(b).zip(c).enumerate() {
            let at = 2 * i;
            h[0] = (h[0] << 2).wrapping_add(self.shifted[usize::from(x[0])]);
            if h[0] & wide == 0 {
                return Scan::Cut(at);
            }
            h[1] = (h[1] << 2).wrapping_add(self.shifted[usize::from(y[0])]);
            if h[1] & wide == 0 {
                note(&mut hits[0], lane + at);
            }
            h[2] = (h[2] << 2).wrapping_add(self.shifted[usize::from(z[0])]);
            if h[2] & wide == 0 {
                note(&mut hits[1], 2 * lane + at);
            }
            h[0] = h[0].wrapping_add(self.gear[usize::from(x[1])]);
            if h[0] & mask == 0 {
                return Scan::Cut(at + 1);
            }
            h[1] = h[1].wrapping_add(self.gear[usize::from(y[1])]);
            if h[1] & mask == 0 {
                note(&mut hits[0], lane + at + 1);
            }
            h[2] = h[2].wrapping_add(self.gear[usize::from(z[1])]);
            if h[2] & mask == 0 {
                note(&mut hits[1], 2 * lane + at + 1);
            }
        }
        match hits[0].min(hits[1]) {
            usize::MAX => Scan::Through(h[2]),
            first => Scan::Cut(first),
        }
    }
}

/// Room for the hits one call of a fused kernel notes before handing them over; it stops after
/// any block that leaves less than a block's worth (64) free.
pub(crate) const NOTE_ROOM: usize = 128;

/// A byte whose stream hash matched a mask: its offset, and which masks it matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit(u64);

impl Hit {
    fn new(at: u64, h: u64, (small, large): (u64, u64)) -> Option<Self> {
        let flags = (u64::from(h & small == 0) << 1) | u64::from(h & large == 0);
        (flags != 0).then_some(Self((at << 2) | flags))
    }

    pub fn at(self) -> u64 {
        self.0 >> 2
    }

    /// Whether it matched the strict mask (`small`, below the average size) or the relaxed one.
    pub fn matches(self, small: bool) -> bool {
        (self.0 >> u8::from(small)) & 1 == 1
    }
}

/// The stream hash as a fused kernel runs it: the hash, the offset of the next byte, and the
/// bytes noted since the last hand-over, with their hashes.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub h: u64,
    pub at: u64,
    /// `small & large`: a byte that matches either mask matches this one, so the hot loop
    /// tests one mask and the rare hits sort out the rest.
    pub filter: u64,
    pub noted: [(u64, u64); NOTE_ROOM],
    pub n: usize,
}

impl Run {
    /// Takes two bytes at an even stream offset `at` (the crate's two-byte step, which keeps
    /// the dependency chain at three cycles per pair). Inlined into the SHA kernels, so it
    /// keeps to registers and never calls out.
    #[inline(always)]
    pub(crate) fn pair(
        t: &Tables,
        h: &mut u64,
        filter: u64,
        at: u64,
        [x, y]: [u8; 2],
        noted: &mut [(u64, u64); NOTE_ROOM],
        n: &mut usize,
    ) {
        *h = (*h << 2).wrapping_add(t.shifted[usize::from(x)]);
        if *h & (filter << 1) == 0 {
            noted[*n % NOTE_ROOM] = (at, *h >> 1);
            *n += 1;
        }
        *h = h.wrapping_add(t.gear[usize::from(y)]);
        if *h & filter == 0 {
            noted[*n % NOTE_ROOM] = (at + 1, *h);
            *n += 1;
        }
    }
}

/// Every byte of a stream whose stream hash matches either mask of a chunking (see the module
/// doc), in order, taken piece by piece.
#[derive(Clone, Debug)]
pub struct Candidates {
    run: Box<Run>,
    masks: (u64, u64),
    found: Vec<Hit>,
    /// More than [`MAX_HITS`] in the current piece: crafted data, or masks of tiny chunks. The
    /// list is dropped and the piece left to a scanning cutter, which keeps memory bounded.
    overflow: bool,
    max_hits: usize,
}

/// Hits kept per piece; a 1 MiB piece of random data has about 40 with the default chunking.
pub const MAX_HITS: usize = 4096;

impl Candidates {
    /// For the masks `(small, large)` of a chunking.
    pub fn new(masks: (u64, u64)) -> Self {
        Self {
            run: Box::new(Run {
                h: 0,
                at: 0,
                filter: masks.0 & masks.1,
                noted: [(0, 0); NOTE_ROOM],
                n: 0,
            }),
            masks,
            found: Vec::new(),
            overflow: false,
            max_hits: MAX_HITS,
        }
    }

    /// Without the bound on hits per piece, to test the kernels with masks that match often.
    #[cfg(test)]
    pub(crate) fn unbounded(masks: (u64, u64)) -> Self {
        Self {
            max_hits: usize::MAX,
            ..Self::new(masks)
        }
    }

    /// The stream hash after the last byte taken.
    pub fn hash(&self) -> u64 {
        self.run.h
    }

    /// Takes `data` byte by byte: the bytes a fused kernel does not see (those outside whole
    /// 64-byte blocks), or all of them where there is no such kernel.
    pub fn scan(&mut self, data: &[u8]) {
        let t = tables();
        for &b in data {
            let run = &mut *self.run;
            run.h = (run.h << 1).wrapping_add(t.gear[usize::from(b)]);
            if let Some(hit) = Hit::new(run.at, run.h, self.masks) {
                self.keep(hit);
            }
            self.run.at += 1;
        }
    }

    fn keep(&mut self, hit: Hit) {
        if self.found.len() < self.max_hits {
            self.found.push(hit);
        } else {
            self.overflow = true;
        }
    }

    /// The state a fused kernel updates; [`Self::keep_noted`] must follow each call.
    pub(crate) fn run(&mut self) -> &mut Run {
        &mut self.run
    }

    /// Moves what a fused kernel noted to the list.
    pub(crate) fn keep_noted(&mut self) {
        let run = &mut *self.run;
        debug_assert!(run.n <= NOTE_ROOM);
        let n = std::mem::take(&mut run.n);
        for i in 0..n {
            let (at, h) = self.run.noted[i];
            if let Some(hit) = Hit::new(at, h, self.masks) {
                self.keep(hit);
            }
        }
    }

    /// The hits of the piece taken since the last call, or `None` if it had too many; starts
    /// the next piece.
    pub fn take(&mut self) -> Option<Vec<Hit>> {
        let found = std::mem::take(&mut self.found);
        (!std::mem::take(&mut self.overflow)).then_some(found)
    }
}

/// Kept out of line so that the hot loop tests and branches instead of computing minimums.
#[cold]
#[inline(never)]
fn note(first: &mut usize, at: usize) {
    if *first == usize::MAX {
        *first = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunking::tests::noise;

    #[test]
    fn shifted_table_is_the_crates() {
        let (_, ls) = v2020::get_gear_with_seed(0);
        assert_eq!(&tables().shifted[..], ls.as_ref());
    }

    #[test]
    fn overfull_pieces_give_up_their_hits() {
        // A mask that matches every other byte: too many hits for one piece.
        let mut dense = Candidates::new((1, 1));
        dense.scan(&noise(4 * MAX_HITS, 2));
        assert_eq!(dense.take(), None);
        let mut fresh = Candidates::new((1, 1));
        fresh.scan(&noise(4 * MAX_HITS, 2));
        assert_eq!(dense.hash(), fresh.hash());
        dense.scan(&noise(100, 3));
        assert!(dense.take().is_some_and(|h| !h.is_empty() && h.len() < 100));
    }

    #[test]
    fn hash_forgets_after_64_bytes() {
        let t = tables();
        let data = noise(1000, 3);
        for end in [64, 65, 200, 1000] {
            assert_eq!(t.warm(&data[..end]), t.warm(&data[end - WARM..end]));
        }
    }

    #[test]
    fn windows_find_what_one_chain_finds() {
        let t = tables();
        let (ms, ml) = v2020::select_masks(65536, v2020::Normalization::Level1);
        // From a hit every few bytes (so every chain hits, in every order) to none at all.
        let masks = [
            0x3,
            0x1_0001,
            0x0000_0180_0035_3000,
            ms,
            ml,
            0x7fff_ffff_ffff_ffff,
        ];
        for seed in 1..40 {
            let data = noise(3 * LANE * 4 + seed as usize * 37, seed);
            let h0 = t.warm(&data[..WARM]);
            for &mask in &masks {
                for start in [WARM, WARM + 1, WARM + LANE - 1, WARM + 2 * LANE + 5] {
                    let want = t.one_chain(h0, &data[WARM..], mask);
                    // Skip ahead by one chain where no hit lies before `start`.
                    let (h, off) = match t.one_chain(h0, &data[WARM..start], mask) {
                        Scan::Through(h) => (h, start - WARM),
                        Scan::Cut(_) => (h0, 0),
                    };
                    let got = match scan(h, &data[WARM + off..], mask) {
                        Scan::Cut(i) => Scan::Cut(i + off),
                        through => through,
                    };
                    assert_eq!(got, want, "seed {seed} mask {mask:#x} start {start}");
                }
            }
        }
    }

    #[test]
    fn short_stretches_agree_too() {
        let t = tables();
        let data = noise(3 * LANE + 2 * WARM, 5);
        let h0 = t.warm(&data[..WARM]);
        for len in (0..3 * LANE).step_by(29) {
            let w = &data[WARM..WARM + len];
            for bits in [8, 10, 12, 16] {
                let mask = v2020::MASKS[bits];
                assert_eq!(
                    scan(h0, w, mask),
                    t.one_chain(h0, w, mask),
                    "len {len} bits {bits}"
                );
            }
        }
    }

    #[test]
    fn each_chain_reports_its_own_first_hit() {
        let t = tables();
        // Masks with a hit every 1–8 KiB: the first hit falls in each of the three chains.
        let mut from_chain = [0; 4];
        for seed in 1..200 {
            let data = noise(WARM + 3 * LANE, seed);
            let h0 = t.warm(&data[..WARM]);
            let w = &data[WARM..];
            for bits in 10..=13 {
                let mask = v2020::MASKS[bits];
                let want = t.one_chain(h0, w, mask);
                assert_eq!(t.window(h0, w, mask), want, "seed {seed} bits {bits}");
                let chain = match want {
                    Scan::Cut(i) => i / LANE,
                    Scan::Through(_) => 3,
                };
                from_chain[chain] += 1;
            }
        }
        assert!(from_chain.iter().all(|&n| n > 10), "{from_chain:?}");
    }
}
