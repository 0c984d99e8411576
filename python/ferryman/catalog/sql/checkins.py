"""What update checks read and write: the fleet snapshot, a device by its token, a
device's overrides and count-phase claims, the atomic claim, and buffered check-ins. The
caching and the decision itself live in ``ferryman.services.checkins``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

from ferryman.catalog import models as m
from ferryman.catalog.protocol import FleetSnapshot, ServedBinary
from ferryman.catalog.rules import now, to_time
from ferryman.catalog.sql.channels import to_release
from ferryman.catalog.sql.db import Database, Tx, to
from ferryman.catalog.sql.devices import device_view
from ferryman.ids import new_ids
from ferryman.releases import CountPhase, Override, Release

__all__ = ["Checkins"]

_GENERATION = "SELECT value FROM meta WHERE key = 'generation'"
_SERVED = (
    "SELECT e.bundle_id, e.binary_id, e.custom_metadata, b.target, b.size, b.sha256, b.filename, b.sha1, b.md5, b.mender, "
    "v.version, a.name AS artifact "
    "FROM bundle_entries e JOIN binaries b ON b.id = e.binary_id JOIN versions v ON v.id = b.version_id "
    "JOIN artifacts a ON a.id = v.artifact_id ORDER BY e.bundle_id, e.position"
)
_SIGNATURES = (
    "SELECT s.binary_id, k.keyid, k.algorithm, s.signature, k.public_key FROM signatures s "
    "JOIN signing_keys k ON k.id = s.signing_key_id WHERE k.state = 'active' ORDER BY s.created_at, s.id"
)
_COPIES = "SELECT r.binary_id, r.region, r.state FROM replicas r JOIN bundle_entries e ON e.binary_id = r.binary_id"
_OVERRIDES = (
    "SELECT o.* FROM override_devices d JOIN bundle_overrides o ON o.id = d.override_id "
    "WHERE d.device_id = ? AND o.starts_at <= ? AND (o.ends_at IS NULL OR o.ends_at > ?)"
)


def _snapshot(tx: Tx) -> FleetSnapshot:
    generation = tx.one(_GENERATION)["value"]  # type: ignore[index]
    graphs: dict[str, dict[str, Release]] = {}
    for r in tx.all("SELECT * FROM releases"):
        graphs.setdefault(r["channel_id"], {})[r["id"]] = to_release(r)
    cohort_rows = tx.all("SELECT id, channel_id, region FROM cohorts")
    cohorts = {r["id"]: r["channel_id"] for r in cohort_rows}
    unsigned = {
        r["bundle_id"]
        for r in tx.all(
            "SELECT DISTINCT e.bundle_id FROM bundle_entries e JOIN binaries b ON b.id = e.binary_id WHERE b.state != 'signed'"
        )
    }
    sigs: dict[str, list[m.ManifestSignature]] = {}
    for r in tx.all(_SIGNATURES):
        sigs.setdefault(r.pop("binary_id"), []).append(to(m.ManifestSignature, r))
    copies: dict[str, dict[str, str]] = {}
    for r in tx.all(_COPIES):
        copies.setdefault(r["binary_id"], {})[r["region"]] = r["state"]
    entries: dict[str, list[ServedBinary]] = {}
    for e in tx.all(_SERVED):
        e["custom_metadata"] = json.loads(e["custom_metadata"])
        e["mender"] = json.loads(e["mender"]) if e["mender"] else None
        e["signatures"] = sigs.get(e["binary_id"], [])
        e["replicas"] = copies.get(e["binary_id"], {})
        entries.setdefault(e.pop("bundle_id"), []).append(to(ServedBinary, e))
    overridden = {r["device_id"] for r in tx.all("SELECT DISTINCT device_id FROM override_devices")}
    counted = {cid for cid, g in graphs.items() if any(isinstance(r.phase, CountPhase) for r in g.values())}
    regions = {r["id"]: r["region"] for r in cohort_rows}
    return FleetSnapshot(generation, graphs, cohorts, unsigned, entries, overridden, counted, cohort_region=regions)


class Checkins:
    db: Database

    def local_changes(self) -> int:
        """How many changes that can change an answer this process has committed: a cache
        built before the count moved is out of date (other processes' show in ``generation``)."""
        return self.db.changes

    async def generation(self) -> int:
        return await self.db.read(lambda tx: tx.one(_GENERATION)["value"])  # type: ignore[index]

    async def fleet_snapshot(self) -> FleetSnapshot:
        return await self.db.read(_snapshot)

    async def devices_for_check_in(self, token_hashes: Sequence[str]) -> dict[str, m.Device]:
        """The devices with these token hashes, by token hash (unknown ones are left out)."""

        def run(tx: Tx) -> dict[str, m.Device]:
            found = {}
            for at in range(0, len(token_hashes), 500):
                batch = list(token_hashes[at : at + 500])
                marks = ",".join("?" * len(batch))
                for row in tx.all(f"SELECT * FROM devices WHERE token_hash IN ({marks})", batch):
                    found[row["token_hash"]] = to(m.Device, device_view(row))
            return found

        return await self.db.read(run)

    async def overrides_of(self, device_id: str, at: str) -> list[Override]:
        """The overrides that name a device and are in force at ``at``."""
        rows = await self.db.read(lambda tx: tx.all(_OVERRIDES, [device_id, at, at]))
        return [Override(o["id"], o["bundle_id"], to_time(o["starts_at"]), to_time(o["ends_at"])) for o in rows]  # type: ignore[arg-type]

    async def claims_of(self, device_id: str) -> frozenset[str]:
        rows = await self.db.read(lambda tx: tx.all("SELECT release_id FROM release_claims WHERE device_id = ?", [device_id]))
        return frozenset(r["release_id"] for r in rows)

    async def claim(self, release_id: str, device_id: str, limit: int) -> bool:
        """Claims one place of a count phase for a device, atomically: true if the device has
        one now (a claim it held already counts), false if the phase was full."""

        def run(tx: Tx) -> bool:
            if tx.one("SELECT 1 FROM release_claims WHERE release_id = ? AND device_id = ?", [release_id, device_id]):
                return True
            if tx.run("UPDATE releases SET claimed = claimed + 1 WHERE id = ? AND claimed < ?", [release_id, limit]) != 1:
                return False
            tx.insert("release_claims", {"release_id": release_id, "device_id": device_id, "created_at": now()})
            return True

        return await self.db.tx(device_id, run)

    async def record_check_ins(self, last_seen: Sequence[tuple[str, str]], events: Sequence[tuple[str, str, Any]],
                               offers: Sequence[tuple[str, str, str | None, str]] = ()) -> None:  # fmt: skip
        """Writes buffered check-ins in one transaction (bookkeeping): devices' last-seen times
        ``(device_id, at)``, ``resolve`` events ``(device_id, at, decision)``, and releases
        offered ``(device_id, release_id, cohort_id, at)`` (a device's first offer of a
        release starts its outcome there). A device seen for the first time gets a
        ``first_seen`` event."""
        encode = msgspec.json.encode

        def run(tx: Tx) -> None:
            ids = [d for d, _ in last_seen]
            for at in range(0, len(ids), 500):
                batch = ids[at : at + 500]
                marks = ",".join("?" * len(batch))
                for row in tx.all(f"SELECT * FROM devices WHERE last_seen_at IS NULL AND id IN ({marks})", batch):
                    tx.actor = row["id"]
                    tx.event("first_seen", "device", row["id"], None, device_view(row))
            tx.run_many("UPDATE devices SET last_seen_at = ? WHERE id = ?", [(t, d) for d, t in last_seen])
            tx.run_many(
                "INSERT INTO events (id, at, actor, action, resource_type, resource_id, before, after) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (eid, t, d, "resolve", "device", d, None, encode(ev).decode())
                    for eid, (d, t, ev) in zip(new_ids("event", len(events)), events, strict=True)
                ],
            )
            tx.run_many(
                "INSERT INTO rollouts (release_id, device_id, channel_id, cohort_id, status, offered_at, updated_at) "
                "SELECT id, ?, channel_id, ?, 'offered', ?, ? FROM releases WHERE id = ? "
                "ON CONFLICT (release_id, device_id) DO NOTHING",
                [(d, cohort, t, t, rid) for d, rid, cohort, t in offers],
            )

        await self.db.tx("", run, durable=False)
