"""Health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from ferryman.server.http import json_response

__all__ = ["healthz", "openapi"]


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    from ferryman.server.openapi import document

    return json_response(document())
