"""The OpenAPI 3.1 document, generated from the route table and the msgspec types the handlers
decode and encode."""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from ferryman import __version__
from ferryman.catalog import models as m
from ferryman.server.middlewares import DEVICE, PUBLIC
from ferryman.server.routes import ROUTES, Route

__all__ = ["document"]

REF = "#/components/schemas/{name}"


class Problem(msgspec.Struct):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: dict[str, list[str]]


def _list_of(item: Any) -> Any:
    return getattr(item, "__args__", (None,))[0]


BINARY = {"type": "string", "format": "binary"}
CURSOR = {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9_-]*$"}
TOKEN = {"type": "string", "pattern": "^bin_[0-9a-z]{26}\\.[0-9]{1,12}\\.[A-Za-z0-9_-]{43}$"}
# Request headers of the range-capable downloads (RFC 9110) and of the device update check.
DOWNLOAD_HEADERS = ("Range", "If-Range", "If-None-Match", "If-Modified-Since")
# An empty device header counts as absent.
DEVICE_HEADERS = {name: {"type": "string", "maxLength": 128, "pattern": f"^$|{p}"} for name, p in m.DEVICE_HEADERS.values()}
PROBLEMS = {
    400: "Malformed request (JSON, header, or a client that went away)",
    401: "No valid token",
    403: "The token's role may not do this (or the download grant is invalid or expired)",
    404: "No such resource",
    408: "The upload stalled (no data for the idle timeout)",
    409: "Conflicts with the resource's state",
    411: "Content-Length is required",
    413: "Body larger than allowed",
    415: "Not application/json",
    416: "No requested range lies within the content",
    422: "Well-formed but unacceptable (fields named in errors)",
    507: "The server is out of disk space; nothing was changed",
}


def _path_param(name: str) -> dict[str, Any]:
    if name == "index":
        schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 10_000}
    elif name == "token":
        schema = TOKEN
    else:
        schema = {"type": "string", "pattern": m.ID_PATTERN}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _problems(r: Route) -> list[int]:
    """The problem statuses a route can answer with."""
    out = {400, 422}
    if r.roles != PUBLIC:
        out |= {401, 403}
    if "{" in r.path:
        out.add(404)
    if r.path.startswith("/dl/"):
        out |= {403, 404}
    if r.method in ("POST", "PUT", "PATCH", "DELETE"):
        out |= {409, 507}
    if r.body is not None:
        out |= {413, 415}
    if r.raw_body and r.method == "PUT":
        out |= {408, 411, 413}
    if r.raw_body and r.method in ("GET", "HEAD"):
        out |= {409, 416}
    return sorted(out)


@functools.cache
def document() -> dict[str, Any]:
    types: list[Any] = [Problem]
    documented = [r for r in ROUTES if r.documented]
    for r in documented:
        for t in (r.body, _list_of(r.response) if _is_list(r.response) else r.response):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    refs = dict(zip(types, schemas, strict=True))
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    paths: dict[str, dict[str, Any]] = {}
    for r in documented:
        op: dict[str, Any] = {"summary": r.summary, "operationId": f"{r.method.lower()}_{_slug(r.path)}"}
        params = [_path_param(p) for p in re.findall(r"{(\w+)}", r.path)]
        if _is_list(r.response) and r.method == "GET":  # a POST answering a list answers it whole
            params += [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "cursor", "in": "query", "schema": CURSOR},
            ]
        if r.raw_body and r.method in ("GET", "HEAD"):
            params += [{"name": h, "in": "header", "schema": {"type": "string"}} for h in DOWNLOAD_HEADERS]
        if r.roles == DEVICE and r.method == "GET":
            params += [{"name": h, "in": "header", "schema": schema} for h, schema in DEVICE_HEADERS.items()]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[r.body]}}}
        elif r.raw_body and r.method == "PUT":
            # Not required: the content of an empty binary is an empty body.
            op["requestBody"] = {"required": False, "content": {"application/octet-stream": {"schema": BINARY}}}
        op["responses"] = _responses(r, refs, problem)
        if r.roles != PUBLIC:
            op["security"] = [{"bearer": []}]
            op["x-roles"] = sorted(r.roles)
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ferryman", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _responses(r: Route, refs: dict[Any, Any], problem: dict[str, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if _is_list(r.response):
        item = refs[_list_of(r.response)]
        page = {
            "type": "object",
            "properties": {"items": {"type": "array", "items": item}, "next_cursor": {"type": ["string", "null"]}},
            "required": ["items", "next_cursor"],
        }
        ok["content"] = {"application/json": {"schema": page}}
    elif r.response is not None:
        ok["content"] = {"application/json": {"schema": refs[r.response]}}
    elif r.text:
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(status): ok for status in (r.status, *r.also)}
    if r.raw_body and r.method in ("GET", "HEAD"):
        body = {"application/octet-stream": {"schema": BINARY}} if r.method == "GET" else None
        responses["200"] = {"description": "The whole content", **({"content": body} if body else {})}
        ranges = {"application/octet-stream": {"schema": BINARY}, "multipart/byteranges": {"schema": BINARY}}
        responses["206"] = {
            "description": "One range, or several as multipart/byteranges",
            **({"content": ranges} if body else {}),
        }
        responses["304"] = {"description": "Not modified (If-None-Match, If-Modified-Since)"}
    for status in _problems(r):
        responses[str(status)] = {"description": PROBLEMS[status], "content": problem}
    return responses


def _is_list(t: Any) -> bool:
    return getattr(t, "__origin__", None) is list


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
