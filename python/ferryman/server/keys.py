"""Typed keys of the application and request state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ferryman.catalog import Catalog
from ferryman.config import Config
from ferryman.server.answers import AnswerCache
from ferryman.server.signing_keys import KeyCache
from ferryman.storage import FsStore

__all__ = [
    "ANSWERS", "CATALOG", "CONFIG", "DEVICE_TOKEN", "KEY_CACHE", "PRINCIPAL", "ROUTE_ROLES", "STORE", "TASKS", "URL_SECRET",
]  # fmt: skip

CONFIG = web.AppKey("config", Config)
CATALOG = web.AppKey("catalog", Catalog)
STORE = web.AppKey("store", FsStore)
KEY_CACHE = web.AppKey("key_cache", KeyCache)
# Encoded update answers (see handlers/updates.py).
ANSWERS = web.AppKey("answers", AnswerCache)
# HMAC key of download grants.
URL_SECRET = web.AppKey("url_secret", bytes)
# Background work (hashing) that must finish or be cancelled on shutdown.
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("tasks")
# The roles each route admits, from the route table.
ROUTE_ROLES: web.AppKey[dict[web.AbstractRoute, frozenset[str]]] = web.AppKey("route_roles")
# The authenticated caller: (actor id, role).
PRINCIPAL: web.RequestKey[tuple[str, str]] = web.RequestKey("principal")
# On device routes: the SHA-256 of the bearer token, checked by the handler's own transaction.
DEVICE_TOKEN: web.RequestKey[str] = web.RequestKey("device_token")
