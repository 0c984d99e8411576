"""Signing keys and signatures: registering public keys, and verifying submitted signatures
over a binary's SHA-256 or a bundle's hash before the catalog stores them. Private keys never
reach the server; it verifies signatures made elsewhere (``openssl``, ``ferryman sign``)."""

from __future__ import annotations

import time

from ferryman.catalog import Catalog
from ferryman.catalog import models as m
from ferryman.errors import Invalid, InvalidKey, InvalidSignature, NotFound
from ferryman.parsing import parse_rfc3339
from ferryman.signing import PublicKey, load_public_key

__all__ = ["Signatures"]

KEY_CACHE_SIZE = 1024


class Signatures:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # Parsed keys by keyid: a stored key never changes, so parsing once is enough.
        self._keys: dict[str, PublicKey] = {}

    def _parsed(self, key: m.SigningKey) -> PublicKey:
        parsed = self._keys.get(key.keyid)
        if parsed is None:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.pop(next(iter(self._keys)))
            parsed = self._keys[key.keyid] = load_public_key(key.public_key)
        return parsed

    async def register_key(self, actor: str, body: m.SigningKeyCreate) -> m.SigningKey:
        """Parses a public key (PEM SPKI or X.509 certificate) and registers it."""
        try:
            key = load_public_key(body.public_key)
        except InvalidKey as e:
            raise Invalid(str(e), {"public_key": [str(e)]}) from None
        algorithm = body.algorithm or key.default_algorithm
        if not key.supports(algorithm):
            raise Invalid(f"algorithm {algorithm} does not fit a {key.kind} key", {"algorithm": ["does not fit the key"]})
        not_before, not_after = key.validity or (None, None)
        new = m.NewSigningKey(name=body.name, keyid=key.keyid, algorithm=algorithm, kind=key.kind, bits=key.bits,
                              public_key=key.spki_pem, not_before=not_before, not_after=not_after)  # fmt: skip
        return await self.catalog.create_signing_key(actor, new)

    async def _verified(self, body: m.SignatureCreate, digest_hex: str) -> tuple[m.SigningKey, bytes, str]:
        """Finds the key a submission names, checks it is inside its certificate's validity, and
        verifies the signature over ``digest_hex`` (422 otherwise). Returns the key, the raw
        signature and the message form that verified. Whether the key is still active is checked
        by the catalog, in the transaction that stores the signature."""
        if (body.signing_key_id is None) == (body.keyid is None):
            raise Invalid("give exactly one of signing_key_id and keyid", {"signing_key_id": ["or keyid, not both"]})
        try:
            if body.signing_key_id is not None:
                key = await self.catalog.get_signing_key(body.signing_key_id)
            else:
                key = await self.catalog.find_signing_key(body.keyid or "")
        except NotFound as e:
            field = "signing_key_id" if body.signing_key_id is not None else "keyid"
            raise Invalid(f"unknown signing key: {e.detail}", {field: ["unknown signing key"]}) from None
        now = int(time.time())
        nb, na = (parse_rfc3339(t) if t else None for t in (key.not_before, key.not_after))
        if (nb is not None and now < nb.timestamp()) or (na is not None and now > na.timestamp()):
            raise Invalid(
                f"the key's certificate is valid from {key.not_before} to {key.not_after}",
                {"signing_key_id": ["certificate not valid now"]},
            )
        parsed = self._parsed(key)
        try:
            raw = parsed.decode_signature(body.signature)
            form = parsed.verify_binary(bytes.fromhex(digest_hex), raw, key.algorithm)
        except InvalidSignature as e:
            raise Invalid(str(e), {"signature": [str(e)]}) from None
        return key, raw, form

    async def sign_binary(self, actor: str, binary_id: str, body: m.SignatureCreate) -> tuple[m.Signature, bool]:
        """Verifies and stores a signature over a binary's SHA-256; returns it and whether it
        is new (a repeat is a no-op)."""
        binary = await self.catalog.get_binary(binary_id)
        key, raw, form = await self._verified(body, binary.sha256)
        return await self.catalog.add_signature(actor, binary.id, key.id, raw.hex(), form)

    async def sign_bundle(self, actor: str, bundle_id: str, body: m.SignatureCreate) -> tuple[m.BundleSignature, bool]:
        """A signature over the bundle hash, checked as binary signatures are (the hash is the digest)."""
        bundle = await self.catalog.get_bundle(bundle_id)
        key, raw, form = await self._verified(body, bundle.hash)
        return await self.catalog.add_bundle_signature(actor, bundle.id, key, raw.hex(), form)
