//! Content-defined chunking (FastCDC 2020, from the `fastcdc` crate) and the fixed part plan of
//! multipart uploads.
//!
//! [`Chunker`] accepts data in arbitrary pieces and cuts exactly where `fastcdc`'s own
//! whole-buffer iterator would: it only asks for a cut once `max` bytes (or the end of the
//! input) are buffered, which is all the look-ahead a FastCDC cut can use.

use fastcdc::v2020::{self, Normalization};

use crate::error::{Error, Result};
use crate::hashing::{self, Digest};

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

/// Streaming FastCDC: feed any pieces, get the same chunks as over the whole buffer.
///
/// Chunks are cut and hashed in the caller's buffer where it holds `max` bytes from the chunk
/// start; only the bytes of a chunk that straddles two pieces are copied (into `carry`).
#[derive(Debug)]
pub struct Chunker {
    params: ChunkParams,
    masks: (u64, u64),
    /// Bytes not yet assigned to a chunk, fewer than `max` between calls; `carry[0]` is at file
    /// offset `offset`.
    carry: Vec<u8>,
    offset: u64,
    chunks: Vec<Chunk>,
}

impl Chunker {
    pub fn new(params: ChunkParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            masks: v2020::select_masks(params.avg_size, params.level()),
            carry: Vec::with_capacity(params.max_size),
            params,
            offset: 0,
            chunks: Vec::new(),
        })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        let max = self.params.max_size;
        // Finish what is carried over, topping it up to `max` bytes, until the next chunk
        // starts inside `data`.
        while !self.carry.is_empty() {
            let old = self.carry.len();
            let need = max - old;
            if data.len() < need {
                self.carry.extend_from_slice(data);
                return;
            }
            self.carry.extend_from_slice(&data[..need]);
            let carry = std::mem::take(&mut self.carry);
            let len = self.cut_one(&carry);
            self.carry = carry;
            if len >= old {
                data = &data[len - old..];
                self.carry.clear();
            } else {
                self.carry.drain(..len);
                data = &data[need..];
            }
        }
        let mut start = 0;
        while data.len() - start >= max {
            start += self.cut_one(&data[start..]);
        }
        self.carry.extend_from_slice(&data[start..]);
    }

    /// Cuts the rest and returns all chunks in order.
    pub fn finish(mut self) -> Vec<Chunk> {
        let carry = std::mem::take(&mut self.carry);
        let mut start = 0;
        while start < carry.len() {
            start += self.cut_one(&carry[start..]);
        }
        self.chunks
    }

    /// Cuts and hashes the chunk at the start of `window` (which holds `max` bytes, or all
    /// that is left); returns its length.
    fn cut_one(&mut self, window: &[u8]) -> usize {
        let p = &self.params;
        let (mask_s, mask_l) = self.masks;
        let (_, len) = v2020::cut(
            window,
            p.min_size,
            p.avg_size,
            p.max_size,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
        );
        self.chunks.push(Chunk {
            offset: self.offset,
            length: len as u64,
            blake3: hashing::blake3(&window[..len]),
        });
        self.offset += len as u64;
        len
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
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
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
            for piece in [1, 4095, 4096, 65536, 262_143, 262_145, 1 << 20, data.len()] {
                let mut c = Chunker::new(params).unwrap();
                for p in data.chunks(piece) {
                    c.update(p);
                }
                let got = c.finish();
                let spans: Vec<_> = got.iter().map(|c| (c.offset, c.length)).collect();
                assert_eq!(spans, want, "piece {piece}");
                for ch in &got {
                    let s = ch.offset as usize;
                    assert_eq!(ch.blake3, hashing::blake3(&data[s..s + ch.length as usize]));
                }
            }
        }
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
