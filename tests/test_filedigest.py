"""One-pass file digests (hash_file) and batch digests (hash_files)."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import blake3 as blake3_pkg
import pytest

import ferryman
from ferryman import ChunkParams, FileChangedError, chunk_bytes, hash_file, hash_files

MIB = 1 << 20


def pattern(n: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "little")).digest(n) if n else b""


def check(data: bytes, d, part_size: int) -> None:
    assert d.size == len(data)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.blake3 == blake3_pkg.blake3(data).hexdigest()
    # Written out, not taken from part_plan (which is pinned on its own in test_chunking.py).
    starts = range(0, max(len(data), 1), part_size)
    assert [(p.index, p.offset, p.size) for p in d.parts] == [
        (i, start, min(part_size, len(data) - start)) for i, start in enumerate(starts, start=1)
    ]
    for p in d.parts:
        assert p.sha256 == hashlib.sha256(data[p.offset : p.offset + p.size]).hexdigest()
    assert d.chunks == chunk_bytes(data, d.chunking)
    assert sum(c.length for c in d.chunks) == len(data)


# The pipelined path starts at 4 MiB; both sides of it and of part boundaries are covered.
@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, MIB - 1, MIB, MIB + 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 9 * MIB + 5])
def test_all_digests_in_one_pass(write_file, n):
    data = pattern(n, n)
    part_size = MIB
    d = hash_file(write_file(data), part_size=part_size, chunking=True, blake3=True)
    check(data, d, part_size)
    assert d.chunking == ChunkParams()
    plain = hash_file(write_file(data))
    assert plain.sha256 == d.sha256
    assert (plain.parts, plain.chunks, plain.blake3, plain.chunking) == (None, None, None, None)


@pytest.mark.parametrize("multiple", [1, 2, 3])
def test_exact_multiples_of_the_part_size(write_file, multiple):
    part = 5 * MIB
    data = pattern(part * multiple, multiple)
    d = hash_file(write_file(data), part_size=part)
    assert [p.size for p in d.parts] == [part] * multiple


def test_shorter_than_one_part_and_empty(write_file):
    d = hash_file(write_file(b"abc"), part_size=MIB)
    assert [(p.index, p.size) for p in d.parts] == [(1, 3)]
    e = hash_file(write_file(b""), part_size=MIB, chunking=True)
    assert e.sha256 == hashlib.sha256(b"").hexdigest()
    assert [(p.index, p.size) for p in e.parts] == [(1, 0)]
    assert e.chunks == []


def test_custom_chunk_params_are_used_and_reported(write_file):
    params = ChunkParams(min_size=1024, avg_size=4096, max_size=16384, normalization=2)
    data = pattern(300_000, 3)
    d = hash_file(write_file(data), chunking=params)
    assert d.chunking == params
    assert d.chunks == chunk_bytes(data, params)
    assert all(c.length <= 16384 for c in d.chunks)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        hash_file(tmp_path / "nope")
    assert e.value.filename == str(tmp_path / "nope")
    with pytest.raises(IsADirectoryError):
        hash_file(tmp_path)


def test_bad_options(write_file):
    path = write_file(b"x")
    with pytest.raises(ValueError):
        hash_file(path, part_size=0)
    with pytest.raises(ValueError):
        ChunkParams(avg_size=100)
    with pytest.raises(TypeError):
        hash_file(path, chunking="yes")  # type: ignore[arg-type]


def test_file_truncated_while_read_is_reported(tmp_path):
    """A file shrinking under the reader raises FileChangedError instead of a wrong digest."""
    path = tmp_path / "moving.bin"
    path.write_bytes(pattern(256 * MIB, 7))
    started = threading.Event()

    def truncate():
        started.wait()
        time.sleep(0.01)
        os.truncate(path, 64 * MIB)

    t = threading.Thread(target=truncate)
    t.start()
    started.set()
    with pytest.raises(FileChangedError, match="changed while being read"):
        hash_file(path, part_size=8 * MIB)
    t.join()


def test_file_rewritten_in_place_is_reported(tmp_path):
    path = tmp_path / "rewritten.bin"
    path.write_bytes(pattern(256 * MIB, 8))
    started = threading.Event()

    def rewrite():
        started.wait()
        time.sleep(0.01)
        with open(path, "r+b") as f:
            f.seek(200 * MIB)
            f.write(b"tampered")

    t = threading.Thread(target=rewrite)
    t.start()
    started.set()
    with pytest.raises(FileChangedError):
        hash_file(path)
    t.join()


def test_batch_keeps_input_order_and_matches_single(write_file):
    paths = [write_file(pattern(n, n), f"f{i}") for i, n in enumerate([5 * MIB, 0, 10, 3 * MIB, 1])]
    out = hash_files(paths, part_size=MIB, chunking=True, blake3=True)
    assert [d.path for d in out] == [str(p) for p in paths]
    for p, d in zip(paths, out, strict=True):
        single = hash_file(p, part_size=MIB, chunking=True, blake3=True)
        assert (d.sha256, d.blake3, d.parts, d.chunks) == (
            single.sha256,
            single.blake3,
            single.parts,
            single.chunks,
        )


def test_batch_error_names_the_failing_file(write_file, tmp_path):
    good = write_file(b"ok")
    missing = tmp_path / "missing.bin"
    with pytest.raises(FileNotFoundError) as e:
        hash_files([good, missing, good])
    assert e.value.filename == str(missing)


def test_pool_size_is_settable():
    before = ferryman.get_threads()
    try:
        ferryman.set_threads(3)
        assert ferryman.get_threads() == 3
        with pytest.raises(ValueError):
            ferryman.set_threads(0)
        assert ferryman.get_threads() == 3
    finally:
        ferryman.set_threads(before)


def test_threads_argument_resizes_the_pool(write_file):
    before = ferryman.get_threads()
    try:
        hash_files([write_file(b"a")], threads=1)
        assert ferryman.get_threads() == 1
    finally:
        ferryman.set_threads(before)


def test_progress_reports_and_can_stop(write_file):
    data = pattern(40 * MIB, 9)
    path = write_file(data)
    seen = []
    d = hash_file(path, part_size=8 * MIB, progress=seen.append)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert seen[-1] == len(data) and seen == sorted(seen) and len(seen) >= 2

    def stop(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hash_file(path, progress=stop)
    small = write_file(b"tiny")
    calls = []
    hash_file(small, progress=calls.append)
    assert calls == [4]
