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
fn every_kernel_agrees_with_sha2() {
    let d = data(64 * 40);
    let (mut a2, mut b2) = (IV, [7u32; 8]);
    compress256(&mut a2, as_blocks(&d));
    compress256(&mut b2, as_blocks(&d));
    let (mut a, mut b) = (IV, [7u32; 8]);
    compress_both(&mut a, &mut b, as_blocks(&d));
    assert_eq!((a, b), (a2, b2));
    #[cfg(target_arch = "x86_64")]
    {
        use shani::Kernel;
        let best = shani::kernel();
        let runnable: &[Kernel] = match best {
            Kernel::ShaVector => &[Kernel::Portable, Kernel::Sha, Kernel::ShaVector],
            Kernel::Sha => &[Kernel::Portable, Kernel::Sha],
            Kernel::Portable => &[Kernel::Portable],
        };
        for &k in runnable {
            let (mut a, mut b) = (IV, [7u32; 8]);
            compress_both_with(k, &mut a, &mut b, as_blocks(&d));
            assert_eq!((a, b), (a2, b2), "{k:?}");
        }
    }
}

/// Not a test: prints what the pair costs against one stream, over `PAIR_MIB` MiB (1 by
/// default): `cargo test --release -- --ignored --nocapture pair_cost`.
#[test]
#[ignore]
fn pair_cost() {
    let mib = std::env::var("PAIR_MIB").map_or(1, |v| v.parse().unwrap());
    let d = data(mib << 20);
    let blocks = as_blocks(&d);
    let (mut a, mut b, mut c) = (IV, IV, IV);
    // Alternated, so that a slow spell of the machine falls on both alike.
    let rounds = (256 / mib).max(1);
    let (mut one, mut pair) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            compress256(&mut a, blocks);
        }
        one.push(start.elapsed().as_secs_f64());
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            compress_both(&mut b, &mut c, blocks);
        }
        pair.push(start.elapsed().as_secs_f64());
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let (one, pair) = (median(&mut one), median(&mut pair));
    let gbs = (rounds * d.len()) as f64 / one / 1e9;
    println!("one stream {gbs:.2} GB/s; the pair {:.2}x", pair / one);
}
