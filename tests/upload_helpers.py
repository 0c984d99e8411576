"""Helpers for the service tests: a real SQLite catalog and blob directory in a temporary
directory, and binaries uploaded through the upload service."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from services import catalog_for

from ferryman.blobs import BlobStore
from ferryman.blobs.fs import FsBlobStore
from ferryman.catalog import models as m
from ferryman.catalog.sql import SqlCatalog
from ferryman.errors import NotFound
from ferryman.services.uploads import Uploads

MIB = 1 << 20
PART = 5 * MIB


def run(tmp_path: Path, scenario: Callable[[Uploads], Awaitable[None]], blobs: BlobStore | None = None) -> None:
    """Runs ``scenario`` with an upload service on the test's catalog and, by default, a file
    store under ``tmp_path``."""

    async def main() -> None:
        catalog = await SqlCatalog.open(catalog_for(tmp_path / "catalog.db"))
        uploads = Uploads(catalog, blobs or FsBlobStore(tmp_path / "blobs"), lease=30.0)
        try:
            await scenario(uploads)
        finally:
            await uploads.stop()
            await catalog.close()

    asyncio.run(main())


async def new_binary(u: Uploads, data: bytes, *, part_size: int = PART, sha256: str | None = None) -> m.Binary:
    c = u.catalog
    artifact = await c.create_artifact("t", m.ArtifactCreate(name=f"a{os.urandom(4).hex()}"))
    version = await c.create_version("t", artifact.id, m.VersionCreate(version="1.0.0"))
    body = m.BinaryCreate(target="aarch64-linux-gnu", size=len(data), sha256=sha256 or hashlib.sha256(data).hexdigest(),
                          part_size=part_size)  # fmt: skip
    return await c.create_binary("t", version.id, body)


async def chunks(data: bytes, step: int = 1 * MIB) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def send(u: Uploads, b: m.Binary, data: bytes, index: int, **kw: object) -> m.Part:
    piece = data[(index - 1) * b.part_size : index * b.part_size]
    length = kw.pop("length", len(piece))
    body = kw.pop("body", piece)
    return await u.receive_part("t", b.id, index, length, chunks(body), **kw)  # type: ignore[arg-type]


async def hashed(u: Uploads, binary_id: str) -> m.Binary:
    """The binary once its hashing job is over."""
    await asyncio.gather(*u._tasks)
    return await u.catalog.get_binary(binary_id)


async def uploaded(u: Uploads, data: bytes) -> m.Binary:
    """A one-part binary of ``data``, uploaded in one request and hashed."""
    b = await new_binary(u, data)
    await u.receive_content("t", b.id, len(data), chunks(data))
    return await hashed(u, b.id)


async def published(u: Uploads, binary_id: str) -> int | None:
    """The size of the binary's published content; None if there is none."""
    try:
        content = await u.blobs.open(binary_id)
    except NotFound:
        return None
    content.close()
    return content.size


def binary_of(size: int, part_size: int = PART) -> m.Binary:
    count = max(1, -(-size // part_size))
    return m.Binary(id="binary_x", version_id="v", artifact_id="a", target="t", size=size, sha256="0" * 64,
                    part_size=part_size, part_count=count, state="uploadable", error=None, description=None,
                    custom_metadata={}, created_at="", updated_at="")  # fmt: skip
