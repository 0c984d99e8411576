"""Devices (registration, tokens, reports) and bundle overrides."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import msgspec

from ferryman.catalog import models as m
from ferryman.catalog.rules import check_id, now, parse_time
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, page_of, to, update_logged
from ferryman.errors import Conflict, Invalid, InvalidKey, Unauthenticated
from ferryman.ids import is_id, new_id
from ferryman.signing import load_public_key

__all__ = ["Devices", "device_view"]


def device_view(row: Row) -> Row:
    out = {k: v for k, v in row.items() if k not in ("token_hash", "reports", "auth_key", "config_at")}
    out["tags"] = json.loads(out["tags"])
    out["quarantined"] = bool(out["quarantined"])
    if "attributes" in out:
        out["attributes"] = json.loads(out["attributes"])
    return out


def _override_view(tx: Tx, row: Row) -> Row:
    sql = "SELECT device_id FROM override_devices WHERE override_id = ? ORDER BY device_id"
    return {**row, "device_ids": [r["device_id"] for r in tx.all(sql, [row["id"]])]}


def _cohort_exists(tx: Tx, cohort_id: str | None) -> None:
    if cohort_id is not None and not tx.one("SELECT id FROM cohorts WHERE id = ?", [cohort_id]):
        raise Invalid(f"no cohort {cohort_id}", {"cohort_id": ["unknown cohort"]})


class Devices:
    db: Database

    async def create_device(self, actor: str, body: m.DeviceCreate, token_hash: str) -> m.Device:
        if body.cohort_id is not None:
            check_id(body.cohort_id, "cohort", "cohort", "cohort_id")

        auth_key, keyid = None, None
        if body.auth_key is not None:
            try:
                key = load_public_key(body.auth_key)
            except InvalidKey as e:
                raise Invalid(f"auth_key: {e}", {"auth_key": ["not an RSA or Ed25519 public key"]}) from None
            auth_key, keyid = key.spki_pem, key.keyid

        def run(tx: Tx) -> Row:
            _cohort_exists(tx, body.cohort_id)
            if tx.one("SELECT id FROM devices WHERE identifier = ?", [body.identifier]):
                raise Conflict(f"a device {body.identifier!r} exists", {"identifier": ["already registered"]})
            if keyid is not None and tx.one("SELECT id FROM devices WHERE auth_keyid = ?", [keyid]):
                raise Conflict("another device authenticates with this key", {"auth_key": ["already registered"]})
            t = now()
            row: Row = {
                "id": new_id("device"), "identifier": body.identifier, "target": body.target,
                "tags": json.dumps(sorted(set(body.tags))), "cohort_id": body.cohort_id, "quarantined": 0,
                "token_hash": token_hash, "reported_release_id": None, "reported_bundle_id": None,
                "reported_version": None, "reports": 0, "last_status": None, "last_detail": None, "last_seen_at": None,
                "created_at": t, "updated_at": t, "region": body.region, "attributes": "{}", "admission": "accepted",
                "auth_key": auth_key, "auth_keyid": keyid, "identity": None, "config_at": None,
            }  # fmt: skip
            tx.insert("devices", row)
            view = device_view(row)
            tx.event("create", "device", row["id"], None, view)
            return view

        return to(m.Device, await self.db.tx(actor, run))

    async def get_device(self, device_id: str) -> m.Device:
        check_id(device_id, "device", "device")
        return to(m.Device, await self.db.read(lambda tx: device_view(get_or_404(tx, "devices", device_id, "device"))))

    async def list_devices(self, limit: int, cursor: str | None, filters: Mapping[str, str]) -> m.Page[m.Device]:
        columns = ("cohort_id", "target", "admission", "identifier", "reported_release_id")
        equal: dict[str, str] = {c: filters[c] for c in columns if c in filters}
        # Times are stored normalised (text order is time order); a device never seen is in neither.
        bounds = (("seen_since", "last_seen_at >= ?"), ("seen_before", "last_seen_at < ?"))
        seen = [(sql, parse_time(filters[k], k)) for k, sql in bounds if k in filters]

        def run(tx: Tx) -> m.Page[Row]:
            tag = [(tx.json_has("devices.tags"), filters["tag"])] if "tag" in filters else []
            page = tx.page("devices", limit, cursor, equal=equal, conditions=tag + seen)
            page.items = [device_view(r) for r in page.items]
            return page

        return page_of(m.Device, await self.db.read(run))

    async def devices_on(self, release_ids: Sequence[str]) -> dict[str, int]:
        if not release_ids:
            return {}
        marks = ", ".join("?" * len(release_ids))
        sql = f"SELECT reported_release_id AS r, count(*) AS n FROM devices WHERE reported_release_id IN ({marks}) GROUP BY 1"
        rows = await self.db.read(lambda tx: tx.all(sql, list(release_ids)))
        return {row["r"]: int(row["n"]) for row in rows}

    async def patch_device(self, actor: str, device_id: str, body: m.DevicePatch) -> m.Device:
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
        if body.region is not msgspec.UNSET:
            changes["region"] = body.region

        def run(tx: Tx) -> Row:
            before = device_view(get_or_404(tx, "devices", device_id, "device"))
            _cohort_exists(tx, body.cohort_id if isinstance(body.cohort_id, str) else None)
            return update_logged(tx, "devices", device_id, "device", changes, before, device_view)

        return to(m.Device, await self.db.tx(actor, run))

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

    async def rotate_device_token(self, actor: str, device_id: str, token_hash: str) -> m.Device:
        """Gives a device a new token; the old one stops working at once (the change drops the
        update checks' device cache with the snapshot)."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> Row:
            row = get_or_404(tx, "devices", device_id, "device")
            tx.update("devices", device_id, {"token_hash": token_hash, "updated_at": now()})
            view = device_view(get_or_404(tx, "devices", device_id, "device"))
            tx.event("token", "device", device_id, device_view(row), view)
            return view

        return to(m.Device, await self.db.tx(actor, run))

    async def device_for_token(self, token_hash: str) -> m.Device:
        """The device with this token; raises Unauthenticated."""
        row = await self.db.read(lambda tx: tx.one("SELECT * FROM devices WHERE token_hash = ?", [token_hash]))
        if row is None:
            raise Unauthenticated("the device token is not valid")
        return to(m.Device, device_view(row))

    # Overrides ---------------------------------------------------------------------------------

    async def create_override(self, actor: str, body: m.OverrideCreate) -> m.Override:
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
            row: Row = {"id": new_id("override"), "bundle_id": body.bundle_id, "starts_at": starts, "ends_at": ends,
                        "created_at": t, "updated_at": t}  # fmt: skip
            tx.insert("bundle_overrides", row)
            for d in dict.fromkeys(body.device_ids):
                tx.insert("override_devices", {"override_id": row["id"], "device_id": d})
            view = _override_view(tx, row)
            tx.event("create", "override", row["id"], None, view)
            return view

        return to(m.Override, await self.db.tx(actor, run))

    async def get_override(self, override_id: str) -> m.Override:
        check_id(override_id, "override", "bundle override")
        row = await self.db.read(
            lambda tx: _override_view(tx, get_or_404(tx, "bundle_overrides", override_id, "bundle override"))
        )
        return to(m.Override, row)

    async def list_overrides(self, limit: int, cursor: str | None, device_id: str | None) -> m.Page[m.Override]:
        of_device = [("id IN (SELECT override_id FROM override_devices WHERE device_id = ?)", device_id)] if device_id else []

        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("bundle_overrides", limit, cursor, conditions=of_device)
            page.items = [_override_view(tx, r) for r in page.items]
            return page

        return page_of(m.Override, await self.db.read(run))

    async def patch_override(self, actor: str, override_id: str, body: m.OverridePatch) -> m.Override:
        check_id(override_id, "override", "bundle override")
        changes: Row = {}
        if body.starts_at is not msgspec.UNSET:
            changes["starts_at"] = parse_time(body.starts_at, "starts_at")
        if body.ends_at is not msgspec.UNSET:
            changes["ends_at"] = parse_time(body.ends_at, "ends_at")

        def run(tx: Tx) -> Row:
            before = _override_view(tx, get_or_404(tx, "bundle_overrides", override_id, "bundle override"))
            merged = {**before, **changes}
            if merged["ends_at"] is not None and merged["ends_at"] <= merged["starts_at"]:
                raise Invalid("ends_at must be after starts_at", {"ends_at": ["before starts_at"]})
            view = lambda r: _override_view(tx, r)  # noqa: E731
            return update_logged(tx, "bundle_overrides", override_id, "override", changes, before, view)

        return to(m.Override, await self.db.tx(actor, run))

    async def delete_override(self, actor: str, override_id: str) -> None:
        check_id(override_id, "override", "bundle override")

        def run(tx: Tx) -> None:
            before = _override_view(tx, get_or_404(tx, "bundle_overrides", override_id, "bundle override"))
            tx.run("DELETE FROM override_devices WHERE override_id = ?", [override_id])
            tx.run("DELETE FROM bundle_overrides WHERE id = ?", [override_id])
            tx.event("delete", "override", override_id, before, None)

        await self.db.tx(actor, run)
