"""The two middlewares on a small app of their own, over a real socket: errors become
problem+json with the right status and headers, and authentication admits exactly the bearer
tokens and roles a route declares (the role matrix over the real routes is in
test_server_catalog.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web

from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.catalog.sql import SqlCatalog
from ferryman.config import Config
from ferryman.errors import Conflict, DomainError, Unauthenticated, Unavailable
from ferryman.server.keys import CATALOG, CONFIG, DEVICE_TOKEN, PRINCIPAL, ROUTE_ROLES
from ferryman.server.middlewares import PUBLIC, auth_middleware, problem_middleware

ADMIN = "admin-token-for-tests"
VIEWER = "fm_viewer-token-for-tests"
PUBLISHER = "fm_publisher-token-for-tests"
GATEWAY = "gateway-token-for-tests"
Scenario = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response({"principal": list(request.get(PRINCIPAL) or []), "device": request.get(DEVICE_TOKEN)})


async def _conflict(request: web.Request) -> web.Response:
    raise Conflict("it moved", {"state": ["signed"]}, current="signed")


async def _unauthenticated(request: web.Request) -> web.Response:
    raise Unauthenticated("who are you")


async def _unavailable(request: web.Request) -> web.Response:
    raise web.HTTPServiceUnavailable(headers={"Retry-After": "7"}, text="busy")


async def _store_away(request: web.Request) -> web.Response:
    raise Unavailable("the store is away", retry_after=3)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def _bad_json(request: web.Request) -> web.Response:
    msgspec.json.decode(b"{")
    raise AssertionError("unreachable")


async def _gone(request: web.Request) -> web.Response:
    raise ConnectionResetError("peer left")


async def _broken(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def _refuse_unread(request: web.Request) -> web.Response:
    raise Conflict("refused before reading the body")


async def _refuse_read(request: web.Request) -> web.Response:
    await request.read()
    raise Conflict("refused after reading the body")


async def _accept_unread(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _bad_request(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text="aiohttp's own 400")


async def _plain_domain_error(request: web.Request) -> web.Response:
    raise DomainError("a plain bad request")


def serve(tmp_path: Path, scenario: Scenario, gateway: str | None = GATEWAY) -> None:
    async def main() -> None:
        catalog = await SqlCatalog.open(tmp_path / "catalog.db")
        await catalog.create_api_key("t", m.ApiKeyCreate(name="v", role="viewer"), hash_token(VIEWER))
        await catalog.create_api_key("t", m.ApiKeyCreate(name="p", role="publisher"), hash_token(PUBLISHER))
        app = web.Application(middlewares=[problem_middleware, auth_middleware])
        app[CONFIG] = Config(data_dir=tmp_path, admin_token=ADMIN, ddi_gateway_token=gateway)
        app[CATALOG] = catalog
        table = [
            # Equal to the constants, not the same objects: declarations are compared by value.
            ("GET", "/public", _whoami, frozenset({"public"})),
            ("GET", "/device", _whoami, frozenset({"device"})),
            ("GET", "/ddi", _whoami, frozenset({"ddi"})),
            ("GET", "/things/{id}", _whoami, frozenset({"publisher"})),
            ("GET", "/viewers", _whoami, frozenset({"viewer", "publisher"})),
            ("POST", "/publishers", _whoami, frozenset({"publisher"})),
            ("GET", "/undeclared", _whoami, None),
            ("GET", "/conflict", _conflict, PUBLIC),
            ("GET", "/unauthenticated", _unauthenticated, PUBLIC),
            ("GET", "/unavailable", _unavailable, PUBLIC),
            ("GET", "/redirect", _redirect, PUBLIC),
            ("GET", "/store-away", _store_away, PUBLIC),
            ("GET", "/bad-json", _bad_json, PUBLIC),
            ("GET", "/gone", _gone, PUBLIC),
            ("GET", "/broken", _broken, PUBLIC),
            ("PUT", "/refuse-unread", _refuse_unread, PUBLIC),
            ("PUT", "/refuse-read", _refuse_read, PUBLIC),
            ("PUT", "/accept-unread", _accept_unread, PUBLIC),
            ("GET", "/bad-request", _bad_request, PUBLIC),
            ("PUT", "/bad-request", _bad_request, PUBLIC),
            ("GET", "/plain", _plain_domain_error, PUBLIC),
        ]
        roles = app[ROUTE_ROLES] = {}
        for method, path, handler, declared in table:
            route = app.router.add_route(method, path, handler)
            if declared is not None:
                roles[route] = declared
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as session:
                await scenario(session, f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()
            await catalog.close()

    asyncio.run(main())


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw) -> tuple[int, dict, dict]:
    async with session.request(method, url, allow_redirects=False, **kw) as r:
        body = await r.read()
        problem = "json" in r.headers.get("Content-Type", "")
        return r.status, dict(r.headers), json.loads(body) if problem else {}


def test_middleware_errors_become_problems(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, "ferryman.server")

    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        status, headers, body = await call(s, "GET", f"{base}/conflict")
        assert status == 409 and headers["Content-Type"] == "application/problem+json"
        assert body == {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "it moved",
                        "errors": {"state": ["signed"]}, "current": "signed"}  # fmt: skip
        assert "WWW-Authenticate" not in headers
        status, headers, body = await call(s, "GET", f"{base}/plain")  # below 401: no challenge either
        assert (status, body["detail"]) == (400, "a plain bad request") and "WWW-Authenticate" not in headers
        status, headers, body = await call(s, "GET", f"{base}/bad-request")  # aiohttp's 400 is a problem too
        assert (status, headers["Content-Type"], body["detail"]) == (400, "application/problem+json", "aiohttp's own 400")
        status, headers, body = await call(s, "GET", f"{base}/unauthenticated")
        assert (status, headers["WWW-Authenticate"], body["detail"]) == (401, "Bearer", "who are you")
        status, headers, body = await call(s, "GET", f"{base}/unavailable")
        assert (status, headers["Retry-After"], body["detail"]) == (503, "7", "busy")
        assert body["title"] == "Service Unavailable"
        status, headers, body = await call(s, "GET", f"{base}/store-away")  # ours: the same, with its pause
        assert (status, headers["Retry-After"], body["detail"]) == (503, "3", "the store is away")
        assert "WWW-Authenticate" not in headers
        status, headers, body = await call(s, "POST", f"{base}/conflict")  # no such method
        assert (status, headers["Allow"], body["status"]) == (405, "GET", 405)
        status, headers, _ = await call(s, "GET", f"{base}/redirect")  # not an error: passed on
        assert (status, headers["Location"]) == (302, "/elsewhere")
        status, _, body = await call(s, "GET", f"{base}/bad-json")
        assert status == 400 and body["detail"].startswith("malformed JSON: ")
        status, headers, body = await call(s, "GET", f"{base}/gone")
        assert (status, body["title"], headers.get("Connection")) == (400, "Client disconnected", "close")
        assert "client disconnected during GET /gone (peer left)" in caplog.text
        status, _, body = await call(s, "GET", f"{base}/broken")
        assert (status, body["detail"]) == (500, "the server failed; the error was logged")
        assert "a bug" not in json.dumps(body)

    serve(tmp_path, scenario)


def test_middleware_a_refused_request_with_an_unread_body_closes_the_connection(tmp_path: Path):
    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 65536
        await asyncio.sleep(0.2)
        yield b"y" * 65536

    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        status, headers, _ = await call(s, "PUT", f"{base}/refuse-unread", data=body())
        assert (status, headers.get("Connection")) == (409, "close")
        # A refusal whose request had no body, or whose body was read, keeps the connection;
        # so does a success.
        status, headers, _ = await call(s, "GET", f"{base}/conflict")
        assert status == 409 and headers.get("Connection") != "close"
        status, headers, _ = await call(s, "PUT", f"{base}/refuse-read", data=b"x" * 1000)
        assert status == 409 and headers.get("Connection") != "close"
        status, headers, _ = await call(s, "PUT", f"{base}/accept-unread", data=b"x" * 1000)
        assert status == 200 and headers.get("Connection") != "close"
        # A 400 refusal of an unread body closes too.
        status, headers, _ = await call(s, "PUT", f"{base}/bad-request", data=body())
        assert (status, headers.get("Connection")) == (400, "close")

    serve(tmp_path, scenario)


@pytest.mark.parametrize(
    ("headers", "status", "principal"),
    [
        ({}, 401, None),
        ({"Authorization": f"Basic {VIEWER}"}, 401, None),
        ({"Authorization": VIEWER}, 401, None),
        ({"Authorization": "Bearer"}, 401, None),
        ({"Authorization": "Bearer    "}, 401, None),
        ({"Authorization": "Bearer fm_unknown"}, 401, None),
        ({"Authorization": f"Bearer {VIEWER}"}, 200, "viewer"),
        ({"Authorization": f"bearer {VIEWER}"}, 200, "viewer"),  # the scheme is case-insensitive
        ({"Authorization": f"Bearer  {VIEWER} "}, 200, "viewer"),
        ({"Authorization": f"Bearer {PUBLISHER}"}, 200, "publisher"),
        ({"Authorization": f"Bearer {ADMIN}"}, 200, "admin"),
        ({"Authorization": f"Bearer {ADMIN}x"}, 401, None),
    ],
)
def test_middleware_bearer_tokens(tmp_path: Path, headers: dict[str, str], status: int, principal: str | None):
    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        got, h, body = await call(s, "GET", f"{base}/viewers", headers=headers)
        assert got == status, body
        if status == 401:
            assert h["WWW-Authenticate"] == "Bearer"
        else:
            assert body["principal"][1] == principal and body["device"] is None

    serve(tmp_path, scenario)


def test_middleware_roles(tmp_path: Path):
    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        status, _, body = await call(s, "POST", f"{base}/publishers", headers=bearer(VIEWER))
        assert (status, body["detail"]) == (403, "role viewer may not POST /publishers")
        status, _, body = await call(s, "GET", f"{base}/things/42", headers=bearer(VIEWER))
        assert (status, body["detail"]) == (403, "role viewer may not GET /things/{id}")  # the route, not the path
        status, _, body = await call(s, "POST", f"{base}/publishers", headers=bearer(PUBLISHER))
        assert status == 200 and body["principal"][1] == "publisher" and body["principal"][0].startswith("apk_")
        status, _, body = await call(s, "POST", f"{base}/publishers", headers=bearer(ADMIN))
        assert status == 200 and body["principal"] == ["env:FERRYMAN_ADMIN_TOKEN", "admin"]
        # A route that declares no roles is refused to everyone, the admin too.
        status, _, body = await call(s, "GET", f"{base}/undeclared", headers=bearer(ADMIN))
        assert (status, body["detail"]) == (403, "this route declares no roles")
        # Public routes ask for nothing; unknown routes are 404 before any authentication.
        status, _, body = await call(s, "GET", f"{base}/public")
        assert status == 200 and body == {"principal": [], "device": None}
        status, _, _ = await call(s, "GET", f"{base}/nowhere")
        assert status == 404
        # Device routes: the token's hash is passed on, and checked by the handler.
        status, _, body = await call(s, "GET", f"{base}/device", headers=bearer(" fd_a-device "))
        assert status == 200 and body == {"principal": [], "device": hash_token("fd_a-device")}
        status, _, _ = await call(s, "GET", f"{base}/device")
        assert status == 401

    serve(tmp_path, scenario)


@pytest.mark.parametrize(
    ("authorization", "gateway", "status", "device"),
    [
        ("TargetToken fd_dev", GATEWAY, 200, "fd_dev"),
        ("targettoken  fd_dev ", GATEWAY, 200, "fd_dev"),  # the scheme is case-insensitive
        ("TargetToken ", GATEWAY, 401, None),
        ("TargetToken", GATEWAY, 401, None),
        (f"GatewayToken {GATEWAY}", GATEWAY, 200, None),  # any device of the tenant: no device token
        (f"gatewaytoken {GATEWAY}", GATEWAY, 200, None),
        (f"GatewayToken {GATEWAY}x", GATEWAY, 401, None),
        ("GatewayToken ", GATEWAY, 401, None),
        ("GatewayToken ", "", 401, None),
        (f"GatewayToken {GATEWAY}", None, 401, None),  # no gateway token configured: none accepted
        (f"Bearer {GATEWAY}", GATEWAY, 401, None),
        ("Zeta fd_dev", GATEWAY, 401, None),  # schemes that sort after the DDI ones
        (f"Other {GATEWAY}", GATEWAY, 401, None),
        ("Bearer fd_dev", GATEWAY, 401, None),
        (f"Bearer {ADMIN}", GATEWAY, 401, None),
        (None, GATEWAY, 401, None),
    ],
)
def test_middleware_ddi_tokens(tmp_path: Path, authorization: str | None, gateway: str | None, status: int, device: str | None):
    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        headers = {"Authorization": authorization} if authorization is not None else {}
        got, _, body = await call(s, "GET", f"{base}/ddi", headers=headers)
        assert got == status, body
        if status == 200:
            assert body == {"principal": [], "device": hash_token(device) if device else None}
        # DDI schemes are not bearer tokens anywhere else.
        if authorization and not authorization.lower().startswith("bearer"):
            assert (await call(s, "GET", f"{base}/viewers", headers=headers))[0] == 401

    serve(tmp_path, scenario, gateway)
