"""Prometheus metrics (``GET /metrics``), through ``prometheus_client``.

Counters and histograms are recorded where things happen (requests in a middleware, update
checks and reports in their handlers, hashing and uploads in their service, deliveries in the
webhook service); the rollout gauges are read from the catalog when scraped, so every process
answers the same. With ``serve --workers N`` each worker records into the multiprocess
directory the supervisor sets (``PROMETHEUS_MULTIPROC_DIR``, read when this module is first
imported) and a scrape of any worker sums them all.

``enabled`` is per process: with metrics off (``serve --no-metrics``) nothing is recorded and
``/metrics`` answers 404.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

__all__ = [
    "CHECKS",
    "DELIVERIES",
    "DELIVERY_SECONDS",
    "DOWNLOAD_BYTES",
    "HASHED_BYTES",
    "HASHING_SECONDS",
    "REPORTS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "UPLOAD_BYTES",
    "answered",
    "checked",
    "enabled",
    "exposition",
    "hashed",
    "rollout_lines",
    "uploaded",
]

enabled = True
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("ferryman_http_requests", "HTTP requests answered, by route and status", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "ferryman_http_request_duration_seconds", "Time to answer a request, by route", ["route"], buckets=_LATENCY
)
CHECKS = Counter("ferryman_update_checks", "Device update checks, by decision", ["status", "reason"])
REPORTS = Counter("ferryman_device_reports", "Device reports recorded, by status", ["status"])
DOWNLOAD_BYTES = Counter("ferryman_download_bytes", "Bytes of binaries served in full or ranged answers", ["route"])
UPLOAD_BYTES = Counter("ferryman_upload_bytes", "Bytes of binaries received in part uploads")
HASHED_BYTES = Counter("ferryman_hashed_bytes", "Bytes of binaries hashed after upload")
HASHING_SECONDS = Counter("ferryman_hashing_seconds", "Time spent hashing binaries after upload")
DELIVERIES = Counter("ferryman_webhook_deliveries", "Webhook delivery attempts, by outcome", ["outcome"])
DELIVERY_SECONDS = Histogram(
    "ferryman_webhook_delivery_duration_seconds", "Time a receiver took to answer a delivery", buckets=_LATENCY
)


# Labelled children, looked up once: ``labels()`` costs more than the count itself on paths
# that run thousands of times a second (update checks). The label values are bounded sets.
_answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_checked: dict[tuple[str, str], Any] = {}


def answered(route: str, method: str, status: int, seconds: float) -> None:
    """A request answered (``route``: its template)."""
    children = _answered.get((route, method, status))
    if children is None:
        children = _answered[route, method, status] = (REQUESTS.labels(route, method, str(status)),
                                                       REQUEST_SECONDS.labels(route))  # fmt: skip
    children[0].inc()
    children[1].observe(seconds)


def checked(status: str, reason: str) -> None:
    """An update check decided."""
    if enabled:
        child = _checked.get((status, reason))
        if child is None:
            child = _checked[status, reason] = CHECKS.labels(status, reason)
        child.inc()


def uploaded(size: int) -> None:
    if enabled:
        UPLOAD_BYTES.inc(size)


def hashed(size: int, started: float) -> None:
    """``size`` bytes hashed since ``started`` (``time.perf_counter``)."""
    if enabled:
        HASHED_BYTES.inc(size)
        HASHING_SECONDS.inc(time.perf_counter() - started)


def exposition() -> bytes:
    """The recorded metrics in the Prometheus text format (every worker's, summed)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def rollout_lines(gauges: list[tuple[str, str, bool, dict[str, int]]]) -> bytes:
    """The per-release rollout gauges, in the text format, from the catalog's counts."""
    lines = [
        "# HELP ferryman_rollout_devices Devices by their outcome for a release",
        "# TYPE ferryman_rollout_devices gauge",
    ]
    halted = [
        "# HELP ferryman_release_halted Whether a release is halted (1) or offered (0)",
        "# TYPE ferryman_release_halted gauge",
    ]
    for release_id, channel_id, is_halted, counts in sorted(gauges):
        labels = f'release_id="{release_id}",channel_id="{channel_id}"'
        for outcome, n in counts.items():
            lines.append(f'ferryman_rollout_devices{{{labels},outcome="{outcome}"}} {n}')
        halted.append(f"ferryman_release_halted{{{labels}}} {int(is_halted)}")
    return ("\n".join(lines + halted) + "\n").encode()
