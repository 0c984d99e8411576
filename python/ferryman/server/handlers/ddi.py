"""hawkBit's DDI API for SWUpdate's suricatta and RAUC's hawkBit updater (documents and rules:
``ferryman.agents.ddi``; decisions: ``services.agents``). The controller ID is the device's
identifier; it authenticates with its own device token (``TargetToken``) or the tenant's gateway
token (``GatewayToken``, checked by the middleware)."""

from __future__ import annotations

from aiohttp import web

from ferryman import grants
from ferryman.agents import ddi
from ferryman.errors import NotFound, Unauthenticated
from ferryman.server.handlers.updates import download_url, grant_expiry, origin
from ferryman.server.http import decode, json_response
from ferryman.server.keys import AGENTS, CONFIG, DEVICE_TOKEN, URL_SECRET
from ferryman.services.agents import AgentDevice, Poll

__all__ = ["cancel_action", "cancel_feedback", "config_data", "deployment", "feedback", "installed", "root"]


async def _agent(request: web.Request) -> AgentDevice:
    """The device the path names, if the tenant is ours and the credentials are its own (or the
    gateway's); 404 for another tenant, 401 otherwise (a token of another device included)."""
    if request.match_info["tenant"].lower() != request.app[CONFIG].ddi_tenant.lower():
        raise NotFound(f"no tenant {request.match_info['tenant']!r}")
    identifier = request.match_info["controller_id"]
    token_hash = request.get(DEVICE_TOKEN)
    agents = request.app[AGENTS]
    found = await agents.find(token_hash=token_hash) if token_hash else await agents.find(identifier=identifier)
    if found is None or found.device.identifier != identifier:
        raise Unauthenticated("the token is not this controller's")
    return found


def _base(request: web.Request) -> str:
    m = request.match_info
    return f"{origin(request)}/{m['tenant']}/controller/v1/{m['controller_id']}"


def _action_id(request: web.Request) -> int:
    text = request.match_info["action_id"]
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"no action {text!r}")
    return int(text)


async def root(request: web.Request) -> web.Response:
    """The root poll: the polling interval, and a link to what is due (deploymentBase or
    cancelAction), and to configData until the device has sent it."""
    agent = await _agent(request)
    poll = await request.app[AGENTS].poll(agent)
    step, link = poll.step, None
    if step.action is not None and step.kind in ("deploy", "cancel"):
        link = ("deploymentBase" if step.kind == "deploy" else "cancelAction", step.action.id)
    doc = ddi.poll_doc(_base(request), request.app[CONFIG].agent_poll_interval, link, agent.config_wanted)
    return json_response(doc)


def _deployment(request: web.Request, poll: Poll, history: str) -> web.Response:
    assert poll.step.action is not None
    expires, secret = grant_expiry(request), request.app[URL_SECRET]
    urls = [download_url(request, poll.region, e, grants.issue(secret, e.binary_id, expires)) for e in poll.entries]
    forced = poll.release is not None and poll.release.required
    return json_response(ddi.deployment_doc(poll.step.action.id, poll.entries, urls, forced, history))


async def deployment(request: web.Request) -> web.Response:
    """``deploymentBase/{id}``: the action's chunks, one per binary the device gets."""
    agent = await _agent(request)
    poll = await request.app[AGENTS].action_view(agent, _action_id(request))
    assert poll.step.action is not None
    if poll.step.action.status not in ("open", "canceling"):
        raise NotFound(f"action {poll.step.action.id} is {poll.step.action.status}")
    return _deployment(request, poll, "RUNNING")


async def installed(request: web.Request) -> web.Response:
    """``installedBase/{id}``: an action the device finished, as it was deployed."""
    agent = await _agent(request)
    poll = await request.app[AGENTS].action_view(agent, _action_id(request))
    assert poll.step.action is not None
    if poll.step.action.status != "closed":
        raise NotFound(f"action {poll.step.action.id} is {poll.step.action.status}")
    return _deployment(request, poll, "FINISHED")


async def feedback(request: web.Request) -> web.Response:
    """The device's progress on an action; ``closed`` ends it (its report says how)."""
    agent = await _agent(request)
    body = await decode(request, ddi.Feedback)
    status, result = ddi.feedback_outcome(body)
    await request.app[AGENTS].progress(agent, _action_id(request), status, result, ddi.details_text(body))
    return web.Response(status=200)


async def cancel_action(request: web.Request) -> web.Response:
    agent = await _agent(request)
    action_id = _action_id(request)
    poll = await request.app[AGENTS].action_view(agent, action_id)
    assert poll.step.action is not None
    if poll.step.action.status not in ("canceling", "canceled"):
        raise NotFound(f"action {action_id} is not being canceled")
    return json_response(ddi.cancel_doc(action_id))


async def cancel_feedback(request: web.Request) -> web.Response:
    """The device's answer to a cancel: once it says anything final, the action is canceled."""
    agent = await _agent(request)
    body = await decode(request, ddi.CancelFeedback)
    if body.status.execution.lower() in ("closed", "canceled", "rejected"):
        await request.app[AGENTS].canceled(agent, _action_id(request), ddi.details_text(body))
    return web.Response(status=200)


async def config_data(request: web.Request) -> web.Response:
    """The device's attributes (``configData``), stored on the device."""
    agent = await _agent(request)
    body = await decode(request, ddi.ConfigData)
    mode = body.mode.lower()
    await request.app[AGENTS].catalog.set_device_attributes(
        agent.device.id, body.data, replace=mode == "replace", remove=mode == "remove", config=True
    )
    return web.Response(status=200)
