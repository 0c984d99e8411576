"""Rollout stats (per release, cohort and channel) and a device's report history."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.server.http import json_response, page_params
from ferryman.server.keys import CATALOG

__all__ = ["channel_stats", "cohort_stats", "device_reports", "release_stats"]


async def release_stats(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].release_stats(request.match_info["release_id"]))


async def cohort_stats(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].group_stats("cohort", request.match_info["cohort_id"]))


async def channel_stats(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].group_stats("channel", request.match_info["channel_id"]))


async def device_reports(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    if cursor is not None:  # the history is one page: no cursor was ever handed out
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]})
    reports = await request.app[CATALOG].device_reports(request.match_info["device_id"], limit)
    return json_response(m.Page(reports, None))  # the history kept fits one page
