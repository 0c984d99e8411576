"""Regenerates the known-answer vectors shared by the Rust and Python tests.

The published values (FIPS 180-4 / SHAVS SHA-256, RFC 8032 Ed25519, BLAKE3's empty-input
hash) are written here by hand and checked against hashlib, blake3 and cryptography before
anything is written, so a typo in either source stops the script. RSA keys, signatures and the
certificate are made fresh with cryptography. Run from the repository root:
``python tests/vectors/generate.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import blake3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent

SHA256 = [
    # FIPS 180-4 examples (NIST CSRC "Examples with intermediate values").
    {
        "name": "fips empty",
        "hex": "",
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    {
        "name": "fips abc",
        "hex": b"abc".hex(),
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    },
    {
        "name": "fips 448-bit",
        "hex": b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".hex(),
        "sha256": "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    },
    {
        "name": "fips 896-bit",
        "hex": (
            b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        ).hex(),
        "sha256": "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    },
    {
        "name": "fips one million a",
        "repeat": "a",
        "count": 1_000_000,
        "sha256": "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    },
    # SHAVS SHA256ShortMsg.rsp.
    {
        "name": "shavs len 8",
        "hex": "d3",
        "sha256": "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1",
    },
    {
        "name": "shavs len 16",
        "hex": "11af",
        "sha256": "5ca7133fa735326081558ac312c620eeca9970d1e70a4b95533d956f072d1f98",
    },
    {
        "name": "shavs len 24",
        "hex": "b4190e",
        "sha256": "dff2e73091f6c05e528896c4c831b9448653dc2ff043528f6769437bc7b975c2",
    },
    # SHAVS SHA256LongMsg-style: the long message "abcdefgh" * 2**16 + block boundaries.
    {"name": "long 512 KiB", "repeat": "abcdefgh", "count": 65536, "sha256": None},
]
for n in (55, 56, 63, 64, 65, 119, 120, 127, 128, 129):
    SHA256.append({"name": f"boundary {n}", "repeat": "x", "count": n, "sha256": None})

RFC8032 = [
    {
        "name": "TEST 1",
        "secret_key": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "message": "",
        "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    {
        "name": "TEST 2",
        "secret_key": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "public_key": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "message": "72",
        "signature": "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    {
        "name": "TEST 3",
        "secret_key": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "public_key": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "message": "af82",
        "signature": "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
]

# The group order L, little-endian arithmetic for the non-canonical S case.
L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")
# y = p + 1 encodes the identity again, non-canonically.
IDENTITY_NONCANONICAL = (2**255 - 19 + 1).to_bytes(32, "little")


def message(v: dict) -> bytes:
    if "pattern251" in v:
        return bytes(i % 251 for i in range(v["pattern251"]))
    if "hex" in v:
        return bytes.fromhex(v["hex"])
    return v["repeat"].encode() * v["count"]


def sha256_vectors() -> dict:
    for v in SHA256:
        got = hashlib.sha256(message(v)).hexdigest()
        assert v["sha256"] in (None, got), v["name"]
        v["sha256"] = got
    return {"source": "FIPS 180-4 examples, SHAVS short messages, boundary lengths", "vectors": SHA256}


def blake3_vectors() -> dict:
    # BLAKE3's own test inputs: byte i is i % 251.
    out = []
    for n in (0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 8192, 31744, 102400):
        data = bytes(i % 251 for i in range(n))
        out.append({"name": f"len {n}", "pattern251": n, "blake3": blake3.blake3(data).hexdigest()})
    assert out[0]["blake3"] == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    return {"source": "BLAKE3 test-vector inputs (byte i = i % 251)", "vectors": out}


def ed25519_vectors() -> dict:
    for v in RFC8032:
        sk = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["secret_key"]))
        pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert pk.hex() == v["public_key"], v["name"]
        assert sk.sign(bytes.fromhex(v["message"])).hex() == v["signature"], v["name"]
    t1 = RFC8032[0]
    sig = bytes.fromhex(t1["signature"])
    s = int.from_bytes(sig[32:], "little")
    strict = [
        {
            "name": "non-canonical S (S + L)",
            "public_key": t1["public_key"],
            "message": "",
            "signature": (sig[:32] + (s + L).to_bytes(32, "little")).hex(),
        },
        {
            # Accepted by a plain cofactorless check for every message: A and R small order.
            "name": "small-order key and R",
            "public_key": IDENTITY.hex(),
            "message": b"any message".hex(),
            "signature": (IDENTITY + bytes(32)).hex(),
        },
        {
            "name": "non-canonical small-order key",
            "public_key": IDENTITY_NONCANONICAL.hex(),
            "message": "",
            "signature": (IDENTITY + bytes(32)).hex(),
        },
        {
            "name": "small-order R with a valid key",
            "public_key": t1["public_key"],
            "message": "",
            "signature": (IDENTITY + sig[32:]).hex(),
        },
    ]
    # A binary signature over a digest, and over the digest's hex (both accepted, DESIGN.md).
    sk = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032[1]["secret_key"]))
    digest = hashlib.sha256(b"firmware image").digest()
    binary = {
        "public_key": RFC8032[1]["public_key"],
        "digest": digest.hex(),
        "signature_digest": sk.sign(digest).hex(),
        "signature_hex": sk.sign(digest.hex().encode()).hex(),
    }
    return {"rfc8032": RFC8032, "strict_reject": strict, "binary": binary}


def spki_pem(key) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def keyid(key) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def rsa_vectors() -> dict:
    content = b"firmware image"
    digest = hashlib.sha256(content).digest()
    out = []
    for bits in (2048, 3072, 4096):
        sk = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        schemes = {
            "rsa-pkcs1v15-sha256": padding.PKCS1v15(),
            "rsa-pss-sha256": padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        }
        if bits == 2048:
            schemes["rsa-pss-sha256 max salt"] = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
        for name, pad in schemes.items():
            out.append(
                {
                    "name": f"{bits} {name}",
                    "algorithm": name.split(" ")[0],
                    "bits": bits,
                    "public_key_pem": spki_pem(sk.public_key()),
                    "keyid": keyid(sk.public_key()),
                    "digest": digest.hex(),
                    "signature": sk.sign(content, pad, hashes.SHA256()).hex(),
                }
            )
    sk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferryman test signer")])
    not_before = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    not_after = dt.datetime(2035, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(sk.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(sk, hashes.SHA256())
    )
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return {
        "vectors": out,
        "certificate": {
            "pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "keyid": keyid(sk.public_key()),
            "not_before": int(not_before.timestamp()),
            "not_after": int(not_after.timestamp()),
        },
        "rsa1024_pem": spki_pem(small.public_key()),
    }


def main() -> None:
    for name, data in {
        "sha256.json": sha256_vectors(),
        "blake3.json": blake3_vectors(),
        "ed25519.json": ed25519_vectors(),
        "rsa.json": rsa_vectors(),
    }.items():
        (HERE / name).write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
