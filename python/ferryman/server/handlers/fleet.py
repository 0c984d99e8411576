"""Bundles, channels, cohorts, releases, devices and bundle overrides (management API).
Signing a bundle is in ``signing.py``."""

from __future__ import annotations

import secrets

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.server.handlers.common import actor
from ferryman.server.handlers.replication import check_region
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG

DEVICE_TOKEN_PREFIX = "fd_"
DEVICE_FILTERS = ("cohort_id", "target", "tag", "admission", "identifier", "reported_release_id", "seen_since", "seen_before")


def new_device_token() -> str:
    """256 random bits; only their SHA-256 is stored."""
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


# Bundles


async def create_bundle(request: web.Request) -> web.Response:
    body = await decode(request, m.BundleCreate)
    return json_response(await request.app[CATALOG].create_bundle(actor(request), body), 201)


async def list_bundles(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    q = request.query
    return json_response(await request.app[CATALOG].list_bundles(limit, cursor, q.get("signing_key_id"), q.get("name")))


async def get_bundle(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_bundle(request.match_info["bundle_id"]))


# Channels, cohorts, releases


async def create_channel(request: web.Request) -> web.Response:
    body = await decode(request, m.ChannelCreate)
    return json_response(await request.app[CATALOG].create_channel(actor(request), body), 201)


async def list_channels(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return json_response(await request.app[CATALOG].list_channels(limit, cursor, request.query.get("name")))


async def get_channel(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_channel(request.match_info["channel_id"]))


async def patch_channel(request: web.Request) -> web.Response:
    body = await decode(request, m.ChannelPatch)
    row = await request.app[CATALOG].patch_channel(actor(request), request.match_info["channel_id"], body)
    return json_response(row)


async def create_cohort(request: web.Request) -> web.Response:
    body = await decode(request, m.CohortCreate)
    check_region(request, body.region)
    return json_response(await request.app[CATALOG].create_cohort(actor(request), body), 201)


async def list_cohorts(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in ("name", "channel_id")}
    return json_response(await request.app[CATALOG].list_cohorts(limit, cursor, filters))


async def get_cohort(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_cohort(request.match_info["cohort_id"]))


async def patch_cohort(request: web.Request) -> web.Response:
    body = await decode(request, m.CohortPatch)
    check_region(request, body.region)
    row = await request.app[CATALOG].patch_cohort(actor(request), request.match_info["cohort_id"], body)
    return json_response(row)


async def create_release(request: web.Request) -> web.Response:
    body = await decode(request, m.ReleaseCreate)
    row = await request.app[CATALOG].create_release(actor(request), request.match_info["channel_id"], body)
    return json_response(row, 201)


async def list_releases(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    page = await request.app[CATALOG].list_releases(request.match_info["channel_id"], limit, cursor, request.query.get("name"))
    return json_response(page)


async def get_release(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_release(request.match_info["release_id"]))


async def patch_release(request: web.Request) -> web.Response:
    body = await decode(request, m.ReleasePatch)
    row = await request.app[CATALOG].patch_release(actor(request), request.match_info["release_id"], body)
    return json_response(row)


# Devices and overrides


async def create_device(request: web.Request) -> web.Response:
    body = await decode(request, m.DeviceCreate)
    check_region(request, body.region)
    token = new_device_token()
    device = await request.app[CATALOG].create_device(actor(request), body, hash_token(token))
    device.token = token
    return json_response(device, 201)


async def list_devices(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in DEVICE_FILTERS}
    return json_response(await request.app[CATALOG].list_devices(limit, cursor, filters))


async def get_device(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_device(request.match_info["device_id"]))


async def patch_device(request: web.Request) -> web.Response:
    body = await decode(request, m.DevicePatch)
    check_region(request, body.region)
    row = await request.app[CATALOG].patch_device(actor(request), request.match_info["device_id"], body)
    return json_response(row)


async def delete_device(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_device(actor(request), request.match_info["device_id"])
    return web.Response(status=204)


async def rotate_device_token(request: web.Request) -> web.Response:
    token = new_device_token()
    device = await request.app[CATALOG].rotate_device_token(actor(request), request.match_info["device_id"], hash_token(token))
    device.token = token
    return json_response(device)


async def create_override(request: web.Request) -> web.Response:
    body = await decode(request, m.OverrideCreate)
    return json_response(await request.app[CATALOG].create_override(actor(request), body), 201)


async def list_overrides(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    page = await request.app[CATALOG].list_overrides(limit, cursor, request.query.get("device_id"))
    return json_response(page)


async def get_override(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_override(request.match_info["override_id"]))


async def patch_override(request: web.Request) -> web.Response:
    body = await decode(request, m.OverridePatch)
    row = await request.app[CATALOG].patch_override(actor(request), request.match_info["override_id"], body)
    return json_response(row)


async def delete_override(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_override(actor(request), request.match_info["override_id"])
    return web.Response(status=204)
