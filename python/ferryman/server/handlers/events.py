"""The audit log."""

from __future__ import annotations

from aiohttp import web

from ferryman.errors import Invalid
from ferryman.server.http import json_response, page_params
from ferryman.server.keys import CATALOG

FILTERS = ("resource_id", "resource_type", "action", "actor", "since", "until")


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in FILTERS}
    order = request.query.get("order", "asc")
    if order not in ("asc", "desc"):
        raise Invalid("order must be asc or desc", {"order": ["asc | desc"]})
    return json_response(await request.app[CATALOG].list_events(limit, cursor, filters, newest_first=order == "desc"))
