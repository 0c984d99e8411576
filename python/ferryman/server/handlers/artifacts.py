"""Artifacts and their versions."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.server.handlers.common import actor
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.ArtifactCreate)
    return json_response(await request.app[CATALOG].create_artifact(actor(request), body), 201)


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return json_response(await request.app[CATALOG].list_artifacts(limit, cursor, request.query.get("name")))


async def get(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_artifact(request.match_info["artifact_id"]))


async def patch(request: web.Request) -> web.Response:
    body = await decode(request, m.ArtifactPatch)
    return json_response(await request.app[CATALOG].patch_artifact(actor(request), request.match_info["artifact_id"], body))


async def delete(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_artifact(actor(request), request.match_info["artifact_id"])
    return web.Response(status=204)


async def create_version(request: web.Request) -> web.Response:
    body = await decode(request, m.VersionCreate)
    version = await request.app[CATALOG].create_version(actor(request), request.match_info["artifact_id"], body)
    return json_response(version, 201)


async def list_versions(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    return json_response(await request.app[CATALOG].list_versions(request.match_info["artifact_id"], limit, cursor))


async def get_version(request: web.Request) -> web.Response:
    return json_response(await request.app[CATALOG].get_version(request.match_info["version_id"]))


async def patch_version(request: web.Request) -> web.Response:
    body = await decode(request, m.VersionPatch)
    return json_response(await request.app[CATALOG].patch_version(actor(request), request.match_info["version_id"], body))
