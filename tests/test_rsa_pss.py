"""RSA-PSS at any salt length (rust/src/rsa_pss.rs), differentially against ``cryptography``
(which verifies with the salt length recovered, ``PSS.AUTO``), and RSASSA-PSS-typed keys."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature as TheirInvalid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from ferryman import InvalidKey, InvalidSignature, load_public_key

DIGEST = hashlib.sha256(b"firmware").digest()
DER, SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


@functools.cache
def key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, bits)


def max_salt(bits: int) -> int:
    return (bits - 1 + 7) // 8 - 32 - 2


def sign(sk: rsa.RSAPrivateKey, salt: int, digest: bytes = DIGEST) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    return sk.sign(digest, padding.PSS(padding.MGF1(hashes.SHA256()), salt), Prehashed(hashes.SHA256()))


def ours(sk: rsa.RSAPrivateKey, sig: bytes, digest: bytes = DIGEST) -> bool:
    pk = load_public_key(sk.public_key().public_bytes(DER, SPKI))
    try:
        pk.verify_binary(digest, sig, "rsa-pss-sha256")
        return True
    except InvalidSignature:
        return False


def theirs(sk: rsa.RSAPrivateKey, sig: bytes, digest: bytes = DIGEST) -> bool:
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    try:
        sk.public_key().verify(
            sig, digest, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), Prehashed(hashes.SHA256())
        )
        return True
    except TheirInvalid:
        return False


def test_every_salt_length_of_a_2048_bit_key():
    sk = key(2048)
    for salt in range(max_salt(2048) + 1):
        sig = sign(sk, salt)
        assert ours(sk, sig) and theirs(sk, sig), salt
        bad = bytearray(sig)
        bad[salt % len(bad)] ^= 0x40
        assert ours(sk, bytes(bad)) is theirs(sk, bytes(bad)) is False, salt
        assert ours(sk, sig, hashlib.sha256(b"other").digest()) is False


@pytest.mark.parametrize("bits", [2048, 2049, 3072, 3073, 4095, 4096])
@pytest.mark.parametrize("salt", ["zero", "sha1", "digest", "odd", "max-1", "max"])
def test_salt_lengths_at_every_key_size(bits: int, salt: str):
    """Key sizes that are not a multiple of 8 shift the encoding by a byte: both sides agree."""
    sk = key(bits)
    n = {"zero": 0, "sha1": 20, "digest": 32, "odd": 77, "max-1": max_salt(bits) - 1, "max": max_salt(bits)}[salt]
    sig = sign(sk, n)
    assert ours(sk, sig) and theirs(sk, sig)


@settings(max_examples=200, deadline=None)
@given(salt=st.integers(0, max_salt(3072)), flips=st.lists(st.tuples(st.integers(0, 383), st.integers(0, 7)), max_size=3))
def test_tampered_signatures_get_the_same_verdict(salt: int, flips: list[tuple[int, int]]):
    sk = key(3072)
    sig = bytearray(sign(sk, salt))
    for byte, bit in flips:
        sig[byte] ^= 1 << bit
    assert ours(sk, bytes(sig)) is theirs(sk, bytes(sig))


@settings(max_examples=200, deadline=None)
@given(sig=st.binary(min_size=256, max_size=256))
def test_random_signatures_are_no_forgeries(sig: bytes):
    sk = key(2048)
    assert ours(sk, sig) is theirs(sk, sig) is False


def _openssl_pss_key(tmp_path: Path, *opts: str) -> tuple[Path, bytes]:
    private = tmp_path / "pss.pem"
    bits = () if any("rsa_keygen_bits" in o for o in opts) else ("-pkeyopt", "rsa_keygen_bits:2048")
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA-PSS", *bits, *opts, "-out", str(private)],
        check=True, capture_output=True,
    )  # fmt: skip
    public = subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout"], check=True, capture_output=True).stdout
    return private, public


def _openssl_sign(tmp_path: Path, private: Path, *opts: str) -> bytes:
    data = tmp_path / "fw.bin"
    data.write_bytes(b"firmware")
    out = tmp_path / "fw.sig"
    subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(private), "-sigopt", "rsa_padding_mode:pss", *opts,
         "-out", str(out), str(data)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


def test_rsassa_pss_keys_with_agreeing_parameters(tmp_path: Path):
    private, public = _openssl_pss_key(
        tmp_path, "-pkeyopt", "rsa_pss_keygen_md:sha256", "-pkeyopt", "rsa_pss_keygen_mgf1_md:sha256",
        "-pkeyopt", "rsa_pss_keygen_saltlen:32",
    )  # fmt: skip
    assert b"BEGIN PUBLIC KEY" in public
    pk = load_public_key(public)
    assert pk.kind == "rsa" and pk.supports("rsa-pss-sha256") and not pk.supports("rsa-pkcs1v15-sha256")
    assert pk.keyid == hashlib.sha256(load_public_key(public).spki_der).hexdigest()
    assert b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a" in pk.spki_der  # the key keeps its type and parameters
    assert pk.verify_binary(DIGEST, _openssl_sign(tmp_path, private, "-sigopt", "rsa_pss_saltlen:32"), "rsa-pss-sha256")
    # The key restricts its signatures to its salt length.
    with pytest.raises(InvalidSignature):
        pk.verify_binary(DIGEST, _openssl_sign(tmp_path, private, "-sigopt", "rsa_pss_saltlen:64"), "rsa-pss-sha256")
    with pytest.raises(ValueError, match="does not fit"):
        pk.verify_binary(DIGEST, bytes(256), "rsa-pkcs1v15-sha256")


def test_rsassa_pss_key_without_parameters_takes_any_salt(tmp_path: Path):
    private, public = _openssl_pss_key(tmp_path)
    pk = load_public_key(public)
    for salt in ("0", "32", "max"):
        assert pk.verify_binary(DIGEST, _openssl_sign(tmp_path, private, "-sigopt", f"rsa_pss_saltlen:{salt}"), "rsa-pss-sha256")


@pytest.mark.parametrize(
    "opts",
    [
        ("-pkeyopt", "rsa_pss_keygen_md:sha1"),
        ("-pkeyopt", "rsa_pss_keygen_md:sha256", "-pkeyopt", "rsa_pss_keygen_mgf1_md:sha1"),
        ("-pkeyopt", "rsa_pss_keygen_md:sha512"),
    ],
)
def test_rsassa_pss_keys_with_other_parameters_are_refused(tmp_path: Path, opts: tuple[str, ...]):
    _, public = _openssl_pss_key(tmp_path, *opts)
    with pytest.raises(InvalidKey, match="SHA-256"):
        load_public_key(public)


def test_rsassa_pss_key_sizes_stay_bounded(tmp_path: Path):
    _, public = _openssl_pss_key(tmp_path, "-pkeyopt", "rsa_keygen_bits:1024")
    with pytest.raises(InvalidKey, match=r"bits|range"):
        load_public_key(public)
