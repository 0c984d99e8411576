"""Small pieces the handlers share."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ferryman.catalog import Page
from ferryman.server.http import json_response
from ferryman.server.keys import PRINCIPAL

__all__ = ["actor", "page_response"]


def actor(request: web.Request) -> str:
    """Who is acting, for the audit log."""
    return request[PRINCIPAL][0]


def page_response(page: Page, shape: Any = None) -> web.Response:
    items = page.items if shape is None else [shape(**i) if isinstance(i, dict) else i for i in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})
