"""Background work of the binary lifecycle: hashing a binary's uploaded content.

``hash_binary`` hashes the upload file natively, off the event loop, and moves the binary to
``signable`` when its size and SHA-256 match the declared ones (publishing the content), or
back to ``hashable`` with an ``error`` saying what differed, naming the parts whose bytes no
longer match what their upload reported (the upload is kept, so nothing is lost). A process
that dies mid-way leaves the binary in ``hashing``; ``resume`` restarts those at start-up."""

from __future__ import annotations

import asyncio
import logging

from ferryman.catalog import Catalog
from ferryman.errors import Conflict, InsufficientStorage
from ferryman.lifecycle import State
from ferryman.storage import FsStore

__all__ = ["hash_binary", "resume", "start_hashing"]

log = logging.getLogger("ferryman.jobs")
SERVER = "server"
# While the disk is full, a finished hash's verdict is written again every FULL_DISK_WAIT
# seconds, for about an hour.
FULL_DISK_WAIT = 5.0
FULL_DISK_RETRIES = 720


async def _explain(catalog: Catalog, store: FsStore, binary: dict, declared_what: str) -> str:
    loop = asyncio.get_running_loop()
    recorded = {p["idx"]: p["sha256"] for p in await catalog.parts(binary["id"])}
    d = await loop.run_in_executor(None, store.digest, binary["id"], binary["part_size"])
    bad = [p.index for p in d.parts or [] if recorded.get(p.index) != p.sha256]
    if bad:
        shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
        return f"{declared_what}; parts whose bytes differ from their upload: {shown}"
    return f"{declared_what}; every part matches its upload, so the declared digest or size is wrong"


async def hash_binary(catalog: Catalog, store: FsStore, binary_id: str) -> None:
    loop = asyncio.get_running_loop()
    binary = await catalog.get_binary(binary_id)
    error = None
    try:
        d = await loop.run_in_executor(None, store.digest, binary_id, None)
    except OSError as e:
        error = f"cannot read the uploaded content: {e.strerror or e}"
    else:
        if d.size != binary["size"]:
            error = await _explain(catalog, store, binary, f"content has {d.size} bytes, {binary['size']} were declared")
        elif d.sha256 != binary["sha256"]:
            error = await _explain(catalog, store, binary, f"content SHA-256 is {d.sha256}, {binary['sha256']} was declared")
    for attempt in range(FULL_DISK_RETRIES):
        try:
            if error is None:
                await loop.run_in_executor(None, store.publish, binary_id)
                await catalog.transition(SERVER, binary_id, State.SIGNABLE, by_server=True, expect=State.HASHING)
            else:
                await catalog.transition(SERVER, binary_id, State.HASHABLE, by_server=True, expect=State.HASHING, error=error)
            return
        except Conflict:
            # Destroyed (or otherwise moved) while hashing: its own transition cleaned up.
            log.info("binary %s left hashing while it was hashed", binary_id)
            return
        except InsufficientStorage:
            # The verdict stands; only writing it down failed. It stays in hashing meanwhile.
            log.warning("binary %s: the disk is full; recording its hashing result again in %ss", binary_id, FULL_DISK_WAIT)
            if attempt + 1 < FULL_DISK_RETRIES:
                await asyncio.sleep(FULL_DISK_WAIT)
    log.error("binary %s: gave up recording its hashing result; it is retried at the next start", binary_id)


def start_hashing(catalog: Catalog, store: FsStore, tasks: set[asyncio.Task[None]], binary_id: str) -> None:
    """Schedules hash_binary for a binary already moved to ``hashing``."""
    task = asyncio.get_running_loop().create_task(hash_binary(catalog, store, binary_id), name=f"hash {binary_id}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


async def resume(catalog: Catalog, store: FsStore, tasks: set[asyncio.Task[None]]) -> None:
    await catalog.clear_uploads_in_flight()
    for binary_id in await catalog.binaries_in_state(State.HASHING):
        start_hashing(catalog, store, tasks, binary_id)
