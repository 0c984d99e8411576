"""The request metrics middleware: every answer counted by route, method and status, and
timed (``ferryman.metrics``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ferryman import metrics, paths

__all__ = ["metrics_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Routes whose answers are binaries' bytes (counted in ferryman_download_bytes).
_DOWNLOADS = frozenset({paths.GRANT, paths.REGION_GRANT, paths.CONTENT})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every answer by route (its template, never the path a client sent: a bounded set
    of labels), method and status, and times it. Outermost, so refused and failed requests
    count too."""
    if not metrics.enabled:
        return await handler(request)
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        if route in _DOWNLOADS and request.method == "GET" and status in (200, 206) and resp.content_length:
            metrics.DOWNLOAD_BYTES.labels(route).inc(resp.content_length)
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        metrics.answered(route, request.method, status, time.perf_counter() - started)
