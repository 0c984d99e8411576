"""Downloads: ``/dl/<grant>`` for devices and caches, ``.../content`` for operators. Both go
through our range responder (``server/ranges.py``) over the blob store's content."""

from __future__ import annotations

import time

from aiohttp import web

from ferryman import grants
from ferryman.catalog import models as m
from ferryman.errors import Conflict, NotFound
from ferryman.lifecycle import State
from ferryman.server.keys import BLOBS, CATALOG, URL_SECRET
from ferryman.server.ranges import respond

SERVABLE = (State.SIGNABLE, State.SIGNED)


async def _serve(request: web.Request, binary: m.Binary, extra: dict[str, str]) -> web.StreamResponse:
    if binary.state == State.DESTROYED:
        raise NotFound("the binary was destroyed")
    if binary.state not in SERVABLE:
        raise Conflict(f"binary is {binary.state}; content is served once it is signable")
    content = await request.app[BLOBS].open(binary.id)
    try:
        return await respond(request, content, binary.sha256, extra)
    finally:
        content.close()


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
