"""The upload workflow of ``ferryman upload`` and ``Client.upload``: hash the file locally
(whole and per part, one native read), find or create the artifact, version and binary,
send only the parts the server lacks or holds different bytes for (so an interrupted upload
resumes), ask for hashing, wait for the server's verdict, and optionally sign."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ferryman.catalog import models as m
from ferryman.errors import FerrymanError
from ferryman.hashing import hash_file

if TYPE_CHECKING:
    from ferryman.client.api import Client
    from ferryman.client.signers import Signer

__all__ = ["ProgressBar", "Uploaded", "upload"]

DEFAULT_PART = m.DEFAULT_PART


class ProgressBar(Protocol):
    def __call__(self, n: int) -> None: ...  # n more bytes done
    def close(self) -> None: ...


class _Silent:
    def __call__(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class Uploaded(NamedTuple):
    binary: m.Binary
    sha256: str
    size: int
    parts_sent: int
    hash_seconds: float
    upload_seconds: float
    server_hash_seconds: float


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")


async def upload(
    c: Client,
    path: Path,
    artifact: str,
    version: str,
    target: str,
    *,
    create: bool = False,
    part_size: int = DEFAULT_PART,
    concurrency: int = 4,
    sign_key: str | Signer | None = None,
    progress: Any = None,
) -> Uploaded:
    """See the module doc. ``progress(label, total)`` makes a ``ProgressBar`` for each phase
    (hashing, uploading); ``create`` creates a missing artifact or version."""
    bars = progress or (lambda label, total: _Silent())
    loop = asyncio.get_running_loop()
    bar = bars("hashing  ", path.stat().st_size)
    done = 0

    def advance(total: int) -> None:
        nonlocal done
        bar(total - done)
        done = total

    t0 = time.monotonic()
    try:
        digest = await loop.run_in_executor(None, lambda: hash_file(path, part_size=part_size, progress=advance))
    finally:
        bar.close()
    t_hash = time.monotonic() - t0
    art = await c.find_artifact(artifact)
    if art is None:
        if not create:
            raise FerrymanError(f"no artifact {artifact!r} (add --create to create it)")
        art = await c.create_artifact(m.ArtifactCreate(name=artifact))
    ver = await c.find_version(art.id, version)
    if ver is None:
        if not create:
            raise FerrymanError(f"no version {version!r} of {artifact} (add --create to create it)")
        ver = await c.create_version(art.id, m.VersionCreate(version=version))
    b = await c.find_binary(ver.id, target)
    if b is not None and (b.sha256 != digest.sha256 or b.size != digest.size or b.part_size != part_size):
        raise FerrymanError(f"{artifact} {version} already has a different {target} binary ({b.id}, {b.state})")
    if b is None:
        # The local file's name goes with it (devices store it under that name: hawkBit's
        # ``filename``; SWUpdate wants its ``.swu``), when it is a name the API takes.
        name = path.name if _FILE_NAME.fullmatch(path.name) else None
        body = m.BinaryCreate(target=target, size=digest.size, sha256=digest.sha256, part_size=part_size, filename=name)
        b = await c.create_binary(ver.id, body)
    t1 = time.monotonic()
    sent = 0
    if b.state == "uploadable":
        have = {p.index: p.sha256 for p in (await c.get_parts(b.id)).parts}
        todo = [p for p in digest.parts or [] if have.get(p.index) != p.sha256]
        bar = bars("uploading", sum(p.size for p in todo))
        fd = os.open(path, os.O_RDONLY)
        room = asyncio.Semaphore(concurrency)
        binary_id = b.id

        async def send(p: Any) -> None:
            async with room:
                chunk = await loop.run_in_executor(None, os.pread, fd, p.size, p.offset)
                await c.put_part(binary_id, p.index, chunk, p.sha256)
                bar(p.size)

        try:
            await asyncio.gather(*(send(p) for p in todo))
        finally:
            os.close(fd)
            bar.close()
        sent = len(todo)
        await c.patch_binary(b.id, m.BinaryPatch(state="hashable"))
    elif b.state == "hashable":
        await c.patch_binary(b.id, m.BinaryPatch(state="hashing"))
    t2 = time.monotonic()
    b = await c.wait_state(b.id, {"signable", "signed"})
    t3 = time.monotonic()
    if sign_key:
        await c.sign_binary(b.id, sign_key)
        b = await c.get_binary(b.id)
    return Uploaded(b, digest.sha256, digest.size, sent, round(t_hash, 3), round(t2 - t1, 3), round(t3 - t2, 3))
