"""The filesystem content store.

Layout under the root (every name comes from a validated ID, an index or a hex digest, never
from user input)::

    tmp/<random>                    uploads in progress (removed on failure; swept at start-up)
    parts/<binary_id>/<index>.<sha256>   accepted parts, named by content, so concurrent
                                    uploads of one part never overwrite each other's file
    content/<binary_id>             the assembled, verified content

Writes are atomic: data goes to ``tmp/``, is fsynced, renamed into place, and the directory is
fsynced, so a crash leaves the old state or the new one, never a half-visible file.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from ferryman.errors import Invalid, SizeLimitExceeded, TooLarge
from ferryman.sink import Sink, SinkResult

__all__ = ["FsStore"]

_SAFE = re.compile(r"[a-z]{3}_[0-9a-z]{26}")
READ_CHUNK = 8 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        for d in ("tmp", "parts", "content"):
            (root / d).mkdir(parents=True, exist_ok=True)
        # Anything in tmp/ belonged to a request that died with an earlier process.
        for leftover in (root / "tmp").iterdir():
            leftover.unlink(missing_ok=True)

    def _id(self, binary_id: str) -> str:
        if not _SAFE.fullmatch(binary_id):
            raise ValueError(f"unsafe binary id {binary_id!r}")
        return binary_id

    def _tmp(self) -> Path:
        return self.root / "tmp" / secrets.token_hex(16)

    def part_path(self, binary_id: str, index: int, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError("bad digest")
        return self.root / "parts" / self._id(binary_id) / f"{int(index)}.{sha256}"

    def content_path(self, binary_id: str) -> Path:
        return self.root / "content" / self._id(binary_id)

    async def receive_part(self, binary_id: str, stream: AsyncIterator[bytes], expected_size: int) -> tuple[Path, SinkResult]:
        """Streams a part into a temporary file through the native sink (hashed on a native
        thread). Returns the temporary path and what was written; the caller checks it and
        then calls :meth:`keep_part` or :meth:`discard`. Raises TooLarge past ``expected_size``."""
        self._id(binary_id)
        tmp = self._tmp()
        sink = Sink(tmp, limit=expected_size)
        try:
            async for chunk in stream:
                sink.write(chunk)
            return tmp, sink.close()
        except SizeLimitExceeded:
            raise TooLarge(f"the part has more than its {expected_size} bytes") from None
        finally:
            sink.abort()  # no-op after a successful close

    def keep_part(self, tmp: Path, binary_id: str, index: int, sha256: str) -> Path:
        final = self.part_path(binary_id, index, sha256)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return final

    @staticmethod
    def discard(path: Path) -> None:
        path.unlink(missing_ok=True)

    def assemble(self, binary_id: str, parts: list[tuple[int, str]]) -> SinkResult:
        """Concatenates the recorded parts (index, sha256) into the content file, hashing on the
        way (blocking: run it off the event loop). The content appears atomically."""
        tmp = self._tmp()
        sink = Sink(tmp)
        try:
            for index, sha in parts:
                path = self.part_path(binary_id, index, sha)
                if not path.is_file():
                    raise Invalid(f"part {index} is missing from the store")
                with open(path, "rb", buffering=0) as f:
                    while chunk := f.read(READ_CHUNK):
                        sink.write(chunk)
            result = sink.close()
        finally:
            sink.abort()
        final = self.content_path(binary_id)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return result

    def drop_parts(self, binary_id: str) -> None:
        shutil.rmtree(self.root / "parts" / self._id(binary_id), ignore_errors=True)

    def delete(self, binary_id: str) -> None:
        """Removes all bytes of a binary (parts and content)."""
        self.drop_parts(binary_id)
        self.content_path(binary_id).unlink(missing_ok=True)
