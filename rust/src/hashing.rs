//! Streaming SHA-256, BLAKE3, and the SHA-1 and MD5 that hawkBit's DDI API asks of artifacts.
//!
//! SHA-256 comes from the `sha2` crate, which picks the x86 SHA extensions (or the ARMv8 SHA2
//! instructions) at run time, so one build is fast on every CPU without `target-cpu=native`.

use sha2::block_api::compress256;
use sha2::Digest as _;

use crate::prefetch;
use crate::sha256x2;

/// Length in bytes of both digests.
pub const DIGEST_LEN: usize = 32;

/// A 32-byte digest.
pub type Digest = [u8; DIGEST_LEN];

/// Incremental SHA-256.
#[derive(Clone, Debug, Default)]
pub struct Sha256(sha2::Sha256);

impl Sha256 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        // Lines the hardware fetches late cost SHA-256 up to 40% on some CPUs (see
        // `crate::prefetch`); a short input is cheaper taken whole.
        if data.len() <= prefetch::AHEAD {
            self.0.update(data);
        } else {
            prefetch::ahead_of(data, |piece| self.0.update(piece));
        }
    }

    /// The digest of everything fed so far; the hasher can keep going.
    pub fn digest(&self) -> Digest {
        self.0.clone().finalize().into()
    }

    /// The digest, consuming the hasher (no copy of the state).
    pub fn finalize(self) -> Digest {
        self.0.finalize().into()
    }
}

/// SHA-256 of one buffer.
pub fn sha256(data: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
}

/// Incremental BLAKE3 (256-bit output), using the SIMD code the CPU offers.
#[derive(Clone, Debug, Default)]
pub struct Blake3(blake3::Hasher);

impl Blake3 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn digest(&self) -> Digest {
        self.0.finalize().into()
    }
}

/// BLAKE3 of one buffer.
pub fn blake3(data: &[u8]) -> Digest {
    blake3::hash(data).into()
}

/// Incremental SHA-1 (20-byte digest), for protocols that still name it (hawkBit's DDI): never
/// a security decision here, which SHA-256 makes. The `sha1` crate uses the x86 SHA extensions
/// when present, as `sha2` does.
#[derive(Clone, Debug, Default)]
pub struct Sha1(sha1::Sha1);

impl Sha1 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        sha1::Digest::update(&mut self.0, data);
    }

    pub fn digest(&self) -> [u8; 20] {
        sha1::Digest::finalize(self.0.clone()).into()
    }
}

/// Incremental MD5 (16-byte digest), for the same protocols as [`Sha1`].
#[derive(Clone, Debug, Default)]
pub struct Md5(md5::Md5);

impl Md5 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        md5::Digest::update(&mut self.0, data);
    }

    pub fn digest(&self) -> [u8; 16] {
        md5::Digest::finalize(self.0.clone()).into()
    }
}

/// The SHA-256 of one part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartDigest {
    /// 1-based, as in the upload API.
    pub index: u32,
    pub offset: u64,
    pub size: u64,
    pub sha256: Digest,
}

/// Which of a stream's parts a hasher takes, when two hashers on different threads share them
/// out (see `filedigest`). `n` counts parts by their 1-based index: [`PartShare::Every`]`(3)`
/// takes parts 3, 6, 9, …, and [`PartShare::AllBut`]`(3)` the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartShare {
    All,
    Every(u64),
    AllBut(u64),
}

impl PartShare {
    /// No part at all: a hasher of the whole stream alone.
    pub const NONE: Self = Self::AllBut(1);

    /// The parts this share leaves to the other hasher.
    pub fn others(self) -> Self {
        match self {
            Self::All => Self::NONE,
            Self::Every(n) => Self::AllBut(n),
            Self::AllBut(n) => Self::Every(n),
        }
    }

    fn takes(self, index: u64) -> bool {
        match self {
            Self::All => true,
            Self::Every(n) => index.is_multiple_of(n),
            Self::AllBut(n) => !index.is_multiple_of(n),
        }
    }
}

/// SHA-256 of every `part_size` piece of a stream (or of its share of them), as the upload API
/// numbers parts. An empty stream has one empty part, matching [`crate::chunking::part_plan`].
#[derive(Clone, Debug)]
pub struct PartHasher {
    part_size: u64,
    share: PartShare,
    current: Sha256,
    filled: u64,
    /// 1-based index of the current part.
    index: u64,
    parts: Vec<PartDigest>,
}

impl PartHasher {
    pub fn new(part_size: u64) -> crate::Result<Self> {
        Self::sharing(part_size, PartShare::All)
    }

    /// Which parts it takes.
    #[cfg(test)]
    pub(crate) fn share(&self) -> PartShare {
        self.share
    }

    /// Whether it leaves parts to another hasher ([`PartShare::All`] does not).
    pub fn shares_out(&self) -> bool {
        self.share != PartShare::All
    }

    /// A hasher of `share` of the parts only; it skips the others' bytes.
    pub fn sharing(part_size: u64, share: PartShare) -> crate::Result<Self> {
        if part_size == 0 {
            return Err(crate::Error::InvalidArgument(
                "part_size must be positive".into(),
            ));
        }
        if matches!(share, PartShare::Every(0) | PartShare::AllBut(0)) {
            return Err(crate::Error::InvalidArgument(
                "a share of parts needs a positive step".into(),
            ));
        }
        Ok(Self {
            part_size,
            share,
            current: Sha256::new(),
            filled: 0,
            index: 1,
            parts: Vec::new(),
        })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.filled == self.part_size {
                self.close_part();
            }
            let room = (self.part_size - self.filled).min(data.len() as u64) as usize;
            if self.share.takes(self.index) {
                self.current.update(&data[..room]);
            }
            self.filled += room as u64;
            data = &data[room..];
        }
    }

    fn close_part(&mut self) {
        if self.share.takes(self.index) {
            let digest = std::mem::take(&mut self.current).finalize();
            self.parts.push(PartDigest {
                index: u32::try_from(self.index).unwrap_or(u32::MAX),
                offset: (self.index - 1) * self.part_size,
                size: self.filled,
                sha256: digest,
            });
        }
        self.index += 1;
        self.filled = 0;
    }

    /// The parts (of its share) seen so far, the last one possibly short.
    pub fn finish(mut self) -> Vec<PartDigest> {
        if self.filled > 0 || self.index == 1 {
            self.close_part();
        }
        self.parts
    }
}

/// The whole-stream SHA-256 and every part's SHA-256 together. When `part_size` is a multiple
/// of 64, part boundaries fall on SHA-256 block boundaries and both digests are computed in one
/// pass ([`crate::sha256x2`]), at 1.0–1.1x the cost of the whole digest alone instead of 2x;
/// otherwise the two are computed separately.
#[derive(Clone, Debug)]
pub struct WholeAndParts(Pairing);

#[derive(Clone, Debug)]
enum Pairing {
    Paired(Box<Paired>),
    Separate(Box<(Sha256, PartHasher)>),
}

#[derive(Clone, Debug)]
struct Paired {
    whole: [u32; 8],
    part: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
    part_size: u64,
    share: PartShare,
    /// Bytes of the current part compressed into `part` (a multiple of 64).
    part_done: u64,
    /// 1-based index of the current part.
    index: u64,
    parts: Vec<PartDigest>,
}

impl Paired {
    fn blocks(&mut self, mut blocks: &[[u8; 64]]) {
        while !blocks.is_empty() {
            if self.part_done == self.part_size {
                self.close_full_part();
            }
            // Another hasher's parts (or none) leave the whole-file state to run alone here.
            let pair = self.share.takes(self.index);
            let room = ((self.part_size - self.part_done) / 64) as usize;
            let n = room.min(blocks.len());
            if pair {
                sha256x2::compress_both(&mut self.whole, &mut self.part, &blocks[..n]);
            } else {
                let whole = &mut self.whole;
                prefetch::ahead_of(blocks[..n].as_flattened(), |piece| {
                    compress256(whole, sha256x2::as_blocks(piece));
                });
            }
            self.part_done += 64 * n as u64;
            blocks = &blocks[n..];
        }
    }

    fn close_full_part(&mut self) {
        self.close_part(&[], self.part_size);
    }

    /// Ends the current part, whose last `tail` bytes never filled a block, at `size` bytes.
    fn close_part(&mut self, tail: &[u8], size: u64) {
        if self.share.takes(self.index) {
            self.parts.push(PartDigest {
                index: u32::try_from(self.index).unwrap_or(u32::MAX),
                offset: (self.index - 1) * self.part_size,
                size,
                sha256: sha256x2::finish(self.part, tail, size),
            });
        }
        self.part = sha256x2::IV;
        self.part_done = 0;
        self.index += 1;
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = [self.buf];
            self.blocks(&block);
            self.buf_len = 0;
        }
        let blocks = sha256x2::as_blocks(data);
        self.blocks(blocks);
        let rest = &data[blocks.len() * 64..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    fn finish(mut self) -> (Digest, Vec<PartDigest>) {
        let tail = self.buf[..self.buf_len].to_vec();
        let whole = sha256x2::finish(self.whole, &tail, self.total);
        if self.part_done == self.part_size && !tail.is_empty() {
            self.close_full_part();
        }
        if self.part_done > 0 || !tail.is_empty() || self.index == 1 {
            let size = self.part_done + tail.len() as u64;
            self.close_part(&tail, size);
        }
        (whole, self.parts)
    }
}

impl WholeAndParts {
    pub fn new(part_size: u64) -> crate::Result<Self> {
        let parts = PartHasher::new(part_size)?;
        Ok(Self(if part_size.is_multiple_of(64) {
            Pairing::Paired(Self::paired(part_size))
        } else {
            Pairing::Separate(Box::new((Sha256::new(), parts)))
        }))
    }

    fn paired(part_size: u64) -> Box<Paired> {
        Box::new(Paired {
            whole: sha256x2::IV,
            part: sha256x2::IV,
            buf: [0; 64],
            buf_len: 0,
            total: 0,
            part_size,
            share: PartShare::All,
            part_done: 0,
            index: 1,
            parts: Vec::new(),
        })
    }

    /// Leaves the parts outside `share` to another hasher (a [`PartHasher::sharing`] the
    /// rest); [`Self::finish`] then returns only this share of them. Call before any update.
    pub fn share_parts(&mut self, share: PartShare) {
        match &mut self.0 {
            Pairing::Paired(p) => p.share = share,
            Pairing::Separate(both) => both.1.share = share,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Pairing::Paired(p) => p.update(data),
            Pairing::Separate(both) => {
                both.0.update(data);
                both.1.update(data);
            }
        }
    }

    /// The whole digest and the parts, the last one possibly short.
    pub fn finish(self) -> (Digest, Vec<PartDigest>) {
        match self.0 {
            Pairing::Paired(p) => p.finish(),
            Pairing::Separate(both) => {
                let (whole, parts) = *both;
                (whole.finalize(), parts.finish())
            }
        }
    }
}

/// Lowercase hex of a byte string.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
