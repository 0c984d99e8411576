"""The upload sink: received chunks are written and hashed on a native thread.

Example::

    with Sink(tmp_path, part_size=8 << 20, limit=declared_size) as sink:
        async for chunk in request.content.iter_chunked(1 << 20):
            sink.write(chunk)
        result = sink.close()   # size, sha256, parts; without close() the file is removed
"""

from __future__ import annotations

from ferryman._native import Sink, SinkResult

__all__ = ["Sink", "SinkResult"]
