//! Streaming SHA-256 and BLAKE3.
//!
//! SHA-256 comes from the `sha2` crate, which picks the x86 SHA extensions (or the ARMv8 SHA2
//! instructions) at run time, so one build is fast on every CPU without `target-cpu=native`.

use sha2::Digest as _;

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
        self.0.update(data);
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
    sha2::Sha256::digest(data).into()
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

/// SHA-256 of every `part_size` piece of a stream, as the upload API numbers parts. An empty
/// stream has one empty part, matching [`crate::chunking::part_plan`].
#[derive(Clone, Debug)]
pub struct PartHasher {
    part_size: u64,
    current: Sha256,
    filled: u64,
    parts: Vec<PartDigest>,
}

impl PartHasher {
    pub fn new(part_size: u64) -> crate::Result<Self> {
        if part_size == 0 {
            return Err(crate::Error::InvalidArgument(
                "part_size must be positive".into(),
            ));
        }
        Ok(Self {
            part_size,
            current: Sha256::new(),
            filled: 0,
            parts: Vec::new(),
        })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.filled == self.part_size {
                self.close_part();
            }
            let room = (self.part_size - self.filled).min(data.len() as u64) as usize;
            self.current.update(&data[..room]);
            self.filled += room as u64;
            data = &data[room..];
        }
    }

    fn close_part(&mut self) {
        let index = u32::try_from(self.parts.len() + 1).unwrap_or(u32::MAX);
        let offset = self.parts.len() as u64 * self.part_size;
        let digest = std::mem::take(&mut self.current).finalize();
        self.parts.push(PartDigest {
            index,
            offset,
            size: self.filled,
            sha256: digest,
        });
        self.filled = 0;
    }

    /// The parts seen so far, the last one possibly short.
    pub fn finish(mut self) -> Vec<PartDigest> {
        if self.filled > 0 || self.parts.is_empty() {
            self.close_part();
        }
        self.parts
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
    fn hex_is_lowercase() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
