"""The signature service called directly, over a real catalog: registering keys and checking
signatures against them. Fast enough to run once per mutant (scripts/mutants)."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from upload_helpers import run, uploaded

from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.parsing import parse_rfc3339
from ferryman.services import signatures as signatures_module
from ferryman.services.signatures import Signatures
from ferryman.services.uploads import Uploads
from ferryman.signing import load_public_key

CERT = json.loads((Path(__file__).parent / "vectors" / "rsa.json").read_text())["certificate"]

# Every test runs on both catalogs.
pytestmark = pytest.mark.usefixtures("catalog_url")


def with_signatures(tmp_path: Path, scenario: Callable[[Signatures, Uploads], Awaitable[None]]) -> None:
    run(tmp_path, lambda u: scenario(Signatures(u.catalog), u))


async def signable(u: Uploads) -> m.Binary:
    return await uploaded(u, os.urandom(1000))


def ed25519_pem(sk: ed25519.Ed25519PrivateKey) -> str:
    return sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_signing_keys_are_parsed_and_checked_when_registered(tmp_path: Path):
    async def scenario(s: Signatures, u: Uploads) -> None:
        with pytest.raises(Invalid) as e:
            await s.register_key("t", m.SigningKeyCreate(name="bad", public_key="not a key"))
        assert list(e.value.errors) == ["public_key"]
        sk = ed25519.Ed25519PrivateKey.generate()
        with pytest.raises(Invalid) as e:
            await s.register_key("t", m.SigningKeyCreate(name="k", public_key=ed25519_pem(sk), algorithm="rsa-pss-sha256"))
        assert e.value.detail == "algorithm rsa-pss-sha256 does not fit a ed25519 key"
        assert e.value.errors == {"algorithm": ["does not fit the key"]}
        key = await s.register_key("t", m.SigningKeyCreate(name="k", public_key=ed25519_pem(sk)))
        assert (key.algorithm, key.kind, key.bits, key.not_before, key.not_after) == ("ed25519", "ed25519", 256, None, None)
        cert = await s.register_key("t", m.SigningKeyCreate(name="c", public_key=CERT["pem"]))
        assert (cert.keyid, cert.kind, cert.algorithm) == (CERT["keyid"], "rsa", "rsa-pkcs1v15-sha256")
        assert cert.public_key.startswith("-----BEGIN PUBLIC KEY-----")  # the key, not the certificate
        assert [parse_rfc3339(t).timestamp() for t in (cert.not_before, cert.not_after)] == [  # type: ignore[union-attr]
            CERT["not_before"],
            CERT["not_after"],
        ]

    with_signatures(tmp_path, scenario)


def test_signatures_name_exactly_one_known_active_key(tmp_path: Path):
    async def scenario(s: Signatures, u: Uploads) -> None:
        b = await signable(u)
        sk = ed25519.Ed25519PrivateKey.generate()
        key = await s.register_key("t", m.SigningKeyCreate(name="k", public_key=ed25519_pem(sk)))
        good = sk.sign(bytes.fromhex(b.sha256)).hex()
        refusals = [
            (m.SignatureCreate(signature=good), "signing_key_id"),
            (m.SignatureCreate(signature=good, signing_key_id=key.id, keyid=key.keyid), "signing_key_id"),
            (m.SignatureCreate(signature=good, signing_key_id="sk_00000000000000000000000000"), "signing_key_id"),
            (m.SignatureCreate(signature=good, keyid="0" * 64), "keyid"),
            (m.SignatureCreate(signature=sk.sign(b"other").hex(), keyid=key.keyid), "signature"),
        ]
        for body, field in refusals:
            with pytest.raises(Invalid) as e:
                await s.sign_binary("t", b.id, body)
            assert list(e.value.errors) == [field], body
        assert (await u.catalog.list_signatures(b.id)).items == []
        sig, new = await s.sign_binary("t", b.id, m.SignatureCreate(signature=good, keyid=key.keyid))
        assert new and (sig.binary_id, sig.signing_key_id, sig.signature) == (b.id, key.id, good)
        again, new = await s.sign_binary("t", b.id, m.SignatureCreate(signature=good, signing_key_id=key.id))
        assert not new and again.id == sig.id
        bundle = await u.catalog.create_bundle("t", m.BundleCreate(binaries=[b.id]))
        await u.catalog.patch_signing_key("t", key.id, m.SigningKeyPatch(state="revoked"))
        with pytest.raises(Invalid) as e:
            await s.sign_binary("t", b.id, m.SignatureCreate(signature=good, signing_key_id=key.id))
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        over_bundle = sk.sign(bytes.fromhex(bundle.hash)).hex()
        with pytest.raises(Invalid) as e:
            await s.sign_bundle("t", bundle.id, m.SignatureCreate(signature=over_bundle, signing_key_id=key.id))
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        # Revoked between the check and the write: the catalog refuses it in the writing
        # transaction, for bundles as for binaries.
        with pytest.raises(Invalid) as e:
            await u.catalog.add_bundle_signature("t", bundle.id, key, over_bundle, "digest")
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        with pytest.raises(Invalid) as e:
            await u.catalog.add_signature("t", b.id, key.id, good, "digest")
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        assert (await u.catalog.get_bundle(bundle.id)).signatures == []

    with_signatures(tmp_path, scenario)


def test_signatures_count_only_inside_the_certificate_validity(tmp_path: Path, monkeypatch):
    async def scenario(s: Signatures, u: Uploads) -> None:
        b = await signable(u)
        cert = await s.register_key("t", m.SigningKeyCreate(name="c", public_key=CERT["pem"]))
        body = m.SignatureCreate(signature="00" * 256, signing_key_id=cert.id)  # not a valid signature
        for at, field in [
            (CERT["not_before"] - 1, "signing_key_id"),
            (CERT["not_before"], "signature"),  # valid from its first second: on to the signature
            (CERT["not_after"], "signature"),  # through its last
            (CERT["not_after"] + 1, "signing_key_id"),
        ]:
            monkeypatch.setattr(signatures_module.time, "time", lambda at=at: float(at))
            with pytest.raises(Invalid) as e:
                await s.sign_binary("t", b.id, body)
            assert list(e.value.errors) == [field], at

    with_signatures(tmp_path, scenario)


def test_signatures_keep_parsed_keys_within_the_cache_size(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(signatures_module, "KEY_CACHE_SIZE", 1)

    async def scenario(s: Signatures, u: Uploads) -> None:
        b = await signable(u)
        # A size beyond Python's small cached ints, as the real one is: counted, not identified.
        monkeypatch.setattr(signatures_module, "KEY_CACHE_SIZE", 300)
        filler = load_public_key(CERT["pem"])
        s._keys.update({f"filler{i}": filler for i in range(300)})
        sk = ed25519.Ed25519PrivateKey.generate()
        key = await s.register_key("t", m.SigningKeyCreate(name="big", public_key=ed25519_pem(sk)))
        body = m.SignatureCreate(signature=sk.sign(bytes.fromhex(b.sha256)).hex(), signing_key_id=key.id)
        await s.sign_binary("t", b.id, body)
        assert len(s._keys) == 300 and "filler0" not in s._keys and key.keyid in s._keys
        s._keys.clear()
        monkeypatch.setattr(signatures_module, "KEY_CACHE_SIZE", 1)
        for _ in range(2):
            for name in ("a", "b"):
                sk = ed25519.Ed25519PrivateKey.generate()
                key = await s.register_key(
                    "t", m.SigningKeyCreate(name=f"{name}{os.urandom(3).hex()}", public_key=ed25519_pem(sk))
                )
                body = m.SignatureCreate(signature=sk.sign(bytes.fromhex(b.sha256)).hex(), signing_key_id=key.id)
                assert (await s.sign_binary("t", b.id, body))[1]
                assert list(s._keys) == [key.keyid]

    with_signatures(tmp_path, scenario)
