"""The blob-store seam: where binaries' bytes live. The upload service writes parts through
``receive_part``, the hashing job reads them back with ``digest`` and makes them visible with
``publish``; downloads ``open`` published content and hand it to the range responder.

Implementations: ``fs.FsBlobStore`` (a local directory, the default). Expected next (the
scale-out issue): ``s3`` (parts as multipart-upload parts, ``publish`` as its completion,
``open`` as ranged GETs or a presigned-URL redirect), then Azure Blob and GCS alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO, Protocol

from ferryman.hashing import FileDigest
from ferryman.sink import SinkResult

__all__ = ["BlobStore", "Content"]


class Content(Protocol):
    """Published bytes opened for reading (close when done)."""

    size: int
    modified: float  # Unix time of publication (Last-Modified)

    def file(self) -> BinaryIO | None:
        """A local file to ``sendfile`` from, or None when the bytes must be read."""

    def read(self, offset: int, count: int) -> AsyncIterator[bytes]:
        """The bytes ``offset`` to ``offset + count - 1`` in chunks."""

    def close(self) -> None: ...


class BlobStore(Protocol):
    async def receive_part(self, binary_id: str, stream: AsyncIterator[bytes], offset: int, size: int) -> SinkResult:
        """Streams one part into its byte range of the binary's upload, hashing it on the way;
        raises TooLarge past ``size`` bytes, InsufficientStorage when the store is full."""

    async def digest(self, binary_id: str, part_size: int | None = None) -> FileDigest:
        """The SHA-256 (and with ``part_size``, each part's) of the uploaded (or already
        published) bytes; OSError if they cannot be read."""

    async def publish(self, binary_id: str) -> None:
        """Makes verified bytes visible to ``open``, atomically and durably."""

    async def delete(self, binary_id: str) -> None:
        """Removes every byte of a binary, uploaded or published."""

    async def open(self, binary_id: str) -> Content:
        """Published content; NotFound if there is none."""
