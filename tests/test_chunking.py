"""FastCDC chunking and the part plan."""

from __future__ import annotations

import hashlib

import blake3 as blake3_pkg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferryman.chunking import ChunkParams, chunk_bytes, chunk_file, part_plan

SMALL = ChunkParams(min_size=256, avg_size=1024, max_size=4096, normalization=1)


def noise(n: int, seed: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(8, "little")).digest(n)


def test_defaults_are_pinned():
    p = ChunkParams()
    assert (p.min_size, p.avg_size, p.max_size, p.normalization) == (16384, 65536, 262144, 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60_000), st.integers(0, 2**32))
def test_chunks_tile_the_input_within_bounds(n, seed):
    data = noise(n, seed)
    chunks = chunk_bytes(data, SMALL)
    offset = 0
    for i, c in enumerate(chunks):
        assert c.offset == offset
        assert c.length <= SMALL.max_size
        if i < len(chunks) - 1:
            assert c.length >= SMALL.min_size
        assert c.blake3 == blake3_pkg.blake3(data[c.offset : c.offset + c.length]).hexdigest()
        offset += c.length
    assert offset == n


def test_boundaries_are_content_defined():
    """An insertion near the front changes only the chunks around it."""
    data = noise(2_000_000, 1)
    before = {c.blake3 for c in chunk_bytes(data, SMALL)}
    after = {c.blake3 for c in chunk_bytes(b"inserted!" + data, SMALL)}
    assert len(before & after) >= len(before) - 3


def test_uniform_input_cuts_at_max():
    chunks = chunk_bytes(bytes(3 * 4096 + 10), SMALL)
    assert [c.length for c in chunks] == [4096, 4096, 4096, 10]


def test_invalid_params():
    for kwargs in (
        {"min_size": 32},
        {"avg_size": 1 << 30},
        {"max_size": 1023},
        {"normalization": 4},
        {"min_size": 65536, "avg_size": 16384},
        {"avg_size": 65535},
    ):
        with pytest.raises(ValueError):
            ChunkParams(**kwargs)


@pytest.mark.parametrize(
    ("size", "sizes"),
    [(0, [0]), (1, [1]), (99, [99]), (100, [100]), (101, [100, 1]), (300, [100, 100, 100])],
)
def test_part_plan(size, sizes):
    plan = part_plan(size, 100)
    assert [p.size for p in plan] == sizes
    assert [p.index for p in plan] == list(range(1, len(sizes) + 1))
    assert [p.offset for p in plan] == [100 * i for i in range(len(sizes))]


def test_part_plan_rejects_zero_part_size():
    with pytest.raises(ValueError):
        part_plan(10, 0)


def test_chunk_file_matches_chunk_bytes(write_file):
    data = noise(1_500_000, 9)
    assert chunk_file(write_file(data), SMALL) == chunk_bytes(data, SMALL)
    assert chunk_file(write_file(data)) == chunk_bytes(data)
