"""Webhooks (admin): register (the secret is shown once), list, change, delete, and their
deliveries (listed, redelivered)."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG, WEBHOOKS

__all__ = ["create", "delete", "deliveries", "get", "list_", "patch", "redeliver"]

STATES = ("pending", "delivered", "failed")


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.WebhookCreate)
    return json_response(await request.app[WEBHOOKS].create(actor(request), body), status=201)


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return json_response(await request.app[CATALOG].list_webhooks(limit, cursor))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_webhook(request.match_info["webhook_id"]))


async def patch(request: web.Request) -> web.Response:
    body = await decode(request, m.WebhookPatch)
    return json_response(await request.app[WEBHOOKS].patch(actor(request), request.match_info["webhook_id"], body))


async def delete(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_webhook(actor(request), request.match_info["webhook_id"])
    return web.Response(status=204)


async def deliveries(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise Invalid(f"no delivery state {state!r}", {"state": [f"one of {', '.join(STATES)}"]})
    page = await request.app[CATALOG].list_deliveries(request.match_info["webhook_id"], limit, cursor, state)
    return json_response(page)


async def redeliver(request: web.Request) -> web.Response:
    m_ = request.match_info
    delivery = await request.app[CATALOG].redeliver(actor(request), m_["webhook_id"], m_["delivery_id"])
    return json_response(delivery, status=202)
