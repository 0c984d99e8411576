"""Signing keys and binary signatures (verified by the signatures service)."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.errors import Invalid
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG, CONFIG, SIGNATURES


async def create_key(request: web.Request) -> web.Response:
    body = await decode(request, m.SigningKeyCreate)
    return json_response(await request.app[SIGNATURES].register_key(actor(request), body), 201)


async def list_keys(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    state = request.query.get("state")
    if state not in (None, "active", "revoked"):
        raise Invalid("state must be active or revoked", {"state": ["active | revoked"]})
    keyid, name = request.query.get("keyid"), request.query.get("name")
    return json_response(await request.app[CATALOG].list_signing_keys(limit, cursor, state, keyid, name))


async def get_key(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_signing_key(request.match_info["key_id"]))


async def policy(request: web.Request) -> web.Response:
    return json_response(m.SigningPolicy(signature_threshold=request.app[CONFIG].signature_threshold))


async def patch_key(request: web.Request) -> web.Response:
    body = await decode(request, m.SigningKeyPatch)
    return json_response(await request.app[CATALOG].patch_signing_key(actor(request), request.match_info["key_id"], body))


async def create_signature(request: web.Request) -> web.Response:
    body = await decode(request, m.SignatureCreate)
    signature, created = await request.app[SIGNATURES].sign_binary(actor(request), request.match_info["binary_id"], body)
    return json_response(signature, 201 if created else 200)


async def list_signatures(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return json_response(await request.app[CATALOG].list_signatures(request.match_info["binary_id"], limit, cursor))


async def sign_bundle(request: web.Request) -> web.Response:
    body = await decode(request, m.SignatureCreate)
    signature, created = await request.app[SIGNATURES].sign_bundle(actor(request), request.match_info["bundle_id"], body)
    return json_response(signature, 201 if created else 200)
