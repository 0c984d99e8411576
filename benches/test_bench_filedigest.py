"""hash_file against a hashlib read loop, and hash_files against a sequential loop."""

from __future__ import annotations

import hashlib
import os

import pytest

import ferryman

MIB = 1 << 20


def hashlib_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MIB):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    paths = []
    for i in range(8):
        p = d / f"f{i}.bin"
        p.write_bytes(os.urandom(16 * MIB))
        paths.append(p)
    return paths


@pytest.mark.parametrize("impl", ["ferryman", "hashlib"])
def test_one_file(benchmark, files, impl):
    benchmark.group = "one 16 MiB file, SHA-256"
    fn = (lambda p: ferryman.hash_file(p).sha256) if impl == "ferryman" else hashlib_file
    assert benchmark(fn, files[0]) == hashlib_file(files[0])


@pytest.mark.parametrize("impl", ["ferryman", "hashlib"])
def test_many_files(benchmark, files, impl):
    benchmark.group = "eight 16 MiB files, SHA-256"
    if impl == "ferryman":
        out = benchmark(lambda: [d.sha256 for d in ferryman.hash_files(files)])
    else:
        out = benchmark(lambda: [hashlib_file(p) for p in files])
    assert out == [hashlib_file(p) for p in files]
