"""Key parsing and signature verification against RFC 8032, cryptography and the openssl CLI."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import shutil
import subprocess
from functools import cache

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors
from ferryman import InvalidKey, InvalidSignature, load_public_key, verify_many

ED = load_vectors("ed25519.json")
RSA = load_vectors("rsa.json")
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(DER, SPKI)


@cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


PADDINGS = {
    "rsa-pkcs1v15-sha256": lambda: padding.PKCS1v15(),
    "rsa-pss-sha256": lambda: padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
}


@pytest.mark.parametrize("v", ED["rfc8032"], ids=lambda v: v["name"])
def test_rfc8032(v):
    key = load_public_key(bytes.fromhex(v["public_key"]))
    msg, sig = bytes.fromhex(v["message"]), bytes.fromhex(v["signature"])
    key.verify(msg, sig)
    with pytest.raises(InvalidSignature):
        key.verify(msg + b"x", sig)


@pytest.mark.parametrize("v", ED["strict_reject"], ids=lambda v: v["name"])
def test_strict_rejections(v):
    """Each case is refused, at key load or at verification."""
    with pytest.raises((InvalidSignature, InvalidKey)):
        load_public_key(bytes.fromhex(v["public_key"])).verify(bytes.fromhex(v["message"]), bytes.fromhex(v["signature"]))


def test_strict_rejects_what_openssl_accepts():
    """A small-order key with a small-order R verifies under OpenSSL's check, never here."""
    v = next(c for c in ED["strict_reject"] if c["name"] == "small-order key and R")
    raw, msg, sig = (bytes.fromhex(v[k]) for k in ("public_key", "message", "signature"))
    ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(sig, msg)  # OpenSSL: accepted
    with pytest.raises(InvalidKey, match="small-order"):
        load_public_key(raw)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 63), st.integers(1, 255), st.booleans())
def test_ed25519_differential(msg, pos, flip, tamper):
    """Random keys, messages and tampered signatures: our verdict equals cryptography's."""
    sk = ed25519.Ed25519PrivateKey.generate()
    sig = bytearray(sk.sign(msg))
    if tamper:
        sig[pos] ^= flip
    try:
        sk.public_key().verify(bytes(sig), msg)
        theirs = True
    except CryptoInvalid:
        theirs = False
    key = load_public_key(spki_der(sk.public_key()))
    try:
        key.verify(msg, bytes(sig))
        ours = True
    except InvalidSignature:
        ours = False
    assert ours == theirs


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
@pytest.mark.parametrize("alg", sorted(PADDINGS))
@settings(max_examples=8, deadline=None)
@given(content=st.binary(max_size=2000), pos=st.integers(0, 511), tamper=st.booleans())
def test_rsa_differential(bits, alg, content, pos, tamper):
    sk = rsa_key(bits)
    digest = hashlib.sha256(content).digest()
    sig = bytearray(sk.sign(content, PADDINGS[alg](), hashes.SHA256()))
    if tamper:
        sig[pos % len(sig)] ^= 0x01
    try:
        sk.public_key().verify(bytes(sig), digest, PADDINGS[alg](), Prehashed(hashes.SHA256()))
        theirs = True
    except CryptoInvalid:
        theirs = False
    key = load_public_key(sk.public_key().public_bytes(PEM, SPKI))
    assert key.bits == bits
    try:
        assert key.verify_binary(digest, bytes(sig), alg) == "digest"
        ours = True
    except InvalidSignature:
        ours = False
    assert ours == theirs


def test_rsa_pss_max_salt_and_vectors():
    for v in RSA["vectors"]:
        key = load_public_key(v["public_key_pem"])
        assert key.keyid == v["keyid"]
        key.verify_binary(bytes.fromhex(v["digest"]), bytes.fromhex(v["signature"]), v["algorithm"])
    sk = rsa_key(2048)
    sig = sk.sign(b"data", padding.PSS(padding.MGF1(hashes.SHA256()), 100), hashes.SHA256())
    key = load_public_key(spki_der(sk.public_key()))
    # Neither the digest length nor the maximum: recovered from the signature all the same.
    assert key.verify_binary(hashlib.sha256(b"data").digest(), sig, "rsa-pss-sha256") == "digest"


def test_wrong_algorithm_for_key():
    key = load_public_key(spki_der(rsa_key(2048).public_key()))
    with pytest.raises(ValueError, match="does not fit"):
        key.verify(bytes(32), bytes(256), "ed25519")
    with pytest.raises(ValueError, match="unknown algorithm"):
        key.verify(bytes(32), bytes(256), "rsa-md5")
    assert key.default_algorithm == "rsa-pkcs1v15-sha256"
    assert key.supports("rsa-pss-sha256") and not key.supports("ed25519") and not key.supports("md5")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_signatures_made_with_the_openssl_cli(tmp_path):
    """The recipes of DESIGN.md: pkeyutl -rawin over the digest, dgst -sign over the content."""
    content = hashlib.shake_256(b"fw").digest(100_000)
    (tmp_path / "fw.bin").write_bytes(content)
    digest = hashlib.sha256(content).digest()
    (tmp_path / "digest.bin").write_bytes(digest)

    def run(*args: str) -> bytes:
        return subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True).stdout

    run("genpkey", "-algorithm", "ed25519", "-out", "ed.pem")
    run("pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub")
    run("pkeyutl", "-sign", "-rawin", "-inkey", "ed.pem", "-in", "digest.bin", "-out", "ed.sig")
    ed = load_public_key((tmp_path / "ed.pub").read_text())
    assert ed.verify_binary(digest, (tmp_path / "ed.sig").read_bytes()) == "digest"

    run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem")
    run("pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub")
    run("dgst", "-sha256", "-sign", "rsa.pem", "-out", "rsa.sig", "fw.bin")
    run(
        "dgst", "-sha256", "-sign", "rsa.pem", "-sigopt", "rsa_padding_mode:pss",
        "-sigopt", "rsa_pss_saltlen:max", "-out", "pss.sig", "fw.bin",
    )  # fmt: skip
    key = load_public_key((tmp_path / "rsa.pub").read_bytes())
    sig = (tmp_path / "rsa.sig").read_bytes()
    assert key.verify_binary(digest, sig) == "digest"
    assert key.verify_binary(digest, (tmp_path / "pss.sig").read_bytes(), "rsa-pss-sha256") == "digest"
    with pytest.raises(InvalidSignature):
        key.verify_binary(hashlib.sha256(content + b"!").digest(), sig)
    # Text forms of the same signature decode to it.
    for text in (sig.hex(), sig.hex().upper(), base64.b64encode(sig).decode()):
        assert key.decode_signature(text) == sig


def test_ed25519_hex_form_of_the_digest():
    b = ED["binary"]
    key = load_public_key(bytes.fromhex(b["public_key"]))
    digest = bytes.fromhex(b["digest"])
    assert key.verify_binary(digest, bytes.fromhex(b["signature_digest"])) == "digest"
    assert key.verify_binary(digest, bytes.fromhex(b["signature_hex"])) == "hex"
    with pytest.raises(ValueError):
        key.verify_binary(digest[:31], bytes(64))


def test_key_encodings_share_one_keyid():
    sk = ed25519.Ed25519PrivateKey.generate()
    pub = sk.public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    want = hashlib.sha256(spki_der(pub)).hexdigest()
    forms = [raw, base64.b64encode(raw).decode(), spki_der(pub), pub.public_bytes(PEM, SPKI).decode()]
    assert {load_public_key(f).keyid for f in forms} == {want}
    r = rsa_key(2048).public_key()
    pkcs1 = r.public_bytes(PEM, serialization.PublicFormat.PKCS1)
    assert load_public_key(pkcs1).keyid == hashlib.sha256(spki_der(r)).hexdigest()


def test_certificates_bound_the_key():
    c = RSA["certificate"]
    key = load_public_key(c["pem"])
    assert key.keyid == c["keyid"]
    assert key.validity == (c["not_before"], c["not_after"])
    # DER certificates too, and an Ed25519 certificate.
    sk = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed signer")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(sk.public_key())
        .serial_number(7).not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
        .sign(sk, None)
    )  # fmt: skip
    key = load_public_key(cert.public_bytes(DER))
    assert key.kind == "ed25519"
    assert key.validity == (int(start.timestamp()), int(start.timestamp()) + 86400)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        "not base64 !!",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        bytes(31),
    ],
)
def test_unacceptable_keys(data):
    with pytest.raises(InvalidKey):
        load_public_key(data)


def test_small_rsa_keys_are_refused():
    with pytest.raises(InvalidKey, match="2048 to 4096"):
        load_public_key(RSA["rsa1024_pem"])


def test_signature_text_must_fit_the_key():
    key = load_public_key(bytes.fromhex(ED["rfc8032"][0]["public_key"]))
    with pytest.raises(InvalidSignature):
        key.decode_signature("abcd")
    with pytest.raises(InvalidSignature):
        key.decode_signature("%%%")


def test_verify_many_agrees_with_single_verification():
    sk = ed25519.Ed25519PrivateKey.generate()
    ed = load_public_key(spki_der(sk.public_key()))
    rs = rsa_key(2048)
    rk = load_public_key(spki_der(rs.public_key()))
    items = []
    for i in range(50):
        digest = hashlib.sha256(str(i).encode()).digest()
        esig = bytearray(sk.sign(digest))
        rsig = bytearray(rs.sign(str(i).encode(), padding.PKCS1v15(), hashes.SHA256()))
        if i % 3 == 0:
            esig[10] ^= 1
            rsig[-1] ^= 1
        items += [(ed, digest, bytes(esig)), (rk, digest, bytes(rsig), "rsa-pkcs1v15-sha256")]
    verdicts = verify_many(items, binary=True)
    assert len(verdicts) == len(items)
    for item, v in zip(items, verdicts, strict=True):
        key, digest, sig = item[0], item[1], item[2]
        try:
            key.verify_binary(digest, sig)
            single = True
        except InvalidSignature:
            single = False
        assert bool(v) == v.ok == single
        assert (v.error is None) == single
        assert v.message == ("digest" if single else None)
    assert sum(map(bool, verdicts)) == 2 * 33


def test_verify_many_rejects_malformed_items():
    key = load_public_key(bytes.fromhex(ED["rfc8032"][0]["public_key"]))
    with pytest.raises(TypeError):
        verify_many([(key, b"x")])
    with pytest.raises(ValueError):
        verify_many([(key, b"x", b"y", "rsa-pss-sha256")])
    assert verify_many([]) == []
