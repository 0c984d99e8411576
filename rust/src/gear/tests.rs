use super::*;
use crate::chunking::tests::noise;

#[test]
fn shifted_table_is_the_crates() {
    let (_, ls) = v2020::get_gear_with_seed(0);
    assert_eq!(&tables().shifted[..], ls.as_ref());
}

#[test]
fn hash_forgets_after_64_bytes() {
    let t = tables();
    let data = noise(1000, 3);
    for end in [64, 65, 200, 1000] {
        assert_eq!(t.warm(&data[..end]), t.warm(&data[end - WARM..end]));
    }
}

#[test]
fn windows_find_what_one_chain_finds() {
    let t = tables();
    let (ms, ml) = v2020::select_masks(65536, v2020::Normalization::Level1);
    // From a hit every few bytes (so every chain hits, in every order) to none at all.
    let masks = [
        0x3,
        0x1_0001,
        0x0000_0180_0035_3000,
        ms,
        ml,
        0x7fff_ffff_ffff_ffff,
    ];
    for seed in 1..40 {
        let data = noise(3 * LANE * 4 + seed as usize * 37, seed);
        let h0 = t.warm(&data[..WARM]);
        for &mask in &masks {
            for start in [WARM, WARM + 1, WARM + LANE - 1, WARM + 2 * LANE + 5] {
                let want = t.one_chain(h0, &data[WARM..], mask);
                // Skip ahead by one chain where no hit lies before `start`.
                let (h, off) = match t.one_chain(h0, &data[WARM..start], mask) {
                    Scan::Through(h) => (h, start - WARM),
                    Scan::Cut(_) => (h0, 0),
                };
                let got = match scan(h, &data[WARM + off..], mask) {
                    Scan::Cut(i) => Scan::Cut(i + off),
                    through => through,
                };
                assert_eq!(got, want, "seed {seed} mask {mask:#x} start {start}");
            }
        }
    }
}

#[test]
fn short_stretches_agree_too() {
    let t = tables();
    let data = noise(3 * LANE + 2 * WARM, 5);
    let h0 = t.warm(&data[..WARM]);
    for len in (0..3 * LANE).step_by(29) {
        let w = &data[WARM..WARM + len];
        for bits in [8, 10, 12, 16] {
            let mask = v2020::MASKS[bits];
            assert_eq!(
                scan(h0, w, mask),
                t.one_chain(h0, w, mask),
                "len {len} bits {bits}"
            );
        }
    }
}

#[test]
fn each_chain_reports_its_own_first_hit() {
    let t = tables();
    // Masks with a hit every 1–8 KiB: the first hit falls in each of the three chains.
    let mut from_chain = [0; 4];
    for seed in 1..200 {
        let data = noise(WARM + 3 * LANE, seed);
        let h0 = t.warm(&data[..WARM]);
        let w = &data[WARM..];
        for bits in 10..=13 {
            let mask = v2020::MASKS[bits];
            let want = t.one_chain(h0, w, mask);
            assert_eq!(t.window(h0, w, mask), want, "seed {seed} bits {bits}");
            let chain = match want {
                Scan::Cut(i) => i / LANE,
                Scan::Through(_) => 3,
            };
            from_chain[chain] += 1;
        }
    }
    assert!(from_chain.iter().all(|&n| n > 10), "{from_chain:?}");
}
