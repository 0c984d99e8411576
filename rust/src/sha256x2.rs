//! Two SHA-256 states fed the same blocks in one pass: the whole-file digest and the current
//! part's digest of a multipart upload hash identical bytes, so the message schedule is
//! computed once and the two states' rounds are interleaved. A single SHA-256 stream is bound
//! by the latency of the SHA round instruction; two independent chains fill the gaps, which
//! makes "whole file + every part" cost about as much as the whole file alone (1.02x on AMD
//! Zen 4 with AVX-512, 1.12x without it; `cargo test --release -- --ignored --nocapture
//! pair_cost` measures it, over `PAIR_MIB` MiB of data, 1 by default). Not on every CPU: on
//! an Intel Xeon (Sapphire Rapids) the SHA unit itself is the limit and the pair costs 1.47x
//! ([`pair_is_cheap`]).
//!
//! The round instructions also leave the integer units idle, so [`scan_both`] runs a
//! chunking's gear hash (`crate::gear`) over the same blocks in between: the pair with the
//! gear hash cost 1.00–1.05x one stream on 1 and 8 MiB of data when this machine was quiet,
//! the gear hash alone 1.7–2.1x. In its slow spells the pair with the gear hash read up to
//! 1.4–1.5x (and the gear hash alone up to 2.4x): other load on the host takes the idle units.
//! [`scan_one`] does the same with one state, for a whole-file digest without parts: on the
//! Xeon above, one stream with the gear hash cost 1.01x one stream, against 1.47x for the pair
//! with it (whose second state, without parts, would be wasted).
//!
//! No library offers this (the `sha2` crate, ring and aws-lc hash one stream at a time), so
//! the x86 SHA-extension kernels are ours; without the extensions (or off x86-64) both states
//! go through `sha2`'s compression function one after the other. Padding and finalisation are
//! FIPS 180-4 section 5.1.1; everything is tested against `sha2`.

use sha2::block_api::compress256;

use crate::gear::Candidates;
use crate::hashing::Digest;

/// FIPS 180-4 initial hash value.
pub const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Compresses `blocks` into both states.
pub fn compress_both(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
    #[cfg(target_arch = "x86_64")]
    return compress_both_with(shani::kernel(), a, b, blocks);
    #[cfg(not(target_arch = "x86_64"))]
    compress_portable(a, Some(b), blocks);
}

/// Whether the pair costs about what one stream does on this CPU, as on AMD Zen 4 (1.02x),
/// rather than as on an Intel Xeon (Sapphire Rapids, 1.47x), whose SHA round instruction
/// issues only every 0.77 ns against a latency of 1.03 ns, so that two chains cannot take less
/// than 1.5x one (measured with bare instruction chains). Measured once per process, on 16 KiB
/// in L1, the best of five alternated tries of each (well under a millisecond in all); without
/// the SHA extensions the pair is two streams' work.
pub fn pair_is_cheap() -> bool {
    static CHEAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHEAP.get_or_init(|| {
        if !scan_is_fused() {
            return false;
        }
        let blocks = [[0x5au8; 64]; 256];
        let (mut a, mut b) = (IV, IV);
        let (mut one, mut pair) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let start = std::time::Instant::now();
            compress256(&mut a, std::hint::black_box(&blocks));
            one = one.min(start.elapsed().as_secs_f64());
            let start = std::time::Instant::now();
            compress_both(&mut a, &mut b, std::hint::black_box(&blocks));
            pair = pair.min(start.elapsed().as_secs_f64());
        }
        std::hint::black_box((a, b));
        // Between the two CPUs measured (1.02x and 1.47x); where, between them, sharing the
        // parts out in `hash_file` starts to pay was not measured.
        pair < 1.25 * one
    })
}

/// Whether [`scan_both`] runs the gear hash inside the SHA rounds (nearly free) rather than as
/// a pass of its own after them.
pub fn scan_is_fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    return shani::kernel() != shani::Kernel::Portable;
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Compresses `blocks` into both states and takes them into `candidates`.
pub fn scan_both(
    a: &mut [u32; 8],
    b: &mut [u32; 8],
    blocks: &[[u8; 64]],
    candidates: &mut Candidates,
) {
    scan(a, Some(b), blocks, candidates);
}

/// The same with one state, for a whole-file digest without parts: where the pair is not cheap
/// ([`pair_is_cheap`]), the second chain would cost about half a stream more for nothing.
pub fn scan_one(a: &mut [u32; 8], blocks: &[[u8; 64]], candidates: &mut Candidates) {
    scan(a, None, blocks, candidates);
}

fn scan(
    a: &mut [u32; 8],
    b: Option<&mut [u32; 8]>,
    blocks: &[[u8; 64]],
    candidates: &mut Candidates,
) {
    #[cfg(target_arch = "x86_64")]
    return scan_with(shani::kernel(), a, b, blocks, candidates);
    #[cfg(not(target_arch = "x86_64"))]
    {
        compress_portable(a, b, blocks);
        candidates.scan(blocks.as_flattened());
    }
}

#[cfg(target_arch = "x86_64")]
fn scan_with(
    kernel: shani::Kernel,
    a: &mut [u32; 8],
    mut b: Option<&mut [u32; 8]>,
    mut blocks: &[[u8; 64]],
    candidates: &mut Candidates,
) {
    use shani::Kernel;
    let mut unused = IV;
    while !blocks.is_empty() {
        let run = candidates.run();
        let done = match kernel {
            // With AVX-512 too, the SHA message instructions: σ0 on the vector units helps the
            // pair alone, whose two round chains keep the SHA unit busy, but beside the gear hash
            // it competes for the vector units that hand the gear hash its bytes. On AMD Zen 4
            // the pair with the gear hash cost 1.00–1.05x one stream this way, 1.05–1.11x with
            // σ0 on the vector units (`pair_cost`, 1 and 8 MiB, alternated runs).
            Kernel::Sha | Kernel::ShaVector => match b.as_deref_mut() {
                // SAFETY: `kernel()` found at least the features this kernel needs (and tests
                // pass no kernel better than the one it found).
                Some(b) => unsafe { shani::scan_sha::<true>(a, b, blocks, run) },
                // SAFETY: as above (with `PAIR` false the second state is left as it was).
                None => unsafe { shani::scan_sha::<false>(a, &mut unused, blocks, run) },
            },
            Kernel::Portable => {
                compress_portable(a, b, blocks);
                candidates.scan(blocks.as_flattened());
                return;
            }
        };
        candidates.keep_noted();
        blocks = &blocks[done..];
    }
}

/// Without the SHA extensions: `sha2`'s compression, one state after the other.
fn compress_portable(a: &mut [u32; 8], b: Option<&mut [u32; 8]>, blocks: &[[u8; 64]]) {
    compress256(a, blocks);
    if let Some(b) = b {
        compress256(b, blocks);
    }
}

#[cfg(target_arch = "x86_64")]
fn compress_both_with(
    kernel: shani::Kernel,
    a: &mut [u32; 8],
    b: &mut [u32; 8],
    blocks: &[[u8; 64]],
) {
    use shani::Kernel;
    match kernel {
        Kernel::ShaVector => {
            // SAFETY: `kernel()` found the features this kernel needs (and tests pass no
            // kernel better than the one it found).
            unsafe { shani::compress_both_vector(a, b, blocks) }
        }
        Kernel::Sha => {
            // SAFETY: as above.
            unsafe { shani::compress_both_sha(a, b, blocks) }
        }
        Kernel::Portable => compress_portable(a, Some(b), blocks),
    }
}

/// Pads `tail` (the bytes after the last full block) for a message of `len` bytes in all,
/// compresses the last block(s) into `state` and returns the digest.
pub fn finish(mut state: [u32; 8], tail: &[u8], len: u64) -> Digest {
    debug_assert!(tail.len() < 64);
    let mut last = [[0u8; 64]; 2];
    let flat = last.as_flattened_mut();
    flat[..tail.len()].copy_from_slice(tail);
    flat[tail.len()] = 0x80;
    let blocks = if tail.len() < 56 { 1 } else { 2 };
    flat[blocks * 64 - 8..blocks * 64].copy_from_slice(&(len * 8).to_be_bytes());
    compress256(&mut state, &last[..blocks]);
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Views the whole 64-byte blocks at the start of `data`.
pub fn as_blocks(data: &[u8]) -> &[[u8; 64]] {
    data.as_chunks::<64>().0
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use crate::gear::{self, Run, NOTE_ROOM};

    /// How far ahead of the block in hand the scanning kernel prefetches. The gear hash more
    /// than doubles the instructions per block, so the core no longer reaches the next blocks'
    /// loads by itself; in `hash_file` those blocks were just written by the reader, often on
    /// the other core. With σ0 on the vector units, chunking a 1 GiB file took 1.33x as long
    /// as its SHA-256 alone without the prefetch, 1.18x 1 KiB ahead and 1.12–1.15x 2 KiB ahead
    /// (medians of 7 alternated runs); with the SHA message kernel used now, 1, 2 and 4 KiB
    /// ahead were within this machine's noise of each other. The pair alone needs it too on
    /// CPUs whose hardware prefetch falls behind (see [`crate::prefetch`]).
    const PREFETCH_AHEAD: usize = 2048;

    /// Asks for the line [`PREFETCH_AHEAD`] bytes after `block`: one line per block keeps the
    /// lines coming (see [`crate::prefetch`] for why the hardware's own prefetch is not enough).
    #[inline]
    #[target_feature(enable = "sse")]
    fn prefetch_ahead(block: &[u8; 64]) {
        let ahead = block.as_ptr().wrapping_add(PREFETCH_AHEAD).cast::<i8>();
        // A prefetch reads nothing and cannot fault, wherever it points.
        _mm_prefetch::<_MM_HINT_T0>(ahead);
    }

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// The ways to compress the pair.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Kernel {
        /// No SHA extensions: `sha2`'s compression function, one state after the other.
        Portable,
        /// Round and message instructions.
        Sha,
        /// Round instructions, and σ0 of the message schedule on the AVX-512 vector units.
        ShaVector,
    }

    /// The best kernel this CPU runs (detected once).
    pub fn kernel() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            let sha = is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1");
            let vector =
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
            match (sha, vector) {
                (false, _) => Kernel::Portable,
                (true, false) => Kernel::Sha,
                (true, true) => Kernel::ShaVector,
            }
        })
    }

    /// The state as the SHA instructions want it: (ABEF, CDGH).
    #[inline]
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        // SAFETY: `state` is 32 readable bytes; unaligned loads.
        let (dcba, hgfe) = unsafe {
            let p = state.as_ptr().cast::<__m128i>();
            (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)))
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    #[inline]
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgfe = _mm_alignr_epi8(dchg, feba, 8);
        // SAFETY: `state` is 32 writable bytes; unaligned stores.
        unsafe {
            let p = state.as_mut_ptr().cast::<__m128i>();
            _mm_storeu_si128(p, dcba);
            _mm_storeu_si128(p.add(1), hgfe);
        }
    }

    /// The next four message words W[t..t+3] from the previous sixteen (`w`, oldest first),
    /// W[t+j] = σ1(W[t+j-2]) + W[t+j-7] + σ0(W[t+j-15]) + W[t+j-16], with the SHA message
    /// instructions.
    #[inline]
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    fn next_words_sha(w: [__m128i; 4]) -> __m128i {
        let s0 = _mm_sha256msg1_epu32(w[0], w[1]);
        let mid = _mm_alignr_epi8(w[3], w[2], 4);
        _mm_sha256msg2_epu32(_mm_add_epi32(s0, mid), w[3])
    }

    /// The same with σ0 on the vector units (AVX-512 has a rotate instruction) instead of the
    /// SHA message instruction: two chains of round instructions keep the SHA unit busy on
    /// their own, and the message instructions queue for it too. On AMD Zen 4 this takes the
    /// pair from 1.12x the time of one stream to 1.00–1.04x.
    #[inline]
    #[target_feature(enable = "sha,ssse3,sse4.1,avx512f,avx512vl")]
    fn next_words_vector(w: [__m128i; 4]) -> __m128i {
        let x = _mm_alignr_epi8(w[1], w[0], 4); // W[t-15..t-12]
        let sigma0 = _mm_ternarylogic_epi32::<0x96>(
            _mm_ror_epi32::<7>(x),
            _mm_ror_epi32::<18>(x),
            _mm_srli_epi32::<3>(x),
        );
        let w7 = _mm_alignr_epi8(w[3], w[2], 4); // W[t-7..t-4]
        _mm_sha256msg2_epu32(_mm_add_epi32(_mm_add_epi32(w[0], sigma0), w7), w[3])
    }

    /// The two-state compression loop, with `$next` computing the message schedule; one body
    /// for all kernels, each compiled with its own target features. The sixteen groups of
    /// rounds are written out so that the schedule stays in registers (as a loop over an
    /// array it went through memory, and the pair cost 1.32x one stream instead of 1.12x).
    /// After each block's first four groups it asks for the line [`PREFETCH_AHEAD`] bytes on.
    /// With `$pair` false (a constant) only the first state is compressed.
    ///
    /// `$side` runs after every four groups with the block, its index and the quarter (0–3),
    /// and the loop ends early after a block for which `$stop` holds; the body's value is the
    /// number of blocks compressed. The side work is plain text in the loop, not a closure, so
    /// that it is always inlined: as a closure the compiler kept it out of line and the rounds'
    /// state went through memory.
    macro_rules! compress_both_body {
        ($a:ident, $b:ident, $pair:expr, $blocks:ident, $next:ident,
         |$block:ident, $index:ident, $quarter:ident| $side:block, $stop:expr) => {{
            let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
            let (mut abef_a, mut cdgh_a) = load($a);
            let (mut abef_b, mut cdgh_b) = load($b);
            let mut done = 0usize;
            for block in $blocks {
                let (saved_abef_a, saved_cdgh_a) = (abef_a, cdgh_a);
                let (saved_abef_b, saved_cdgh_b) = (abef_b, cdgh_b);
                let p = block.as_ptr().cast::<__m128i>();
                let [mut w0, mut w1, mut w2, mut w3] = [0, 1, 2, 3].map(|i| {
                    // SAFETY: a block is 64 readable bytes and i < 4; unaligned load.
                    let words = unsafe { _mm_loadu_si128(p.add(i)) };
                    _mm_shuffle_epi8(words, swap)
                });
                // Four rounds with message words `w`, constants K[4g..4g+4].
                let mut rounds = |w: __m128i, g: usize| {
                    // SAFETY: g < 16, so 4 * g + 3 < 64; unaligned load of four constants.
                    let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * g).cast()) };
                    let wk = _mm_add_epi32(w, k);
                    let wk_hi = _mm_shuffle_epi32(wk, 0x0E);
                    // Both chains in lockstep: each instruction's input was produced two
                    // instructions earlier, hiding the round instruction's latency.
                    cdgh_a = _mm_sha256rnds2_epu32(cdgh_a, abef_a, wk);
                    if $pair {
                        cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, wk);
                    }
                    abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, wk_hi);
                    if $pair {
                        abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, wk_hi);
                    }
                };
                rounds(w0, 0);
                rounds(w1, 1);
                rounds(w2, 2);
                rounds(w3, 3);
                prefetch_ahead(block);
                {
                    let ($block, $index, $quarter) = (block, done, 0usize);
                    $side
                }
                for g in (4..16).step_by(4) {
                    // W[t..t+3] from W[t-16..t-1], oldest first.
                    w0 = $next([w0, w1, w2, w3]);
                    rounds(w0, g);
                    w1 = $next([w1, w2, w3, w0]);
                    rounds(w1, g + 1);
                    w2 = $next([w2, w3, w0, w1]);
                    rounds(w2, g + 2);
                    w3 = $next([w3, w0, w1, w2]);
                    rounds(w3, g + 3);
                    let ($block, $index, $quarter) = (block, done, g / 4);
                    $side
                }
                abef_a = _mm_add_epi32(abef_a, saved_abef_a);
                cdgh_a = _mm_add_epi32(cdgh_a, saved_cdgh_a);
                if $pair {
                    abef_b = _mm_add_epi32(abef_b, saved_abef_b);
                    cdgh_b = _mm_add_epi32(cdgh_b, saved_cdgh_b);
                }
                done += 1;
                if $stop {
                    break;
                }
            }
            store($a, abef_a, cdgh_a);
            if $pair {
                store($b, abef_b, cdgh_b);
            }
            done
        }};
    }

    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1 ([`Kernel::Sha`]).
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn compress_both_sha(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
        compress_both_body!(a, b, true, blocks, next_words_sha, |_b, _i, _q| {}, false);
    }

    /// The pair (or with `PAIR` false the first state alone) with the stream gear hash run over
    /// the same blocks (see [`crate::gear`]): its sixteen bytes per quarter fill the integer
    /// units while the round instructions wait on each other. Stops after a block that leaves
    /// the note buffer less than a block's room; returns the number of blocks taken (at least
    /// one).
    ///
    /// # Safety
    /// As [`compress_both_sha`].
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn scan_sha<const PAIR: bool>(
        a: &mut [u32; 8],
        b: &mut [u32; 8],
        blocks: &[[u8; 64]],
        run: &mut Run,
    ) -> usize {
        let t = gear::tables();
        let (mut h, mut n, at, filter) = (run.h, run.n, run.at, run.filter);
        let noted = &mut run.noted;
        let done = compress_both_body!(
            a,
            b,
            PAIR,
            blocks,
            next_words_sha,
            |block, index, quarter| {
                let start = at + 64 * index as u64 + 16 * quarter as u64;
                // Each byte is a load of its own from the block, which is in L1. Left to
                // itself, the compiler extracted the bytes from the vector registers the rounds
                // had loaded (`pextrb` and `movzx`, three micro-ops against one), and in a loop
                // this full that showed: all digests of a 1 GiB file ran at 0.88x the speed of
                // its SHA-256 alone that way, 0.91x this way (medians of 25 runs alternating
                // both builds).
                let bytes = block[16 * quarter..16 * quarter + 16].as_ptr();
                for j in 0..8 {
                    let at = start + 2 * j as u64;
                    // SAFETY: 2 * j + 1 < 16, inside the quarter.
                    let pair = unsafe {
                        [
                            bytes.add(2 * j).read_volatile(),
                            bytes.add(2 * j + 1).read_volatile(),
                        ]
                    };
                    Run::pair(t, &mut h, filter, at, pair, noted, &mut n);
                }
            },
            n > NOTE_ROOM - 64
        );
        run.h = h;
        run.n = n;
        run.at = at + 64 * done as u64;
        done
    }

    /// # Safety
    /// The CPU must support SHA, SSSE3, SSE4.1, AVX-512F and AVX-512VL ([`Kernel::ShaVector`]).
    #[target_feature(enable = "sha,ssse3,sse4.1,avx512f,avx512vl")]
    pub unsafe fn compress_both_vector(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
        compress_both_body!(
            a,
            b,
            true,
            blocks,
            next_words_vector,
            |_b, _i, _q| {},
            false
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::sha256;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 + (i >> 7)) as u8).collect()
    }

    #[test]
    fn both_states_match_sha2() {
        let d = data(64 * 300 + 50);
        let blocks = as_blocks(&d);
        for split in [0, 1, 2, 17, blocks.len()] {
            // State b starts `split` blocks in, as a part that begins there would.
            let mut a = IV;
            let mut b = IV;
            compress256(&mut a, &blocks[..split]);
            compress_both(&mut a, &mut b, &blocks[split..]);
            let full = blocks.len() * 64;
            assert_eq!(finish(a, &d[full..], d.len() as u64), sha256(&d));
            assert_eq!(
                finish(b, &d[full..], (d.len() - split * 64) as u64),
                sha256(&d[split * 64..])
            );
        }
    }

    #[test]
    fn finish_at_every_tail_length() {
        let d = data(200);
        for n in 0..200 {
            let full = n / 64 * 64;
            let mut s = IV;
            compress256(&mut s, as_blocks(&d[..full]));
            assert_eq!(finish(s, &d[full..n], n as u64), sha256(&d[..n]), "len {n}");
        }
    }

    #[test]
    fn every_kernel_agrees_with_sha2() {
        let d = data(64 * 40);
        let (mut a2, mut b2) = (IV, [7u32; 8]);
        compress256(&mut a2, as_blocks(&d));
        compress256(&mut b2, as_blocks(&d));
        let (mut a, mut b) = (IV, [7u32; 8]);
        compress_both(&mut a, &mut b, as_blocks(&d));
        assert_eq!((a, b), (a2, b2));
        #[cfg(target_arch = "x86_64")]
        {
            use shani::Kernel;
            let best = shani::kernel();
            let runnable: &[Kernel] = match best {
                Kernel::ShaVector => &[Kernel::Portable, Kernel::Sha, Kernel::ShaVector],
                Kernel::Sha => &[Kernel::Portable, Kernel::Sha],
                Kernel::Portable => &[Kernel::Portable],
            };
            for &k in runnable {
                let (mut a, mut b) = (IV, [7u32; 8]);
                compress_both_with(k, &mut a, &mut b, as_blocks(&d));
                assert_eq!((a, b), (a2, b2), "{k:?}");
            }
        }
    }

    #[test]
    fn fused_gear_finds_what_a_byte_scan_finds() {
        use fastcdc::v2020::{select_masks, Normalization, MASKS};
        let d = crate::chunking::tests::noise(64 * 700, 3);
        let blocks = as_blocks(&d);
        // From the default chunking's masks down to masks that match every other byte, so that
        // the kernels stop early to hand their notes over, again and again.
        let mask_sets = [
            select_masks(65536, Normalization::Level1),
            select_masks(256, Normalization::Level3),
            (MASKS[6], MASKS[5]),
            (0, 0),
        ];
        // The best kernel, and on x86-64 each lesser one this CPU runs.
        type Scanner = Box<dyn Fn(&mut [u32; 8], &mut [u32; 8], &[[u8; 64]], &mut Candidates)>;
        // One-state scanners hash the second state apart, so that every scanner's states can be
        // checked alike.
        let one = |a: &mut _, b: &mut _, bl: &[_], c: &mut _| {
            scan_one(a, bl, c);
            compress256(b, bl);
        };
        #[allow(unused_mut)]
        let mut kernels: Vec<(String, Scanner)> = vec![
            ("best".into(), Box::new(scan_both)),
            ("best, one state".into(), Box::new(one)),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            use shani::Kernel;
            let lesser: &[Kernel] = match shani::kernel() {
                Kernel::ShaVector | Kernel::Sha => &[Kernel::Portable],
                Kernel::Portable => &[],
            };
            for &k in lesser {
                let f = move |a: &mut _, b: &mut _, bl: &[_], c: &mut _| {
                    scan_with(k, a, Some(b), bl, c);
                };
                kernels.push((format!("{k:?}"), Box::new(f)));
                let f = move |a: &mut _, b: &mut _, bl: &[_], c: &mut _| {
                    scan_with(k, a, None, bl, c);
                    compress256(b, bl);
                };
                kernels.push((format!("{k:?}, one state"), Box::new(f)));
            }
        }
        for masks in mask_sets {
            let mut want = Candidates::unbounded(masks);
            want.scan(&d);
            let want_hash = want.hash();
            let want = want.take().unwrap();
            let (mut a2, mut b2) = (IV, [7u32; 8]);
            compress256(&mut a2, blocks);
            compress256(&mut b2, blocks);
            for (k, scan) in &kernels {
                for split in [0, 1, 333, blocks.len()] {
                    let mut got = Candidates::unbounded(masks);
                    let (mut a, mut b) = (IV, [7u32; 8]);
                    scan(&mut a, &mut b, &blocks[..split], &mut got);
                    scan(&mut a, &mut b, &blocks[split..], &mut got);
                    assert_eq!(got.hash(), want_hash);
                    let got = got.take().unwrap();
                    assert_eq!((a, b), (a2, b2), "{k} split {split}");
                    assert_eq!(got, want, "{k} masks {masks:x?} split {split}");
                }
            }
            assert!(!want.is_empty() || masks.0 != 0);
        }
    }

    /// Not a test: prints what the pair costs against one stream (see the module doc).
    #[test]
    #[ignore]
    fn pair_cost() {
        let mib = std::env::var("PAIR_MIB").map_or(1, |v| v.parse().unwrap());
        let d = data(mib << 20);
        let blocks = as_blocks(&d);
        let masks = fastcdc::v2020::select_masks(65536, fastcdc::v2020::Normalization::Level1);
        let (mut a, mut b, mut c, mut e, mut f, mut g) = (IV, IV, IV, IV, IV, IV);
        let (mut fused, mut alone) = (Candidates::new(masks), Candidates::new(masks));
        let mut fused_one = Candidates::new(masks);
        type Case<'a> = (&'a str, Box<dyn FnMut() + 'a>);
        let mut cases: [Case; 5] = [
            ("one stream", Box::new(|| compress256(&mut a, blocks))),
            (
                "the pair",
                Box::new(|| compress_both(&mut b, &mut c, blocks)),
            ),
            (
                "the pair with the gear hash",
                Box::new(|| {
                    scan_both(&mut e, &mut f, blocks, &mut fused);
                    fused.take();
                }),
            ),
            (
                "one stream with the gear hash",
                Box::new(|| {
                    scan_one(&mut g, blocks, &mut fused_one);
                    fused_one.take();
                }),
            ),
            (
                "the gear hash alone",
                Box::new(|| {
                    alone.scan(&d);
                    alone.take();
                }),
            ),
        ];
        // Alternated, so that a slow spell of the machine falls on every case alike.
        let rounds = (256 / mib).max(1);
        let mut times = vec![Vec::new(); cases.len()];
        for _ in 0..15 {
            for (t, (_, f)) in times.iter_mut().zip(&mut cases) {
                let start = std::time::Instant::now();
                for _ in 0..rounds {
                    f();
                }
                t.push(start.elapsed().as_secs_f64());
            }
        }
        let median = |t: &mut Vec<f64>| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let one = median(&mut times[0]);
        let gbs = (rounds * d.len()) as f64 / one / 1e9;
        print!("one stream {gbs:.2} GB/s;");
        for (t, (name, _)) in times.iter_mut().zip(&cases).skip(1) {
            print!(" {name} {:.2}x;", median(t) / one);
        }
        println!(" pair_is_cheap: {}", pair_is_cheap());
    }
}
