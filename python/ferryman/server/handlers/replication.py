"""Replication between regions: its state, and repairs (``replication verify``)."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response
from ferryman.server.keys import REGIONS, REPLICATION

__all__ = ["check_region", "status", "verify"]


def check_region(request: web.Request, region: object, field: str = "region") -> None:
    """A region named in a request must be a configured one: 422 otherwise."""
    names = request.app[REGIONS].names
    if isinstance(region, str) and region not in names:
        raise Invalid(f"no region {region!r}; configured: {', '.join(names)}", {field: ["unknown region"]})


async def status(request: web.Request) -> web.Response:
    return json_response(await request.app[REPLICATION].status())


async def verify(request: web.Request) -> web.Response:
    body = await decode(request, m.VerifyRequest)
    check_region(request, body.region)
    queued = await request.app[REPLICATION].verify(actor(request), body.region)
    return json_response(m.VerifyQueued(queued=queued), 202)
