//! Our streaming FastCDC cutter (`chunking::Cutter`, its own gear scan) against the `fastcdc`
//! crate's chunkers, on 1 GiB of pseudo-random bytes in memory, with the same parameters (and
//! so the same cuts). `cargo run --release --example chunker_speed`; figures in
//! `benches/README.md`.

use std::time::Instant;

use _native::chunking::{ChunkParams, Cutter};
use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};

fn main() {
    let n: usize = 1 << 30;
    let mut data = vec![0u8; n];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for c in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    let p = ChunkParams::default();
    let (min, avg, max) = (p.min_size, p.avg_size, p.max_size);
    let gb = n as f64 / 1e9;
    for round in 0..3 {
        let t = Instant::now();
        let mut cutter = Cutter::new(p).expect("default parameters are valid");
        let (mut cuts, mut ours) = (Vec::new(), 0usize);
        for block in data.chunks(1 << 20) {
            cuts.clear();
            cutter.update(block, &mut cuts);
            ours += cuts.len();
        }
        let t_ours = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let whole = FastCDC::with_level(&data, min, avg, max, Normalization::Level1).count();
        let t_whole = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let stream = StreamCDC::with_level(
            std::io::Cursor::new(&data),
            min,
            avg,
            max,
            Normalization::Level1,
        )
        .count();
        let t_stream = t.elapsed().as_secs_f64();
        // Ours holds the last chunk until it is finished, so it reports one cut fewer.
        assert_eq!(ours + 1, whole);
        assert_eq!(whole, stream);
        println!(
            "round {round}: Cutter {:.2} GB/s, FastCDC {:.2} GB/s, StreamCDC {:.2} GB/s ({whole} chunks); Cutter / StreamCDC {:.2}x",
            gb / t_ours,
            gb / t_whole,
            gb / t_stream,
            t_stream / t_ours
        );
    }
}
