"""Streaming Sha256 and Blake3 against the shared vectors, hashlib and the blake3 package."""

from __future__ import annotations

import array
import hashlib
import itertools
import threading

import blake3 as blake3_pkg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors, vector_message
from ferryman.hashing import Blake3, Sha256, blake3, sha256


@pytest.mark.parametrize("v", load_vectors("sha256.json")["vectors"], ids=lambda v: v["name"])
def test_sha256_known_answers(v):
    """NIST/FIPS and boundary-length vectors, whole and streamed."""
    msg = vector_message(v)
    assert Sha256(msg).hexdigest() == v["sha256"]
    h = Sha256()
    for i in range(0, len(msg), 997):
        h.update(msg[i : i + 997])
    assert h.hexdigest() == v["sha256"]
    assert h.digest() == bytes.fromhex(v["sha256"])


@pytest.mark.parametrize("v", load_vectors("blake3.json")["vectors"], ids=lambda v: v["name"])
def test_blake3_known_answers(v):
    """BLAKE3's own test inputs."""
    assert Blake3(vector_message(v)).hexdigest() == v["blake3"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000), st.lists(st.integers(0, 5000), max_size=6))
def test_differential_against_hashlib_and_blake3(data, cuts):
    """Any split of any input hashes as hashlib and the blake3 package say."""
    ours_s, ours_b = Sha256(), Blake3()
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        ours_s.update(data[a:b])
        ours_b.update(data[a:b])
    assert ours_s.digest() == hashlib.sha256(data).digest()
    assert ours_b.digest() == blake3_pkg.blake3(data).digest()


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 2047, 2048, 2049, 1 << 20])
def test_every_buffer_type(n):
    """bytes, bytearray, memoryview (also sliced), array and mmap-like buffers are accepted."""
    data = bytes(i % 256 for i in range(n))
    want = hashlib.sha256(data).hexdigest()
    for buf in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))):
        assert Sha256(buf).hexdigest() == want
    padded = b"xx" + data + b"yy"
    assert Sha256(memoryview(padded)[2 : 2 + n]).hexdigest() == want
    words = array.array("I", range(n // 4))
    assert Sha256(words).hexdigest() == hashlib.sha256(words.tobytes()).hexdigest()


def test_rejects_non_buffers_and_strided_views():
    with pytest.raises(TypeError):
        Sha256("text")  # type: ignore[arg-type]
    with pytest.raises(BufferError):
        Sha256(memoryview(b"abcdef")[::2])


def test_copy_is_independent_and_digest_does_not_finalise():
    h = Sha256(b"abc")
    c = h.copy()
    c.update(b"def")
    assert h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert c.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    b = Blake3(b"abc")
    d = b.copy()
    d.update(b"x")
    assert b.hexdigest() == blake3_pkg.blake3(b"abc").hexdigest()


def test_hashlib_like_attributes():
    h = sha256(b"")
    assert (h.name, h.digest_size, h.block_size) == ("sha256", 32, 64)
    assert blake3(b"").name == "blake3"


def test_concurrent_updates_of_one_object_are_serialised():
    """Threads feeding one hasher (GIL released) lose no update and never fail."""
    block = bytes(range(256)) * 4096
    h = Sha256()
    threads = [threading.Thread(target=lambda: [h.update(block) for _ in range(8)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.hexdigest() == hashlib.sha256(block * 32).hexdigest()
