//! The gear hash of FastCDC 2020 and the scan that looks for cut points with it.
//!
//! After byte `b` the hash is `h = (h << 1) + GEAR[b]`, and the byte is a cut candidate when
//! `h & mask == 0`. Each byte's term is shifted out after 64 more bytes, so once 64 bytes have
//! been hashed, the hash at a position depends only on the 64 bytes ending there. [`scan`] uses
//! that to run three stretches of a window as three independent chains: one chain is bound by
//! its `shl -> add` latency (the `fastcdc` crate's loop, about 1.5 cycles per byte here), three in
//! step ran about 1.5x faster on data in cache.

use std::sync::OnceLock;

use fastcdc::v2020;

/// Bytes per chain in a window; each of the last two chains first hashes the 64 bytes before its
/// start, so this keeps that warm-up near 2% of the window.
const LANE: usize = 2048;
/// The shortest chains worth their warm-up: what is left of a stretch goes into one last,
/// shorter window, so that at most a few bytes take the single chain (twice the cost per byte).
const MIN_LANE: usize = 256;
const WARM: usize = 64;

/// What a scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The index of the first byte whose hash matched the mask.
    Cut(usize),
    /// No byte matched; the hash after the last byte.
    Through(u64),
}

struct Tables {
    gear: [u64; 256],
    /// `gear << 1`: two bytes per step, as the crate does (`(h << 2) + (g[a] << 1)` is twice the
    /// hash after `a`, tested against `mask << 1`).
    shifted: [u64; 256],
}

fn tables() -> &'static Tables {
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
