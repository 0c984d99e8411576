"""The OpenAPI 3.1 document, generated from the route table and the msgspec types the handlers
decode and encode."""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from ferryman import __version__
from ferryman.server.middlewares import PUBLIC
from ferryman.server.routes import ROUTES

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


@functools.cache
def document() -> dict[str, Any]:
    types: list[Any] = [Problem]
    for r in ROUTES:
        for t in (r.body, _list_of(r.response) if _is_list(r.response) else r.response):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    refs = dict(zip(types, schemas, strict=True))
    problem = {"application/problem+json": {"schema": refs[Problem]}}
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        op: dict[str, Any] = {"summary": r.summary, "operationId": f"{r.method.lower()}_{_slug(r.path)}"}
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in re.findall(r"{(\w+)}", r.path)
        ]
        if _is_list(r.response):
            params += [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[r.body]}}}
        elif r.raw_body and r.method == "PUT":
            op["requestBody"] = {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if _is_list(r.response):
            ok["content"] = {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": refs[_list_of(r.response)]},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                        "required": ["items", "next_cursor"],
                    }
                }
            }
        elif r.response is not None:
            ok["content"] = {"application/json": {"schema": refs[r.response]}}
        responses: dict[str, Any] = {str(r.status): ok}
        for status in ("400", "401", "403", "404", "409", "422"):
            responses[status] = {"description": "Problem", "content": problem}
        op["responses"] = responses
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


def _is_list(t: Any) -> bool:
    return getattr(t, "__origin__", None) is list


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
