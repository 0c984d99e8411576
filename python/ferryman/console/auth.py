"""Signing in and out of the console, and what every page checks first: a live session (else
the sign-in page), the role of the API key behind it, and on every form the session's CSRF
token and the page's own origin. The roles are the API's: a page or form admits the roles its
API route admits."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from ferryman.catalog.rules import hash_token
from ferryman.console import sessions
from ferryman.console.render import page
from ferryman.errors import NotFound
from ferryman.server.keys import CATALOG, CONFIG, URL_SECRET

__all__ = ["COOKIE", "Viewer", "redirect", "sign_in", "sign_in_form", "sign_out", "viewer"]

COOKIE = "ferryman_session"
# Sessions count in milliseconds (a sign-out ends the sessions opened before it, even in the same second).
IDLE = 30 * 60 * 1000  # without a request before a session ends
LIFETIME = 12 * 3600 * 1000  # after signing in before it ends anyway
WRITE_ROLES = {"releaser", "admin"}  # who may steer releases and devices (as in the API)

Page = Callable[[web.Request, "Viewer"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the session, its API key's ID (or "env") and role, and the form token."""

    session: sessions.Session
    role: str
    csrf: str

    @property
    def actor(self) -> str:
        return "env:FERRYMAN_ADMIN_TOKEN" if self.session.subject == "env" else self.session.subject

    def may(self, roles: frozenset[str] | set[str]) -> bool:
        return self.role == "admin" or self.role in roles


def _secret(request: web.Request) -> bytes:
    # Its own key, derived from the shared secret: a download grant is never a session.
    return hmac.new(request.app[URL_SECRET], b"ferryman console sessions", "sha256").digest()


def _now() -> int:
    return time.time_ns() // 1_000_000


def _signed_out(subject: str) -> str:
    return f"console_signed_out:{subject}"


async def _role(request: web.Request, s: sessions.Session) -> str | None:
    """The role of a session's API key; None once the key is gone or its user signed out
    (signing out ends every session of that key opened until then, on every server)."""
    catalog = request.app[CATALOG]
    out = await catalog.setting(_signed_out(s.subject))
    if out is not None and s.issued <= int(out):
        return None
    if s.subject == "env":
        return "admin" if request.app[CONFIG].admin_token else None
    try:
        return (await catalog.get_api_key(s.subject)).role
    except NotFound:  # the key was deleted: its sessions end with it
        return None


def _set_cookie(request: web.Request, resp: web.StreamResponse, value: str) -> None:
    # Secure when the request came over TLS, or the service is published over https behind a
    # proxy that ends TLS (--public-url).
    secure = request.secure or (request.app[CONFIG].public_url or "").startswith("https://")
    resp.set_cookie(COOKIE, value, path="/ui/", httponly=True, samesite="Strict", secure=secure, max_age=LIFETIME // 1000)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def viewer(roles: frozenset[str] | None = None, form: bool = False) -> Callable[[Page], Handler]:
    """A page for a signed-in viewer (``roles``: only those; ``form``: a POST that must carry the
    session's CSRF token and come from this origin)."""

    def wrap(handler: Page) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            secret, now = _secret(request), _now()
            s = sessions.read(secret, request.cookies.get(COOKIE, ""), now, IDLE, LIFETIME)
            role = await _role(request, s) if s else None
            if s is None or role is None:
                if form:
                    raise web.HTTPUnauthorized(text="the session ended: sign in again")
                return redirect(f"/ui/sign-in?next={quote(request.path_qs)}")
            v = Viewer(s, role, sessions.csrf_token(secret, s))
            if form:
                data = await request.post()
                _same_origin(request)
                if not sessions.csrf_valid(secret, s, str(data.get("csrf", ""))):
                    raise web.HTTPForbidden(text="the form's token is not this session's: reload the page")
            if roles is not None and not v.may(roles):
                raise web.HTTPForbidden(text=f"role {role} may not do this")
            resp = await handler(request, v)
            if now - s.seen >= 60_000:  # the idle clock restarts, at most once a minute
                _set_cookie(request, resp, sessions.refreshed(secret, s, now))
            return resp

        return run

    return wrap


def _same_origin(request: web.Request) -> None:
    """Refuses a form a browser says came from another site (every browser sends Origin on a
    form's POST; a client that sends none is not a browser another site can drive)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="a form from another site")


def redirect(target: str) -> web.Response:
    """See other: after a form, the page to show (a reload does not post the form again)."""
    return web.Response(status=303, headers={"Location": target})


def _next(target: str) -> str:
    # Only a path of the console itself: never another site (an open redirect).
    return target if target.startswith("/ui/") and not target.startswith("/ui//") else "/ui/"


async def sign_in_form(request: web.Request) -> web.Response:
    return page("sign_in.html", next=_next(request.query.get("next", "/ui/")), error=None)


async def sign_in(request: web.Request) -> web.StreamResponse:
    _same_origin(request)  # no other site signs a browser in (to a key of its choosing)
    data = await request.post()
    token, target = str(data.get("token", "")).strip(), _next(str(data.get("next", "/ui/")))
    config = request.app[CONFIG]
    subject = None
    if config.admin_token and token and hmac.compare_digest(token.encode(), config.admin_token.encode()):
        subject = "env"
    elif token:
        key = await request.app[CATALOG].authenticate(hash_token(token))
        subject = key.id if key else None
    if subject is None:
        return page("sign_in.html", status=401, next=target, error="That API key is not valid.")
    resp = redirect(target)
    _set_cookie(request, resp, sessions.issue(_secret(request), subject, _now()))
    return resp


@viewer(form=True)
async def sign_out(request: web.Request, v: Viewer) -> web.StreamResponse:
    # The cookie is signed, not stored: a copy of it would still open the session, so the
    # sign-out itself is stored, and every session of this key opened until now ends.
    await request.app[CATALOG].set_setting(_signed_out(v.session.subject), str(_now()))
    resp = redirect("/ui/sign-in")
    resp.del_cookie(COOKIE, path="/ui/")
    return resp
