"""The client-side signers' rules, without a token: PKCS#11 URIs (RFC 7512), which algorithm a
key signs with, where the PIN comes from, what a signing program's output means, and a PEM
signer's signatures. Fast: scripts/mutants runs them per mutant."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ferryman.client import signers
from ferryman.client.signers import PemSigner, Pkcs11Uri, open_signer, parse_pkcs11_uri
from ferryman.errors import FerrymanError

DIGEST = hashlib.sha256(b"firmware").digest()


@pytest.mark.parametrize(
    ("uri", "path", "query", "id_"),
    [
        ("pkcs11:token=ci;object=fw", {"token": "ci", "object": "fw"}, {}, None),
        ("pkcs11:token=My%20Token;object=fw%3B2027", {"token": "My Token", "object": "fw;2027"}, {}, None),
        ("pkcs11:id=%01%ff", {}, {}, b"\x01\xff"),
        ("pkcs11:object=k;id=%41;", {"object": "k"}, {}, b"A"),
        # Attributes after the ID, sorting before and after "id" (unknown ones are kept).
        ("pkcs11:id=%41;object=k;firmware=x", {"object": "k", "firmware": "x"}, {}, b"A"),
        ("pkcs11:object=k?pin-value=12%2034&module-path=/usr/lib/x.so", {"object": "k"},
         {"pin-value": "12 34", "module-path": "/usr/lib/x.so"}, None),
        ("pkcs11:object=k;type=private", {"object": "k", "type": "private"}, {}, None),
        ("pkcs11:object=a=b", {"object": "a=b"}, {}, None),  # the first = splits
    ],
)  # fmt: skip
def test_pkcs11_uris(uri: str, path: dict[str, str], query: dict[str, str], id_: bytes | None):
    assert parse_pkcs11_uri(uri) == Pkcs11Uri(path, query, id_)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("token=ci;object=fw", "not a PKCS#11 URI"),
        ("pkcs11:token=ci", "name the key with object=LABEL or id="),
        ("pkcs11:", "name the key"),
        ("pkcs11:object", "'object' is not attribute=value"),
        ("pkcs11:=x;object=k", "'=x' is not attribute=value"),
        ("pkcs11:object=k?pin-value", "'pin-value' is not attribute=value"),
        ("pkcs11:object=k?=1", "'=1' is not attribute=value"),
        ("pkcs11:object=a;object=b", "object is given twice"),
        ("pkcs11:id=%01;id=%02", "id is given twice"),
        ("pkcs11:object=k;type=secret-key", "type=secret-key names no key pair"),
    ],
)
def test_bad_pkcs11_uris_say_why(uri: str, says: str):
    with pytest.raises(FerrymanError, match=says):
        parse_pkcs11_uri(uri)


def test_the_public_type_names_the_pair_too():
    assert parse_pkcs11_uri("pkcs11:object=k;type=public").path["type"] == "public"


@pytest.mark.parametrize(
    ("kind", "wanted", "chosen"),
    [("ed25519", None, "ed25519"), ("ed25519", "ed25519", "ed25519"), ("rsa", None, "rsa-pkcs1v15-sha256"),
     ("rsa", "rsa-pss-sha256", "rsa-pss-sha256"), ("rsa", "rsa-pkcs1v15-sha256", "rsa-pkcs1v15-sha256")],
)  # fmt: skip
def test_algorithms(kind: str, wanted: str | None, chosen: str):
    assert signers._algorithm_for(kind, wanted) == chosen


@pytest.mark.parametrize(("kind", "wanted"), [("ed25519", "rsa-pss-sha256"), ("rsa", "ed25519"), ("rsa", "rsa-sha1")])
def test_an_algorithm_the_key_cannot_sign_with_is_refused(kind: str, wanted: str):
    with pytest.raises(FerrymanError, match="signs with"):
        signers._algorithm_for(kind, wanted)


def test_the_pin_comes_from_the_caller_then_the_environment_then_the_uri(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(signers.PIN_ENV, raising=False)
    pin_file = tmp_path / "pin"
    pin_file.write_text("4444\n")
    uri = parse_pkcs11_uri(f"pkcs11:object=k?pin-value=3333&pin-source=file:{pin_file}")
    assert signers._pin(uri, "1111") == "1111"
    assert signers._pin(uri, None) == "3333"
    assert signers._pin(parse_pkcs11_uri(f"pkcs11:object=k?pin-source={pin_file}"), None) == "4444"
    with pytest.raises(FerrymanError, match="pin-source"):
        signers._pin(parse_pkcs11_uri(f"pkcs11:object=k?pin-source={tmp_path / 'none'}"), None)
    monkeypatch.setenv(signers.PIN_ENV, "2222")
    assert signers._pin(uri, None) == "2222"
    assert signers._pin(uri, "1111") == "1111"


def test_without_a_pin_or_a_terminal_the_error_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv(signers.PIN_ENV, raising=False)
    monkeypatch.setattr(signers.sys.stdin, "isatty", lambda: False)
    with pytest.raises(FerrymanError, match=signers.PIN_ENV):
        signers._pin(parse_pkcs11_uri("pkcs11:token=t;object=k"), None)


def test_the_module_comes_from_the_caller_then_the_uri_then_the_environment(tmp_path: Path, monkeypatch):
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(signers.MODULE_ENV, str(lib))
    uri = parse_pkcs11_uri(f"pkcs11:object=k?module-path={tmp_path / 'other.so'}")
    assert signers._module(uri, str(lib)) == str(lib)
    with pytest.raises(FerrymanError, match=r"other\.so: no such file"):
        signers._module(uri, None)
    assert signers._module(parse_pkcs11_uri("pkcs11:object=k"), None) == str(lib)
    monkeypatch.delenv(signers.MODULE_ENV)
    with pytest.raises(FerrymanError, match="name the PKCS#11 module"):
        signers._module(parse_pkcs11_uri("pkcs11:object=k"), None)


def test_a_programs_signature_is_read_as_hex_base64_or_raw_bytes():
    raw = bytes(range(64))
    assert signers._signature_bytes(raw.hex().encode() + b"\n") == raw
    assert signers._signature_bytes(raw.hex().upper().encode()) == raw
    assert signers._signature_bytes(base64.b64encode(raw) + b"\r\n") == raw
    assert signers._signature_bytes(raw) == raw  # not text
    binary = b"\x00" + os.urandom(63)
    assert signers._signature_bytes(binary) == binary
    assert signers._signature_bytes(b"not-a-signature!") == b"not-a-signature!"  # left for the check to refuse
    assert signers._signature_bytes(b"abcd efgh") == b"abcd efgh"  # base64 with a space in it is not base64
    assert signers._signature_bytes(b"") == b""


def _pem(tmp_path: Path) -> tuple[ed25519.Ed25519PrivateKey, Path]:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "k.pem"
    encoding, form = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    pem.write_bytes(key.private_bytes(encoding, form, serialization.NoEncryption()))
    return key, pem


def test_a_pem_signer_signs_the_digest_and_checks_it(tmp_path: Path):
    key = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with open_signer(pem) as s:
        assert isinstance(s, PemSigner) and s.algorithm == "ed25519"
        key.public_key().verify(s.sign(DIGEST), DIGEST)  # over the raw digest (DESIGN.md)
        with pytest.raises(FerrymanError, match="32 bytes"):
            s.sign(DIGEST + b"x")
        with pytest.raises(FerrymanError, match="32 bytes"):
            s.sign(DIGEST[:31])
    with pytest.raises(FerrymanError, match="signs with ed25519"):
        open_signer(pem, algorithm="rsa-pss-sha256")


def test_a_signature_that_does_not_verify_is_never_returned(tmp_path: Path):
    key = ed25519.Ed25519PrivateKey.generate()
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    signer = PemSigner(pem, None)
    signer._sign = lambda digest: b"\x00" * 64  # type: ignore[method-assign]
    with pytest.raises(FerrymanError, match=f"key file {pem} made a signature that does not verify with key {signer.keyid}"):
        signer.sign(DIGEST)


def test_open_signer_dispatches_on_the_scheme(tmp_path: Path):
    with pytest.raises(FerrymanError, match="needs --public-key"):
        open_signer("exec:true")
    with pytest.raises(FerrymanError, match="names no program"):
        open_signer("exec:   ", public_key=tmp_path / "x.pub")
    with pytest.raises(FerrymanError, match="no such key file"):
        open_signer(tmp_path / "missing.pem")
    with pytest.raises(FerrymanError, match="name the key"):
        open_signer("pkcs11:token=t")
