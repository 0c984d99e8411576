use super::*;
use crate::hashing::sha256;

#[test]
fn writes_and_hashes_what_it_is_fed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut sink = Sink::create(&path, Some(100_000), Some(300_000)).unwrap();
    for piece in data.chunks(7777) {
        sink.write(piece.to_vec()).unwrap();
    }
    let out = sink.close().unwrap();
    assert_eq!(out.size, 300_000);
    assert_eq!(out.sha256, sha256(&data));
    let parts = out.parts.unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2].sha256, sha256(&data[200_000..]));
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert!(matches!(sink.close(), Err(Error::Closed(_))));
    assert!(matches!(sink.write(vec![1]), Err(Error::Closed(_))));
}

#[test]
fn limit_refuses_the_overflowing_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload");
    let mut sink = Sink::create(&path, None, Some(10)).unwrap();
    sink.write(vec![1; 6]).unwrap();
    assert!(matches!(
        sink.write(vec![1; 5]),
        Err(Error::TooLarge { limit: 10 })
    ));
    sink.write(vec![1; 4]).unwrap();
    assert_eq!(sink.close().unwrap().size, 10);
}

#[test]
fn try_write_queues_while_there_is_room_and_keeps_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut sink = Sink::create(&path, None, Some(6)).unwrap();
    assert!(sink.try_write(b"abc".to_vec()).unwrap());
    assert!(matches!(
        sink.try_write(b"defg".to_vec()),
        Err(Error::TooLarge { limit: 6 })
    ));
    assert!(sink.try_write(b"def".to_vec()).unwrap());
    let r = sink.close().unwrap();
    assert_eq!(
        (r.size, std::fs::read(&path).unwrap()),
        (6, b"abcdef".to_vec())
    );
}

#[test]
fn abort_and_drop_remove_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a");
    let mut sink = Sink::create(&path, None, None).unwrap();
    sink.write(vec![0; 1000]).unwrap();
    sink.abort();
    sink.abort();
    assert!(!path.exists());
    {
        let mut sink = Sink::create(&path, None, None).unwrap();
        sink.write(vec![0; 1000]).unwrap();
    }
    assert!(!path.exists());
}

#[test]
fn regions_of_a_shared_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary");
    let mut second = Sink::at(&path, 4, None, Some(4)).unwrap();
    second.write(b"5678".to_vec()).unwrap();
    let mut first = Sink::at(&path, 0, None, Some(4)).unwrap();
    first.write(b"1234".to_vec()).unwrap();
    assert_eq!(first.close().unwrap().sha256, sha256(b"1234"));
    assert_eq!(second.close().unwrap().sha256, sha256(b"5678"));
    assert_eq!(std::fs::read(&path).unwrap(), b"12345678");
    // An aborted region write leaves the shared file in place.
    let mut third = Sink::at(&path, 0, None, None).unwrap();
    third.write(b"ab".to_vec()).unwrap();
    third.abort();
    assert!(path.exists());
}

#[test]
fn refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exists");
    std::fs::write(&path, b"keep").unwrap();
    assert!(matches!(
        Sink::create(&path, None, None),
        Err(Error::Io { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
}

#[test]
fn empty_upload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    let mut sink = Sink::create(&path, Some(5), None).unwrap();
    let out = sink.close().unwrap();
    assert_eq!(out.size, 0);
    assert_eq!(out.sha256, sha256(b""));
    assert_eq!(out.parts.unwrap().len(), 1);
}
