"""The audit log."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.server.handlers.common import page_response
from ferryman.server.http import page_params
from ferryman.server.keys import CATALOG


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in ("resource_id", "resource_type", "action", "actor")}
    return page_response(await request.app[CATALOG].list_events(limit, cursor, filters), m.Event)
