"""The upload sink: native write-and-hash, limit, abort and cleanup."""

from __future__ import annotations

import hashlib

import pytest

from ferryman import SizeLimitExceeded
from ferryman.sink import Sink


def test_writes_and_hashes(tmp_path):
    path = tmp_path / "up"
    data = hashlib.shake_256(b"x").digest(3_000_001)
    sink = Sink(path, part_size=1_000_000, limit=len(data))
    for i in range(0, len(data), 65536):
        sink.write(memoryview(data)[i : i + 65536])
    assert sink.written == len(data)
    r = sink.close()
    assert r.size == len(data)
    assert r.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.size for p in r.parts] == [1_000_000, 1_000_000, 1_000_000, 1]
    assert r.parts[3].sha256 == hashlib.sha256(data[3_000_000:]).hexdigest()
    assert path.read_bytes() == data
    with pytest.raises(ValueError, match="closed"):
        sink.write(b"more")


def test_limit_refuses_overflow_without_accepting_it(tmp_path):
    sink = Sink(tmp_path / "up", limit=10)
    sink.write(b"123456")
    with pytest.raises(SizeLimitExceeded):
        sink.write(b"12345")
    sink.write(b"1234")
    assert sink.close().size == 10


def test_abort_and_unclosed_with_block_remove_the_file(tmp_path):
    path = tmp_path / "up"
    sink = Sink(path)
    sink.write(b"partial")
    sink.abort()
    sink.abort()
    assert not path.exists()
    with pytest.raises(RuntimeError), Sink(path) as s:
        s.write(b"partial")
        raise RuntimeError("client went away")
    assert not path.exists()
    with Sink(path) as s:
        s.write(b"done")
        s.close()
    assert path.read_bytes() == b"done"


def test_never_overwrites(tmp_path):
    path = tmp_path / "exists"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        Sink(path)
    assert path.read_bytes() == b"keep"


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        Sink(tmp_path / "no" / "such" / "dir")
