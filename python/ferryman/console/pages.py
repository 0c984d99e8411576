"""The console's pages: what each shows, read from the catalog through its protocol as the API's
handlers read it, and the forms that steer a release (each a PATCH the API would make, in the
name of the viewer's API key)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from ferryman.catalog import models as m
from ferryman.console.auth import WRITE_ROLES, Viewer, redirect, viewer
from ferryman.console.graph import layout
from ferryman.console.render import form_body, page
from ferryman.errors import DomainError
from ferryman.releases import Reported
from ferryman.releases.words import phase_words
from ferryman.server.keys import CATALOG, CHECKINS

__all__ = ["channel", "channel_release", "cohorts", "device", "devices", "overview", "release", "release_change"]

PAGE = 50
DEVICE_FILTERS = ("identifier", "cohort_id", "tag", "target", "admission", "reported_release_id", "seen_since", "seen_before")


@viewer()
async def overview(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    channels = (await catalog.list_channels(100, None)).items
    rollouts, fleet = [], []
    for ch in channels:
        releases = (await catalog.list_releases(ch.id, 500, None)).items
        on = await catalog.devices_on([r.id for r in releases])
        fleet.append((ch, [(r, on[r.id]) for r in releases if on.get(r.id)]))
        if ch.latest_release_id is None:
            continue
        latest = await catalog.get_release(ch.latest_release_id)
        if latest.phase is not None or latest.halted or latest.schedule_at:
            rollouts.append((ch, latest, await catalog.release_stats(latest.id)))
    waiting = (await catalog.list_binaries(20, None, {"state": "signable"})).items
    events = (await catalog.list_events(15, None, {}, newest_first=True)).items
    return page("overview.html", v=v, fleet=fleet, rollouts=rollouts, waiting=waiting, events=events,
                phase_words=phase_words)  # fmt: skip


@viewer()
async def devices(request: web.Request, v: Viewer) -> web.Response:
    """Devices a page at a time, filtered in the catalog (indexes), never in the page."""
    q = request.query
    filters = {k: q[k].strip() for k in DEVICE_FILTERS if q.get(k, "").strip()}
    catalog = request.app[CATALOG]
    try:
        found = await catalog.list_devices(PAGE, q.get("cursor") or None, filters)
    except DomainError as e:
        return page("devices.html", status=e.status, v=v, devices=[], next_cursor=None, filters=filters,
                    cohorts=[], error=e.detail)  # fmt: skip
    cohorts = (await catalog.list_cohorts(500, None, {})).items
    return page("devices.html", v=v, devices=found.items, next_cursor=found.next_cursor, filters=filters,
                cohorts=cohorts, error=None)  # fmt: skip


@viewer()
async def device(request: web.Request, v: Viewer) -> web.Response:
    """A device: its facts, history (reports, agent actions), overrides, and on request what
    it would get now and why (a dry run: nothing is claimed or recorded)."""
    catalog = request.app[CATALOG]
    d = await catalog.get_device(request.match_info["device_id"])
    cohort = await catalog.get_cohort(d.cohort_id) if d.cohort_id else None
    reports = await catalog.device_reports(d.id, 20)
    actions = await catalog.list_device_actions(d.id, 20)
    overrides = (await catalog.list_overrides(50, None, d.id)).items
    answer = None
    if "resolve" in request.query:
        reported = Reported(d.reported_release_id, d.reported_bundle_id, d.reported_version)
        answer = (await request.app[CHECKINS].check_in(reported, device=d, actor=v.actor, write=False)).decision
    return page("device.html", v=v, device=d, cohort=cohort, reports=reports, actions=actions, overrides=overrides,
                answer=answer)  # fmt: skip


@viewer()
async def channel(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    ch = await catalog.get_channel(request.match_info["channel_id"])
    releases = (await catalog.list_releases(ch.id, 500, None)).items
    stats = await catalog.group_stats("channel", ch.id)
    counts = {r.release_id: r for r in stats.releases or []}
    nodes, edges = layout(releases)
    on = await catalog.devices_on([r.id for r in releases])
    rows = max((n.row for n in nodes), default=0) + 1
    may_steer = v.may(WRITE_ROLES)
    bundles = (await catalog.list_bundles(100, None)).items if may_steer else []
    return page("channel.html", v=v, channel=ch, nodes=nodes, edges=edges, rows=rows, counts=counts, on=on,
                phase_words=phase_words, may_steer=may_steer, bundles=bundles, error=request.query.get("error"))  # fmt: skip


@viewer(roles=frozenset(WRITE_ROLES), form=True)
async def channel_release(request: web.Request, v: Viewer) -> web.StreamResponse:
    """Adds a release as the channel's latest (a share of devices first, if one is given)."""
    form = await request.post()
    channel_id = request.match_info["channel_id"]
    share = str(form.get("percent", "")).strip()
    try:
        body = form_body(
            m.ReleaseCreate, name=str(form.get("name", "")).strip(), bundle_id=str(form.get("bundle_id", "")),
            version=str(form.get("version", "")).strip() or None, required=form.get("required") == "on",
            phase={"mode": "percent", "value": float(share) / 100} if share else None,
        )  # fmt: skip
        await request.app[CATALOG].create_release(v.actor, channel_id, body)
    except (ValueError, DomainError) as e:
        detail = e.detail if isinstance(e, DomainError) else "the share must be a number from 0 to 100"
        return redirect(f"/ui/channels/{_quote(channel_id)}?error={_quote(detail)}")
    return redirect(f"/ui/channels/{_quote(channel_id)}")


@viewer()
async def cohorts(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    filters = {k: request.query[k].strip() for k in ("name", "channel_id") if request.query.get(k, "").strip()}
    found = await catalog.list_cohorts(PAGE, request.query.get("cursor") or None, filters)
    channels = {c.id: c for c in (await catalog.list_channels(500, None)).items}
    return page("cohorts.html", v=v, cohorts=found.items, next_cursor=found.next_cursor, channels=channels, filters=filters)


@viewer()
async def release(request: web.Request, v: Viewer) -> web.Response:
    catalog = request.app[CATALOG]
    r = await catalog.get_release(request.match_info["release_id"])
    ch = await catalog.get_channel(r.channel_id)
    stats = await catalog.release_stats(r.id)
    return page("release.html", v=v, release=r, channel=ch, stats=stats, phase_words=phase_words,
                may_steer=v.may(WRITE_ROLES), error=request.query.get("error"))  # fmt: skip


def _phase(form: Any) -> dict[str, Any] | None:
    """The phase form's choice, as the API's ``phase`` object (checked with the patch)."""
    mode = str(form.get("mode", ""))
    if mode == "all":
        return None
    if mode == "percent":
        return {"mode": "percent", "value": float(str(form.get("percent", ""))) / 100}
    if mode == "count":
        return {"mode": "count", "value": int(str(form.get("count", "")))}
    if mode == "tags":
        return {"mode": "tags", "tags": [t.strip() for t in str(form.get("tags", "")).split(",") if t.strip()]}
    raise ValueError(f"no phase {mode!r}")


@viewer(roles=frozenset(WRITE_ROLES), form=True)
async def release_change(request: web.Request, v: Viewer) -> web.StreamResponse:
    """One steering action on a release, then back to its page (which shows the outcome)."""
    form = await request.post()
    release_id = request.match_info["release_id"]
    action = str(form.get("action", ""))
    try:
        body = {
            "phase": lambda: form_body(m.ReleasePatch, phase=_phase(form)),
            "hold": lambda: m.ReleasePatch(halted=True),
            "resume": lambda: m.ReleasePatch(halted=False),
            "disable": lambda: m.ReleasePatch(disabled=True),
            "enable": lambda: m.ReleasePatch(disabled=False),
        }[action]()
        await request.app[CATALOG].patch_release(v.actor, release_id, body)
    except KeyError:
        raise web.HTTPBadRequest(text=f"no action {action!r}") from None
    except (ValueError, DomainError) as e:
        detail = e.detail if isinstance(e, DomainError) else "the phase must be a number (or tags)"
        return redirect(f"/ui/releases/{_quote(release_id)}?error={_quote(detail)}")
    return redirect(f"/ui/releases/{_quote(release_id)}")


def _quote(text: str) -> str:
    return quote(text, safe="")
