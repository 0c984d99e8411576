"""Background work of the binary lifecycle: hashing a binary's assembled content.

``start_hashing`` moves a ``hashable`` binary to ``hashing`` and schedules ``hash_binary``,
which concatenates the recorded parts into the content file while the native sink hashes it
(off the event loop), then moves the binary to ``signable`` when the SHA-256 and size match
the declared ones, or back to ``hashable`` with an ``error`` saying what differed (the parts
are kept, so nothing is lost). A process that dies mid-way leaves the binary in ``hashing``;
``resume`` restarts those at start-up."""

from __future__ import annotations

import asyncio
import logging

from ferryman.catalog import Catalog
from ferryman.errors import Conflict, DomainError
from ferryman.lifecycle import State
from ferryman.storage import FsStore

__all__ = ["hash_binary", "resume", "start_hashing"]

log = logging.getLogger("ferryman.jobs")
SERVER = "server"


async def hash_binary(catalog: Catalog, store: FsStore, binary_id: str) -> None:
    binary = await catalog.get_binary(binary_id)
    parts = [(p["idx"], p["sha256"]) for p in await catalog.parts(binary_id)]
    error = None
    try:
        result = await asyncio.get_running_loop().run_in_executor(None, store.assemble, binary_id, parts)
    except (DomainError, OSError) as e:
        error = f"cannot assemble the content: {e}"
    else:
        if result.size != binary["size"]:
            error = f"content has {result.size} bytes, {binary['size']} were declared"
        elif result.sha256 != binary["sha256"]:
            error = f"content SHA-256 is {result.sha256}, {binary['sha256']} was declared"
    try:
        if error is None:
            await catalog.transition(SERVER, binary_id, State.SIGNABLE, by_server=True, expect=State.HASHING)
            store.drop_parts(binary_id)
        else:
            await asyncio.get_running_loop().run_in_executor(None, store.content_path(binary_id).unlink, True)
            await catalog.transition(SERVER, binary_id, State.HASHABLE, by_server=True, expect=State.HASHING, error=error)
    except Conflict:
        # Destroyed (or otherwise moved) while hashing: its own transition cleaned up.
        log.info("binary %s left hashing while it was hashed", binary_id)


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
    for binary_id in await catalog.binaries_in_state(State.HASHING):
        start_hashing(catalog, store, tasks, binary_id)
