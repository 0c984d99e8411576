"""Signing keys and binary signatures. Private keys never reach the server: it stores public
keys and verifies signatures made elsewhere (``openssl``, ``ferryman sign``)."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.catalog.sqlite import Row
from ferryman.errors import Invalid, InvalidKey, InvalidSignature, NotFound
from ferryman.server.handlers.common import actor, page_response
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG, KEY_CACHE
from ferryman.signing import load_public_key


def _rfc3339(ts: int | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_view(row: Row) -> m.SigningKey:
    return m.SigningKey(**{**row, "not_before": _rfc3339(row["not_before"]), "not_after": _rfc3339(row["not_after"])})


async def create_key(request: web.Request) -> web.Response:
    body = await decode(request, m.SigningKeyCreate)
    try:
        key = load_public_key(body.public_key)
    except InvalidKey as e:
        raise Invalid(str(e), {"public_key": [str(e)]}) from None
    algorithm = body.algorithm or key.default_algorithm
    if not key.supports(algorithm):
        raise Invalid(f"algorithm {algorithm} does not fit a {key.kind} key", {"algorithm": ["does not fit the key"]})
    not_before, not_after = key.validity or (None, None)
    row = await request.app[CATALOG].create_signing_key(
        actor(request),
        {
            "name": body.name,
            "keyid": key.keyid,
            "algorithm": algorithm,
            "kind": key.kind,
            "bits": key.bits,
            "public_key": key.spki_pem,
            "not_before": not_before,
            "not_after": not_after,
        },
    )
    return json_response(_key_view(row), 201)


async def list_keys(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    state = request.query.get("state")
    if state not in (None, "active", "revoked"):
        raise Invalid("state must be active or revoked", {"state": ["active | revoked"]})
    page = await request.app[CATALOG].list_signing_keys(limit, cursor, state)
    return page_response(page, lambda **row: _key_view(row))


async def get_key(request: web.Request) -> web.Response:
    return json_response(_key_view(await request.app[CATALOG].get_signing_key(request.match_info["key_id"])))


async def patch_key(request: web.Request) -> web.Response:
    body = await decode(request, m.SigningKeyPatch)
    row = await request.app[CATALOG].patch_signing_key(actor(request), request.match_info["key_id"], body)
    return json_response(_key_view(row))


async def verified_signature(request: web.Request, body: m.SignatureCreate, digest_hex: str) -> tuple[Row, bytes, str]:
    """Finds the key a submission names, checks it is active and inside its certificate's
    validity, and verifies the signature over ``digest_hex`` (422 otherwise). Returns the key's
    row, the raw signature and the message form that verified."""
    catalog = request.app[CATALOG]
    if (body.signing_key_id is None) == (body.keyid is None):
        raise Invalid("give exactly one of signing_key_id and keyid", {"signing_key_id": ["or keyid, not both"]})
    try:
        if body.signing_key_id is not None:
            key_row = await catalog.get_signing_key(body.signing_key_id)
        else:
            key_row = await catalog.find_signing_key(body.keyid or "")
    except NotFound as e:
        field = "signing_key_id" if body.signing_key_id is not None else "keyid"
        raise Invalid(f"unknown signing key: {e.detail}", {field: ["unknown signing key"]}) from None
    if key_row["state"] != "active":
        raise Invalid("the signing key is revoked", {"signing_key_id": ["revoked"]})
    now = int(time.time())
    nb, na = key_row["not_before"], key_row["not_after"]
    if (nb is not None and now < nb) or (na is not None and now > na):
        raise Invalid(
            f"the key's certificate is valid from {_rfc3339(nb)} to {_rfc3339(na)}",
            {"signing_key_id": ["certificate not valid now"]},
        )
    key = request.app[KEY_CACHE].get(key_row["keyid"], key_row["public_key"])
    try:
        raw = key.decode_signature(body.signature)
        form = key.verify_binary(bytes.fromhex(digest_hex), raw, key_row["algorithm"])
    except InvalidSignature as e:
        raise Invalid(str(e), {"signature": [str(e)]}) from None
    return key_row, raw, form


async def create_signature(request: web.Request) -> web.Response:
    body = await decode(request, m.SignatureCreate)
    catalog = request.app[CATALOG]
    binary = await catalog.get_binary(request.match_info["binary_id"])
    key_row, raw, form = await verified_signature(request, body, binary["sha256"])
    row, created = await catalog.add_signature(actor(request), binary["id"], key_row, raw.hex(), form)
    view = m.Signature(**row, keyid=key_row["keyid"], algorithm=key_row["algorithm"], key_state=key_row["state"])
    return json_response(view, 201 if created else 200)


async def list_signatures(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    page = await request.app[CATALOG].list_signatures(request.match_info["binary_id"], limit, cursor)
    return page_response(page, m.Signature)
