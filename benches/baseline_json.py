"""The update-check baseline: the most trivial aiohttp JSON handler.

python -m benches.baseline_json PORT
"""

from __future__ import annotations

import sys

from aiohttp import web


async def handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "no_update", "source": None, "release": None, "bundle": None, "binaries": []})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/device/v1/update", handler)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
