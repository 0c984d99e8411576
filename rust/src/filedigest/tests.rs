use super::*;
use crate::chunking::chunk_bytes;
use crate::hashing::{blake3, sha256};
use std::io::Write;

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31) ^ (i >> 9)) as u8).collect()
}

fn sha1_of(bytes: &[u8]) -> [u8; 20] {
    let mut h = crate::hashing::Sha1::new();
    h.update(bytes);
    h.digest()
}

fn md5_of(bytes: &[u8]) -> [u8; 16] {
    let mut h = crate::hashing::Md5::new();
    h.update(bytes);
    h.digest()
}

fn all_opts(part_size: u64) -> DigestOptions {
    DigestOptions {
        part_size: Some(part_size),
        chunking: Some(ChunkParams::default()),
        blake3: true,
        legacy: true,
    }
}

fn check(bytes: &[u8], d: &FileDigest, opts: &DigestOptions) {
    assert_eq!(d.size, bytes.len() as u64);
    assert_eq!(d.sha256, sha256(bytes));
    assert_eq!(d.blake3, opts.blake3.then(|| blake3(bytes)));
    assert_eq!(d.sha1, opts.legacy.then(|| sha1_of(bytes)));
    assert_eq!(d.md5, opts.legacy.then(|| md5_of(bytes)));
    match opts.part_size {
        Some(ps) => {
            let parts = d.parts.as_ref().unwrap();
            let plan = crate::chunking::part_plan(bytes.len() as u64, ps).unwrap();
            assert_eq!(parts.len(), plan.len());
            for (p, want) in parts.iter().zip(plan) {
                let s = want.offset as usize;
                assert_eq!(p.sha256, sha256(&bytes[s..s + want.size as usize]));
            }
        }
        None => assert!(d.parts.is_none()),
    }
    let chunks = opts.chunking.map(|p| chunk_bytes(bytes, p).unwrap());
    assert_eq!(d.chunks, chunks);
}

#[test]
fn every_plan_agrees_inline_and_pipelined() {
    // Chunks of 1–4 KiB, so that cuts fall near the blocks' edges.
    let small = ChunkParams {
        min_size: 1024,
        avg_size: 2048,
        max_size: 4096,
        normalization: 1,
    };
    let plans = [
        // Parts that are not whole SHA-256 blocks: hashed apart from the whole file.
        (Some(BLOCK as u64 + 3), Some(small), true),
        (Some(1 << 20), Some(small), true),
        (Some(64), Some(small), false),
        (None, Some(ChunkParams::default()), false),
        // Parts alone or with BLAKE3: the lanes share them in other proportions.
        (Some(1 << 20), None, false),
        (Some(4096), None, true),
        // Parts too large to share.
        (Some(SHARE_MAX_PART + 64), None, false),
        (None, Some(small), true),
        (None, None, true),
    ];
    let lens = [
        0,
        1,
        2,
        63,
        64,
        65,
        4097,
        BLOCK + 1,
        4 * BLOCK,
        4 * BLOCK + 63,
    ];
    for (part_size, chunking, blake3) in plans {
        // SHA-1 and MD5 with some plans and not others: both lanes' shares change with them.
        let opts = DigestOptions {
            part_size,
            chunking,
            blake3,
            legacy: part_size.is_some() != blake3,
        };
        for len in lens {
            let bytes = crate::chunking::tests::noise(len, len as u64);
            let f = file_with(&bytes);
            check(&bytes, &hash_file(f.path(), &opts).unwrap(), &opts);
            // Both lanes on one thread, and on two (parts shared), at every length.
            let mut quiet = Reporter {
                progress: None,
                reported: 0,
            };
            let src = Source::open(f.path()).unwrap();
            check(
                &bytes,
                &digest_inline(src, &opts, &mut quiet).unwrap(),
                &opts,
            );
            let src = Source::open(f.path()).unwrap();
            check(
                &bytes,
                &digest_pipelined(src, &opts, &mut quiet).unwrap(),
                &opts,
            );
        }
    }
}

#[test]
fn the_second_lane_cuts_where_whole_buffer_chunking_does() {
    let small = ChunkParams {
        min_size: 256,
        avg_size: 1024,
        max_size: 4096,
        normalization: 2,
    };
    let bytes = crate::chunking::tests::noise(3 << 20, 5);
    for params in [ChunkParams::default(), small] {
        let opts = DigestOptions {
            part_size: Some(1 << 20),
            chunking: Some(params),
            blake3: false,
            legacy: false,
        };
        let want = chunk_bytes(&bytes, params).unwrap();
        for piece in [1000, 65_537, BLOCK] {
            let (mut front, back) = Front::plan(&opts, true).unwrap();
            let mut back = back.unwrap();
            for p in bytes.chunks(piece) {
                front.update(p);
                back.update(p);
            }
            assert_eq!(front.finish(&opts).0, sha256(&bytes));
            assert_eq!(back.finish().1.unwrap(), want, "piece {piece}");
        }
    }
}

#[test]
fn inline_and_pipelined_agree_at_boundaries() {
    let ps = BLOCK as u64 + 3;
    let big = PIPELINE_MIN as usize;
    for len in [
        0,
        1,
        63,
        64,
        65,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        big - 1,
        big,
        big + 1,
        3 * big + 7,
    ] {
        let bytes = data(len);
        let f = file_with(&bytes);
        let d = hash_file(f.path(), &all_opts(ps)).unwrap();
        check(&bytes, &d, &all_opts(ps));
        let plain = hash_file(f.path(), &DigestOptions::default()).unwrap();
        assert_eq!(plain.sha256, d.sha256);
        assert!(plain.parts.is_none() && plain.chunks.is_none() && plain.blake3.is_none());
    }
}

#[test]
fn batch_matches_single_and_keeps_order() {
    let files: Vec<_> = [0, 10, 5 * BLOCK, 1000]
        .iter()
        .map(|&n| file_with(&data(n)))
        .collect();
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path().to_path_buf()).collect();
    let opts = all_opts(1 << 20);
    let out = hash_files(&paths, &opts).unwrap();
    for (p, r) in paths.iter().zip(out) {
        assert_eq!(r.unwrap(), hash_file(p, &opts).unwrap());
    }
}

#[test]
fn errors_name_the_file() {
    let missing = PathBuf::from("/nonexistent/ferryman-test");
    let err = hash_file(&missing, &DigestOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound));
    assert!(err.to_string().contains("/nonexistent/ferryman-test"));
    let dir = tempfile::tempdir().unwrap();
    let err = hash_file(dir.path(), &DigestOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::IsADirectory)
    );
    let bad = DigestOptions {
        part_size: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        hash_file(dir.path(), &bad),
        Err(Error::InvalidArgument(_))
    ));
    let out = hash_files(
        &[missing.clone(), dir.path().to_path_buf()],
        &DigestOptions::default(),
    )
    .unwrap();
    assert!(out.iter().all(|r| r.is_err()));
}

#[test]
fn growth_during_read_is_reported() {
    // Simulate a writer that appends after the size was taken: open, then append, then read.
    let bytes = data(10_000);
    let f = file_with(&bytes);
    let src = Source::open(f.path()).unwrap();
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(f.path())
        .unwrap();
    w.write_all(b"more").unwrap();
    let mut quiet = Reporter {
        progress: None,
        reported: 0,
    };
    let err = digest_inline(src, &DigestOptions::default(), &mut quiet).unwrap_err();
    assert!(matches!(err, Error::FileChanged { .. }), "{err}");
}

#[test]
fn progress_is_reported_and_can_cancel() {
    let bytes = data(3 * PROGRESS_STEP as usize + 5);
    let f = file_with(&bytes);
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |n: u64| {
        seen.lock().unwrap().push(n);
        true
    };
    let d = hash_file_with_progress(f.path(), &DigestOptions::default(), Some(&record)).unwrap();
    assert_eq!(d.sha256, sha256(&bytes));
    let seen = seen.into_inner().unwrap();
    assert_eq!(*seen.last().unwrap(), bytes.len() as u64);
    assert!(
        seen.len() >= 3 && seen.windows(2).all(|w| w[0] < w[1]),
        "{seen:?}"
    );
    let stop = |n: u64| n < PROGRESS_STEP;
    let err =
        hash_file_with_progress(f.path(), &DigestOptions::default(), Some(&stop)).unwrap_err();
    assert!(matches!(err, Error::Cancelled));
}

#[test]
fn rewrite_in_place_is_reported() {
    let bytes = data(10 * BLOCK);
    let f = file_with(&bytes);
    let src = Source::open(f.path()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap();
    w.write_all(b"XXXX").unwrap();
    let mut quiet = Reporter {
        progress: None,
        reported: 0,
    };
    let err = digest_inline(src, &DigestOptions::default(), &mut quiet).unwrap_err();
    assert!(matches!(err, Error::FileChanged { .. }), "{err}");
}

/// The lanes' work for each kind of request: which lane hashes the whole file with parts, and
/// which parts the second lane takes (the table behind [`Front::plan`]; its figures are in
/// benches/README.md).
#[test]
fn the_work_is_planned_by_the_table() {
    const MIB: u64 = 1 << 20;
    let params = ChunkParams::default();
    type Row = (
        Option<u64>,
        bool,
        bool,
        bool,
        &'static str,
        Option<PartShare>,
    );
    let rows: [Row; 12] = [
        // part size, chunking, blake3, two threads -> front, the second lane's parts
        (None, false, false, true, "whole", None),
        (
            Some(8 * MIB),
            false,
            false,
            true,
            "pair",
            Some(PartShare::AllBut(4)),
        ),
        (Some(8 * MIB), false, false, false, "pair", None),
        (
            Some(16 * MIB),
            false,
            false,
            true,
            "pair",
            Some(PartShare::AllBut(4)),
        ),
        (
            Some(16 * MIB + 1),
            false,
            false,
            true,
            "whole",
            Some(PartShare::All),
        ),
        (Some(16 * MIB + 1), false, false, false, "pair", None),
        (Some(16 * MIB + 1), false, true, true, "pair", None),
        (Some(16 * MIB + 1), true, false, true, "pair", None),
        (Some(8 * MIB), true, false, true, "pair", None),
        (
            Some(8 * MIB),
            false,
            true,
            true,
            "pair",
            Some(PartShare::Every(2)),
        ),
        (Some(8 * MIB), false, true, false, "pair", None),
        (Some(8 * MIB), true, true, true, "pair", None),
    ];
    for (part_size, chunking, blake3, two, front_kind, back_parts) in rows {
        let opts = DigestOptions {
            part_size,
            chunking: chunking.then_some(params),
            blake3,
            legacy: false,
        };
        let (front, back) = Front::plan(&opts, two).unwrap();
        let kind = match front.sha {
            FrontSha::Whole(_) => "whole",
            FrontSha::Pair(_) => "pair",
        };
        let parts = back
            .as_ref()
            .and_then(|b| b.parts.as_ref())
            .map(|p| p.share());
        let row = (part_size, chunking, blake3, two);
        assert_eq!((kind, parts), (front_kind, back_parts), "{row:?}");
        assert_eq!(
            back.as_ref().is_some_and(|b| b.chunks.is_some()),
            chunking,
            "{row:?}"
        );
        assert_eq!(
            back.as_ref().is_some_and(|b| b.blake3.is_some()),
            blake3,
            "{row:?}"
        );
    }
}

fn changed_detail(err: Error) -> String {
    match err {
        Error::FileChanged { detail, .. } => detail,
        other => panic!("not a change: {other}"),
    }
}

#[test]
fn each_sign_of_a_change_is_enough_on_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let bytes = data(1000);
    let f = file_with(&bytes);
    let src = Source::open(f.path()).unwrap();
    src.check_unchanged(1000).unwrap();
    // Fewer bytes read than the file had, the file the same.
    assert_eq!(
        changed_detail(src.check_unchanged(999).unwrap_err()),
        "size was 1000, read 999, now 1000"
    );
    // Only the status-change time moves (a mode change keeps the modification time).
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode ^ 0o100)).unwrap();
    assert_eq!(
        changed_detail(src.check_unchanged(1000).unwrap_err()),
        "modified during the read"
    );
    // The file grew after every byte was read.
    let grown = Source::open(f.path()).unwrap();
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(f.path())
        .unwrap();
    w.write_all(b"more").unwrap();
    assert_eq!(
        changed_detail(grown.check_unchanged(1000).unwrap_err()),
        "size was 1000, read 1000, now 1004"
    );
}

#[test]
fn hash_files_answers_each_path_in_order() {
    let (a, b) = (data(3000), data(5 * BLOCK + 7));
    let (fa, fb) = (file_with(&a), file_with(&b));
    let missing = fa.path().with_extension("missing");
    let opts = DigestOptions::default();
    assert!(hash_files(&[], &opts).unwrap().is_empty());
    let one = hash_files(&[fb.path().to_path_buf()], &opts).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].as_ref().unwrap().sha256, sha256(&b));
    let paths = [fa.path().to_path_buf(), missing, fb.path().to_path_buf()];
    let all = hash_files(&paths, &opts).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].as_ref().unwrap().sha256, sha256(&a));
    assert!(matches!(all[1], Err(Error::Io { .. })), "{:?}", all[1]);
    assert_eq!(all[2].as_ref().unwrap().sha256, sha256(&b));
}
