use super::*;

pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
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

/// Chunks `data` fed in pieces of `piece` bytes.
fn chunked(data: &[u8], p: ChunkParams, piece: usize) -> Vec<Chunk> {
    let mut cutter = Cutter::new(p).unwrap();
    let mut hasher = ChunkHasher::new();
    let mut cuts = Vec::new();
    for part in data.chunks(piece.max(1)) {
        cuts.clear();
        cutter.update(part, &mut cuts);
        hasher.update(part, &cuts, cutter.holding());
    }
    hasher.finish()
}

fn reference(data: &[u8], p: ChunkParams) -> Vec<(u64, u64)> {
    // The level written out, not taken from ChunkParams::level (which is under test here).
    let level = [
        Normalization::Level0,
        Normalization::Level1,
        Normalization::Level2,
        Normalization::Level3,
    ][p.normalization as usize];
    v2020::FastCDC::with_level(data, p.min_size, p.avg_size, p.max_size, level)
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
        let pieces = [1, 4095, 4096, 65536, 262_143, 262_145, 1 << 20, data.len()];
        for piece in pieces {
            let got = chunked(&data, params, piece);
            let spans: Vec<_> = got.iter().map(|c| (c.offset, c.length)).collect();
            assert_eq!(spans, want, "piece {piece}");
            for ch in &got {
                let s = ch.offset as usize;
                assert_eq!(
                    ch.blake3,
                    crate::hashing::blake3(&data[s..s + ch.length as usize])
                );
            }
        }
    }
}

#[test]
fn every_normalization_level_cuts_as_the_crate_does() {
    let data = noise(1 << 20, 7);
    for normalization in 0..=3 {
        let params = ChunkParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
            normalization,
        };
        let got: Vec<_> = chunked(&data, params, 65536)
            .iter()
            .map(|c| (c.offset, c.length))
            .collect();
        assert_eq!(got, reference(&data, params), "level {normalization}");
    }
}

#[test]
fn tiny_chunks_in_tiny_pieces() {
    // Chunks of a few hundred bytes, so that cuts fall on piece ends, on held bytes and on
    // the last byte of the input, at both parities.
    let data = noise(20_000, 7);
    for normalization in 0..=3 {
        let p = ChunkParams {
            min_size: 64,
            avg_size: 256,
            max_size: 1024,
            normalization,
        };
        for len in 19_000..20_000 {
            let d = &data[..len];
            let want = reference(d, p);
            let pieces: &[usize] = if len % 50 == 0 {
                &[1, 2, 3, 5, 64, 333, len]
            } else {
                &[7, len]
            };
            for &piece in pieces {
                let got = chunked(d, p, piece);
                let spans: Vec<_> = got.iter().map(|c| (c.offset, c.length)).collect();
                assert_eq!(spans, want, "level {normalization} len {len} piece {piece}");
                let last = got.last().unwrap();
                let s = last.offset as usize;
                assert_eq!(last.blake3, crate::hashing::blake3(&d[s..]));
            }
        }
    }
}

/// Not a test: prints what our streaming chunker costs against the crate's cut plus a
/// one-shot BLAKE3 per chunk, over data in cache (as the blocks of `hash_file` are).
#[test]
#[ignore]
fn chunker_cost() {
    // 4 MiB stays in cache; it is chunked 16 times over.
    let data = noise(4 << 20, 11);
    let p = ChunkParams::default();
    let (ms, ml) = v2020::select_masks(p.avg_size, p.level());
    let crate_cuts = || {
        for _ in 0..16 {
            let mut at = 0;
            while at < data.len() {
                let (_, len) = v2020::cut(
                    &data[at..],
                    p.min_size,
                    p.avg_size,
                    p.max_size,
                    ms,
                    ml,
                    ms << 1,
                    ml << 1,
                );
                std::hint::black_box(crate::hashing::blake3(&data[at..at + len]));
                at += len;
            }
        }
    };
    let ours = || {
        let mut c = Chunker::new(p).unwrap();
        for _ in 0..16 {
            for block in data.chunks(1 << 20) {
                c.update(block);
            }
        }
        std::hint::black_box(c.finish());
    };
    let time = |f: &dyn Fn()| {
        let mut runs: Vec<f64> = (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[3]
    };
    let (theirs, ours) = (time(&crate_cuts), time(&ours));
    let gib = 16.0 * data.len() as f64 / f64::from(1u32 << 30);
    println!(
        "crate cut + BLAKE3 {:.3} s/GiB, ours {:.3} s/GiB: {:.2}x faster",
        theirs / gib,
        ours / gib,
        theirs / ours
    );
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
