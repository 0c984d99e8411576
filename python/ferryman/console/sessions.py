"""The console's sessions and their CSRF tokens, as pure functions of a secret and the time.

A session is a cookie ``v1.<subject>.<issued>.<seen>.<mac>``: the API key it was opened with
(its ID, never its token), when it was opened and when it was last used (Unix time in the
caller's unit: the console counts milliseconds), under
an HMAC-SHA256 of the server's secret. It holds no role: the role is read from the API key at
each request, so deleting the key or changing it ends its sessions at once. It ends after
``idle`` without use and ``lifetime`` after it was opened. Every server that
shares the secret accepts it (sessions need no table).

A form's CSRF token is an HMAC of the session's subject and opening time, so it is the same for
every form of one session and worthless in another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ["Session", "csrf_token", "csrf_valid", "issue", "read", "refreshed"]

VERSION = "v1"
# A subject: an API key ID, or "env" for the operator's FERRYMAN_ADMIN_TOKEN.
_SUBJECT = re.compile(r"[a-z]{3}_[0-9a-z]{26}|env")


@dataclass(frozen=True)
class Session:
    subject: str
    issued: int
    seen: int


def _mac(secret: bytes, purpose: str, text: str) -> str:
    digest = hmac.new(secret, f"{purpose}\n{text}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _body(s: Session) -> str:
    return f"{VERSION}.{s.subject}.{s.issued}.{s.seen}"


def issue(secret: bytes, subject: str, now: int) -> str:
    """The cookie of a session opened now by ``subject``."""
    if not _SUBJECT.fullmatch(subject):
        raise ValueError(f"not a session subject: {subject!r}")
    return refreshed(secret, Session(subject, now, now), now)


def refreshed(secret: bytes, s: Session, now: int) -> str:
    """The cookie of ``s`` used now (its idle time starts again)."""
    body = _body(Session(s.subject, s.issued, now))
    return f"{body}.{_mac(secret, 'session', body)}"


def read(secret: bytes, cookie: str, now: int, idle: int, lifetime: int) -> Session | None:
    """The session of a cookie, or None when it is forged, malformed, idle for more than
    ``idle``, older than ``lifetime`` or from the future."""
    parts = cookie.split(".")
    if len(parts) != 5 or parts[0] != VERSION or not _SUBJECT.fullmatch(parts[1]):
        return None
    if not (parts[2].isdigit() and parts[3].isdigit()):
        return None
    s = Session(parts[1], int(parts[2]), int(parts[3]))
    if not hmac.compare_digest(parts[4], _mac(secret, "session", _body(s))):
        return None
    if not s.issued <= s.seen <= now or now > s.seen + idle or now > s.issued + lifetime:
        return None
    return s


def csrf_token(secret: bytes, s: Session) -> str:
    return _mac(secret, "csrf", f"{s.subject}.{s.issued}")


def csrf_valid(secret: bytes, s: Session, token: str) -> bool:
    return hmac.compare_digest(token, csrf_token(secret, s))
