"""The two middlewares: errors to problem+json, and authentication with role checks.

Every route declares the roles it admits in the route table (``routes.py``); a route without a
declaration is refused, so a forgotten one fails closed."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from ferryman.catalog.rules import hash_token
from ferryman.errors import DomainError, Forbidden, Unauthenticated, Unavailable
from ferryman.server.http import problem
from ferryman.server.keys import CATALOG, CONFIG, DEVICE_TOKEN, PRINCIPAL, ROUTE_ROLES

__all__ = ["auth_middleware", "problem_middleware"]

log = logging.getLogger("ferryman.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = frozenset({"public"})
# Routes for devices: only device tokens, which reach nothing else.
DEVICE = frozenset({"device"})
# hawkBit DDI routes: a device token as ``TargetToken``, or the tenant's ``GatewayToken``.
DDI = frozenset({"ddi"})
# The web console's pages: a session cookie, checked by the page itself (ferryman/console/auth.py).
CONSOLE = frozenset({"console"})


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await _problem_or_response(request, handler)
    if resp.status >= 400 and request.body_exists and not request.content.at_eof():
        # Refused before its body was read (a bad upload, say): close rather than drain it.
        resp.force_close()
    return resp


async def _problem_or_response(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as e:
        resp = problem(e.status, e.title, e.detail, e.errors, **e.extra)
        if e.status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(e, Unavailable):
            resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            raise
        resp = problem(e.status, e.reason, e.text or e.reason)
        for name in ("Allow", "Retry-After"):
            if name in e.headers:
                resp.headers[name] = e.headers[name]
        return resp
    except msgspec.DecodeError as e:
        return problem(400, "Bad request", f"malformed JSON: {e}")
    except ConnectionError as e:
        # The client went away (an aborted download or upload): nothing to answer, nothing
        # worth a traceback. The answer below is written only if the socket still takes it.
        log.info("client disconnected during %s %s (%s)", request.method, request.path, e or type(e).__name__)
        resp = problem(400, "Client disconnected", "the connection was closed before the request completed")
        resp.force_close()
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal server error", "the server failed; the error was logged")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:  # no such route (404) or method (405)
        raise request.match_info.http_exception
    roles = request.app[ROUTE_ROLES].get(request.match_info.route)
    if roles is None:
        raise Forbidden("this route declares no roles")
    if roles in (PUBLIC, CONSOLE):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if roles == DDI:
        return await _ddi(request, handler, scheme.lower(), token.strip())
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer token is required")
    token = token.strip()
    if roles == DEVICE:
        # Checked inside the handler's own transaction: one round trip per update check.
        request[DEVICE_TOKEN] = hash_token(token)
        return await handler(request)
    config = request.app[CONFIG]
    if config.admin_token and hmac.compare_digest(token.encode(), config.admin_token.encode()):
        principal = ("env:FERRYMAN_ADMIN_TOKEN", "admin")
    else:
        key = await request.app[CATALOG].authenticate(hash_token(token))
        if key is None:
            raise Unauthenticated("the token is not valid")
        principal = (key.id, key.role)
    if principal[1] != "admin" and principal[1] not in roles:
        resource = request.match_info.route.resource
        where = resource.canonical if resource is not None else request.path
        raise Forbidden(f"role {principal[1]} may not {request.method} {where}")
    request[PRINCIPAL] = principal
    return await handler(request)


async def _ddi(request: web.Request, handler: Handler, scheme: str, token: str) -> web.StreamResponse:
    """A DDI request: its device's token (the handler checks that it is the controller's), or
    the gateway token, which stands for any device of the tenant."""
    if scheme == "targettoken" and token:
        request[DEVICE_TOKEN] = hash_token(token)
        return await handler(request)
    gateway = request.app[CONFIG].ddi_gateway_token
    if scheme == "gatewaytoken" and token and gateway and hmac.compare_digest(token.encode(), gateway.encode()):
        return await handler(request)
    raise Unauthenticated("an Authorization: TargetToken or GatewayToken is required")
