"""API keys: created with a role, shown once, stored hashed."""

from __future__ import annotations

import secrets

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.server.handlers.common import actor, page_response
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG

TOKEN_PREFIX = "fm_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.ApiKeyCreate)
    token = new_token()
    row = await request.app[CATALOG].create_api_key(actor(request), body, token)
    return json_response(m.ApiKey(**row, token=token), status=201)


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return page_response(await request.app[CATALOG].list_api_keys(limit, cursor), m.ApiKey)


async def delete(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_api_key(actor(request), request.match_info["key_id"])
    return web.Response(status=204)
