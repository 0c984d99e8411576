"""Artifacts and their versions."""

from __future__ import annotations

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.server.handlers.common import actor, page_response
from ferryman.server.http import decode, json_response, page_params
from ferryman.server.keys import CATALOG


async def create(request: web.Request) -> web.Response:
    body = await decode(request, m.ArtifactCreate)
    return json_response(m.Artifact(**await request.app[CATALOG].create_artifact(actor(request), body)), 201)


async def list_(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    page = await request.app[CATALOG].list_artifacts(limit, cursor, request.query.get("name"))
    return page_response(page, m.Artifact)


async def get(request: web.Request) -> web.Response:
    return json_response(m.Artifact(**await request.app[CATALOG].get_artifact(request.match_info["artifact_id"])))


async def patch(request: web.Request) -> web.Response:
    body = await decode(request, m.ArtifactPatch)
    row = await request.app[CATALOG].patch_artifact(actor(request), request.match_info["artifact_id"], body)
    return json_response(m.Artifact(**row))


async def delete(request: web.Request) -> web.Response:
    await request.app[CATALOG].delete_artifact(actor(request), request.match_info["artifact_id"])
    return web.Response(status=204)


async def create_version(request: web.Request) -> web.Response:
    body = await decode(request, m.VersionCreate)
    row = await request.app[CATALOG].create_version(actor(request), request.match_info["artifact_id"], body)
    return json_response(m.Version(**row), 201)


async def list_versions(request: web.Request) -> web.Response:
    limit, cursor = page_params(request)
    page = await request.app[CATALOG].list_versions(request.match_info["artifact_id"], limit, cursor)
    return page_response(page, m.Version)


async def get_version(request: web.Request) -> web.Response:
    return json_response(m.Version(**await request.app[CATALOG].get_version(request.match_info["version_id"])))


async def patch_version(request: web.Request) -> web.Response:
    body = await decode(request, m.VersionPatch)
    row = await request.app[CATALOG].patch_version(actor(request), request.match_info["version_id"], body)
    return json_response(m.Version(**row))
