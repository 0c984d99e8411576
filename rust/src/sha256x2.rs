//! Two SHA-256 states fed the same blocks in one pass: the whole-file digest and the current
//! part's digest of a multipart upload hash identical bytes, so the message schedule is
//! computed once and the two states' rounds are interleaved. A single SHA-256 stream is bound
//! by the latency of the SHA round instruction; two independent chains fill the gaps, which
//! makes "whole file + every part" cost about as much as the whole file alone.
//!
//! No library offers this (the `sha2` crate, ring and aws-lc hash one stream at a time), so
//! the x86 SHA-extension kernel is ours; without the extensions (or off x86-64) both states
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
    if shani::available() {
        // SAFETY: the CPU has the SHA, SSSE3 and SSE4.1 extensions (checked at run time).
        unsafe { shani::compress_both(a, b, blocks) };
        return;
    }
    compress256(a, blocks);
    compress256(b, blocks);
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

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("sha")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse4.1")
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

    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1 ([`available`]).
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    pub unsafe fn compress_both(a: &mut [u32; 8], b: &mut [u32; 8], blocks: &[[u8; 64]]) {
        let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let (mut abef_a, mut cdgh_a) = load(a);
        let (mut abef_b, mut cdgh_b) = load(b);
        for block in blocks {
            let (saved_abef_a, saved_cdgh_a) = (abef_a, cdgh_a);
            let (saved_abef_b, saved_cdgh_b) = (abef_b, cdgh_b);
            let p = block.as_ptr().cast::<__m128i>();
            let mut w = [_mm_setzero_si128(); 4];
            for (i, wi) in w.iter_mut().enumerate() {
                // SAFETY: a block is 64 readable bytes and i < 4; unaligned load.
                *wi = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(p.add(i)) }, swap);
            }
            for group in 0..16 {
                let i = group % 4;
                if group >= 4 {
                    // W[t] for the next four rounds from W[t-16..t-1] (held in w, cyclically).
                    let s0 = _mm_sha256msg1_epu32(w[i], w[(i + 1) % 4]);
                    let mid = _mm_alignr_epi8(w[(i + 3) % 4], w[(i + 2) % 4], 4);
                    w[i] = _mm_sha256msg2_epu32(_mm_add_epi32(s0, mid), w[(i + 3) % 4]);
                }
                // SAFETY: 4 * group + 3 < 64; unaligned load of four constants.
                let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * group).cast()) };
                let wk = _mm_add_epi32(w[i], k);
                let wk_hi = _mm_shuffle_epi32(wk, 0x0E);
                // Both chains in lockstep: each instruction's input was produced two
                // instructions earlier, hiding the round instruction's latency.
                cdgh_a = _mm_sha256rnds2_epu32(cdgh_a, abef_a, wk);
                cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, wk);
                abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, wk_hi);
                abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, wk_hi);
            }
            abef_a = _mm_add_epi32(abef_a, saved_abef_a);
            cdgh_a = _mm_add_epi32(cdgh_a, saved_cdgh_a);
            abef_b = _mm_add_epi32(abef_b, saved_abef_b);
            cdgh_b = _mm_add_epi32(cdgh_b, saved_cdgh_b);
        }
        store(a, abef_a, cdgh_a);
        store(b, abef_b, cdgh_b);
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
    fn portable_path_agrees() {
        let d = data(64 * 40);
        let (mut a, mut b) = (IV, [7u32; 8]);
        compress_both(&mut a, &mut b, as_blocks(&d));
        let (mut a2, mut b2) = (IV, [7u32; 8]);
        compress256(&mut a2, as_blocks(&d));
        compress256(&mut b2, as_blocks(&d));
        assert_eq!((a, b), (a2, b2));
    }
}
