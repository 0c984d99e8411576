"""Webhooks, as pure functions: which audit events become which webhook events, who is
subscribed, the Standard Webhooks signature, how long a failed delivery waits, and which
addresses a delivery may reach. The outbox is in the catalog (``webhook_deliveries`` rows,
written in the transaction of the event itself); delivery is ``services/webhooks.py``.

Deliveries follow Standard Webhooks (https://www.standardwebhooks.com): a JSON body
``{"type", "timestamp", "data"}`` and the headers ``webhook-id`` (the same on every retry, so
receivers can drop repeats), ``webhook-timestamp`` (of the attempt) and ``webhook-signature``
(``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body`` under the secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "EVENT_TYPES",
    "address_allowed",
    "check_url",
    "event_type",
    "retry_delay",
    "sign",
    "subscribed",
]

EVENT_TYPES = (
    "binary.state_changed",
    "signature.created",
    "bundle.created",
    "release.created",
    "release.changed",
    "release.halted",
    "device.first_seen",
    "update.installed",
    "update.failed",
    "update.rolled_back",
)
SECRET_PREFIX = "whsec_"
RETRY_BASE = 5.0  # seconds before the first retry
RETRY_MAX = 3600.0


def event_type(action: str, resource_type: str, status: str | None = None) -> str | None:
    """The webhook event an audit event is, if any (audit actions: ``catalog/sql``); a
    device's ``report`` is one by its ``status``."""
    match resource_type, action:
        case "binary", _ if action.startswith("state:"):
            return "binary.state_changed"
        case "binary", "sign":
            return "signature.created"
        case "bundle", "create":
            return "bundle.created"
        case "release", "create":
            return "release.created"
        case "release", "update" | "relink" | "advance" | "resume":
            return "release.changed"
        case "release", "halt":
            return "release.halted"
        case "device", "first_seen":
            return "device.first_seen"
        case "device", "report" if status in ("installed", "failed", "rolled_back"):
            return f"update.{status}"
    return None


def subscribed(events: Iterable[str], kind: str) -> bool:
    """Whether a webhook listening to ``events`` (types, ``group.*`` or ``*``) gets ``kind``."""
    group = kind.partition(".")[0]
    return any(e in ("*", kind, f"{group}.*") for e in events)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header for a delivery, with a ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def retry_delay(attempts: int, jitter: float, base: float = RETRY_BASE, cap: float = RETRY_MAX) -> float:
    """Seconds before the next attempt of a delivery that failed ``attempts`` times: doubling
    from ``base`` up to ``cap``, scaled by ``jitter`` in [0, 1) to 50 to 100% so that deliveries
    that failed together do not retry together."""
    delay = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 30))
    return delay * (0.5 + jitter / 2)


def address_allowed(address: str) -> bool:
    """Whether a delivery may connect to an IP address: only globally routable unicast ones
    (no loopback, private, link-local, shared, reserved or multicast range, also when written
    as an IPv4-mapped IPv6 address)."""
    ip = ipaddress.ip_address(address)  # an IPv6 zone (fe80::1%eth0) is parsed too
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> str:
    """A webhook's target URL, checked: http(s), a host, no credentials or fragment, and
    (unless ``allow_private``) no host that is a non-public address or ``localhost``. Names
    are checked again when a delivery resolves them. ValueError says what is wrong."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a malformed port)
    except ValueError as e:
        raise ValueError(f"not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError("must not carry credentials or a fragment (put a secret in the path if the receiver needs one)")
    if allow_private:
        return url
    host = parts.hostname.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise ValueError("targets a loopback name (allowed only with --webhook-allow-private)")
    try:
        allowed = address_allowed(host)
    except ValueError:
        return url  # a name: checked when a delivery resolves it
    if not allowed:
        raise ValueError(f"targets the non-public address {host} (allowed only with --webhook-allow-private)")
    return url


def payload(kind: str, at: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery's body (before encoding)."""
    return {"type": kind, "timestamp": at, "data": dict(data)}
