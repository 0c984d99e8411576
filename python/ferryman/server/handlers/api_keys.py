"""API keys: created with a role, shown once, stored hashed."""

from __future__ import annotations

import secrets

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG

TOKEN_PREFIX = "fm_"


def new_token() -> str:
    """256 random bits; only their SHA-256 is stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.ApiKeyCreate)
    token = new_token()
    key = await request.app[CATALOG].create_api_key(actor(request), body, hash_token(token))
    key.token = token
    return json_response(key, status=201)


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return json_response(await request.app[CATALOG].list_api_keys(limit, cursor, request.query.get("name")))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_api_key(request.match_info["key_id"]))


async def delete(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_api_key(actor(request), request.match_info["key_id"])
    return web.Response(status=204)
