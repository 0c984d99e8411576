"""Parsed signing keys, cached by keyid: stored keys never change bytes, so parsing once is enough."""

from __future__ import annotations

from ferryman.signing import PublicKey, load_public_key

__all__ = ["KeyCache"]


class KeyCache:
    def __init__(self, size: int = 1024) -> None:
        self._keys: dict[str, PublicKey] = {}
        self._size = size

    def get(self, keyid: str, pem: str) -> PublicKey:
        key = self._keys.get(keyid)
        if key is None:
            if len(self._keys) >= self._size:
                self._keys.pop(next(iter(self._keys)))
            key = self._keys[keyid] = load_public_key(pem)
        return key
