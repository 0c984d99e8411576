"""Typed, opaque identifiers: a prefix naming the kind (``bin_``, ``key_``...) and 26 characters
of Crockford base32 over 128 random bits. IDs are validated before they reach storage, so a
path-like or otherwise hostile value is refused as not found."""

from __future__ import annotations

import re
import secrets
import time

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
    # A webhook delivery (Standard Webhooks calls its ID the message ID).
    "delivery": "msg",
    "event": "evt",
    "api_key": "apk",
    # Internal: an upload in flight (a lease), never seen in the API.
    "upload": "upl",
}
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PATTERN = re.compile(r"[a-z]{3}_[0-9a-hjkmnp-tv-z]{26}")


def _encode(prefix: str, n: int) -> str:
    return prefix + "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(26))


def new_id(kind: str) -> str:
    """A fresh ID for a resource of ``kind`` (a key of PREFIXES)."""
    return _encode(PREFIXES[kind] + "_", secrets.randbits(128))


def new_ids(kind: str, count: int) -> list[str]:
    """``count`` fresh IDs that sort by creation time (48 bits of milliseconds, then 80 random
    bits, most significant first), for append-mostly tables such as the event log, where random
    keys would scatter every insert across the index. One read of the random source per batch."""
    raw = secrets.token_bytes(10 * count)
    ms = time.time_ns() // 1_000_000
    prefix = PREFIXES[kind] + "_"
    out = []
    for i in range(count):
        n = (ms << 80) | int.from_bytes(raw[10 * i : 10 * i + 10], "big")
        out.append(prefix + "".join(_ALPHABET[(n >> (5 * (25 - j))) & 31] for j in range(26)))
    return out


def is_id(value: str, kind: str) -> bool:
    """Whether ``value`` is well-formed for ``kind``."""
    return bool(_PATTERN.fullmatch(value)) and value.startswith(PREFIXES[kind] + "_")
