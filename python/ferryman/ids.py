"""Typed, opaque identifiers: a prefix naming the kind (``bin_``, ``key_``...) and 26 characters
of Crockford base32 over 128 random bits. IDs are validated before they reach storage, so a
path-like or otherwise hostile value is refused as not found."""

from __future__ import annotations

import re
import secrets

__all__ = ["PREFIXES", "is_id", "new_id", "new_ids"]

PREFIXES = {
    "artifact": "art",
    "version": "ver",
    "binary": "bin",
    "signing_key": "key",
    "signature": "sig",
    "bundle": "bun",
    "channel": "chn",
    "cohort": "coh",
    "release": "rel",
    "device": "dev",
    "override": "ovr",
    "webhook": "whk",
    "event": "evt",
    "api_key": "apk",
}
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PATTERN = re.compile(r"[a-z]{3}_[0-9a-hjkmnp-tv-z]{26}")


def _encode(prefix: str, n: int) -> str:
    return prefix + "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(26))


def new_id(kind: str) -> str:
    """A fresh ID for a resource of ``kind`` (a key of PREFIXES)."""
    return _encode(PREFIXES[kind] + "_", secrets.randbits(128))


def new_ids(kind: str, count: int) -> list[str]:
    """``count`` fresh IDs from one read of the system's random source (for batches)."""
    raw = secrets.token_bytes(16 * count)
    prefix = PREFIXES[kind] + "_"
    return [_encode(prefix, int.from_bytes(raw[16 * i : 16 * i + 16], "little")) for i in range(count)]


def is_id(value: str, kind: str) -> bool:
    """Whether ``value`` is well-formed for ``kind``."""
    return bool(_PATTERN.fullmatch(value)) and value.startswith(PREFIXES[kind] + "_")
