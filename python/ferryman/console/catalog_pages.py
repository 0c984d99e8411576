"""The console's pages of what is released: artifacts, their versions and binaries (state,
parts, signatures and who signed), bundles, signing keys (added and revoked here), API keys
(admin) and the audit log."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.console.auth import Viewer, redirect, viewer
from ferryman.console.render import form_body, page
from ferryman.errors import DomainError
from ferryman.server.handlers.api_keys import new_token
from ferryman.server.keys import CATALOG, SIGNATURES

__all__ = ["api_keys_change", "artifact", "artifacts", "binary", "bundle", "bundles", "events", "keys", "keys_change", "version"]

SIGNERS = frozenset({"signer"})
EVENT_FILTERS = ("actor", "resource_id", "resource_type", "action", "since", "until")


@viewer()
async def artifacts(request: web.Request, v: Viewer) -> web.Response:
    name = request.query.get("name", "").strip() or None
    found = await request.app[CATALOG].list_artifacts(100, request.query.get("cursor") or None, name)
    return page("artifacts.html", v=v, artifacts=found.items, next_cursor=found.next_cursor, name=name or "")


@viewer()
async def artifact(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    a = await catalog.get_artifact(request.match_info["artifact_id"])
    versions = (await catalog.list_versions(a.id, 200, None)).items
    return page("artifact.html", v=v, artifact=a, versions=versions)


@viewer()
async def version(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    ver = await catalog.get_version(request.match_info["version_id"])
    a = await catalog.get_artifact(ver.artifact_id)
    binaries = (await catalog.list_binaries(200, None, {"version_id": ver.id})).items
    return page("version.html", v=v, artifact=a, version=ver, binaries=binaries)


@viewer()
async def binary(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    b = await catalog.get_binary(request.match_info["binary_id"])
    ver = await catalog.get_version(b.version_id)
    a = await catalog.get_artifact(b.artifact_id)
    parts = await catalog.list_parts(b.id)
    signatures = (await catalog.list_signatures(b.id)).items
    keys = {s.signing_key_id: await catalog.get_signing_key(s.signing_key_id) for s in signatures}
    missing = [i for i in range(b.part_count) if i not in {p.index for p in parts}]
    return page("binary.html", v=v, binary=b, version=ver, artifact=a, parts=parts, missing=missing, signatures=signatures,
                keys=keys)  # fmt: skip


@viewer()
async def bundles(request: web.Request, v: Viewer) -> web.Response:
    name = request.query.get("name", "").strip() or None
    found = await request.app[CATALOG].list_bundles(100, request.query.get("cursor") or None, None, name)
    return page("bundles.html", v=v, bundles=found.items, next_cursor=found.next_cursor, name=name or "")


@viewer()
async def bundle(request: web.Request, v: Viewer) -> web.Response:
    b = await request.app[CATALOG].get_bundle(request.match_info["bundle_id"])
    return page("bundle.html", v=v, bundle=b)


@viewer()
async def keys(request: web.Request, v: Viewer) -> web.Response:
    state = request.query.get("state") if request.query.get("state") in ("active", "revoked") else None
    found = await request.app[CATALOG].list_signing_keys(100, request.query.get("cursor") or None, state)
    api_keys = (await request.app[CATALOG].list_api_keys(500, None)).items if v.role == "admin" else []
    return page("keys.html", v=v, keys=found.items, next_cursor=found.next_cursor, api_keys=api_keys, state=state or "",
                may_sign=v.may(SIGNERS), error=request.query.get("error"))  # fmt: skip


@viewer(roles=SIGNERS, form=True)
async def keys_change(request: web.Request, v: Viewer) -> web.StreamResponse:
    """Adds a public key (PEM, or an X.509 certificate with its validity window) or revokes one."""
    form = await request.post()
    try:
        if form.get("action") == "revoke":
            await request.app[CATALOG].patch_signing_key(v.actor, str(form.get("key_id", "")), m.SigningKeyPatch(state="revoked"))
        else:
            body = form_body(
                m.SigningKeyCreate, name=str(form.get("name", "")).strip(), public_key=str(form.get("public_key", ""))
            )
            await request.app[SIGNATURES].register_key(v.actor, body)
    except DomainError as e:
        return redirect(f"/ui/keys?error={quote(e.detail, safe='')}")
    return redirect("/ui/keys")


@viewer(roles=frozenset({"admin"}), form=True)
async def api_keys_change(request: web.Request, v: Viewer) -> web.StreamResponse:
    """Creates an API key (its token is on the answer, once, never in a URL) or deletes one."""
    form = await request.post()
    catalog = request.app[CATALOG]
    try:
        if form.get("action") == "delete":
            await catalog.delete_api_key(v.actor, str(form.get("key_id", "")))
            return redirect("/ui/keys")
        token = new_token()
        body = form_body(m.ApiKeyCreate, name=str(form.get("name", "")).strip(), role=str(form.get("role", "")))
        key = await catalog.create_api_key(v.actor, body, hash_token(token))
    except DomainError as e:
        detail = e.detail
        return redirect(f"/ui/keys?error={quote(detail, safe='')}")
    return page("api_key.html", v=v, key=key, token=token)


@viewer()
async def events(request: web.Request, v: Viewer) -> web.Response:
    q = request.query
    filters = {k: q[k].strip() for k in EVENT_FILTERS if q.get(k, "").strip()}
    try:
        found = await request.app[CATALOG].list_events(100, q.get("cursor") or None, filters, newest_first=True)
    except DomainError as e:
        return page("events.html", status=e.status, v=v, events=[], next_cursor=None, filters=filters, error=e.detail)
    return page("events.html", v=v, events=found.items, next_cursor=found.next_cursor, filters=filters, error=None)
