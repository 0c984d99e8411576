//! Streaming SHA-256 and BLAKE3.
//!
//! SHA-256 comes from the `sha2` crate, which picks the x86 SHA extensions (or the ARMv8 SHA2
//! instructions) at run time, so one build is fast on every CPU without `target-cpu=native`.

use sha2::block_api::compress256;
use sha2::Digest as _;

use crate::gear::Candidates;
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
    /// A chunking's stream gear hash, run inside the rounds (see [`WholeAndParts::scanning`]).
    candidates: Option<Candidates>,
}

impl Paired {
    /// Compresses `blocks`, and takes them into the candidates unless `scanned` already.
    fn blocks(&mut self, mut blocks: &[[u8; 64]], scanned: bool) {
        while !blocks.is_empty() {
            if self.part_done == self.part_size {
                self.close_full_part();
            }
            // Another hasher's parts (or none) leave the whole-file state to run alone here.
            let pair = self.share.takes(self.index);
            let room = ((self.part_size - self.part_done) / 64) as usize;
            let n = room.min(blocks.len());
            match (&mut self.candidates, pair) {
                (Some(c), true) if !scanned => {
                    sha256x2::scan_both(&mut self.whole, &mut self.part, &blocks[..n], c);
                }
                (Some(c), false) if !scanned => {
                    sha256x2::scan_one(&mut self.whole, &blocks[..n], c)
                }
                (_, true) => sha256x2::compress_both(&mut self.whole, &mut self.part, &blocks[..n]),
                (_, false) => {
                    let whole = &mut self.whole;
                    prefetch::ahead_of(blocks[..n].as_flattened(), |piece| {
                        compress256(whole, sha256x2::as_blocks(piece));
                    });
                }
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

    /// The candidates, if any, cover all of `data` when this returns: bytes that wait in `buf`
    /// for a whole block are scanned byte by byte as they come.
    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            if let Some(c) = &mut self.candidates {
                c.scan(&data[..take]);
            }
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = [self.buf];
            self.blocks(&block, true);
            self.buf_len = 0;
        }
        let blocks = sha256x2::as_blocks(data);
        self.blocks(blocks, false);
        let rest = &data[blocks.len() * 64..];
        if let Some(c) = &mut self.candidates {
            c.scan(rest);
        }
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
            Pairing::Paired(Self::paired(part_size, None))
        } else {
            Pairing::Separate(Box::new((Sha256::new(), parts)))
        }))
    }

    /// The same, with the stream gear hash of a chunking with `masks` run inside the SHA
    /// rounds (`crate::gear`), nearly for free; see [`Self::candidates`]. `None` where it would
    /// not be nearly free: without the SHA extensions, or when `part_size` is not a multiple of
    /// 64. Without a `part_size` there is one state, and no parts.
    pub fn scanning(part_size: Option<u64>, masks: (u64, u64)) -> crate::Result<Option<Self>> {
        if let Some(ps) = part_size {
            PartHasher::new(ps)?;
        }
        if !sha256x2::scan_is_fused() || part_size.is_some_and(|ps| !ps.is_multiple_of(64)) {
            return Ok(None);
        }
        // Without parts, a part size no stream reaches, of which the hasher takes no share.
        let mut paired = Self::paired(
            part_size.unwrap_or(u64::MAX - 63),
            Some(Candidates::new(masks)),
        );
        if part_size.is_none() {
            paired.share = PartShare::NONE;
        }
        Ok(Some(Self(Pairing::Paired(paired))))
    }

    fn paired(part_size: u64, candidates: Option<Candidates>) -> Box<Paired> {
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
            candidates,
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

    /// A scanning hasher's candidates, taken piece by piece.
    pub fn candidates(&mut self) -> Option<&mut Candidates> {
        match &mut self.0 {
            Pairing::Paired(p) => p.candidates.as_mut(),
            Pairing::Separate(_) => None,
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
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    /// The known-answer vectors shared with the Python tests.
    pub(crate) fn vectors(name: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/");
        let text = std::fs::read_to_string(format!("{path}{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Expands a vector's message: `hex`, `repeat` of a string `count` times, or `pattern251`
    /// bytes of i % 251 (BLAKE3's test input).
    pub(crate) fn message(v: &Value) -> Vec<u8> {
        if let Some(n) = v.get("pattern251") {
            (0..n.as_u64().unwrap()).map(|i| (i % 251) as u8).collect()
        } else if let Some(h) = v.get("hex") {
            hex::decode(h.as_str().unwrap()).unwrap()
        } else {
            let unit = v["repeat"].as_str().unwrap().as_bytes();
            unit.repeat(v["count"].as_u64().unwrap() as usize)
        }
    }

    #[test]
    fn sha256_known_answers() {
        let all = vectors("sha256.json");
        for v in all["vectors"].as_array().unwrap() {
            let msg = message(v);
            let want = v["sha256"].as_str().unwrap();
            assert_eq!(to_hex(&sha256(&msg)), want, "{}", v["name"]);
            // Fed in uneven pieces, the streaming hasher must agree.
            let mut h = Sha256::new();
            for piece in msg.chunks(61) {
                h.update(piece);
            }
            assert_eq!(to_hex(&h.digest()), want);
            assert_eq!(to_hex(&h.finalize()), want);
        }
    }

    #[test]
    fn blake3_known_answers() {
        let all = vectors("blake3.json");
        for v in all["vectors"].as_array().unwrap() {
            let msg = message(v);
            let want = v["blake3"].as_str().unwrap();
            assert_eq!(to_hex(&blake3(&msg)), want, "{}", v["name"]);
            let mut h = Blake3::new();
            for piece in msg.chunks(1000) {
                h.update(piece);
            }
            assert_eq!(to_hex(&h.digest()), want);
        }
    }

    #[test]
    fn boundary_lengths_split_anywhere() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 300] {
            let whole = sha256(&data[..len]);
            for split in [0, 1, len / 2, len.saturating_sub(1), len]
                .into_iter()
                .filter(|&s| s <= len)
            {
                let mut h = Sha256::new();
                h.update(&data[..split]);
                let copy = h.clone();
                h.update(&data[split..len]);
                assert_eq!(h.digest(), whole, "len {len} split {split}");
                let mut c = copy;
                c.update(&data[split..len]);
                assert_eq!(c.finalize(), whole);
            }
        }
    }

    #[test]
    fn prefetched_lengths_match_sha2() {
        // Around the lengths where `update` starts prefetching and where its steps end.
        let data: Vec<u8> = (0..70_001u32).map(|i| (i * 13 + (i >> 8)) as u8).collect();
        for len in [4095, 4096, 4097, 5119, 5120, 5121, 8192, 8193, 70_001] {
            let want: Digest = sha2::Sha256::digest(&data[..len]).into();
            assert_eq!(sha256(&data[..len]), want, "len {len}");
            let mut h = Sha256::new();
            h.update(&data[..1]);
            h.update(&data[1..len]);
            assert_eq!(h.finalize(), want, "len {len} after one byte");
        }
    }

    #[test]
    fn parts_split_at_exact_boundaries() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let ps = 64u64;
        for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 1000] {
            for piece in [1usize, 7, 64, 1000] {
                let mut h = PartHasher::new(ps).unwrap();
                for p in data[..len].chunks(piece) {
                    h.update(p);
                }
                let parts = h.finish();
                let plan = crate::chunking::part_plan(len as u64, ps).unwrap();
                assert_eq!(parts.len(), plan.len(), "len {len}");
                for (got, want) in parts.iter().zip(&plan) {
                    assert_eq!(
                        (got.index, got.offset, got.size),
                        (want.index, want.offset, want.size)
                    );
                    let s = want.offset as usize;
                    assert_eq!(got.sha256, sha256(&data[s..s + want.size as usize]));
                }
            }
        }
        assert!(PartHasher::new(0).is_err());
    }

    #[test]
    fn whole_and_parts_agree_with_separate_hashing() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 17 % 253) as u8).collect();
        for ps in [64u64, 128, 640, 100, 1000] {
            for len in [
                0usize, 1, 63, 64, 65, 127, 128, 129, 639, 640, 641, 1280, 5000,
            ] {
                for piece in [1usize, 3, 64, 200, 5000] {
                    let mut both = WholeAndParts::new(ps).unwrap();
                    let mut parts = PartHasher::new(ps).unwrap();
                    for p in data[..len].chunks(piece) {
                        both.update(p);
                        parts.update(p);
                    }
                    let (whole, got) = both.finish();
                    assert_eq!(
                        whole,
                        sha256(&data[..len]),
                        "ps {ps} len {len} piece {piece}"
                    );
                    assert_eq!(got, parts.finish(), "ps {ps} len {len} piece {piece}");
                }
            }
        }
        assert!(WholeAndParts::new(0).is_err());
    }

    #[test]
    fn shared_parts_make_up_every_part_once() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 241) as u8).collect();
        // 640 pairs the parts with the whole; 100 is not whole blocks, so they run apart.
        for ps in [64u64, 640, 100] {
            for len in [0usize, 1, 63, 64, 65, 639, 640, 641, 1280, 1281, 1920, 5000] {
                let mut all = PartHasher::new(ps).unwrap();
                all.update(&data[..len]);
                let all = all.finish();
                let shares = [1u64, 2, 3, 4]
                    .into_iter()
                    .flat_map(|n| [PartShare::Every(n), PartShare::AllBut(n)]);
                for share in shares.chain([PartShare::All]) {
                    let mut front = WholeAndParts::new(ps).unwrap();
                    front.share_parts(share.others());
                    let mut back = PartHasher::sharing(ps, share).unwrap();
                    for p in data[..len].chunks(97) {
                        front.update(p);
                        back.update(p);
                    }
                    let (whole, mine) = front.finish();
                    let theirs = back.finish();
                    let at = format!("ps {ps} len {len} {share:?}");
                    assert_eq!(whole, sha256(&data[..len]), "{at}");
                    assert!(theirs.iter().all(|p| share.takes(p.index.into())), "{at}");
                    assert!(mine.iter().all(|p| !share.takes(p.index.into())), "{at}");
                    let mut got = [mine, theirs].concat();
                    got.sort_by_key(|p| p.index);
                    assert_eq!(got, all, "{at}");
                }
            }
        }
        assert!(PartHasher::sharing(64, PartShare::Every(0)).is_err());
    }

    #[test]
    fn scanning_hashes_and_finds_the_candidates() {
        if !crate::sha256x2::scan_is_fused() {
            return; // no fused kernel on this CPU: `scanning` declines
        }
        let data = crate::chunking::tests::noise(20_000, 5);
        let masks = fastcdc::v2020::select_masks(1024, fastcdc::v2020::Normalization::Level1);
        let mut want = Candidates::unbounded(masks);
        want.scan(&data);
        let want = want.take().unwrap();
        assert!(want.len() > 10);
        for ps in [None, Some(64u64), Some(640)] {
            for piece in [1usize, 63, 64, 1000, 20_000] {
                let mut h = WholeAndParts::scanning(ps, masks).unwrap().unwrap();
                let mut hits = Vec::new();
                for p in data.chunks(piece) {
                    h.update(p);
                    hits.extend(h.candidates().unwrap().take().unwrap());
                }
                assert_eq!(hits, want, "ps {ps:?} piece {piece}");
                let (whole, parts) = h.finish();
                assert_eq!(whole, sha256(&data), "ps {ps:?} piece {piece}");
                match ps {
                    Some(ps) => {
                        let mut p = PartHasher::new(ps).unwrap();
                        p.update(&data);
                        assert_eq!(parts, p.finish(), "ps {ps} piece {piece}");
                    }
                    None => assert!(parts.is_empty()),
                }
            }
        }
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
