"""verify_many against a cryptography loop, Ed25519 and RSA-2048."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

import ferryman

N = 1000
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
DIGESTS = [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(N)]


@pytest.fixture(scope="module")
def ed():
    sk = ed25519.Ed25519PrivateKey.generate()
    return sk.public_key(), [sk.sign(d) for d in DIGESTS]


@pytest.fixture(scope="module")
def rsa2048():
    sk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pre = Prehashed(hashes.SHA256())
    return sk.public_key(), [sk.sign(d, padding.PKCS1v15(), pre) for d in DIGESTS]


@pytest.mark.parametrize("impl", ["ferryman", "cryptography"])
def test_ed25519(benchmark, ed, impl):
    benchmark.group = f"verify {N} Ed25519"
    pk, sigs = ed
    if impl == "ferryman":
        key = ferryman.load_public_key(pk.public_bytes(*SPKI))
        items = list(zip([key] * N, DIGESTS, sigs, strict=True))
        assert all(benchmark(ferryman.verify_many, items))
    else:
        benchmark(lambda: [pk.verify(s, d) for d, s in zip(DIGESTS, sigs, strict=True)])


@pytest.mark.parametrize("impl", ["ferryman", "cryptography"])
def test_rsa(benchmark, rsa2048, impl):
    benchmark.group = f"verify {N} RSA-2048 PKCS#1 v1.5"
    pk, sigs = rsa2048
    pre = Prehashed(hashes.SHA256())
    if impl == "ferryman":
        key = ferryman.load_public_key(pk.public_bytes(*SPKI))
        items = list(zip([key] * N, DIGESTS, sigs, strict=True))
        assert all(benchmark(ferryman.verify_many, items))
    else:
        benchmark(lambda: [pk.verify(s, d, padding.PKCS1v15(), pre) for d, s in zip(DIGESTS, sigs, strict=True)])
