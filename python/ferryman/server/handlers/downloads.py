"""Downloads: ``/dl/<grant>`` for devices and caches, ``.../content`` for operators. Both go
through our range responder (``server/ranges.py``) over the blob store's content, except
grants in ``redirect`` mode, answered with a 302 to a presigned URL of the object store (which
then serves the bytes and their ranges itself)."""

from __future__ import annotations

import time

from aiohttp import web

from ferryman import grants
from ferryman.catalog import models as m
from ferryman.errors import Conflict, NotFound
from ferryman.lifecycle import State
from ferryman.server.keys import BLOBS, CATALOG, CONFIG, URL_SECRET
from ferryman.server.ranges import respond

SERVABLE = (State.SIGNABLE, State.SIGNED)


def _servable(binary: m.Binary) -> None:
    if binary.state == State.DESTROYED:
        raise NotFound("the binary was destroyed")
    if binary.state not in SERVABLE:
        raise Conflict(f"binary is {binary.state}; content is served once it is signable")


async def _serve(request: web.Request, binary: m.Binary, extra: dict[str, str]) -> web.StreamResponse:
    _servable(binary)
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
    if request.app[CONFIG].download_mode == "redirect":
        _servable(binary)
        # The presigned URL lives as long as the grant, so a cache may keep the redirect as
        # long as it keeps the grant's answer.
        url = await request.app[BLOBS].redirect_url(binary.id, max(ttl, 1))
        if url is not None:
            raise web.HTTPFound(url, headers={"Cache-Control": f"public, max-age={ttl}", "ETag": f'"{binary.sha256}"'})
    return await _serve(request, binary, {"Cache-Control": f"public, max-age={ttl}, immutable"})


async def content(request: web.Request) -> web.StreamResponse:
    binary = await request.app[CATALOG].get_binary(request.match_info["binary_id"])
    return await _serve(request, binary, {"Cache-Control": "private, no-cache"})
