"""Small pieces the handlers share."""

from __future__ import annotations

from aiohttp import web

from ferryman.server.keys import PRINCIPAL

__all__ = ["actor"]


def actor(request: web.Request) -> str:
    """Who is acting, for the audit log."""
    return request[PRINCIPAL][0]
