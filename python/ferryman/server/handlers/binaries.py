"""Binaries: creation, state changes, part uploads, one-shot content and downloads."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.catalog.sqlite import Row, Tx
from ferryman.errors import Conflict, DomainError, Invalid, LengthRequired, TooLarge
from ferryman.jobs import start_hashing
from ferryman.lifecycle import State
from ferryman.server.handlers.common import actor, page_response
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG, STORE, TASKS

UPLOAD_CHUNK = 1 << 20
_DIGEST_ITEM = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*")


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.BinaryCreate)
    row = await request.app[CATALOG].create_binary(actor(request), request.match_info["version_id"], body)
    return json_response(m.Binary(**row), 201)


async def list_for_version(request: web.Request) -> web.Response:
    version_id = request.match_info["version_id"]
    await request.app[CATALOG].get_version(version_id)
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in ("target", "state", "sha256")}
    page = await request.app[CATALOG].list_binaries(limit, cursor, {**filters, "version_id": version_id})
    return page_response(page, m.Binary)


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    filters = {k: v for k, v in request.query.items() if k in ("version_id", "target", "state", "sha256")}
    return page_response(await request.app[CATALOG].list_binaries(limit, cursor, filters), m.Binary)


async def get(request: web.Request) -> web.Response:
    return json_response(m.Binary(**await request.app[CATALOG].get_binary(request.match_info["binary_id"])))


def _all_parts_present(tx: Tx, binary: Row) -> None:
    busy = tx.all("SELECT DISTINCT idx FROM uploads_in_flight WHERE binary_id = ? ORDER BY idx", [binary["id"]])
    if busy:
        raise Conflict("uploads in progress for parts " + ", ".join(str(r["idx"]) for r in busy))
    count = max(1, -(-binary["size"] // binary["part_size"]))
    have = {r["idx"] for r in tx.all("SELECT idx FROM parts WHERE binary_id = ?", [binary["id"]])}
    missing = [i for i in range(1, count + 1) if i not in have]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise Conflict(f"parts missing: {shown}", missing=missing[:1000])


async def move_to_hashable(request: web.Request, binary_id: str) -> Row:
    """hashable, and in the same transaction on to hashing (DESIGN.md), which is then started."""
    catalog = request.app[CATALOG]
    row = await catalog.transition(actor(request), binary_id, State.HASHABLE, check=_all_parts_present, then=State.HASHING)
    start_hashing(catalog, request.app[STORE], request.app[TASKS], binary_id)
    return row


async def patch(request: web.Request) -> web.Response:
    body = await decode(request, m.BinaryPatch)
    binary_id = request.match_info["binary_id"]
    catalog, store = request.app[CATALOG], request.app[STORE]
    row = await catalog.patch_binary_fields(actor(request), binary_id, body)
    if body.state is not m.UNSET:
        target = State(body.state)
        if target is State.HASHABLE:
            row = await move_to_hashable(request, binary_id)
        elif target is State.HASHING:
            row = await catalog.transition(actor(request), binary_id, State.HASHING)
            start_hashing(catalog, store, request.app[TASKS], binary_id)
        else:
            row = await catalog.transition(actor(request), binary_id, target)
            if target in (State.UPLOADABLE, State.DESTROYED):
                await asyncio.get_running_loop().run_in_executor(None, store.delete, binary_id)
    return json_response(m.Binary(**row))


def _parse_content_digest(header: str | None) -> str | None:
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


def _part_size(binary: Row, index: int) -> int:
    count = max(1, -(-binary["size"] // binary["part_size"]))
    if not 1 <= index <= count:
        raise Invalid(f"part index must be 1 to {count}", {"index": [f"1..{count}"]})
    return min(binary["part_size"], binary["size"] - (index - 1) * binary["part_size"])


async def _receive(request: web.Request, binary: Row, index: int) -> Row:
    """Streams one part into its range of the upload, checks it and records it; a bad part is
    not recorded (its bytes are overwritten by the next upload of that part)."""
    expected = _part_size(binary, index)
    length = request.content_length
    if length is None:
        raise LengthRequired("Content-Length is required")
    if length > expected:
        raise TooLarge(f"part {index} has {expected} bytes; {length} were sent")
    if length < expected:
        raise Invalid(f"part {index} has {expected} bytes; {length} were sent", {"content-length": [str(expected)]})
    declared = _parse_content_digest(request.headers.get("Content-Digest"))
    store, catalog, who = request.app[STORE], request.app[CATALOG], actor(request)
    token = await catalog.begin_part(who, binary["id"], index)
    try:
        offset = (index - 1) * binary["part_size"]
        result = await store.receive_part(binary["id"], request.content.iter_chunked(UPLOAD_CHUNK), offset, expected)
        if result.size != expected:
            raise Invalid(f"part {index} has {expected} bytes; {result.size} arrived", {"body": ["short"]})
        if declared is not None and declared != result.sha256:
            raise Invalid(
                f"part {index} SHA-256 is {result.sha256}; Content-Digest said {declared}",
                {"content-digest": ["does not match the body"]},
            )
        return await catalog.record_part(who, binary["id"], index, result.size, result.sha256)
    finally:
        await catalog.end_part(token)


async def put_part(request: web.Request) -> web.Response:
    text = request.match_info["index"]
    if not text.isdigit() or len(text) > 6:
        raise Invalid("part index must be a positive whole number", {"index": ["not a number"]})
    binary = await request.app[CATALOG].get_binary(request.match_info["binary_id"])
    if binary["state"] != State.UPLOADABLE:
        raise Conflict(f"binary is {binary['state']}; parts are accepted only while uploadable")
    part = await _receive(request, binary, int(text))
    return json_response(m.PartInfo(index=part["idx"], size=part["size"], sha256=part["sha256"], created_at=part["created_at"]))


async def get_parts(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG]
    binary = await catalog.get_binary(request.match_info["binary_id"])
    rows = await catalog.parts(binary["id"])
    have = {r["idx"] for r in rows}
    return json_response(
        m.Parts(
            binary_id=binary["id"],
            state=binary["state"],
            part_size=binary["part_size"],
            part_count=binary["part_count"],
            parts=[m.PartInfo(index=r["idx"], size=r["size"], sha256=r["sha256"], created_at=r["created_at"]) for r in rows],
            missing=[i for i in range(1, binary["part_count"] + 1) if i not in have],
        )
    )


async def put_content(request: web.Request) -> web.Response:
    binary = await request.app[CATALOG].get_binary(request.match_info["binary_id"])
    if binary["state"] != State.UPLOADABLE:
        raise Conflict(f"binary is {binary['state']}; content is accepted only while uploadable")
    if binary["part_count"] != 1:
        raise Conflict(
            f"the binary has {binary['part_count']} parts; upload them with PUT .../parts/{{index}}",
            part_count=binary["part_count"],
        )
    await _receive(request, binary, 1)
    row = await move_to_hashable(request, binary["id"])
    return json_response(m.Binary(**row))
