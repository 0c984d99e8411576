"""The upload baseline: a plain aiohttp handler that hashes each part inline with hashlib and
writes it to a file, as one would write it without Ferryman's native sink.

    python -m benches.baseline_upload PORT DIR
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from aiohttp import web


def make_app(root: Path) -> web.Application:
    async def put_part(request: web.Request) -> web.Response:
        index = int(request.match_info["index"])
        h = hashlib.sha256()
        path = root / f"part-{index}"
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        return web.json_response({"index": index, "sha256": h.hexdigest()})

    app = web.Application()
    app.router.add_put("/parts/{index}", put_part)
    return app


if __name__ == "__main__":
    port, root = int(sys.argv[1]), Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    web.run_app(make_app(root), host="127.0.0.1", port=port, print=None)
