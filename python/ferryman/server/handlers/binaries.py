"""Binaries: creation, state changes, part uploads, one-shot content and downloads."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web

from ferryman.catalog import Catalog
from ferryman.catalog import models as m
from ferryman.catalog.sqlite import Row
from ferryman.errors import Conflict, DomainError, Invalid, LengthRequired, RequestTimeout, TooLarge
from ferryman.jobs import start_hashing
from ferryman.lifecycle import State
from ferryman.parsing import parse_int
from ferryman.server.handlers.common import actor, page_response
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG, CONFIG, STORE, TASKS
from ferryman.sink import SinkResult

log = logging.getLogger("ferryman.server")
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


async def move_to_hashable(request: web.Request, binary_id: str) -> Row:
    """hashable, and in the same transaction on to hashing (DESIGN.md), which is then started."""
    catalog = request.app[CATALOG]
    row = await catalog.complete_upload(actor(request), binary_id)
    start_hashing(catalog, request.app[STORE], request.app[TASKS], binary_id)
    return row


async def patch(request: web.Request) -> web.Response:
    """Fields and a state change in one transaction: a refused change changes nothing."""
    body = await decode(request, m.BinaryPatch)
    binary_id = request.match_info["binary_id"]
    catalog, store, who = request.app[CATALOG], request.app[STORE], actor(request)
    if body.state is m.UNSET:
        return json_response(m.Binary(**await catalog.patch_binary_fields(who, binary_id, body)))
    target = State(body.state)
    if target is State.HASHABLE:
        row = await catalog.complete_upload(who, binary_id, fields=body)
    else:
        row = await catalog.transition(who, binary_id, target, fields=body)
    if target in (State.HASHABLE, State.HASHING):
        start_hashing(catalog, store, request.app[TASKS], binary_id)
    elif target in (State.UPLOADABLE, State.DESTROYED):
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


async def _keep_lease(catalog: Catalog, token: str, lease: float, upload: asyncio.Future[SinkResult]) -> Exception:
    """Renews an in-flight marker while its upload runs. If renewing fails, the upload is
    stopped rather than left writing after its marker expired (hashing may then begin), and the
    failure is returned."""
    while True:
        await asyncio.sleep(lease / 3)
        try:
            await catalog.renew_part(token, lease)
        except Exception as e:
            log.warning("could not renew the lease of an upload (%s); stopping it", e)
            upload.cancel()
            return e


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
    idle, lease = request.app[CONFIG].upload_idle_timeout, request.app[CONFIG].upload_lease
    token = await catalog.begin_part(who, binary["id"], index, lease)
    try:
        offset = (index - 1) * binary["part_size"]
        upload = asyncio.ensure_future(store.receive_part(binary["id"], _body(request, idle), offset, expected))
        keeper = asyncio.ensure_future(_keep_lease(catalog, token, lease, upload))
        try:
            result = await upload
        except asyncio.CancelledError:
            if keeper.done() and not keeper.cancelled():
                raise keeper.result() from None
            raise
        finally:
            keeper.cancel()
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
    index = parse_int(request.match_info["index"], 6)
    if index is None:
        raise Invalid("part index must be a positive whole number", {"index": ["not a number"]})
    binary = await request.app[CATALOG].get_binary(request.match_info["binary_id"])
    if binary["state"] != State.UPLOADABLE:
        raise Conflict(f"binary is {binary['state']}; parts are accepted only while uploadable")
    part = await _receive(request, binary, index)
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
