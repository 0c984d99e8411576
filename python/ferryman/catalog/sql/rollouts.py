"""Update outcomes: device reports (with each device's recent history), each release's outcome
per device (``rollouts`` rows: offered by an update check, then the status of the device's last
report), the stats of a release, cohort or channel, a release halting itself when its halt
rule is broken, and scheduled phase steps. The rules are the pure ``ferryman.rollouts``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import msgspec

from ferryman import rollouts
from ferryman.catalog import models as m
from ferryman.catalog.rules import check_id, now, to_time
from ferryman.catalog.sql.channels import release_view
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, to
from ferryman.catalog.sql.devices import device_view
from ferryman.errors import DomainError, Invalid, Unauthenticated
from ferryman.ids import is_id

__all__ = ["REPORT_HISTORY", "Rollouts", "halt_rule"]

REPORT_HISTORY = 100  # reports kept per device (older ones are dropped as new ones come)


def halt_rule(stored: str | None) -> rollouts.HaltRule | None:
    if not stored:
        return None
    h = json.loads(stored)
    return rollouts.HaltRule(h.get("max_failure_rate"), h.get("min_reports") or rollouts.DEFAULT_MIN_REPORTS,
                             h.get("max_failures"))  # fmt: skip


def _release_for(tx: Tx, device: Row, bundle_id: str) -> Row | None:
    """The release a report without ``release_id`` is about: the last one offered to the device
    with this bundle, else the newest release of its cohort's channel serving it."""
    return tx.one(
        "SELECT x.* FROM rollouts r JOIN releases x ON x.id = r.release_id WHERE r.device_id = ? AND x.bundle_id = ? "
        "ORDER BY r.offered_at DESC LIMIT 1",
        [device["id"], bundle_id],
    ) or tx.one(
        "SELECT r.* FROM releases r JOIN cohorts c ON c.channel_id = r.channel_id WHERE c.id = ? AND r.bundle_id = ? "
        "ORDER BY r.created_at DESC LIMIT 1",
        [device["cohort_id"], bundle_id],
    )


def _in(tx: Tx, sql: str, values: Sequence[str]) -> list[Row]:
    """Rows of ``sql`` (with one ``IN ({})``) for ``values``, 500 at a time."""
    out: list[Row] = []
    for at in range(0, len(values), 500):
        batch = list(values[at : at + 500])
        out += tx.all(sql.format(",".join("?" * len(batch))), batch)
    return out


def _check(tx: Tx, device: Row, body: m.DeviceReport, releases: dict[str, Row], bundles: set[str]) -> None:
    """A report must name a bundle (and release) that exist and agree, and an ``installed``
    report a bundle this device could have been given: one a release of its cohort's channel
    serves, one an override names it for, or the one it reports already."""
    if body.bundle_id not in bundles:
        raise Invalid(f"no bundle {body.bundle_id}", {"bundle_id": ["unknown bundle"]})
    if body.release_id is not None:
        release = releases.get(body.release_id)
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


_UPSERT_OUTCOME = (
    "INSERT INTO rollouts (release_id, device_id, channel_id, cohort_id, status, reason, offered_at, installed_at, "
    "updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (release_id, device_id) DO UPDATE SET status = excluded.status, "
    "reason = excluded.reason, installed_at = COALESCE(excluded.installed_at, rollouts.installed_at), "
    "updated_at = excluded.updated_at"
)
_DEVICE_CHANGES = ("last_status", "last_detail", "last_seen_at", "reports", "reported_release_id", "reported_bundle_id",
                   "reported_version", "updated_at")  # fmt: skip


def _halt_if_broken(tx: Tx, release: Row, t: str) -> None:
    """Halts a release whose outcomes now break its halt rule."""
    rule = halt_rule(release["halt"])
    if rule is None or release["halted"]:
        return
    counts = rollouts.counts_of(
        tx.all("SELECT status, COUNT(*) AS n FROM rollouts WHERE release_id = ? GROUP BY status", [release["id"]])
    )
    reason = rollouts.halt_reason(rule, counts)
    if reason is None:
        return
    sql = "UPDATE releases SET halted = 1, halted_reason = ?, halted_at = ?, updated_at = ? WHERE id = ? AND halted = 0"
    if tx.run(sql, [reason, t, t, release["id"]]) == 1:
        after = release_view(get_or_404(tx, "releases", release["id"], "release"))
        tx.event("halt", "release", release["id"], release_view(release), {**after, "counts": counts})
        tx.changes_answers = True  # no device is offered it from now on


def _record(tx: Tx, reports: Sequence[tuple[str, m.DeviceReport]]) -> list[Row | DomainError]:
    """A group of reports: read what they name (a few queries for the group), check each (a
    refused one writes nothing), then write them all (a few statements for the group, in
    arrival order, so two reports of one device land as if sent one after the other), and
    halt each release whose failures now break its rule. Each event's actor is its device."""
    # A report names its device by token hash (the device API) or by ID (the agent protocols,
    # which authenticated it their own way): the two never look alike.
    keys = sorted({h for h, _ in reports})
    found_rows = _in(tx, "SELECT * FROM devices WHERE token_hash IN ({})", keys)
    found_rows += _in(tx, "SELECT * FROM devices WHERE id IN ({})", [k for k in keys if is_id(k, "device")])
    device_of = {k: r["id"] for r in found_rows for k in (r["token_hash"], r["id"]) if k in keys}
    devices = {r["id"]: r for r in found_rows}
    named = sorted({b.release_id for _, b in reports if b.release_id})
    releases = {r["id"]: r for r in _in(tx, "SELECT * FROM releases WHERE id IN ({})", named)}
    known = {r["bundle_id"] for r in releases.values()}
    asked = sorted({b.bundle_id for _, b in reports} - known)
    bundles = known | {r["id"] for r in _in(tx, "SELECT id FROM bundles WHERE id IN ({})", asked)}
    t = now()
    out: list[Row | DomainError] = []
    history: list[tuple[Any, ...]] = []
    outcomes: list[tuple[Any, ...]] = []
    failing: dict[str, Row] = {}
    changed: dict[str, Row] = {}
    for key, body in reports:
        found = devices.get(device_of.get(key, ""))
        if found is None:
            out.append(Unauthenticated("the device token is not valid"))
            continue
        try:
            _check(tx, found, body, releases, bundles)
        except DomainError as e:
            out.append(e)
            continue
        release = releases.get(body.release_id) if body.release_id else _release_for(tx, found, body.bundle_id)
        release_id = release["id"] if release else None
        seq = int(found["reports"]) + 1
        changes: Row = {"last_status": body.status, "last_detail": body.detail, "last_seen_at": t, "reports": seq,
                        "updated_at": t}  # fmt: skip
        if body.status == "installed":
            changes |= {"reported_release_id": release_id, "reported_bundle_id": body.bundle_id,
                        "reported_version": body.version}  # fmt: skip
        row = devices[found["id"]] = {**found, **changes}
        changed[row["id"]] = row
        history.append((row["id"], seq, t, release_id, body.bundle_id, body.version, body.status, body.reason, body.detail))
        before = device_view(found)
        after = {**before, **{k: v for k, v in changes.items() if k != "reports"}}
        tx.actor = row["id"]
        if found["last_seen_at"] is None:
            tx.event("first_seen", "device", row["id"], None, after)
        report = {**msgspec.to_builtins(body), "release_id": release_id}
        tx.event("report", "device", row["id"], before, {**after, "report": report})
        if release is not None:
            installed_at = t if body.status == "installed" else None
            outcomes.append((release_id, row["id"], release["channel_id"], found["cohort_id"], body.status, body.reason, t,
                             installed_at, t))  # fmt: skip
            if body.status in rollouts.FAILURES:
                failing[release["id"]] = release
        out.append(after)
    sets = ", ".join(f"{c} = ?" for c in _DEVICE_CHANGES)
    tx.run_many(f"UPDATE devices SET {sets} WHERE id = ?", [[*(r[c] for c in _DEVICE_CHANGES), d] for d, r in changed.items()])
    tx.run_many("INSERT INTO device_reports (device_id, seq, at, release_id, bundle_id, version, status, reason, detail) "
                "VALUES (?,?,?,?,?,?,?,?,?)", history)  # fmt: skip
    trim = [(d, r["reports"] - REPORT_HISTORY) for d, r in changed.items() if r["reports"] > REPORT_HISTORY]
    tx.run_many("DELETE FROM device_reports WHERE device_id = ? AND seq <= ?", trim)
    tx.run_many(_UPSERT_OUTCOME, outcomes)
    for release in failing.values():
        _halt_if_broken(tx, release, t)
    return out


def _seconds(rows: Sequence[Row]) -> list[float]:
    out = []
    for r in rows:
        offered, installed = to_time(r["offered_at"]), to_time(r["installed_at"])
        if offered is not None and installed is not None:
            out.append(max(0.0, (installed - offered).total_seconds()))
    return sorted(out)


def _stats(scope: str, id_: str, counts: dict[str, int], seconds: list[float], **extra: Any) -> m.RolloutStats:
    return m.RolloutStats(
        scope=scope,  # type: ignore[arg-type]
        id=id_,
        devices=sum(counts.values()),
        outcomes=m.Outcomes(**counts),
        success_rate=rollouts.success_rate(counts),
        install_seconds=m.InstallTimes(
            count=len(seconds), p50=rollouts.percentile(seconds, 50), p95=rollouts.percentile(seconds, 95)
        ),
        **extra,
    )


class Rollouts:
    db: Database

    async def report_many(self, reports: Sequence[tuple[str, m.DeviceReport]]) -> list[m.Device | DomainError]:
        """Records device reports ``(token hash or device ID, report)`` in one transaction (bookkeeping, but
        a report that breaks a halt rule halts its release in it); each gets its device, or the
        error that refused it (a refused report changes nothing)."""

        done = await self.db.tx("device", lambda tx: _record(tx, reports), durable=False)
        return [r if isinstance(r, DomainError) else to(m.Device, r) for r in done]

    async def device_reports(self, device_id: str, limit: int) -> list[m.ReportEntry]:
        """A device's last ``limit`` reports, newest first."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> list[Row]:
            get_or_404(tx, "devices", device_id, "device")
            sql = "SELECT * FROM device_reports WHERE device_id = ? ORDER BY seq DESC LIMIT ?"
            return tx.all(sql, [device_id, limit])

        return [to(m.ReportEntry, r) for r in await self.db.read(run)]

    async def release_stats(self, release_id: str) -> m.RolloutStats:
        check_id(release_id, "release", "release")

        def run(tx: Tx) -> m.RolloutStats:
            rel = release_view(get_or_404(tx, "releases", release_id, "release"))
            rows = tx.all("SELECT status, COUNT(*) AS n FROM rollouts WHERE release_id = ? GROUP BY status", [release_id])
            times = tx.all(
                "SELECT offered_at, installed_at FROM rollouts WHERE release_id = ? AND status = 'installed'", [release_id]
            )
            return _stats("release", release_id, rollouts.counts_of(rows), _seconds(times), halted=rel["halted"],
                          halted_reason=rel["halted_reason"], phase=rel["phase"])  # fmt: skip

        return await self.db.read(run)

    async def group_stats(self, scope: str, group_id: str) -> m.RolloutStats:
        """Stats summed over the releases a cohort's devices (or a channel) were offered."""
        table, column = {"cohort": ("cohorts", "cohort_id"), "channel": ("channels", "channel_id")}[scope]
        check_id(group_id, scope, scope)

        def run(tx: Tx) -> m.RolloutStats:
            get_or_404(tx, table, group_id, scope)
            rows = tx.all(
                f"SELECT r.release_id, x.name, x.halted, r.status, COUNT(*) AS n FROM rollouts r "
                f"JOIN releases x ON x.id = r.release_id WHERE r.{column} = ? GROUP BY r.release_id, x.name, x.halted, r.status "
                "ORDER BY r.release_id",
                [group_id],
            )
            times = tx.all(f"SELECT offered_at, installed_at FROM rollouts WHERE {column} = ? AND status = 'installed'",
                           [group_id])  # fmt: skip
            per: dict[str, list[Row]] = {}
            for r in rows:
                per.setdefault(r["release_id"], []).append(r)
            releases = []
            for rid, rs in per.items():
                c = rollouts.counts_of(rs)
                releases.append(m.ReleaseOutcome(release_id=rid, name=rs[0]["name"], devices=sum(c.values()),
                                                 outcomes=m.Outcomes(**c), success_rate=rollouts.success_rate(c),
                                                 halted=bool(rs[0]["halted"])))  # fmt: skip
            return _stats(scope, group_id, rollouts.counts_of(rows), _seconds(times), releases=releases)

        return await self.db.read(run)

    async def rollout_gauges(self) -> list[tuple[str, str, bool, dict[str, int]]]:
        """Per release with outcomes: (release ID, channel ID, halted, counts), for /metrics."""

        def run(tx: Tx) -> list[tuple[str, str, bool, dict[str, int]]]:
            rows = tx.all(
                "SELECT r.release_id, x.channel_id, x.halted, r.status, COUNT(*) AS n FROM rollouts r "
                "JOIN releases x ON x.id = r.release_id GROUP BY r.release_id, x.channel_id, x.halted, r.status"
            )
            per: dict[str, list[Row]] = {}
            for r in rows:
                per.setdefault(r["release_id"], []).append(r)
            return [(rid, rs[0]["channel_id"], bool(rs[0]["halted"]), rollouts.counts_of(rs)) for rid, rs in per.items()]

        return await self.db.read(run)

    async def advance_rollouts(self) -> list[str]:
        """Applies every scheduled phase step that is due on a release that is not halted (see
        ``rollouts.due_step``); the IDs of the releases changed."""
        at = dt.datetime.now(dt.UTC)

        def due(tx: Tx) -> list[Row]:
            rows = tx.all("SELECT * FROM releases WHERE advance IS NOT NULL AND halted = 0")
            return [r for r in rows if rollouts.due_step(_steps(r["advance"]), at, False) is not None]

        if not await self.db.read(due):
            return []

        def run(tx: Tx) -> list[str]:
            changed = []
            for row in due(tx):
                steps = _steps(row["advance"])
                step = rollouts.due_step(steps, at, bool(row["halted"]))
                assert step is not None
                phase, settled = step
                rest = [{"at": s_at.isoformat(timespec="microseconds").replace("+00:00", "Z"), "phase": p}
                        for s_at, p in steps[settled:]]  # fmt: skip
                changes = {"phase": json.dumps(phase) if phase else None, "advance": json.dumps(rest) if rest else None,
                           "updated_at": now()}  # fmt: skip
                if tx.update("releases", row["id"], changes, where={"advance": row["advance"]}) == 1:
                    after = release_view(get_or_404(tx, "releases", row["id"], "release"))
                    tx.event("advance", "release", row["id"], release_view(row), after)
                    changed.append(row["id"])
            tx.changes_answers = bool(changed)
            return changed

        return await self.db.tx("server", run, changes_answers=False)


def _steps(stored: str) -> list[tuple[dt.datetime, dict[str, Any] | None]]:
    out = []
    for s in json.loads(stored):
        t = to_time(s["at"])
        assert t is not None
        out.append((t, s["phase"]))
    return out
