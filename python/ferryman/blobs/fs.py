"""The filesystem blob store.

Layout under the root (every name is a validated binary ID, never user input)::

    uploads/<binary_id>   the binary being uploaded: each part is written, hashed and fsynced
                          straight into its own byte range, so no copy is made at the end
    content/<binary_id>   the verified content, renamed here from uploads/ when hashing
                          succeeds (then the directory is fsynced)
    copies/<binary_id>    a copy from another region being written (``write_content``):
                          renamed into content/ once its size and SHA-256 match, so no reader
                          ever sees half a copy; a crashed copy's file is overwritten by the
                          next attempt

A part that fails its checks leaves only bytes in its own range of a file nobody reads yet;
the next upload of that part overwrites them. Content becomes visible only by the rename, so a
crash leaves the old state or the new one, never a half-visible binary. The catalog makes
sure no part is still being written once hashing starts (upload leases). Every disk operation
runs off the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from ferryman.blobs import Mismatch
from ferryman.errors import InsufficientStorage, NotFound, SizeLimitExceeded, TooLarge
from ferryman.hashing import FileDigest, hash_file
from ferryman.ids import is_id
from ferryman.sink import Sink, SinkResult, write

__all__ = ["FileContent", "FsBlobStore"]

T = TypeVar("T")
READ_CHUNK = 1 << 20


async def _off_loop(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _sink(path: Path, offset: int, limit: int, stream: AsyncIterator[bytes]) -> SinkResult:
    """Streams into ``path`` from ``offset`` through the native sink (written, hashed and
    fsynced on a native thread); SizeLimitExceeded past ``limit`` bytes. Stopped early (a
    refused, stalled or dropped stream), the writer is stopped and the bytes written stay,
    for the next attempt to overwrite."""
    sink = await _off_loop(lambda: Sink(path, offset=offset, limit=limit))
    closed = False
    try:
        async for chunk in stream:
            await write(sink, chunk)
        result = await _off_loop(sink.close)
        closed = True
        return result
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(f"the server is out of disk space ({e.strerror})") from None
        raise
    finally:
        if not closed:
            await asyncio.shield(_off_loop(sink.abort))


class FileContent:
    """A published file opened for reading."""

    def __init__(self, fobj: BinaryIO) -> None:
        self._fobj = fobj
        st = os.fstat(fobj.fileno())
        self.size = st.st_size
        self.modified = st.st_mtime

    def file(self) -> BinaryIO | None:
        return self._fobj

    async def read(self, offset: int, count: int) -> AsyncIterator[bytes]:
        while count > 0:
            chunk = await _off_loop(os.pread, self._fobj.fileno(), min(count, READ_CHUNK), offset)
            if not chunk:
                raise ConnectionResetError("file shrank")
            yield chunk
            offset += len(chunk)
            count -= len(chunk)

    def close(self) -> None:
        self._fobj.close()


class FsBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        for d in ("uploads", "content", "copies"):
            (root / d).mkdir(parents=True, exist_ok=True)

    def _id(self, binary_id: str) -> str:
        if not is_id(binary_id, "binary"):
            raise ValueError(f"unsafe binary id {binary_id!r}")
        return binary_id

    def _upload(self, binary_id: str) -> Path:
        return self.root / "uploads" / self._id(binary_id)

    def _content(self, binary_id: str) -> Path:
        return self.root / "content" / self._id(binary_id)

    def _copy(self, binary_id: str) -> Path:
        return self.root / "copies" / self._id(binary_id)

    async def receive_part(self, binary_id: str, stream: AsyncIterator[bytes], offset: int, size: int) -> SinkResult:
        """Streams one part into its byte range of the upload file through the native sink
        (written, hashed and fsynced on a native thread)."""
        try:
            return await _sink(self._upload(binary_id), offset, size, stream)
        except SizeLimitExceeded:
            raise TooLarge(f"the part has more than its {size} bytes") from None

    def _hashed_path(self, binary_id: str) -> Path:
        path = self._upload(binary_id)
        if not path.exists():  # a crash after the rename: hash the published copy
            path = self._content(binary_id)
        return path

    async def digest(
        self, binary_id: str, part_size: int | None = None, *, keep: bool = False, legacy: bool = False
    ) -> FileDigest:
        # ``keep`` needs nothing here: publishing is a rename.
        return await _off_loop(lambda: hash_file(self._hashed_path(binary_id), part_size=part_size, legacy=legacy))

    def _first_bytes(self, binary_id: str, count: int) -> bytes:
        with open(self._hashed_path(binary_id), "rb") as f:
            return f.read(count)

    async def first_bytes(self, binary_id: str, count: int) -> bytes:
        return await _off_loop(self._first_bytes, binary_id, count)

    def _publish(self, binary_id: str) -> None:
        upload = self._upload(binary_id)
        if upload.exists():
            os.replace(upload, self._content(binary_id))
            _fsync_dir(self.root / "content")

    async def publish(self, binary_id: str) -> None:
        await _off_loop(self._publish, binary_id)

    def _delete(self, binary_id: str) -> None:
        self._upload(binary_id).unlink(missing_ok=True)
        self._copy(binary_id).unlink(missing_ok=True)
        self._content(binary_id).unlink(missing_ok=True)

    async def delete(self, binary_id: str) -> None:
        await _off_loop(self._delete, binary_id)

    async def redirect_url(self, binary_id: str, expires_in: float) -> None:
        return None  # a directory serves nothing itself

    def _uploads_held(self) -> dict[str, float]:
        held = {}
        for entry in os.scandir(self.root / "uploads"):
            if is_id(entry.name, "binary"):
                try:
                    held[entry.name] = entry.stat().st_mtime
                except FileNotFoundError:
                    continue  # published or deleted meanwhile
        return held

    async def uploads_held(self) -> dict[str, float]:
        return await _off_loop(self._uploads_held)

    async def discard_parts(self, binary_id: str) -> None:
        await _off_loop(lambda: self._upload(binary_id).unlink(missing_ok=True))

    def _open(self, binary_id: str) -> FileContent:
        try:
            return FileContent(open(self._content(binary_id), "rb"))
        except FileNotFoundError:
            raise NotFound("the content is missing from the store") from None

    async def open(self, binary_id: str) -> FileContent:
        return await _off_loop(self._open, binary_id)

    async def write_content(self, binary_id: str, stream: AsyncIterator[bytes], size: int, sha256: str) -> None:
        """Writes a copy through the native sink (written, hashed and fsynced on a native
        thread) under copies/, and renames it into content/ only if it matches."""
        path = self._copy(binary_id)
        await _off_loop(lambda: path.unlink(missing_ok=True))  # a crashed attempt's bytes
        try:
            result = await _sink(path, 0, size, stream)
        except SizeLimitExceeded:
            raise Mismatch(f"the copy has more than {size} bytes") from None
        if (result.size, result.sha256) != (size, sha256):
            await _off_loop(lambda: path.unlink(missing_ok=True))
            raise Mismatch(f"the copy has {result.size} bytes with SHA-256 {result.sha256}; expected {size} bytes, {sha256}")

        def publish() -> None:
            os.replace(path, self._content(binary_id))
            _fsync_dir(self.root / "content")

        await _off_loop(publish)

    def _hash_content(self, binary_id: str) -> tuple[int, str]:
        try:
            d = hash_file(self._content(binary_id))
        except FileNotFoundError:
            raise NotFound("the content is missing from the store") from None
        return d.size, d.sha256

    async def hash_content(self, binary_id: str) -> tuple[int, str]:
        return await _off_loop(self._hash_content, binary_id)

    def _check(self) -> None:
        # The directory is there and writable (a disk that went read-only or away fails this).
        fd = os.open(self.root / "copies", os.O_RDONLY | os.O_DIRECTORY)
        os.close(fd)
        if not os.access(self.root / "content", os.W_OK):
            raise OSError(errno.EACCES, f"{self.root / 'content'} is not writable")

    async def check(self) -> None:
        await _off_loop(self._check)
