"""Public keys and signature verification (Ed25519 strict; RSA PKCS#1 v1.5 and PSS, SHA-256).

What is signed (DESIGN.md): Ed25519 signs a binary's raw 32-byte SHA-256 digest (or, for
compatibility, its lowercase hex); RSA signs the content with SHA-256 and is verified from the
digest. A failed verification raises :class:`~ferryman.errors.InvalidSignature`.
"""

from __future__ import annotations

import base64
import binascii

from ferryman._native import PublicKey, Verdict, verify_many
from ferryman._native import load_public_key as _load
from ferryman.errors import InvalidKey

__all__ = ["ALGORITHMS", "PublicKey", "Verdict", "load_public_key", "verify_many"]

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
