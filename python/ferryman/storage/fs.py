"""The filesystem content store.

Layout under the root (every name is a validated binary ID, never user input)::

    uploads/<binary_id>   the binary being uploaded: each part is written, hashed and fsynced
                          straight into its own byte range, so no copy is made at the end
    content/<binary_id>   the verified content, renamed here from uploads/ when hashing
                          succeeds (then the directory is fsynced)

A part that fails its checks leaves only bytes in its own range of a file nobody reads yet;
the next upload of that part overwrites them. Content becomes visible only by the rename, so a
crash leaves the old state or the new one, never a half-visible binary. The catalog makes
sure no part is still being written once hashing starts (``uploads_in_flight``).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from ferryman.errors import InsufficientStorage, SizeLimitExceeded, TooLarge
from ferryman.hashing import FileDigest, hash_file
from ferryman.sink import Sink, SinkResult

__all__ = ["FsStore"]

_SAFE = re.compile(r"[a-z]{3}_[0-9a-z]{26}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        for d in ("uploads", "content"):
            (root / d).mkdir(parents=True, exist_ok=True)

    def _id(self, binary_id: str) -> str:
        if not _SAFE.fullmatch(binary_id):
            raise ValueError(f"unsafe binary id {binary_id!r}")
        return binary_id

    def upload_path(self, binary_id: str) -> Path:
        return self.root / "uploads" / self._id(binary_id)

    def content_path(self, binary_id: str) -> Path:
        return self.root / "content" / self._id(binary_id)

    async def receive_part(self, binary_id: str, stream: AsyncIterator[bytes], offset: int, expected_size: int) -> SinkResult:
        """Streams one part into its byte range of the upload file through the native sink
        (written, hashed and fsynced on a native thread). Raises TooLarge past ``expected_size``."""
        sink = Sink(self.upload_path(binary_id), offset=offset, limit=expected_size)
        try:
            async for chunk in stream:
                sink.write(chunk)
            return sink.close()
        except SizeLimitExceeded:
            raise TooLarge(f"the part has more than its {expected_size} bytes") from None
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(f"the server is out of disk space ({e.strerror})") from None
            raise
        finally:
            sink.abort()  # no-op after a successful close

    def digest(self, binary_id: str, part_size: int | None = None) -> FileDigest:
        """Hashes the uploaded (or, after a crash past the rename, the published) content in one
        native read; blocking, so run it off the event loop."""
        path = self.upload_path(binary_id)
        if not path.exists():
            path = self.content_path(binary_id)
        return hash_file(path, part_size=part_size)

    def publish(self, binary_id: str) -> None:
        """Makes verified content visible, atomically and durably."""
        upload = self.upload_path(binary_id)
        if upload.exists():
            os.replace(upload, self.content_path(binary_id))
            _fsync_dir(self.root / "content")

    def delete(self, binary_id: str) -> None:
        """Removes all bytes of a binary."""
        self.upload_path(binary_id).unlink(missing_ok=True)
        self.content_path(binary_id).unlink(missing_ok=True)
