"""Update checks and reports: the device API (``/device/v1``, device tokens) and resolution on
behalf of a device (``POST /api/v1/devices/{id}/update``)."""

from __future__ import annotations

import math
import re
import time

from aiohttp import web

from ferryman import grants, metrics
from ferryman.catalog import ServedBinary
from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.releases import Reported
from ferryman.replication import serve_from, verified_regions
from ferryman.server.handlers.common import actor
from ferryman.server.http import ENCODER, decode, json_response
from ferryman.server.keys import ANSWERS, CATALOG, CHECKINS, CONFIG, DEVICE_TOKEN, REGIONS, ROLLOUTS, URL_SECRET
from ferryman.services.checkins import CheckIn

__all__ = ["check_in", "check_in_for_device", "device_report", "download_url", "grant_expiry", "origin"]

# Grant expiry is rounded up to this many seconds, so that every device answered within the same
# interval gets the same /dl/ URLs (a CDN in front caches one copy) and the same answer body.
GRANT_ROUNDING = 60


def grant_expiry(request: web.Request) -> int:
    # At least grant_ttl from now: the current second is rounded up, not down.
    ttl = request.app[CONFIG].grant_ttl
    return -(-(math.ceil(time.time()) + ttl) // GRANT_ROUNDING) * GRANT_ROUNDING


def origin(request: web.Request) -> str:
    """Where devices reach us: the configured public URL, else the address this connection came
    in on (the bind address). Never the client's Host header, which anyone can set."""
    public = request.app[CONFIG].public_url
    if public:
        return public.rstrip("/")
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not sock:
        return request.app[CONFIG].base_url
    host, port = sock[0], sock[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def download_url(request: web.Request, region: str | None, entry: ServedBinary, token: str) -> str:
    """Where a device downloads a binary: a verified copy in its region (else the nearest
    healthy one), through that region's CDN if it has one, else from this service."""
    regions = request.app[REGIONS]
    if not regions.several:
        return f"{regions.cdn.get(regions.primary) or origin(request)}/dl/{token}"
    verified = verified_regions(entry.replicas, regions.primary)
    region = serve_from(region, regions.names, verified, regions.healthy) or regions.primary
    return f"{regions.cdn.get(region) or origin(request)}/dl/{region}/{token}"


def _manifest(request: web.Request, answer: CheckIn, expires: int) -> m.UpdateManifest:
    decision = answer.decision
    secret = request.app[URL_SECRET]
    release = None
    if decision.release is not None:
        r = decision.release
        release = m.ManifestRelease(id=r.id, bundle_id=r.bundle_id, version=r.version, required=r.required)
    binaries = [
        m.ManifestBinary(
            artifact=e.artifact,
            version=e.version,
            target=e.target,
            size=e.size,
            sha256=e.sha256,
            custom_metadata=e.custom_metadata,
            url=download_url(request, answer.region, e, grants.issue(secret, e.binary_id, expires)),
            signatures=e.signatures,
        )
        for e in answer.entries
    ]
    bundle = m.ManifestBundle(id=decision.bundle_id) if decision.status == "update" and decision.bundle_id else None
    return m.UpdateManifest(status=decision.status, source=decision.source, reason=decision.reason,  # type: ignore[arg-type]
                            release=release, bundle=bundle, binaries=binaries)  # fmt: skip


def _answer_body(request: web.Request, answer: CheckIn) -> bytes:
    expires = grant_expiry(request)
    d = answer.decision
    # Everything the body is made of (the manifest is the bundle's entries for the target).
    key = (origin(request), answer.device.target, d.status, d.source, d.reason,
           d.release.id if d.release else None, d.bundle_id, answer.region, request.app[REGIONS].epoch)  # fmt: skip

    def encode() -> bytes:
        return ENCODER.encode(_manifest(request, answer, expires))

    return request.app[ANSWERS].get((answer.generation, expires), key, encode)


_HEADER_CHECKS = [(field, name, re.compile(pattern)) for field, (name, pattern) in m.DEVICE_HEADERS.items()]


def _reported(request: web.Request) -> Reported:
    """The device's state from its headers; a malformed value is refused, not ignored (a
    device that sent garbage would otherwise be sent to the latest release)."""
    values = {}
    for field, name, pattern in _HEADER_CHECKS:
        value = request.headers.get(name) or None
        if value is not None and (len(value) > 128 or not pattern.search(value)):
            raise Invalid(f"malformed {name} header", {name: [f"must match {pattern.pattern}"]})
        values[field] = value
    return Reported(**values)


async def check_in(request: web.Request) -> web.Response:
    """A device's update check."""
    reported = _reported(request)
    answer = await request.app[CHECKINS].check_in(reported, token_hash=request[DEVICE_TOKEN])
    metrics.checked(answer.decision.status, answer.decision.reason)
    return web.Response(body=_answer_body(request, answer), content_type="application/json")


async def device_report(request: web.Request) -> web.Response:
    await request.app[CHECKINS].device(request[DEVICE_TOKEN])  # 401 before any body error
    body = await decode(request, m.DeviceReport)
    device = await request.app[ROLLOUTS].report(request[DEVICE_TOKEN], body)
    return json_response(m.ReportRecorded(status="recorded", last_seen_at=device.last_seen_at or ""))


async def check_in_for_device(request: web.Request) -> web.Response:
    """An operator's update check on behalf of a device (a dry run unless ``write``)."""
    body = await decode(request, m.UpdateRequest)
    device = await request.app[CATALOG].get_device(request.match_info["device_id"])
    reported = Reported(
        body.release_id if body.release_id is not None else device.reported_release_id,
        body.bundle_id if body.bundle_id is not None else device.reported_bundle_id,
        body.version if body.version is not None else device.reported_version,
    )
    answer = await request.app[CHECKINS].check_in(reported, device=device, actor=actor(request), write=body.write)
    return json_response(_manifest(request, answer, grant_expiry(request)))
