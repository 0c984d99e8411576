"""A cache of encoded update answers. Most of a fleet gets one of a few answers, so each is
encoded once per epoch (catalog generation, grant expiry) and reused; a new epoch starts empty."""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ["AnswerCache"]


class AnswerCache:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._epoch: Hashable = None
        self._bodies: dict[Hashable, bytes] = {}
        self.encoded = 0  # bodies encoded so far (cache misses)

    def get(self, epoch: Hashable, key: Hashable, encode: Callable[[], bytes]) -> bytes:
        """The body for ``key`` in ``epoch``, from ``encode()`` the first time."""
        if epoch != self._epoch:
            self._epoch, self._bodies = epoch, {}
        body = self._bodies.get(key)
        if body is None:
            if len(self._bodies) >= self.size:
                self._bodies.clear()
            body = self._bodies[key] = encode()
            self.encoded += 1
        return body
