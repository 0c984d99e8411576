"""Request and response helpers shared by the handlers: JSON in and out through msgspec,
problem+json bodies, list parameters."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from ferryman.errors import DomainError, Invalid, TooLarge, UnsupportedMediaType
from ferryman.parsing import parse_int

__all__ = ["ENCODER", "decode", "json_response", "page_params", "problem"]

T = TypeVar("T")
ENCODER = msgspec.json.Encoder()
_PATH = re.compile(r"at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`$")


def problem(status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None, **extra: Any) -> web.Response:
    """An RFC 9457 problem response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body["errors"] = errors or {}
    body.update(extra)
    return web.Response(status=status, body=ENCODER.encode(body), content_type="application/problem+json")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=ENCODER.encode(data), content_type="application/json")


async def decode(request: web.Request, type_: type[T]) -> T:
    """Reads and validates a JSON body: malformed JSON is 400, a valid document of the wrong
    shape is 422 with the offending field named, a body over the limit is 413."""
    ctype = request.content_type
    if request.body_exists and ctype not in ("application/json", "") and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"expected Content-Type: application/json, got {ctype}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"JSON bodies are limited to {request.app._client_max_size} bytes") from None
    if not body:
        raise DomainError("a JSON body is required")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as e:
        message = str(e)
        m = _PATH.search(message)
        field = m.group(1).lstrip(".") if m and m.group(1) else "body"
        text = message[: m.start()].rstrip(" -") if m else message
        raise Invalid(f"invalid request body: {message}", {field: [text]}) from None
    except msgspec.DecodeError as e:
        raise DomainError(f"malformed JSON: {e}") from None
    except RecursionError:
        raise DomainError("malformed JSON: nested too deeply") from None


def page_params(request: web.Request) -> tuple[int, str | None]:
    """``?limit=`` (1..500, default 50) and ``?cursor=``."""
    limit = parse_int(request.query.get("limit", "50"), 3)
    if limit is None or not 1 <= limit <= 500:
        raise Invalid("limit must be a whole number from 1 to 500", {"limit": ["1..500"]})
    return limit, request.query.get("cursor") or None
