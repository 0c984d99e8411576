"""Download grants: HMAC-signed, expiring tokens for one binary, so that ``/dl/<token>`` URLs
can be handed to devices and cached by a CDN or reverse proxy by URL alone.

A token is ``<binary_id>.<expires>.<mac>`` where ``expires`` is a Unix time and ``mac`` the
URL-safe base64 (unpadded) HMAC-SHA256 of ``<binary_id>.<expires>`` under the server's secret.
Checking a token needs only the secret and the clock: a forged or expired one is refused
before the catalog or the store is touched."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path

from ferryman.errors import Forbidden

__all__ = ["issue", "load_secret", "verify"]

_TOKEN = re.compile(r"(bin_[0-9a-z]{26})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: bytes, binary_id: str, expires: int) -> str:
    """A token for ``binary_id`` valid until Unix time ``expires``."""
    message = f"{binary_id}.{expires}"
    return f"{message}.{_mac(secret, message)}"


def verify(secret: bytes, token: str, now: float | None = None) -> str:
    """The binary ID of a valid, unexpired token; raises Forbidden otherwise."""
    match = _TOKEN.fullmatch(token)
    if not match:
        raise Forbidden("malformed download token")
    binary_id, expires, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(secret, f"{binary_id}.{expires}")):
        raise Forbidden("download token signature does not verify")
    if int(expires) < (time.time() if now is None else now):
        raise Forbidden("download token has expired")
    return binary_id


def load_secret(data_dir: Path, configured: str | None) -> bytes:
    """The configured secret (``FERRYMAN_URL_SECRET``), or one kept in the data directory
    (created on first use, readable by the owner only) so grants survive restarts."""
    if configured:
        return configured.encode()
    path = data_dir / "url-secret"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip().encode()
