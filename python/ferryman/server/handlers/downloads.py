"""Downloads: ``/dl/<grant>`` and ``/dl/<region>/<grant>`` for devices and caches (a CDN in
front is keyed by URL alone), ``.../content`` for operators. Both go through our range
responder (``server/ranges.py``) over a store's content, except grants in ``redirect`` mode,
answered with a 302 to a presigned URL of the object store (which then serves the bytes and
their ranges itself).

A grant is served from a verified copy only: the region its URL names if its copy is verified
and its store healthy, else the nearest that is (``ferryman.replication.serve_from``). A store
that fails to open the content is marked unhealthy and the next copy is tried. Every copy has
the same bytes, so the strong ETag (the SHA-256) is the same wherever they come from."""

from __future__ import annotations

import time

from aiohttp import web

from ferryman import grants
from ferryman.catalog import models as m
from ferryman.errors import Conflict, NotFound, Unavailable
from ferryman.lifecycle import State
from ferryman.replication import serve_from, verified_regions
from ferryman.server.keys import BLOBS, CATALOG, CONFIG, REGIONS, URL_SECRET
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
    regions = request.app[REGIONS]
    wanted = request.match_info.get("region")
    if wanted is not None and wanted not in regions.stores:
        raise NotFound(f"no region {wanted!r}")
    expires = int(token.split(".")[1])
    binary = await request.app[CATALOG].get_binary(binary_id)
    _servable(binary)
    ttl = max(0, expires - int(time.time()))
    verified = verified_regions({r.region: r.state for r in binary.replicas}, regions.primary)
    tried: set[str] = set()
    while True:
        region = serve_from(wanted, regions.names, verified - tried, regions.healthy)
        if region is None:
            raise Unavailable("no store with a verified copy of this binary can be reached; retry")
        tried.add(region)
        store = regions.store(region)
        if request.app[CONFIG].download_mode == "redirect":
            # The presigned URL lives as long as the grant, so a cache may keep the redirect as
            # long as it keeps the grant's answer.
            url = await store.redirect_url(binary.id, max(ttl, 1))
            if url is not None:
                headers = {"Cache-Control": f"public, max-age={ttl}", "ETag": f'"{binary.sha256}"'}
                raise web.HTTPFound(url, headers=headers)
        try:
            content = await store.open(binary.id)
        except NotFound:
            continue  # listed as verified but gone: the next copy serves (``replication verify`` repairs it)
        except (Unavailable, OSError) as e:
            regions.failed(region, str(e))  # skipped until its store passes a check again
            continue
        try:
            return await respond(request, content, binary.sha256, {"Cache-Control": f"public, max-age={ttl}, immutable"})
        finally:
            content.close()


async def content(request: web.Request) -> web.StreamResponse:
    binary = await request.app[CATALOG].get_binary(request.match_info["binary_id"])
    return await _serve(request, binary, {"Cache-Control": "private, no-cache"})
