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
fn hex_is_lowercase() {
    assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
}

#[test]
fn sha1_and_md5_match_the_published_vectors() {
    // FIPS 180 and RFC 1321's "abc", fed in two pieces.
    let (mut s, mut m) = (Sha1::new(), Md5::new());
    for piece in [&b"a"[..], b"bc"] {
        s.update(piece);
        m.update(piece);
    }
    assert_eq!(
        to_hex(&s.digest()),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(to_hex(&m.digest()), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        to_hex(&Md5::new().digest()),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
}
