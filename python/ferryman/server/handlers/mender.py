"""Mender's device API for mender-client (rules: ``ferryman.agents.mender``; decisions:
``services.agents``). A device authenticates with a signed request; once accepted it gets a
device token (opaque to it; stored hashed, revoked by rejecting or deleting the device) and
uses it as a Bearer token, checked here against the catalog on every request. Statuses are
answered with exactly 204 (mender-client rolls back on a 200) and 409 to abort."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from aiohttp import web

from ferryman import grants
from ferryman.agents import mender
from ferryman.catalog.rules import hash_token
from ferryman.errors import Invalid, NotFound, Unauthenticated
from ferryman.server.handlers.api_keys import new_token
from ferryman.server.handlers.updates import download_url, grant_expiry
from ferryman.server.http import decode, json_response
from ferryman.server.keys import AGENTS, CATALOG, DEVICE_TOKEN, URL_SECRET
from ferryman.services.agents import AgentDevice

__all__ = ["auth_request", "deployment_log", "deployment_status", "inventory", "next_v1", "next_v2"]

MAX_AUTH_BODY = 64 * 1024
MAX_LOG = 4000  # characters of a deployment log kept with the action


def _no_content() -> web.Response:
    return web.Response(status=204)


async def _agent(request: web.Request) -> AgentDevice:
    found = await request.app[AGENTS].find(token_hash=request[DEVICE_TOKEN])
    if found is None:
        raise Unauthenticated("the token is not valid")
    return found


def _deployment_id(request: web.Request) -> int:
    try:
        return uuid.UUID(request.match_info["deployment_id"]).int
    except ValueError:
        raise NotFound(f"no deployment {request.match_info['deployment_id']!r}") from None


async def auth_request(request: web.Request) -> web.Response:
    """Verifies the signature over the raw body, then: an accepted device gets a new token
    (the raw body of a 200), any other 401 (it asks again at its next poll)."""
    raw = await request.content.read(MAX_AUTH_BODY + 1)
    if len(raw) > MAX_AUTH_BODY:
        raise Invalid(f"an authentication request is at most {MAX_AUTH_BODY} bytes")
    req = mender.verify_auth_request(raw, request.headers.get("X-MEN-Signature"))
    token = new_token()
    device, accepted = await request.app[CATALOG].authenticate_agent(
        req.identity, mender.identifier_of(req.identity), req.public_key, req.keyid, hash_token(token)
    )
    if not accepted:
        raise Unauthenticated(f"device {device.identifier} is {device.admission}; an operator must accept it")
    return web.Response(text=token, content_type="application/jwt")


async def _next(request: web.Request, provides: mender.DeviceProvides) -> web.Response:
    agent = await _agent(request)
    agents = request.app[AGENTS]
    if agent.device.target == "any" and provides.device_type:
        # A device that joined by itself takes the device type its agent reports as its target.
        await request.app[CATALOG].adopt_target(agent.device.id, provides.device_type)
        agent = await _agent(request)
    poll = await agents.poll(agent)
    action = poll.step.action
    if poll.step.kind != "deploy" or action is None:
        return _no_content()
    artifact = next((e for e in poll.entries if e.mender is not None), None)
    if artifact is None or artifact.mender is None:
        return _no_content()  # nothing in the bundle a Mender client can install
    if provides.artifact_name == artifact.mender.artifact_name:
        await agents.progress(agent, action.id, "installed", "success", "already installed")
        return _no_content()
    expires = grant_expiry(request)
    url = download_url(request, poll.region, artifact, grants.issue(request.app[URL_SECRET], artifact.binary_id, expires))
    return json_response({
        "id": str(uuid.UUID(int=action.id)),
        "artifact": {
            "id": artifact.binary_id,
            "artifact_name": artifact.mender.artifact_name,
            "source": {"uri": url, "expire": dt.datetime.fromtimestamp(expires, dt.UTC).isoformat().replace("+00:00", "Z")},
            "device_types_compatible": artifact.mender.device_types,
        },
    })  # fmt: skip


async def next_v2(request: web.Request) -> web.Response:
    body = await decode(request, mender.NextRequest)
    return await _next(request, body.device_provides)


async def next_v1(request: web.Request) -> web.Response:
    q = request.query
    return await _next(request, mender.DeviceProvides(q.get("artifact_name", ""), q.get("device_type", "")))


async def deployment_status(request: web.Request) -> web.Response:
    """A deployment's status: 204, or 409 when it was aborted (its release pulled or the
    deployment canceled) while still under way."""
    agent = await _agent(request)
    body = await decode(request, mender.StatusUpdate)
    action_id = _deployment_id(request)
    agents = request.app[AGENTS]
    if body.status in mender.ABORTABLE:
        await agents.still_wanted(agent, action_id)
    status, result = mender.status_outcome(body.status)
    await agents.progress(agent, action_id, status, result, body.substate)
    return _no_content()


class _Log(msgspec.Struct):
    messages: list[dict[str, object]] = []


async def deployment_log(request: web.Request) -> web.Response:
    """A failed deployment's log: its last lines are kept with the action."""
    agent = await _agent(request)
    body = await decode(request, _Log)
    action_id = _deployment_id(request)
    lines = [str(m.get("message", "")) for m in body.messages]
    text = "\n".join(lines)[-MAX_LOG:]
    catalog = request.app[CATALOG]
    action = await catalog.device_action(agent.device.id, action_id)
    # The log may come before or after the final status: the action's state stays as it is.
    await catalog.change_action(agent.device.id, agent.device.id, action_id, action.status, detail=text or None,
                                expect=(action.status,))  # fmt: skip
    return _no_content()


class _Attribute(msgspec.Struct):
    name: str
    value: object = None


async def inventory(request: web.Request) -> web.Response:
    """Inventory attributes, stored on the device: PUT replaces them, PATCH merges."""
    agent = await _agent(request)
    attrs = await decode(request, list[_Attribute])
    values = {a.name: a.value if isinstance(a.value, str) else msgspec.json.encode(a.value).decode() for a in attrs}
    await request.app[CATALOG].set_device_attributes(agent.device.id, values, replace=request.method == "PUT")
    return web.Response(status=200)
