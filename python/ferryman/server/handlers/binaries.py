"""Binaries: declaration, state changes and part uploads (the upload service does the work)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import AsyncIterator

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.errors import DomainError, Invalid, LengthRequired, RequestTimeout
from ferryman.parsing import parse_int
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG, CONFIG, UPLOADS

UPLOAD_CHUNK = 1 << 20
_DIGEST_ITEM = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*")
# signing_key_id: binaries with a signature by that key (a key rotation signs them again).
FILTERS = ("version_id", "target", "state", "sha256", "signing_key_id")


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.BinaryCreate)
    return json_response(await request.app[CATALOG].create_binary(actor(request), request.match_info["version_id"], body), 201)


async def list_for_version(request: web.Request) -> web.Response:
    version_id = request.match_info["version_id"]
    await request.app[CATALOG].get_version(version_id)  # 404 for an unknown version
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in FILTERS} | {"version_id": version_id}
    return json_response(await request.app[CATALOG].list_binaries(limit, cursor, filters))


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in FILTERS}
    return json_response(await request.app[CATALOG].list_binaries(limit, cursor, filters))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_binary(request.match_info["binary_id"]))


async def patch(request: web.Request) -> web.Response:
    """Fields and a state change in one transaction: a refused change changes nothing."""
    body = await decode(request, m.BinaryPatch)
    return json_response(await request.app[UPLOADS].change(actor(request), request.match_info["binary_id"], body))


def _content_digest(header: str | None) -> str | None:
    """The SHA-256 (hex) of a ``Content-Digest: sha-256=:<base64>:`` header (RFC 9530), if any."""
    if header is None:
        return None
    for item in header.split(","):
        match = _DIGEST_ITEM.fullmatch(item)
        if not match:
            raise DomainError("malformed Content-Digest header")
        if match.group(1).lower() == "sha-256":
            try:
                raw = base64.b64decode(match.group(2), validate=True)
            except binascii.Error:
                raise DomainError("malformed Content-Digest header") from None
            if len(raw) != 32:
                raise DomainError("Content-Digest sha-256 must be 32 bytes")
            return raw.hex()
    return None


async def _body(request: web.Request, idle: float) -> AsyncIterator[bytes]:
    """The request body in chunks; refuses it (408) when no byte arrives for ``idle`` seconds,
    so a stalled client cannot keep its part in flight."""
    content = request.content
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await content.read(UPLOAD_CHUNK)
        except TimeoutError:
            raise RequestTimeout(f"no data arrived for {idle:g} seconds; the part was not stored") from None
        if not chunk:
            return
        yield chunk


def _upload(request: web.Request) -> tuple[int, AsyncIterator[bytes], str | None]:
    """A part upload's announced length, body and declared SHA-256."""
    length = request.content_length
    if length is None:
        raise LengthRequired("Content-Length is required")
    declared = _content_digest(request.headers.get("Content-Digest"))
    return length, _body(request, request.app[CONFIG].upload_idle_timeout), declared


async def put_part(request: web.Request) -> web.Response:
    index = parse_int(request.match_info["index"], 6)
    if index is None:
        raise Invalid("part index must be a positive whole number", {"index": ["not a number"]})
    length, body, declared = _upload(request)
    part = await request.app[UPLOADS].receive_part(actor(request), request.match_info["binary_id"], index, length, body,
                                                   declared)  # fmt: skip
    return json_response(part)


async def get_parts(request: web.Request) -> web.Response:
    return json_response(await request.app[UPLOADS].progress(request.match_info["binary_id"]))


async def put_content(request: web.Request) -> web.Response:
    length, body, declared = _upload(request)
    binary_id = request.match_info["binary_id"]
    return json_response(await request.app[UPLOADS].receive_content(actor(request), binary_id, length, body, declared))
