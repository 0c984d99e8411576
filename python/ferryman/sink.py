"""The upload sink: received chunks are written and hashed on a native thread.

Example::

    sink = Sink(path, offset=start, limit=part_bytes)
    async for chunk in request.content.iter_chunked(1 << 20):
        await write(sink, chunk)    # waits, without blocking the loop, while the disk is behind
    result = sink.close()           # size, sha256; blocking (fsync): run it off the event loop
"""

from __future__ import annotations

import asyncio

from ferryman._native import Sink, SinkResult

__all__ = ["Sink", "SinkResult", "write"]


async def write(sink: Sink, chunk: bytes) -> None:
    """Queues ``chunk``; when the writer is behind (its queue full), waits for room on a worker
    thread, so the event loop is never blocked by a slow disk (back-pressure, not blocking)."""
    if not sink.try_write(chunk):
        await asyncio.get_running_loop().run_in_executor(None, sink.write, chunk)
