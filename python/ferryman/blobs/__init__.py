"""The blob-store seam: where binaries' bytes live. The upload service writes parts through
``receive_part``, the hashing job reads them back with ``digest`` and makes them visible with
``publish``; downloads ``open`` published content and hand it to the range responder (or, with
``--download-mode redirect``, send the client to the store's own ``redirect_url``); the janitor
compares ``uploads_held`` with the catalog and ``discard_parts`` what no binary needs.
Replication (``services/replication.py``) streams published content from one region's store
into another's ``write_content``, re-reads copies with ``hash_content``, and probes stores with
``check``.

Implementations: ``fs.FsBlobStore`` (a local directory, the default) and
``objects.ObjectBlobStore`` (S3, Azure Blob, GCS), chosen by ``open_blob_store``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from ferryman.config import Config

__all__ = ["BlobStore", "Content", "Digest", "Mismatch", "Received", "open_blob_store", "open_store"]


class Mismatch(Exception):
    """Copied bytes are not the content they should be (their size or SHA-256 differs)."""


class Received(Protocol):
    """A part as it arrived: its size and SHA-256."""

    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...


class PartDigest(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def sha256(self) -> str: ...


class Digest(Protocol):
    """The uploaded bytes as hashing found them."""

    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def parts(self) -> Sequence[PartDigest] | None: ...
    @property
    def sha1(self) -> str | None: ...  # with ``legacy``
    @property
    def md5(self) -> str | None: ...  # with ``legacy``


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
    async def receive_part(self, binary_id: str, stream: AsyncIterator[bytes], offset: int, size: int) -> Received:
        """Streams one part into its byte range of the binary's upload, hashing it on the way;
        raises TooLarge past ``size`` bytes, InsufficientStorage when the store is full,
        Unavailable when it cannot be reached."""

    async def digest(self, binary_id: str, part_size: int | None = None, *, keep: bool = False, legacy: bool = False) -> Digest:
        """The SHA-256 (and with ``part_size``, each part's) of the uploaded (or already
        published) bytes; OSError if they cannot be read, Unavailable if the store cannot.
        ``keep``: the bytes are about to be published if they match (a store that must copy
        them to publish may do it in this same pass). ``legacy``: their SHA-1 and MD5 too, in
        the same pass."""

    async def first_bytes(self, binary_id: str, count: int) -> bytes:
        """Up to ``count`` (at most ``MIN_PART``) first bytes of the uploaded (or already
        published) bytes: what ``digest`` hashes. Errors as ``digest``'s."""

    async def publish(self, binary_id: str) -> None:
        """Makes verified bytes visible to ``open``, atomically and durably."""

    async def delete(self, binary_id: str) -> None:
        """Removes every byte of a binary, uploaded or published."""

    async def open(self, binary_id: str) -> Content:
        """Published content; NotFound if there is none."""

    async def redirect_url(self, binary_id: str, expires_in: float) -> str | None:
        """A URL the store itself serves the published content at for ``expires_in`` seconds
        (presigned), or None if it has none (the file store)."""

    async def uploads_held(self) -> dict[str, float]:
        """The binaries whose uploaded bytes (not yet published) the store holds, with the Unix
        time they were last written: for the janitor to compare with the catalog."""

    async def discard_parts(self, binary_id: str) -> None:
        """Removes a binary's uploaded bytes, not its published content."""

    async def write_content(self, binary_id: str, stream: AsyncIterator[bytes], size: int, sha256: str) -> None:
        """Stores a binary's content, copied from another store, hashing it on the way; it
        replaces what was there only if it is exactly ``size`` bytes with SHA-256 ``sha256``
        (a store that cannot make that atomic removes it again). Mismatch otherwise;
        Unavailable if the store cannot be reached."""

    async def hash_content(self, binary_id: str) -> tuple[int, str]:
        """The size and SHA-256 of the published content, read back; NotFound if there is none."""

    async def check(self) -> None:
        """Raises (in the store's own words) unless the store can be used right now."""


def open_blob_store(config: Config) -> BlobStore:
    """The primary region's store (the only one without regions): uploads land there."""
    return open_store(config.primary.store, config.store_dir(config.primary))


def open_store(url: str | None, default: Path) -> BlobStore:
    """The store a URL names: a directory (``file:///path``; None: ``default``) or an object
    store; ValueError for a bad URL."""
    from urllib.parse import unquote, urlsplit

    from ferryman.blobs.fs import FsBlobStore

    if url is None:
        return FsBlobStore(default)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"store URL {url!r}: expected file:///absolute/path")
        return FsBlobStore(Path(unquote(parts.path)))
    from ferryman.blobs.objects import ObjectBlobStore, open_object_store

    return ObjectBlobStore(open_object_store(url), url.split("?", 1)[0])
