//! Software prefetch for the hashing loops.
//!
//! SHA-256 takes its input at under 2 GB/s per core, and at that pace the hardware prefetchers
//! of some CPUs (an Intel Xeon, Sapphire Rapids) do not run ahead of it: each line arrives
//! late, not slowly, and SHA-256 over data not in L2 runs at little more than half its speed.
//! Asking for the lines a few KiB ahead, 1 KiB at a time, restores it; on AMD CPUs the hardware
//! keeps up by itself and the hints cost nothing measurable. Figures: `benches/README.md`.

/// How far ahead of the bytes being hashed to ask for lines: 1–4 KiB all did as well on the
/// Xeon; 8 KiB and more did worse (the lines are evicted from L1 before use).
pub const AHEAD: usize = 4096;

/// The piece hashed between two rounds of prefetches.
const STEP: usize = 1024;

/// Cache line size of every x86-64 CPU in use.
const LINE: usize = 64;

/// Asks the CPU to bring `data[range]` into L1; a hint only (nothing elsewhere than x86-64).
#[inline]
pub fn lines(data: &[u8], range: std::ops::Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = range.end.min(data.len());
        for at in (range.start..end).step_by(LINE) {
            // SAFETY: `at` is inside `data`; a prefetch reads nothing and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().add(at).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, range);
}

/// Feeds `data` to `take` in pieces, asking for each piece's lines [`AHEAD`] bytes before it is
/// taken.
#[inline]
pub fn ahead_of(data: &[u8], mut take: impl FnMut(&[u8])) {
    lines(data, 0..AHEAD);
    let mut at = 0;
    while at < data.len() {
        let end = (at + STEP).min(data.len());
        lines(data, at + AHEAD..end + AHEAD);
        take(&data[at..end]);
        at = end;
    }
}
