"""Health, metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from ferryman import metrics as metrics_
from ferryman.errors import NotFound
from ferryman.server.http import json_response
from ferryman.server.keys import CATALOG

__all__ = ["healthz", "metrics", "openapi"]


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    from ferryman.server.openapi import document

    return json_response(document())


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text format: what this server (every worker) recorded, and the rollout
    gauges read from the catalog."""
    if not metrics_.enabled:
        raise NotFound("metrics are off (serve --no-metrics)")
    gauges = await request.app[CATALOG].rollout_gauges()
    body = metrics_.exposition() + metrics_.rollout_lines(gauges)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
