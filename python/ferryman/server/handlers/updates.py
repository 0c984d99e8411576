"""Update checks and reports: the device API (``/device/v1``, device tokens) and resolution on
behalf of a device (``POST /api/v1/devices/{id}/update``)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ferryman import grants
from ferryman.catalog import models as m
from ferryman.releases import Decision, Reported
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response
from ferryman.server.keys import CATALOG, CONFIG, DEVICE_TOKEN, URL_SECRET

HEADERS = ("Ferryman-Release-Id", "Ferryman-Bundle-Id", "Ferryman-Release-Version")


def _manifest(request: web.Request, decision: Decision, entries: list[dict[str, Any]]) -> dict[str, Any]:
    expires = int(time.time()) + request.app[CONFIG].grant_ttl
    origin = f"{request.scheme}://{request.host}"
    secret = request.app[URL_SECRET]
    release = None
    if decision.release is not None:
        r = decision.release
        release = {"id": r.id, "bundle_id": r.bundle_id, "version": r.version, "required": r.required}
    return {
        "status": decision.status,
        "source": decision.source,
        "reason": decision.reason,
        "release": release,
        "bundle": {"id": decision.bundle_id} if decision.status == "update" else None,
        "binaries": [
            {
                "artifact": e["artifact"],
                "version": e["version"],
                "target": e["target"],
                "size": e["size"],
                "sha256": e["sha256"],
                "custom_metadata": e["custom_metadata"],
                "url": f"{origin}/dl/{grants.issue(secret, e['binary_id'], expires)}",
                "signatures": e["signatures"],
            }
            for e in entries
        ],
    }


async def device_update(request: web.Request) -> web.Response:
    h = request.headers
    reported = Reported(h.get(HEADERS[0]) or None, h.get(HEADERS[1]) or None, h.get(HEADERS[2]) or None)
    catalog, token = request.app[CATALOG], request[DEVICE_TOKEN]
    answer = catalog.fast_check_in(reported, token)
    if answer is None:
        answer = await catalog.check_in(reported, token_hash=token)
    decision, _, entries = answer
    return json_response(_manifest(request, decision, entries))


async def device_report(request: web.Request) -> web.Response:
    await request.app[CATALOG].device_for_token(request[DEVICE_TOKEN])  # 401 before any body error
    body = await decode(request, m.DeviceReport)
    row = await request.app[CATALOG].report(request[DEVICE_TOKEN], body)
    return json_response({"status": "recorded", "last_seen_at": row["last_seen_at"]})


async def update_for_device(request: web.Request) -> web.Response:
    body = await decode(request, m.UpdateRequest)
    catalog = request.app[CATALOG]
    device = await catalog.get_device(request.match_info["device_id"])
    reported = Reported(
        body.release_id if body.release_id is not None else device["reported_release_id"],
        body.bundle_id if body.bundle_id is not None else device["reported_bundle_id"],
        body.version if body.version is not None else device["reported_version"],
    )
    decision, _, entries = await catalog.check_in(reported, device_id=device["id"], actor=actor(request), write=body.write)
    return json_response(_manifest(request, decision, entries))
