"""Downloads: ``/dl/<grant>`` for devices and caches, ``.../content`` for operators. Both go
through our range responder (``server/ranges.py``)."""

from __future__ import annotations

import time

from aiohttp import web

from ferryman import grants
from ferryman.catalog.sqlite import Row
from ferryman.errors import Conflict, NotFound
from ferryman.lifecycle import State
from ferryman.server.keys import CATALOG, STORE, URL_SECRET
from ferryman.server.ranges import respond

SERVABLE = (State.SIGNABLE, State.SIGNED)


async def _serve(request: web.Request, binary: Row, extra: dict[str, str] | None = None) -> web.StreamResponse:
    if binary["state"] == State.DESTROYED:
        raise NotFound("the binary was destroyed")
    if binary["state"] not in SERVABLE:
        raise Conflict(f"binary is {binary['state']}; content is served once it is signable")
    path = request.app[STORE].content_path(binary["id"])
    try:
        return await respond(request, path, binary["sha256"], extra)
    except FileNotFoundError:
        raise NotFound("the content is missing from the store") from None


async def grant(request: web.Request) -> web.StreamResponse:
    """A device or cache download. The grant is checked (signature, expiry) before anything
    else; the answer may be cached until the grant expires, the content never changes."""
    token = request.match_info["token"]
    binary_id = grants.verify(request.app[URL_SECRET], token)
    expires = int(token.split(".")[1])
    binary = await request.app[CATALOG].get_binary(binary_id)
    ttl = max(0, expires - int(time.time()))
    return await _serve(request, binary, {"Cache-Control": f"public, max-age={ttl}, immutable"})


async def content(request: web.Request) -> web.StreamResponse:
    binary = await request.app[CATALOG].get_binary(request.match_info["binary_id"])
    return await _serve(request, binary, {"Cache-Control": "private, no-cache"})
