"""Channels, cohorts and releases. The release graph's rules are the pure
``ferryman.releases.graph``; this module stores what they allow."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import msgspec

from ferryman.catalog import models as m
from ferryman.catalog import rules
from ferryman.catalog.rules import check_id, now, parse_time, to_time
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, page_of, to, update_logged
from ferryman.errors import Conflict, Invalid
from ferryman.ids import new_id
from ferryman.releases import CountPhase, PercentPhase, Release, TagsPhase, check_graph, insert_release

__all__ = ["Channels", "release_view", "to_release"]


def to_release(row: Row) -> Release:
    """A stored release as the graph and resolution see it."""
    phase: PercentPhase | CountPhase | TagsPhase | None = None
    if row["phase"]:
        p = json.loads(row["phase"])
        if p["mode"] == "percent":
            phase = PercentPhase(p["value"])
        elif p["mode"] == "count":
            phase = CountPhase(p["value"], row["claimed"])
        else:
            phase = TagsPhase(frozenset(p["tags"]))
    return Release(
        id=row["id"], bundle_id=row["bundle_id"], created_at=row["created_at"], version=row["version"],
        version_requirement=row["version_requirement"], next_id=row["next_release_id"], required=bool(row["required"]),
        disabled=bool(row["disabled"]), schedule_at=to_time(row["schedule_at"]), phase=phase,
        require_replicated=_flag(row.get("require_replicated")), halted=bool(row.get("halted")),
    )  # fmt: skip


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def release_view(row: Row) -> Row:
    out = dict(row)
    out["required"] = bool(out["required"])
    out["disabled"] = bool(out["disabled"])
    out["require_replicated"] = _flag(out.get("require_replicated"))
    out["phase"] = json.loads(out["phase"]) if out["phase"] else None
    out["halted"] = bool(out.get("halted"))
    for f in ("halt", "advance"):
        out[f] = json.loads(out[f]) if out.get(f) else None
    return out


def _channel_view(tx: Tx, row: Row) -> Row:
    latest = tx.one("SELECT id FROM releases WHERE channel_id = ? AND next_release_id IS NULL", [row["id"]])
    return {**row, "latest_release_id": latest["id"] if latest else None}


def _patch(tx: Tx, table: str, kind: str, id_: str, body: msgspec.Struct) -> Row:
    """A patch of a named resource (a new name must be free), logged."""
    before = get_or_404(tx, table, id_, kind)
    changes = {f: getattr(body, f) for f in body.__struct_fields__ if getattr(body, f) is not msgspec.UNSET}
    renamed = "name" in changes and changes["name"] != before["name"]
    if renamed and tx.one(f"SELECT id FROM {table} WHERE name = ?", [changes["name"]]):
        raise Conflict(f"a {kind} named {changes['name']!r} exists", {"name": ["already taken"]})
    return update_logged(tx, table, id_, kind, changes, before, dict)


def _graph(tx: Tx, channel_id: str) -> dict[str, Release]:
    return {r["id"]: to_release(r) for r in tx.all("SELECT * FROM releases WHERE channel_id = ?", [channel_id])}


def _channel_exists(tx: Tx, channel_id: str | None) -> None:
    if channel_id is not None and not tx.one("SELECT id FROM channels WHERE id = ?", [channel_id]):
        raise Invalid(f"no channel {channel_id}", {"channel_id": ["unknown channel"]})


class Channels:
    db: Database

    async def create_channel(self, actor: str, body: m.ChannelCreate) -> m.Channel:
        def run(tx: Tx) -> Row:
            if tx.one("SELECT id FROM channels WHERE name = ?", [body.name]):
                raise Conflict(f"a channel named {body.name!r} exists", {"name": ["already taken"]})
            t = now()
            row: Row = {"id": new_id("channel"), "name": body.name, "description": body.description, "created_at": t,
                        "updated_at": t}  # fmt: skip
            tx.insert("channels", row)
            tx.event("create", "channel", row["id"], None, row)
            return _channel_view(tx, row)

        return to(m.Channel, await self.db.tx(actor, run))

    async def get_channel(self, channel_id: str) -> m.Channel:
        check_id(channel_id, "channel", "channel")
        row = await self.db.read(lambda tx: _channel_view(tx, get_or_404(tx, "channels", channel_id, "channel")))
        return to(m.Channel, row)

    async def list_channels(self, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.Channel]:
        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("channels", limit, cursor, equal={"name": name} if name is not None else None)
            page.items = [_channel_view(tx, r) for r in page.items]
            return page

        return page_of(m.Channel, await self.db.read(run))

    async def patch_channel(self, actor: str, channel_id: str, body: m.ChannelPatch) -> m.Channel:
        check_id(channel_id, "channel", "channel")
        row = await self.db.tx(actor, lambda tx: _channel_view(tx, _patch(tx, "channels", "channel", channel_id, body)))
        return to(m.Channel, row)

    # Cohorts -----------------------------------------------------------------------------------

    async def create_cohort(self, actor: str, body: m.CohortCreate) -> m.Cohort:
        if body.channel_id is not None:
            check_id(body.channel_id, "channel", "channel", "channel_id")

        def run(tx: Tx) -> Row:
            _channel_exists(tx, body.channel_id)
            if tx.one("SELECT id FROM cohorts WHERE name = ?", [body.name]):
                raise Conflict(f"a cohort named {body.name!r} exists", {"name": ["already taken"]})
            t = now()
            row: Row = {"id": new_id("cohort"), "name": body.name, "channel_id": body.channel_id,
                        "description": body.description, "region": body.region, "created_at": t,
                        "updated_at": t}  # fmt: skip
            tx.insert("cohorts", row)
            tx.event("create", "cohort", row["id"], None, row)
            return row

        return to(m.Cohort, await self.db.tx(actor, run))

    async def get_cohort(self, cohort_id: str) -> m.Cohort:
        check_id(cohort_id, "cohort", "cohort")
        return to(m.Cohort, await self.db.read(lambda tx: get_or_404(tx, "cohorts", cohort_id, "cohort")))

    async def list_cohorts(self, limit: int, cursor: str | None, filters: Mapping[str, str]) -> m.Page[m.Cohort]:
        equal = {c: filters[c] for c in ("name", "channel_id") if c in filters}
        return page_of(m.Cohort, await self.db.read(lambda tx: tx.page("cohorts", limit, cursor, equal=equal)))

    async def patch_cohort(self, actor: str, cohort_id: str, body: m.CohortPatch) -> m.Cohort:
        check_id(cohort_id, "cohort", "cohort")
        if isinstance(body.channel_id, str):
            check_id(body.channel_id, "channel", "channel", "channel_id")

        def run(tx: Tx) -> Row:
            _channel_exists(tx, body.channel_id if isinstance(body.channel_id, str) else None)
            return _patch(tx, "cohorts", "cohort", cohort_id, body)

        return to(m.Cohort, await self.db.tx(actor, run))

    # Releases ----------------------------------------------------------------------------------

    async def create_release(self, actor: str, channel_id: str, body: m.ReleaseCreate) -> m.Release:
        check_id(channel_id, "channel", "channel")
        check_id(body.bundle_id, "bundle", "bundle", "bundle_id")
        rules.check_semver(body.version)
        requirement = rules.requirement(body.version_requirement)
        phase = rules.phase(body.phase)
        schedule_at = parse_time(body.schedule_at, "schedule_at")
        halt, advance = rules.halt(body.halt), rules.advance(body.advance)

        def run(tx: Tx) -> Row:
            get_or_404(tx, "channels", channel_id, "channel")
            if not tx.one("SELECT id FROM bundles WHERE id = ?", [body.bundle_id]):
                raise Invalid(f"no bundle {body.bundle_id}", {"bundle_id": ["unknown bundle"]})
            if tx.one("SELECT id FROM releases WHERE channel_id = ? AND name = ?", [channel_id, body.name]):
                raise Conflict(f"the channel has a release named {body.name!r}", {"name": ["already taken"]})
            t = now()
            row: Row = {
                "id": new_id("release"), "channel_id": channel_id, "name": body.name, "bundle_id": body.bundle_id,
                "version": body.version, "version_requirement": requirement, "next_release_id": body.next_release_id,
                "required": int(body.required), "disabled": int(body.disabled), "schedule_at": schedule_at,
                "phase": json.dumps(phase) if phase else None, "claimed": 0, "created_at": t, "updated_at": t,
                "require_replicated": None if body.require_replicated is None else int(body.require_replicated),
                "halt": json.dumps(halt) if halt else None, "halted": 0, "halted_reason": None, "halted_at": None,
                "advance": json.dumps(advance) if advance else None,
            }  # fmt: skip
            graph = _graph(tx, channel_id)
            after = insert_release(graph, to_release(row), dt.datetime.now(dt.UTC), previous_id=body.previous_release_id)
            tx.insert("releases", row)
            for rid, rel in after.items():
                if rid in graph and graph[rid].next_id != rel.next_id:
                    before = release_view(get_or_404(tx, "releases", rid, "release"))
                    tx.update("releases", rid, {"next_release_id": rel.next_id, "updated_at": t})
                    tx.event("relink", "release", rid, before, release_view(get_or_404(tx, "releases", rid, "release")))
            view = release_view(get_or_404(tx, "releases", row["id"], "release"))
            tx.event("create", "release", row["id"], None, view)
            return view

        return to(m.Release, await self.db.tx(actor, run))

    async def list_releases(self, channel_id: str, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.Release]:
        check_id(channel_id, "channel", "channel")
        equal = {"channel_id": channel_id} | ({"name": name} if name is not None else {})

        def run(tx: Tx) -> m.Page[Row]:
            get_or_404(tx, "channels", channel_id, "channel")
            page = tx.page("releases", limit, cursor, equal=equal)
            page.items = [release_view(r) for r in page.items]
            return page

        return page_of(m.Release, await self.db.read(run))

    async def get_release(self, release_id: str) -> m.Release:
        check_id(release_id, "release", "release")
        return to(m.Release, await self.db.read(lambda tx: release_view(get_or_404(tx, "releases", release_id, "release"))))

    async def patch_release(self, actor: str, release_id: str, body: m.ReleasePatch) -> m.Release:
        check_id(release_id, "release", "release")
        changes: dict[str, Any] = {}
        for f in ("name", "required", "disabled"):
            if getattr(body, f) is not msgspec.UNSET:
                changes[f] = getattr(body, f) if f == "name" else int(getattr(body, f))
        if body.version is not msgspec.UNSET:
            rules.check_semver(body.version)
            changes["version"] = body.version
        if body.version_requirement is not msgspec.UNSET:
            changes["version_requirement"] = rules.requirement(body.version_requirement)
        if body.schedule_at is not msgspec.UNSET:
            changes["schedule_at"] = parse_time(body.schedule_at, "schedule_at")
        if body.phase is not msgspec.UNSET:
            p = rules.phase(body.phase)
            changes["phase"] = json.dumps(p) if p else None
        if body.require_replicated is not msgspec.UNSET:
            changes["require_replicated"] = None if body.require_replicated is None else int(body.require_replicated)
        if body.halt is not msgspec.UNSET:
            h = rules.halt(body.halt)
            changes["halt"] = json.dumps(h) if h else None
        if body.advance is not msgspec.UNSET:
            a = rules.advance(body.advance)
            changes["advance"] = json.dumps(a) if a else None
        action = "update"
        if body.halted is not msgspec.UNSET:
            # By hand: a hold (logged as a halt) or a resume; a resumed release halts again
            # at the next failure that breaks its rule.
            action = "halt" if body.halted else "resume"

        def run(tx: Tx) -> Row:
            before = get_or_404(tx, "releases", release_id, "release")
            renamed = "name" in changes and changes["name"] != before["name"]
            sql = "SELECT id FROM releases WHERE channel_id = ? AND name = ?"
            if renamed and tx.one(sql, [before["channel_id"], changes["name"]]):
                raise Conflict(f"the channel has a release named {changes['name']!r}", {"name": ["already taken"]})
            graph = _graph(tx, before["channel_id"])
            graph[release_id] = to_release({**before, **changes})
            check_graph(graph)
            if body.halted is not msgspec.UNSET:
                t = now()
                held = {"halted": 1, "halted_reason": f"held by {tx.actor}", "halted_at": t} if body.halted else {}
                changes.update(held or {"halted": 0, "halted_reason": None, "halted_at": None})
            return update_logged(tx, "releases", release_id, "release", changes, release_view(before), release_view, action)

        return to(m.Release, await self.db.tx(actor, run))
