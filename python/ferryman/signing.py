"""Public keys and signature verification (Ed25519 strict; RSA PKCS#1 v1.5 and PSS, SHA-256),
and signing with a local private key on the client side.

What is signed (DESIGN.md): Ed25519 signs a binary's raw 32-byte SHA-256 digest (or, for
compatibility, its lowercase hex); RSA signs the content with SHA-256 and is verified from the
digest. A failed verification raises :class:`~ferryman.errors.InvalidSignature`.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from ferryman._native import PublicKey, Verdict, verify_many
from ferryman._native import load_public_key as _load
from ferryman.errors import FerrymanError, InvalidKey

__all__ = ["ALGORITHMS", "PublicKey", "Verdict", "keyid_of", "load_private_key", "load_public_key", "sign_digest",
           "verify_many"]  # fmt: skip

ALGORITHMS = ("ed25519", "rsa-pkcs1v15-sha256", "rsa-pss-sha256")


def load_public_key(data: str | bytes) -> PublicKey:
    """Parses a public key.

    Args:
        data: PEM text (``PUBLIC KEY``, ``RSA PUBLIC KEY`` or ``CERTIFICATE``), DER bytes of a
            SubjectPublicKeyInfo or certificate, a raw 32-byte Ed25519 key, or base64 text of
            a raw Ed25519 key or of DER.

    Returns:
        The key, with its ``keyid`` and, for a certificate, its ``validity`` window.

    Raises:
        InvalidKey: the data is not an acceptable key.
    """
    if isinstance(data, str):
        text = data.strip()
        if text.startswith("-----BEGIN"):
            return _load(text.encode())
        padded = text + "=" * (-len(text) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            try:
                raw = base64.urlsafe_b64decode(padded)
            except (binascii.Error, ValueError):
                raise InvalidKey("invalid key: neither PEM nor base64") from None
        return _load(raw)
    return _load(bytes(data))


# Signing, on the client side (the server never holds a private key) ---------------------------


def load_private_key(path: str | Path) -> Any:
    """An unencrypted PEM private key (Ed25519 or RSA) from a file."""
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise FerrymanError(f"{path}: not an unencrypted PEM private key ({e})") from None


def keyid_of(private_key: Any) -> str:
    """The keyid of a private key's public half, by the native core's rule (DESIGN.md)."""
    from cryptography.hazmat.primitives import serialization

    der = private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return load_public_key(der).keyid


def sign_digest(private_key: Any, digest: bytes, algorithm: str) -> bytes:
    """Signs a binary's SHA-256 ``digest`` as DESIGN.md says (Ed25519 over the raw digest; RSA
    PKCS#1 v1.5 or PSS over the content, from its digest) with ``algorithm``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(digest)
    if isinstance(private_key, rsa.RSAPrivateKey):
        pad: Any = padding.PKCS1v15()
        if algorithm == "rsa-pss-sha256":
            pad = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        return private_key.sign(digest, pad, Prehashed(hashes.SHA256()))
    raise FerrymanError("only Ed25519 and RSA keys can sign")
