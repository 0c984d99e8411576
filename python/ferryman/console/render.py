"""Pages from Jinja2 templates (autoescaped), and the static assets under names that carry a
hash of their content, so a browser may keep each for a year and still never use a stale one."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, TypeVar

import jinja2
import msgspec
from aiohttp import web

from ferryman.errors import Invalid

T = TypeVar("T")

__all__ = ["ASSETS", "asset", "form_body", "page", "static"]

_PACKAGE = "ferryman.console"


def _assets() -> dict[str, tuple[str, bytes]]:
    """Hashed name -> (content type, bytes), for each file of ``static/``."""
    out = {}
    for f in resources.files(_PACKAGE).joinpath("static").iterdir():
        data = f.read_bytes()
        stem, _, ext = f.name.rpartition(".")
        kind = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}[ext]
        out[f"{stem}.{hashlib.sha256(data).hexdigest()[:12]}.{ext}"] = (kind, data)
    return out


ASSETS = _assets()
_BY_NAME = {f"{n.split('.')[0]}.{n.rsplit('.', 1)[1]}": n for n in ASSETS}


def static(name: str) -> str:
    """The URL of a static file by its plain name (``console.css``)."""
    return f"/ui/static/{_BY_NAME[name]}"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader(_PACKAGE, "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the test that renders it
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["static"] = static


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _ENV.get_template(template).render(**context)
    resp = web.Response(text=html, status=status, content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    # Nothing but our own files; no framing (clickjacking), no inline scripts.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    return resp


def form_body(shape: type[T], **fields: Any) -> T:
    """A form's fields as the API's request type, checked as the API checks a JSON body (the
    same constraints; a bad field is an Invalid naming it)."""
    try:
        return msgspec.convert(fields, shape)
    except msgspec.ValidationError as e:
        raise Invalid(f"invalid form: {e}") from None


async def asset(request: web.Request) -> web.Response:
    found = ASSETS.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    kind, data = found
    resp = web.Response(body=data, content_type=kind)
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return resp
