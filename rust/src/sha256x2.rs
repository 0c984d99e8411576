//! Two SHA-256 states fed the same blocks in one pass: the whole-file digest and the current
//! part's digest of a multipart upload hash identical bytes, so the message schedule is
//! computed once and the two states' rounds are interleaved. A single SHA-256 stream is bound
//! by the latency of the SHA round instruction on some CPUs; there two independent chains fill
//! the gaps, and "whole file + every part" costs about as much as the whole file alone (see
//! `benches/README.md` for the figures per CPU).
//!
//! No library offers this (the `sha2` crate, ring and aws-lc hash one stream at a time), so
//! the x86 SHA-extension kernels are ours; without the extensions (or off x86-64) both states
//! go through `sha2`'s compression function one after the other. Padding and finalisation are
//! FIPS 180-4 section 5.1.1; everything is tested against `sha2`.

use sha2::block_api::compress256;

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

    /// How far ahead of the block in hand the kernels prefetch, for CPUs whose hardware
    /// prefetch falls behind SHA-256 (see [`crate::prefetch`]).
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
    /// their own, and the message instructions would queue for it too.
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
    macro_rules! compress_both_body {
        ($a:ident, $b:ident, $blocks:ident, $next:ident) => {{
            let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
            let (mut abef_a, mut cdgh_a) = load($a);
            let (mut abef_b, mut cdgh_b) = load($b);
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
                    cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, wk);
                    abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, wk_hi);
                    abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, wk_hi);
                };
                rounds(w0, 0);
                rounds(w1, 1);
                rounds(w2, 2);
                rounds(w3, 3);
                prefetch_ahead(block);
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
                }
                abef_a = _mm_add_epi32(abef_a, saved_abef_a);
                cdgh_a = _mm_add_epi32(cdgh_a, saved_cdgh_a);
                abef_b = _mm_add_epi32(abef_b, saved_abef_b);
                cdgh_b = _mm_add_epi32(cdgh_b, saved_cdgh_b);
            }
            store($a, abef_a, cdgh_a);
            store($b, abef_b, cdgh_b);
        }};
    }

    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1 ([`Kernel::Sha`]).
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn compress_both_sha(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
        compress_both_body!(a, b, blocks, next_words_sha);
    }

    /// # Safety
    /// The CPU must support SHA, SSSE3, SSE4.1, AVX-512F and AVX-512VL ([`Kernel::ShaVector`]).
    #[target_feature(enable = "sha,ssse3,sse4.1,avx512f,avx512vl")]
    pub unsafe fn compress_both_vector(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
        compress_both_body!(a, b, blocks, next_words_vector);
    }
}

#[cfg(test)]
mod tests;
