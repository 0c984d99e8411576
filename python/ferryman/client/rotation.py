"""Rotating a signing key without a device refusing an update (README, "Rotating a signing key"):

1. ``rotate``: register the new key (optionally as an X.509 certificate, with its validity
   window) and sign, with it, every binary and bundle the old key signed. Manifests now list both
   signatures, so a device trusting either key verifies every update; with a threshold above one,
   both count. New uploads are signed with both keys from here on.
2. Devices learn to trust the new key (through an update signed by both).
3. ``retire``: revoke the old key. Its signatures stop counting and leave manifests; binaries
   that the remaining keys sign stay signed. Refused while a signed binary would fall back to
   signable without it (fewer other active keys sign it than the server's threshold), unless forced.

Works through the API only, so any operator with the ``signer`` role can run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

from ferryman.catalog import models as m
from ferryman.client.api import Client
from ferryman.client.signers import Signer
from ferryman.errors import FerrymanError
from ferryman.signing import load_public_key

__all__ = ["Retired", "Rotated", "retire", "rotate"]

Algorithm = Literal["ed25519", "rsa-pkcs1v15-sha256", "rsa-pss-sha256"]


@dataclass
class Rotated:
    """What ``rotate`` did: the new key, and the binaries and bundles it signed now (``signed``)
    or had signed already (``already``)."""

    key: m.SigningKey
    registered: bool
    binaries_signed: list[str] = field(default_factory=list)
    binaries_already: list[str] = field(default_factory=list)
    bundles_signed: list[str] = field(default_factory=list)
    bundles_already: list[str] = field(default_factory=list)


@dataclass
class Retired:
    key: m.SigningKey
    # Signed binaries that fell back to signable (only with force).
    unsigned: list[str] = field(default_factory=list)


async def _new_key(c: Client, signer: Signer, name: str | None, certificate: str | None) -> tuple[m.SigningKey, bool]:
    found = await c.find_signing_key(signer.keyid)
    if found is not None:
        if found.state != "active":
            raise FerrymanError(f"the new key {found.id} ({found.keyid}) is revoked; rotate to a fresh key")
        return found, False
    if not name:
        raise FerrymanError(f"the new key {signer.keyid} is not registered yet: give it a --name")
    if certificate is not None and load_public_key(certificate).keyid != signer.keyid:
        raise FerrymanError(f"the certificate is for key {load_public_key(certificate).keyid}, not the signer's {signer.keyid}")
    algorithm = cast(Algorithm, signer.algorithm)
    body = m.SigningKeyCreate(name=name, public_key=certificate or signer.public_pem, algorithm=algorithm)
    return await c.create_signing_key(body), True


async def rotate(c: Client, old_key_id: str, signer: Signer, name: str | None = None, certificate: str | None = None) -> Rotated:
    """Step 1: registers the signer's key (``name``; ``certificate``: its PEM, instead of the bare
    public key) and signs with it everything ``old_key_id`` signed."""
    old = await c.get_signing_key(old_key_id)
    if old.keyid == signer.keyid:
        raise FerrymanError(f"{old.id} is the signer's own key: rotate to another key")
    key, registered = await _new_key(c, signer, name, certificate)
    done = Rotated(key, registered)
    async for b in c.binaries(signing_key_id=old.id):
        if b.state not in ("signable", "signed"):
            continue  # destroyed, or back in hashing: nothing to sign
        if any(s.signing_key_id == key.id for s in await c.list_signatures(b.id)):
            done.binaries_already.append(b.id)
            continue
        await c.sign_binary(b.id, signer)
        done.binaries_signed.append(b.id)
    async for bundle in c.bundles(signing_key_id=old.id):
        if any(s.signing_key_id == key.id for s in bundle.signatures):
            done.bundles_already.append(bundle.id)
            continue
        await c.sign_bundle(bundle.id, signer)
        done.bundles_signed.append(bundle.id)
    return done


async def retire(c: Client, old_key_id: str, force: bool = False) -> Retired:
    """Step 3: revokes ``old_key_id`` once every signed binary it signed stays signed without it
    (valid signatures by the server's threshold of other active keys); ``force``: regardless,
    listing those that fall back to signable."""
    old = await c.get_signing_key(old_key_id)
    if old.state == "revoked":
        raise FerrymanError(f"{old.id} is revoked already")
    threshold = (await c.signing_policy()).signature_threshold
    falling = []
    async for b in c.binaries(signing_key_id=old.id, state="signed"):
        signatures = await c.list_signatures(b.id)
        others = {s.signing_key_id for s in signatures if s.signing_key_id != old.id and s.key_state == "active"}
        if len(others) < threshold:
            falling.append(b.id)
    if falling and not force:
        shown = ", ".join(falling[:10]) + (f" and {len(falling) - 10} more" if len(falling) > 10 else "")
        raise FerrymanError(
            f"{len(falling)} signed binaries would fall back to signable without {old.id} ({shown}): "
            "run `ferryman signing-keys rotate` first, or --force"
        )
    return Retired(await c.revoke_signing_key(old.id), falling)
