"""Streaming hashers against hashlib and the blake3 package, by input size."""

from __future__ import annotations

import hashlib
import os

import blake3
import pytest

import ferryman

SIZES = [64, 4096, 1 << 20, 16 << 20]
DATA = {n: os.urandom(n) for n in SIZES}

SHA256 = {"ferryman": lambda b: ferryman.Sha256(b).digest(), "hashlib": lambda b: hashlib.sha256(b).digest()}
BLAKE3 = {"ferryman": lambda b: ferryman.Blake3(b).digest(), "blake3-py": lambda b: blake3.blake3(b).digest()}


@pytest.mark.parametrize("impl", sorted(SHA256))
@pytest.mark.parametrize("size", SIZES)
def test_sha256(benchmark, impl, size):
    benchmark.group = f"sha256 {size} B"
    assert benchmark(SHA256[impl], DATA[size]) == hashlib.sha256(DATA[size]).digest()


@pytest.mark.parametrize("impl", sorted(BLAKE3))
@pytest.mark.parametrize("size", SIZES)
def test_blake3(benchmark, impl, size):
    benchmark.group = f"blake3 {size} B"
    assert benchmark(BLAKE3[impl], DATA[size]) == blake3.blake3(DATA[size]).digest()
