"""An operator's side of the agent protocols: admitting devices that asked to join (Mender),
and a device's actions (DDI actions, Mender deployments): listed, and canceled."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.server.handlers.common import actor
from ferryman.server.http import json_response, page_params
from ferryman.server.keys import CATALOG

__all__ = ["accept", "actions", "cancel", "reject"]


async def accept(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].admit_device(actor(request), request.match_info["device_id"], True))


async def reject(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].admit_device(actor(request), request.match_info["device_id"], False))


async def actions(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    if cursor is not None:  # one page, newest first
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]})
    found = await request.app[CATALOG].list_device_actions(request.match_info["device_id"], limit)
    return json_response(m.Page(found, None))


async def cancel(request: web.Request) -> web.Response:
    """Cancels the device's open action: the device is told at its next poll (DDI
    cancelAction; Mender: 409 to its next status)."""
    canceled = await request.app[CATALOG].cancel_device_actions(actor(request), request.match_info["device_id"])
    return json_response(m.Page(items=canceled, next_cursor=None))  # one page: a device has one open action
