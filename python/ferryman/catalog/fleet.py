"""Catalog operations for distribution: bundles, channels, cohorts, releases, devices, bundle
overrides, and update resolution with its atomic ``count``-phase claims. Mixed into ``Catalog``;
the graph rules and the resolution itself are the pure ``ferryman.releases`` modules."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import msgspec
import semver

from ferryman.catalog import models as m
from ferryman.catalog.sqlite import Page, Row, SqliteCatalog, Tx, check_id, get_or_404, now, update_logged
from ferryman.errors import Conflict, Invalid, Unauthenticated
from ferryman.ids import is_id, new_id, new_ids
from ferryman.parsing import parse_rfc3339
from ferryman.releases import (
    CountPhase,
    Decision,
    Device,
    Override,
    PercentPhase,
    Release,
    Reported,
    TagsPhase,
    check_graph,
    insert_release,
    resolve,
)

__all__ = ["CHECKIN_FLUSH_SECONDS", "CheckIn", "FleetOps", "World", "bundle_hash", "parse_time"]

CHECKIN_FLUSH_SECONDS = 1.0
GENERATION_RECHECK_SECONDS = 0.05
LAST_SEEN_RESOLUTION = 60.0
# Devices found by token are kept with the snapshot (and dropped with it on any durable change,
# device patches included): a fleet's steady polling then reads nothing from SQLite.
DEVICE_CACHE_SIZE = 100_000  # about 55 MB


def parse_time(value: str | None, field: str) -> str | None:
    """An RFC 3339 time, normalised to UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (so text order is
    time order)."""
    if value is None:
        return None
    t = parse_rfc3339(value)
    if t is None:
        raise Invalid(f"{field} is not an RFC 3339 time", {field: ["RFC 3339 with a zone, e.g. 2026-01-31T12:00:00Z"]})
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def bundle_hash(entries: list[dict[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON of the ordered entries: ``{"entries": [{"artifact",
    "custom_metadata", "sha256", "size", "target", "version"}, ...]}`` with keys sorted, no
    whitespace (separators ``,`` and ``:``), UTF-8, non-ASCII characters unescaped."""
    doc = {
        "entries": [{k: e[k] for k in ("artifact", "custom_metadata", "sha256", "size", "target", "version")} for e in entries]
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _phase(body: m.PhaseIn | None) -> dict[str, Any] | None:
    if body is None:
        return None
    if body.mode == "percent":
        if body.value is None or not 0 <= body.value <= 1 or body.tags is not None:
            raise Invalid("a percent phase has a value from 0 to 1", {"phase": ["value: 0..1"]})
        return {"mode": "percent", "value": float(body.value)}
    if body.mode == "count":
        if body.value is None or body.value != int(body.value) or body.value < 1 or body.tags is not None:
            raise Invalid("a count phase has a whole value of at least 1", {"phase": ["value: integer >= 1"]})
        return {"mode": "count", "value": int(body.value)}
    if not body.tags or body.value is not None:
        raise Invalid("a tags phase lists at least one tag", {"phase": ["tags: non-empty list"]})
    return {"mode": "tags", "tags": sorted(set(body.tags))}


def _requirement(text: str | None) -> str | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        for p in parts:
            if not p or p[0] not in "<>=!":
                raise ValueError(p)
            semver.Version(0).match(p)
    except ValueError:
        raise Invalid(
            f"version_requirement {text!r} is not a SemVer requirement",
            {"version_requirement": ["comparisons like >=1.2.0,<2.0.0"]},
        ) from None
    return ",".join(parts)


def _to_release(row: Row) -> Release:
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
        id=row["id"],
        bundle_id=row["bundle_id"],
        created_at=row["created_at"],
        version=row["version"],
        version_requirement=row["version_requirement"],
        next_id=row["next_release_id"],
        required=bool(row["required"]),
        disabled=bool(row["disabled"]),
        schedule_at=_time(row["schedule_at"]),
        phase=phase,
    )


def release_view(row: Row) -> Row:
    out = dict(row)
    out["required"] = bool(out["required"])
    out["disabled"] = bool(out["disabled"])
    out["phase"] = json.loads(out["phase"]) if out["phase"] else None
    return out


def device_view(row: Row) -> Row:
    out = {k: v for k, v in row.items() if k != "token_hash"}
    out["tags"] = json.loads(out["tags"])
    out["quarantined"] = bool(out["quarantined"])
    return out


class FleetOps:
    db: SqliteCatalog
    # Worker-thread state (see "Resolution" below); set up by Catalog.__init__.
    _world_cache: World | None
    _checkins: list[tuple[str, str, Row | None]]
    # The last decision recorded in the audit log for each device (this process's view).
    _last_decision: dict[str, tuple[str | None, ...]]
    _checkins_lock: threading.Lock
    _checkins_flushed: float
    _generation_checked: float
    _last_seen_written: dict[str, float]

    # Bundles -------------------------------------------------------------------------------

    def _bundle_view(self, tx: Tx, bundle: Row) -> Row:
        entries = tx.all(
            "SELECT e.binary_id, e.custom_metadata, b.target, b.size, b.sha256, v.version, a.name AS artifact "
            "FROM bundle_entries e JOIN binaries b ON b.id = e.binary_id JOIN versions v ON v.id = b.version_id "
            "JOIN artifacts a ON a.id = v.artifact_id WHERE e.bundle_id = ? ORDER BY e.position",
            [bundle["id"]],
        )
        for e in entries:
            e["custom_metadata"] = json.loads(e["custom_metadata"])
        sigs = tx.all(
            "SELECT s.id, s.signing_key_id, k.keyid, k.algorithm, s.signature, s.message, s.created_at, k.state AS key_state "
            "FROM bundle_signatures s JOIN signing_keys k ON k.id = s.signing_key_id WHERE s.bundle_id = ? ORDER BY s.rowid",
            [bundle["id"]],
        )
        return {**bundle, "entries": entries, "signatures": sigs}

    async def create_bundle(self, actor: str, body: m.BundleCreate) -> Row:
        entries_in = [e if isinstance(e, m.BundleEntryIn) else m.BundleEntryIn(binary_id=e) for e in body.binaries]
        for i, e in enumerate(entries_in):
            m.check_metadata(e.custom_metadata, f"binaries[{i}].custom_metadata")
            check_id(e.binary_id, "binary", "binary", f"binaries[{i}]")

        def run(tx: Tx) -> Row:
            seen: set[str] = set()
            for i, e in enumerate(entries_in):
                row = tx.one("SELECT state FROM binaries WHERE id = ?", [e.binary_id])
                field = f"binaries[{i}]"
                if row is None:
                    raise Invalid(f"no binary {e.binary_id}", {field: ["unknown binary"]})
                if row["state"] != "signed":
                    raise Invalid(
                        f"binary {e.binary_id} is {row['state']}; bundles take signed binaries",
                        {field: [f"binary is {row['state']}"]},
                    )
                if e.binary_id in seen:
                    raise Invalid(f"binary {e.binary_id} is listed twice", {field: ["duplicate"]})
                seen.add(e.binary_id)
            bundle: Row = {"id": new_id("bundle"), "name": body.name, "hash": "", "created_at": now()}
            tx.insert("bundles", bundle)
            for pos, e in enumerate(entries_in):
                tx.insert(
                    "bundle_entries",
                    {
                        "bundle_id": bundle["id"],
                        "position": pos,
                        "binary_id": e.binary_id,
                        "custom_metadata": msgspec.json.encode(e.custom_metadata).decode(),
                    },
                )
            view = self._bundle_view(tx, bundle)
            bundle["hash"] = view["hash"] = bundle_hash(view["entries"])
            tx.run("UPDATE bundles SET hash = ? WHERE id = ?", [bundle["hash"], bundle["id"]])
            tx.event("create", "bundle", bundle["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def get_bundle(self, bundle_id: str) -> Row:
        check_id(bundle_id, "bundle", "bundle")
        return await self.db.read(lambda tx: self._bundle_view(tx, get_or_404(tx, "bundles", bundle_id, "bundle")))

    async def list_bundles(self, limit: int, cursor: str | None) -> Page:
        def run(tx: Tx) -> Page:
            page = tx.page("bundles", limit, cursor)
            page.items = [self._bundle_view(tx, r) for r in page.items]
            return page

        return await self.db.read(run)

    async def add_bundle_signature(
        self, actor: str, bundle_id: str, key: Row, signature_hex: str, message: str
    ) -> tuple[Row, bool]:
        def run(tx: Tx) -> tuple[Row, bool]:
            get_or_404(tx, "bundles", bundle_id, "bundle")
            existing = tx.one(
                "SELECT * FROM bundle_signatures WHERE bundle_id = ? AND signing_key_id = ?", [bundle_id, key["id"]]
            )
            if existing:
                return existing, False
            row: Row = {
                "id": new_id("signature"),
                "bundle_id": bundle_id,
                "signing_key_id": key["id"],
                "signature": signature_hex,
                "message": message,
                "created_at": now(),
            }
            tx.insert("bundle_signatures", row)
            tx.event("sign", "bundle", bundle_id, None, {**row, "keyid": key["keyid"]})
            return row, True

        return await self.db.tx(actor, run)

    # Channels and cohorts --------------------------------------------------------------------

    def _channel_view(self, tx: Tx, row: Row) -> Row:
        latest = tx.one("SELECT id FROM releases WHERE channel_id = ? AND next_release_id IS NULL", [row["id"]])
        return {**row, "latest_release_id": latest["id"] if latest else None}

    async def create_channel(self, actor: str, body: m.ChannelCreate) -> Row:
        def run(tx: Tx) -> Row:
            if tx.one("SELECT id FROM channels WHERE name = ?", [body.name]):
                raise Conflict(f"a channel named {body.name!r} exists", {"name": ["already taken"]})
            t = now()
            row: Row = {
                "id": new_id("channel"),
                "name": body.name,
                "description": body.description,
                "created_at": t,
                "updated_at": t,
            }
            tx.insert("channels", row)
            tx.event("create", "channel", row["id"], None, row)
            return self._channel_view(tx, row)

        return await self.db.tx(actor, run)

    async def get_channel(self, channel_id: str) -> Row:
        check_id(channel_id, "channel", "channel")
        return await self.db.read(lambda tx: self._channel_view(tx, get_or_404(tx, "channels", channel_id, "channel")))

    async def list_channels(self, limit: int, cursor: str | None) -> Page:
        def run(tx: Tx) -> Page:
            page = tx.page("channels", limit, cursor)
            page.items = [self._channel_view(tx, r) for r in page.items]
            return page

        return await self.db.read(run)

    async def patch_channel(self, actor: str, channel_id: str, body: m.ChannelPatch) -> Row:
        check_id(channel_id, "channel", "channel")
        return await self.db.tx(actor, lambda tx: self._patch(tx, "channels", "channel", channel_id, body, self._channel_view))

    def _patch(self, tx: Tx, table: str, kind: str, id_: str, body: msgspec.Struct, view: Any) -> Row:
        before = get_or_404(tx, table, id_, kind)
        changes = {f: getattr(body, f) for f in body.__struct_fields__ if getattr(body, f) is not msgspec.UNSET}
        renamed = "name" in changes and changes["name"] != before["name"]
        if renamed and tx.one(f"SELECT id FROM {table} WHERE name = ?", [changes["name"]]):
            raise Conflict(f"a {kind} named {changes['name']!r} exists", {"name": ["already taken"]})
        after = update_logged(tx, table, id_, kind, changes, before, dict)
        return view(tx, after) if view else after

    async def create_cohort(self, actor: str, body: m.CohortCreate) -> Row:
        if body.channel_id is not None:
            check_id(body.channel_id, "channel", "channel", "channel_id")

        def run(tx: Tx) -> Row:
            if body.channel_id is not None and not tx.one("SELECT id FROM channels WHERE id = ?", [body.channel_id]):
                raise Invalid(f"no channel {body.channel_id}", {"channel_id": ["unknown channel"]})
            if tx.one("SELECT id FROM cohorts WHERE name = ?", [body.name]):
                raise Conflict(f"a cohort named {body.name!r} exists", {"name": ["already taken"]})
            t = now()
            row: Row = {
                "id": new_id("cohort"),
                "name": body.name,
                "channel_id": body.channel_id,
                "description": body.description,
                "created_at": t,
                "updated_at": t,
            }
            tx.insert("cohorts", row)
            tx.event("create", "cohort", row["id"], None, row)
            return row

        return await self.db.tx(actor, run)

    async def get_cohort(self, cohort_id: str) -> Row:
        check_id(cohort_id, "cohort", "cohort")
        return await self.db.read(lambda tx: get_or_404(tx, "cohorts", cohort_id, "cohort"))

    async def list_cohorts(self, limit: int, cursor: str | None) -> Page:
        return await self.db.read(lambda tx: tx.page("cohorts", limit, cursor))

    async def patch_cohort(self, actor: str, cohort_id: str, body: m.CohortPatch) -> Row:
        check_id(cohort_id, "cohort", "cohort")
        if isinstance(body.channel_id, str):
            check_id(body.channel_id, "channel", "channel", "channel_id")

        def run(tx: Tx) -> Row:
            if isinstance(body.channel_id, str) and not tx.one("SELECT id FROM channels WHERE id = ?", [body.channel_id]):
                raise Invalid(f"no channel {body.channel_id}", {"channel_id": ["unknown channel"]})
            return self._patch(tx, "cohorts", "cohort", cohort_id, body, None)

        return await self.db.tx(actor, run)

    # Releases ----------------------------------------------------------------------------------

    def _graph(self, tx: Tx, channel_id: str) -> dict[str, Release]:
        return {r["id"]: _to_release(r) for r in tx.all("SELECT * FROM releases WHERE channel_id = ?", [channel_id])}

    async def create_release(self, actor: str, channel_id: str, body: m.ReleaseCreate) -> Row:
        check_id(channel_id, "channel", "channel")
        check_id(body.bundle_id, "bundle", "bundle", "bundle_id")
        if body.version is not None and not semver.Version.is_valid(body.version):
            raise Invalid(f"version {body.version!r} is not SemVer", {"version": ["SemVer 2.0, e.g. 1.4.0"]})
        requirement = _requirement(body.version_requirement)
        phase = _phase(body.phase)
        schedule_at = parse_time(body.schedule_at, "schedule_at")

        def run(tx: Tx) -> Row:
            get_or_404(tx, "channels", channel_id, "channel")
            if not tx.one("SELECT id FROM bundles WHERE id = ?", [body.bundle_id]):
                raise Invalid(f"no bundle {body.bundle_id}", {"bundle_id": ["unknown bundle"]})
            if tx.one("SELECT id FROM releases WHERE channel_id = ? AND name = ?", [channel_id, body.name]):
                raise Conflict(f"the channel has a release named {body.name!r}", {"name": ["already taken"]})
            t = now()
            row: Row = {
                "id": new_id("release"),
                "channel_id": channel_id,
                "name": body.name,
                "bundle_id": body.bundle_id,
                "version": body.version,
                "version_requirement": requirement,
                "next_release_id": body.next_release_id,
                "required": int(body.required),
                "disabled": int(body.disabled),
                "schedule_at": schedule_at,
                "phase": json.dumps(phase) if phase else None,
                "claimed": 0,
                "created_at": t,
                "updated_at": t,
            }
            graph = self._graph(tx, channel_id)
            after = insert_release(graph, _to_release(row), dt.datetime.now(dt.UTC), previous_id=body.previous_release_id)
            tx.insert("releases", row)
            for rid, rel in after.items():
                if rid in graph and graph[rid].next_id != rel.next_id:
                    before = release_view(get_or_404(tx, "releases", rid, "release"))
                    tx.update("releases", rid, {"next_release_id": rel.next_id, "updated_at": t})
                    tx.event("relink", "release", rid, before, release_view(get_or_404(tx, "releases", rid, "release")))
            view = release_view(get_or_404(tx, "releases", row["id"], "release"))
            tx.event("create", "release", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def list_releases(self, channel_id: str, limit: int, cursor: str | None) -> Page:
        check_id(channel_id, "channel", "channel")

        def run(tx: Tx) -> Page:
            get_or_404(tx, "channels", channel_id, "channel")
            page = tx.page("releases", limit, cursor, equal={"channel_id": channel_id})
            page.items = [release_view(r) for r in page.items]
            return page

        return await self.db.read(run)

    async def get_release(self, release_id: str) -> Row:
        check_id(release_id, "release", "release")
        return await self.db.read(lambda tx: release_view(get_or_404(tx, "releases", release_id, "release")))

    async def patch_release(self, actor: str, release_id: str, body: m.ReleasePatch) -> Row:
        check_id(release_id, "release", "release")
        changes: Row = {}
        for f in ("name", "required", "disabled"):
            if getattr(body, f) is not msgspec.UNSET:
                changes[f] = getattr(body, f) if f == "name" else int(getattr(body, f))
        if body.version is not msgspec.UNSET:
            if body.version is not None and not semver.Version.is_valid(body.version):
                raise Invalid(f"version {body.version!r} is not SemVer", {"version": ["SemVer 2.0"]})
            changes["version"] = body.version
        if body.version_requirement is not msgspec.UNSET:
            changes["version_requirement"] = _requirement(body.version_requirement)
        if body.schedule_at is not msgspec.UNSET:
            changes["schedule_at"] = parse_time(body.schedule_at, "schedule_at")
        if body.phase is not msgspec.UNSET:
            p = _phase(body.phase)
            changes["phase"] = json.dumps(p) if p else None

        def run(tx: Tx) -> Row:
            before = get_or_404(tx, "releases", release_id, "release")
            renamed = "name" in changes and changes["name"] != before["name"]
            sql = "SELECT id FROM releases WHERE channel_id = ? AND name = ?"
            if renamed and tx.one(sql, [before["channel_id"], changes["name"]]):
                raise Conflict(f"the channel has a release named {changes['name']!r}", {"name": ["already taken"]})
            graph = self._graph(tx, before["channel_id"])
            graph[release_id] = _to_release({**before, **changes})
            check_graph(graph)
            return update_logged(tx, "releases", release_id, "release", changes, release_view(before), release_view)

        return await self.db.tx(actor, run)

    # Devices -----------------------------------------------------------------------------------

    async def create_device(self, actor: str, body: m.DeviceCreate, token_hash: str) -> Row:
        if body.cohort_id is not None:
            check_id(body.cohort_id, "cohort", "cohort", "cohort_id")

        def run(tx: Tx) -> Row:
            if body.cohort_id is not None and not tx.one("SELECT id FROM cohorts WHERE id = ?", [body.cohort_id]):
                raise Invalid(f"no cohort {body.cohort_id}", {"cohort_id": ["unknown cohort"]})
            if tx.one("SELECT id FROM devices WHERE identifier = ?", [body.identifier]):
                raise Conflict(f"a device {body.identifier!r} exists", {"identifier": ["already registered"]})
            t = now()
            row: Row = {
                "id": new_id("device"),
                "identifier": body.identifier,
                "target": body.target,
                "tags": json.dumps(sorted(set(body.tags))),
                "cohort_id": body.cohort_id,
                "quarantined": 0,
                "token_hash": token_hash,
                "reported_release_id": None,
                "reported_bundle_id": None,
                "reported_version": None,
                "last_status": None,
                "last_detail": None,
                "last_seen_at": None,
                "created_at": t,
                "updated_at": t,
            }
            tx.insert("devices", row)
            view = device_view(row)
            tx.event("create", "device", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def get_device(self, device_id: str) -> Row:
        check_id(device_id, "device", "device")
        return await self.db.read(lambda tx: device_view(get_or_404(tx, "devices", device_id, "device")))

    async def list_devices(self, limit: int, cursor: str | None, filters: dict[str, str]) -> Page:
        equal: dict[str, str] = {c: filters[c] for c in ("cohort_id", "target") if c in filters}
        tag = [("EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE value = ?)", filters["tag"])] if "tag" in filters else []

        def run(tx: Tx) -> Page:
            page = tx.page("devices", limit, cursor, equal=equal, conditions=tag)
            page.items = [device_view(r) for r in page.items]
            return page

        return await self.db.read(run)

    async def patch_device(self, actor: str, device_id: str, body: m.DevicePatch) -> Row:
        check_id(device_id, "device", "device")
        if isinstance(body.cohort_id, str):
            check_id(body.cohort_id, "cohort", "cohort", "cohort_id")
        changes: Row = {}
        if body.target is not msgspec.UNSET:
            changes["target"] = body.target
        if body.cohort_id is not msgspec.UNSET:
            changes["cohort_id"] = body.cohort_id
        if body.tags is not msgspec.UNSET:
            changes["tags"] = json.dumps(sorted(set(body.tags)))
        if body.quarantined is not msgspec.UNSET:
            changes["quarantined"] = int(body.quarantined)

        def run(tx: Tx) -> Row:
            before = device_view(get_or_404(tx, "devices", device_id, "device"))
            if isinstance(body.cohort_id, str) and not tx.one("SELECT id FROM cohorts WHERE id = ?", [body.cohort_id]):
                raise Invalid(f"no cohort {body.cohort_id}", {"cohort_id": ["unknown cohort"]})
            return update_logged(tx, "devices", device_id, "device", changes, before, device_view)

        return await self.db.tx(actor, run)

    async def delete_device(self, actor: str, device_id: str) -> None:
        """Removes a device: its token stops working at once; its audit trail stays, ending in
        a ``delete`` event with its last record. Count-phase claims stay counted."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> None:
            before = device_view(get_or_404(tx, "devices", device_id, "device"))
            tx.run("DELETE FROM override_devices WHERE device_id = ?", [device_id])
            tx.run("DELETE FROM devices WHERE id = ?", [device_id])
            tx.event("delete", "device", device_id, before, None)

        await self.db.tx(actor, run)

    async def rotate_device_token(self, actor: str, device_id: str, token_hash: str) -> Row:
        """Gives a device a new token; the old one stops working at once (the change drops the
        update checks' device cache with the snapshot)."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> Row:
            row = get_or_404(tx, "devices", device_id, "device")
            tx.update("devices", device_id, {"token_hash": token_hash, "updated_at": now()})
            view = device_view(get_or_404(tx, "devices", device_id, "device"))
            tx.event("token", "device", device_id, device_view(row), view)
            return view

        return await self.db.tx(actor, run)

    async def device_for_token(self, token_hash: str) -> str:
        """The ID of the device with this token; raises Unauthenticated."""
        row = await self.db.read(lambda tx: tx.one("SELECT id FROM devices WHERE token_hash = ?", [token_hash]))
        if row is None:
            raise Unauthenticated("the device token is not valid")
        return row["id"]

    async def report(self, token_hash: str, body: m.DeviceReport) -> Row:
        def run(tx: Tx) -> Row:
            found = tx.one("SELECT * FROM devices WHERE token_hash = ?", [token_hash])
            if found is None:
                raise Unauthenticated("the device token is not valid")
            before = device_view(found)
            device_id = before["id"]
            tx.actor = device_id
            _check_report(tx, found, body)
            changes: Row = {"last_status": body.status, "last_detail": body.detail, "last_seen_at": now()}
            if body.status == "installed":
                changes |= {
                    "reported_release_id": body.release_id,
                    "reported_bundle_id": body.bundle_id,
                    "reported_version": body.version,
                }
            tx.update("devices", device_id, changes)
            after = device_view(get_or_404(tx, "devices", device_id, "device"))
            tx.event("report", "device", device_id, before, {**after, "report": msgspec.to_builtins(body)})
            return after

        return await self.db.tx("device", run, durable=False)

    # Overrides ---------------------------------------------------------------------------------

    def _override_view(self, tx: Tx, row: Row) -> Row:
        devices = [
            r["device_id"]
            for r in tx.all("SELECT device_id FROM override_devices WHERE override_id = ? ORDER BY rowid", [row["id"]])
        ]
        return {**row, "device_ids": devices}

    async def create_override(self, actor: str, body: m.OverrideCreate) -> Row:
        check_id(body.bundle_id, "bundle", "bundle", "bundle_id")
        starts = parse_time(body.starts_at, "starts_at") or now()
        ends = parse_time(body.ends_at, "ends_at")
        if ends is not None and ends <= starts:
            raise Invalid("ends_at must be after starts_at", {"ends_at": ["before starts_at"]})

        def run(tx: Tx) -> Row:
            if not tx.one("SELECT id FROM bundles WHERE id = ?", [body.bundle_id]):
                raise Invalid(f"no bundle {body.bundle_id}", {"bundle_id": ["unknown bundle"]})
            for i, d in enumerate(dict.fromkeys(body.device_ids)):
                if not is_id(d, "device") or not tx.one("SELECT id FROM devices WHERE id = ?", [d]):
                    raise Invalid(f"no device {d}", {f"device_ids[{i}]": ["unknown device"]})
            t = now()
            row: Row = {
                "id": new_id("override"),
                "bundle_id": body.bundle_id,
                "starts_at": starts,
                "ends_at": ends,
                "created_at": t,
                "updated_at": t,
            }
            tx.insert("bundle_overrides", row)
            for d in dict.fromkeys(body.device_ids):
                tx.insert("override_devices", {"override_id": row["id"], "device_id": d})
            view = self._override_view(tx, row)
            tx.event("create", "override", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def get_override(self, override_id: str) -> Row:
        check_id(override_id, "override", "bundle override")
        return await self.db.read(
            lambda tx: self._override_view(tx, get_or_404(tx, "bundle_overrides", override_id, "bundle override"))
        )

    async def list_overrides(self, limit: int, cursor: str | None, device_id: str | None) -> Page:
        of_device = [("id IN (SELECT override_id FROM override_devices WHERE device_id = ?)", device_id)] if device_id else []

        def run(tx: Tx) -> Page:
            page = tx.page("bundle_overrides", limit, cursor, conditions=of_device)
            page.items = [self._override_view(tx, r) for r in page.items]
            return page

        return await self.db.read(run)

    async def patch_override(self, actor: str, override_id: str, body: m.OverridePatch) -> Row:
        check_id(override_id, "override", "bundle override")
        changes: Row = {}
        if body.starts_at is not msgspec.UNSET:
            changes["starts_at"] = parse_time(body.starts_at, "starts_at")
        if body.ends_at is not msgspec.UNSET:
            changes["ends_at"] = parse_time(body.ends_at, "ends_at")

        def run(tx: Tx) -> Row:
            before = self._override_view(tx, get_or_404(tx, "bundle_overrides", override_id, "bundle override"))
            merged = {**before, **changes}
            if merged["ends_at"] is not None and merged["ends_at"] <= merged["starts_at"]:
                raise Invalid("ends_at must be after starts_at", {"ends_at": ["before starts_at"]})
            return update_logged(
                tx, "bundle_overrides", override_id, "override", changes, before, lambda r: self._override_view(tx, r)
            )

        return await self.db.tx(actor, run)

    async def delete_override(self, actor: str, override_id: str) -> None:
        check_id(override_id, "override", "bundle override")

        def run(tx: Tx) -> None:
            before = self._override_view(tx, get_or_404(tx, "bundle_overrides", override_id, "bundle override"))
            tx.run("DELETE FROM override_devices WHERE override_id = ?", [override_id])
            tx.run("DELETE FROM bundle_overrides WHERE id = ?", [override_id])
            tx.event("delete", "override", override_id, before, None)

        await self.db.tx(actor, run)

    # Resolution --------------------------------------------------------------------------------
    #
    # An update check must be cheap: fleets check in constantly. Everything resolution needs
    # that is shared by all devices (channel graphs, cohort channels, whether each bundle is
    # servable, each bundle's manifest entries) is kept as a ``World`` snapshot on the catalog's
    # worker thread and rebuilt when the catalog's generation changes (every durable write bumps
    # it, so another process's change is seen at the next check). Per check, only the device,
    # its claims and its overrides are read. Last-seen times and resolution events are buffered
    # and written in one transaction at most a second later (CHECKIN_FLUSH_SECONDS).

    def _world(self, tx: Tx) -> World:
        gen = tx.one("SELECT value FROM meta WHERE key = 'generation'")["value"]  # type: ignore[index]
        cached = self._world_cache
        if cached is not None and cached.generation == gen:
            return cached
        graphs: dict[str, dict[str, Release]] = {}
        for r in tx.all("SELECT * FROM releases"):
            graphs.setdefault(r["channel_id"], {})[r["id"]] = _to_release(r)
        cohorts = {r["id"]: r["channel_id"] for r in tx.all("SELECT id, channel_id FROM cohorts")}
        unsigned = {
            r["bundle_id"]
            for r in tx.all(
                "SELECT DISTINCT e.bundle_id FROM bundle_entries e JOIN binaries b ON b.id = e.binary_id "
                "WHERE b.state != 'signed'"
            )
        }
        sigs: dict[str, list[Row]] = {}
        for r in tx.all(
            "SELECT s.binary_id, k.keyid, k.algorithm, s.signature, k.public_key FROM signatures s "
            "JOIN signing_keys k ON k.id = s.signing_key_id WHERE k.state = 'active' ORDER BY s.rowid"
        ):
            sigs.setdefault(r.pop("binary_id"), []).append(r)
        entries: dict[str, list[Row]] = {}
        for e in tx.all(
            "SELECT e.bundle_id, e.binary_id, e.custom_metadata, b.target, b.size, b.sha256, v.version, a.name AS artifact "
            "FROM bundle_entries e JOIN binaries b ON b.id = e.binary_id JOIN versions v ON v.id = b.version_id "
            "JOIN artifacts a ON a.id = v.artifact_id ORDER BY e.bundle_id, e.position"
        ):
            e["custom_metadata"] = json.loads(e["custom_metadata"])
            e["signatures"] = sigs.get(e["binary_id"], [])
            entries.setdefault(e.pop("bundle_id"), []).append(e)
        overridden = {r["device_id"] for r in tx.all("SELECT DISTINCT device_id FROM override_devices")}
        counted = {cid for cid, g in graphs.items() if any(isinstance(r.phase, CountPhase) for r in g.values())}
        world = World(gen, graphs, cohorts, unsigned, entries, overridden, counted)
        self._world_cache = world
        self._generation_checked = time.monotonic()
        self.db.local_change = False
        return world

    def _flush_checkins(self, tx: Tx, force: bool = False) -> None:
        due = time.monotonic() - self._checkins_flushed >= CHECKIN_FLUSH_SECONDS
        if not self._checkins or (not force and len(self._checkins) < 1000 and not due):
            return
        with self._checkins_lock:  # appended to from the event loop's thread too
            pending, self._checkins = self._checkins, []
        # last_seen_at is kept to the minute: one write per device per LAST_SEEN_RESOLUTION.
        last_seen = {}
        clock = time.monotonic()
        for d, t, _ in pending:
            if clock - self._last_seen_written.get(d, -LAST_SEEN_RESOLUTION) >= LAST_SEEN_RESOLUTION or d in last_seen:
                last_seen[d] = t
        for d in last_seen:
            self._last_seen_written[d] = clock
        tx.conn.executemany("UPDATE devices SET last_seen_at = ? WHERE id = ?", [(t, d) for d, t in last_seen.items()])
        events = [(d, t, ev) for d, t, ev in pending if ev is not None]
        encode = msgspec.json.encode
        tx.conn.executemany(
            "INSERT INTO events (id, at, actor, action, resource_type, resource_id, before, after) VALUES (?,?,?,?,?,?,?,?)",
            [
                (eid, t, d, "resolve", "device", d, None, encode(ev).decode())
                for eid, (d, t, ev) in zip(new_ids("event", len(events)), events, strict=True)
            ],
        )
        self._checkins_flushed = time.monotonic()

    async def flush_checkins(self) -> None:
        """Writes buffered check-ins now (a timer calls it; so does closing)."""
        await self.db.tx("", lambda tx: self._flush_checkins(tx, force=True), write=False, durable=False)

    def _record_checkin(self, device_id: str, at: str, event: Row) -> None:
        """Buffers a check-in: its last-seen time always, and a ``resolve`` event in the audit log
        when the decision differs from the last one recorded for the device (a fleet polling
        every few minutes would otherwise fill the log with identical answers)."""
        key = (event["status"], event["reason"], event["release_id"], event["bundle_id"])
        with self._checkins_lock:
            changed = self._last_decision.get(device_id) != key or "by" in event
            if changed:
                self._last_decision[device_id] = key
            self._checkins.append((device_id, at, event if changed else None))

    def _inputs(
        self, world: World, dev: Row, when: dt.datetime, t: str, fetch: Callable[[str, list[Any]], Any]
    ) -> tuple[Device, dict[str, Release] | None, list[Override], frozenset[str]]:
        """What ``resolve`` needs for one device: its overrides and count-phase claims are read
        (with ``fetch``) only when the snapshot says it can have any."""
        channel = world.cohort_channel.get(dev["cohort_id"]) if dev["cohort_id"] else None
        releases = world.graphs.get(channel, {}) if channel else None
        overrides: list[Override] = []
        if dev["id"] in world.overridden:
            sql = (
                "SELECT o.* FROM override_devices d JOIN bundle_overrides o ON o.id = d.override_id "
                "WHERE d.device_id = ? AND o.starts_at <= ? AND (o.ends_at IS NULL OR o.ends_at > ?)"
            )
            overrides = [
                Override(o["id"], o["bundle_id"], _time(o["starts_at"]), _time(o["ends_at"]))  # type: ignore[arg-type]
                for o in fetch(sql, [dev["id"], t, t])
            ]
        claimed: frozenset[str] = frozenset()
        if channel in world.counted:
            claimed = frozenset(
                r["release_id"] for r in fetch("SELECT release_id FROM release_claims WHERE device_id = ?", [dev["id"]])
            )
        device = Device(dev["id"], dev["target"], frozenset(dev["tags"]), dev["quarantined"])
        return device, releases, overrides, claimed

    def fast_check_in(self, reported: Reported, token_hash: str) -> CheckIn | None:
        """The update check of a device (by token hash) done on the calling thread with the
        read-only connection and the current snapshot; None when it needs the worker thread
        (snapshot out of date, or a count phase to claim), then call ``check_in``."""
        conn = self.db.reader()
        world = self._world_cache
        if world is None or self.db.local_change:
            return None
        clock = time.monotonic()
        if clock - self._generation_checked > GENERATION_RECHECK_SECONDS:
            # Another process's catalog change is seen within GENERATION_RECHECK_SECONDS; this
            # process's own changes at once (local_change).
            if conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0] != world.generation:
                return None
            self._generation_checked = clock
        dev = world.devices.get(token_hash)
        if dev is None:
            row = conn.execute(
                "SELECT id, target, tags, cohort_id, quarantined FROM devices WHERE token_hash = ?", [token_hash]
            ).fetchone()
            if row is None:
                raise Unauthenticated("the device token is not valid")
            tags = row["tags"]
            dev = {"id": row["id"], "target": row["target"], "tags": json.loads(tags) if tags != "[]" else [],
                   "cohort_id": row["cohort_id"], "quarantined": bool(row["quarantined"])}  # fmt: skip
            if len(world.devices) >= DEVICE_CACHE_SIZE:
                del world.devices[next(iter(world.devices))]  # the oldest entry
            world.devices[token_hash] = dev
        t = now()
        when = _time(t)
        assert when is not None
        device, releases, overrides, claimed = self._inputs(world, dev, when, t, lambda sql, a: conn.execute(sql, a).fetchall())
        decision = resolve(device, reported, releases, overrides, when, world.servable, claimed)
        if decision.claim:
            return None
        self._record_checkin(dev["id"], t, _event(decision, reported, ""))
        return CheckIn(decision, dev, world.manifest(decision, dev["target"]), world.generation)

    async def check_in(
        self,
        reported: Reported,
        *,
        token_hash: str | None = None,
        device_id: str | None = None,
        actor: str = "",
        write: bool = True,
    ) -> CheckIn:
        """Resolves one device's update (the device named by its token hash or its ID). With
        ``write``, claims a count phase atomically and records the check-in (buffered). Returns
        the decision, the device, and the manifest entries for the device's target."""

        def run(tx: Tx) -> CheckIn:
            world = self._world(tx)
            if token_hash is not None:
                row = tx.one("SELECT * FROM devices WHERE token_hash = ?", [token_hash])
                if row is None:
                    raise Unauthenticated("the device token is not valid")
            else:
                row = get_or_404(tx, "devices", device_id or "", "device")
            dev = device_view(row)
            t = now()
            when = _time(t)
            assert when is not None
            device, releases, overrides, claimed = self._inputs(world, dev, when, t, tx.all)
            for _ in range(64):
                decision = resolve(device, reported, releases, overrides, when, world.servable, claimed)
                if not (write and decision.claim):
                    break
                rel = releases[decision.claim]  # type: ignore[index]
                assert isinstance(rel.phase, CountPhase)
                sql = "UPDATE releases SET claimed = claimed + 1 WHERE id = ? AND claimed < ?"
                if tx.run(sql, [rel.id, rel.phase.value]) == 1:
                    tx.insert("release_claims", {"release_id": rel.id, "device_id": dev["id"], "created_at": t})
                    tx.run("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    self.db.local_change = True
                    break
                # Filled up meanwhile: resolve again with the phase full.
                releases = {**releases, rel.id: replace(rel, phase=CountPhase(rel.phase.value, rel.phase.value))}  # type: ignore[dict-item]
            if write:
                self._record_checkin(dev["id"], t, _event(decision, reported, actor))
                self._flush_checkins(tx)
            return CheckIn(decision, dev, world.manifest(decision, dev["target"]), world.generation)

        return await self.db.tx(actor, run, write=False, durable=False)


def _check_report(tx: Tx, device: Row, body: m.DeviceReport) -> None:
    """A report must name a bundle (and release) that exist and agree, and an ``installed``
    report a bundle this device could have been given: one a release of its cohort's channel
    serves, one an override names it for, or the one it reports already."""
    if not tx.one("SELECT id FROM bundles WHERE id = ?", [body.bundle_id]):
        raise Invalid(f"no bundle {body.bundle_id}", {"bundle_id": ["unknown bundle"]})
    if body.release_id is not None:
        release = tx.one("SELECT bundle_id, version FROM releases WHERE id = ?", [body.release_id])
        if release is None:
            raise Invalid(f"no release {body.release_id}", {"release_id": ["unknown release"]})
        if release["bundle_id"] != body.bundle_id:
            raise Invalid(
                f"release {body.release_id} serves bundle {release['bundle_id']}, not {body.bundle_id}",
                {"bundle_id": ["not the release's bundle"]},
            )
        if body.version is not None and release["version"] is not None and body.version != release["version"]:
            raise Invalid(
                f"release {body.release_id} is version {release['version']}, not {body.version}",
                {"version": ["not the release's version"]},
            )
    if body.status != "installed" or body.bundle_id == device["reported_bundle_id"]:
        return
    offered = tx.one(
        "SELECT 1 FROM releases r JOIN cohorts c ON c.channel_id = r.channel_id WHERE c.id = ? AND r.bundle_id = ? "
        "UNION ALL SELECT 1 FROM bundle_overrides o JOIN override_devices d ON d.override_id = o.id "
        "WHERE d.device_id = ? AND o.bundle_id = ? LIMIT 1",
        [device["cohort_id"], body.bundle_id, device["id"], body.bundle_id],
    )
    if offered is None:
        raise Invalid(
            f"bundle {body.bundle_id} is not served to this device by its channel or an override",
            {"bundle_id": ["not offered to this device"]},
        )


class CheckIn(NamedTuple):
    """The answer to one update check."""

    decision: Decision
    device: Row
    entries: list[Row]  # the manifest: the bundle's entries for the device's target
    generation: int  # of the snapshot it was resolved against: equal generations, equal catalogs


def _event(decision: Decision, reported: Reported, actor: str) -> Row:
    return {
        "status": decision.status,
        "reason": decision.reason,
        "source": decision.source,
        "release_id": decision.release.id if decision.release else None,
        "bundle_id": decision.bundle_id,
        "reported": msgspec.to_builtins(reported),
        **({"by": actor} if actor else {}),
    }


@dataclass
class World:
    """What resolution needs that all devices share; see ``FleetOps._world``."""

    generation: int
    graphs: dict[str, dict[str, Release]]
    cohort_channel: dict[str, str | None]
    unsigned_bundles: set[str]
    entries: dict[str, list[Row]]
    # Devices named by any override, and channels with a count phase: only those need the
    # per-device override and claim reads.
    overridden: set[str]
    counted: set[str]
    # Token hash → device, filled by update checks (see DEVICE_CACHE_SIZE).
    devices: dict[str, Row] = field(default_factory=dict)

    def servable(self, bundle_id: str) -> bool:
        return bundle_id in self.entries and bundle_id not in self.unsigned_bundles

    def manifest(self, decision: Decision, target: str) -> list[Row]:
        """The entries an update serves to a device of ``target`` (and those for ``any``)."""
        if decision.status != "update" or not decision.bundle_id:
            return []
        return [e for e in self.entries.get(decision.bundle_id, []) if e["target"] in (target, "any")]
