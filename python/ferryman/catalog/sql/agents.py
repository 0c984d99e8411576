"""What the agent protocols (hawkBit DDI, Mender) read and write: a device with its latest
action, actions opened and closed, attributes the device tells about itself, and Mender's
admission (a device asks to join with a key; it waits, ``pending``, until an operator accepts it,
unless its key was registered beforehand)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence

import msgspec

from ferryman.catalog import models as m
from ferryman.catalog.rules import check_id, hash_token, now
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, to
from ferryman.catalog.sql.devices import device_view
from ferryman.errors import Conflict, NotFound
from ferryman.ids import new_id

__all__ = ["Agents"]

_LATEST = "SELECT * FROM device_actions WHERE device_id = ? ORDER BY id DESC LIMIT 1"
MAX_ATTRIBUTES = 200  # attributes kept per device
MAX_ATTRIBUTE = 1024  # characters of a name or value kept


def _unusable_token() -> str:
    """A token hash no token has: a device that may not authenticate (pending, rejected)."""
    return hash_token(secrets.token_urlsafe(32)) + "-none"


def _action(row: Row) -> m.DeviceAction:
    return to(m.DeviceAction, row)


def _clean(attributes: Mapping[str, object]) -> dict[str, str]:
    """Attributes as text, bounded: a device cannot grow its record without limit."""
    out = {}
    for k, v in list(attributes.items())[:MAX_ATTRIBUTES]:
        text = v if isinstance(v, str) else json.dumps(v)
        out[str(k)[:MAX_ATTRIBUTE]] = text[:MAX_ATTRIBUTE]
    return out


class Agents:
    db: Database

    async def agent_device(
        self, *, token_hash: str | None = None, identifier: str | None = None
    ) -> tuple[m.Device, m.DeviceAction | None, bool] | None:
        """The device with this token hash (or identifier), its latest action, and whether it
        still has to send its configuration (DDI configData); None if there is none."""

        def run(tx: Tx) -> tuple[m.Device, m.DeviceAction | None, bool] | None:
            if token_hash is not None:
                row = tx.one("SELECT * FROM devices WHERE token_hash = ?", [token_hash])
            else:
                row = tx.one("SELECT * FROM devices WHERE identifier = ?", [identifier])
            if row is None:
                return None
            latest = tx.one(_LATEST, [row["id"]])
            return to(m.Device, device_view(row)), _action(latest) if latest else None, row["config_at"] is None

        return await self.db.read(run)

    async def agent_devices(self, token_hashes: Sequence[str]) -> dict[str, tuple[m.Device, m.DeviceAction | None, bool]]:
        """``agent_device`` for many token hashes in one read, by token hash (unknown ones are
        left out): the polls of many devices at once cost one catalog round trip."""

        def run(tx: Tx) -> dict[str, tuple[m.Device, m.DeviceAction | None, bool]]:
            found = {}
            for at in range(0, len(token_hashes), 500):
                batch = list(token_hashes[at : at + 500])
                marks = ",".join("?" * len(batch))
                rows = tx.all(f"SELECT * FROM devices WHERE token_hash IN ({marks})", batch)
                if not rows:
                    continue
                ids = [r["id"] for r in rows]
                id_marks = ",".join("?" * len(ids))
                latest = {a["device_id"]: a for a in tx.all(
                    f"SELECT * FROM device_actions WHERE id IN (SELECT MAX(id) FROM device_actions"
                    f" WHERE device_id IN ({id_marks}) GROUP BY device_id)", ids)}  # fmt: skip
                for row in rows:
                    action = latest.get(row["id"])
                    found[row["token_hash"]] = (to(m.Device, device_view(row)), _action(action) if action else None,
                                                row["config_at"] is None)  # fmt: skip
            return found

        return await self.db.read(run)

    async def binaries_without_legacy_hashes(self, limit: int = 16) -> list[tuple[str, str]]:
        """Published binaries (ID, SHA-256) hashed before SHA-1 and MD5 were kept, oldest first."""
        rows = await self.db.read(lambda tx: tx.all(
            "SELECT id, sha256 FROM binaries WHERE sha1 IS NULL AND state IN ('signable', 'signed')"
            " ORDER BY created_at, id LIMIT ?", [limit]))  # fmt: skip
        return [(r["id"], r["sha256"]) for r in rows]

    async def fill_content_facts(self, binary_id: str, sha256: str, facts: m.ContentFacts) -> bool:
        """Records the SHA-1, MD5 and Mender header of a published binary that has none yet,
        if its content still has this SHA-256; whether it did."""
        mender = msgspec.json.encode(facts.mender).decode() if facts.mender else None

        def run(tx: Tx) -> bool:
            return tx.run(
                "UPDATE binaries SET sha1 = ?, md5 = ?, mender = ? WHERE id = ? AND sha256 = ? AND sha1 IS NULL"
                " AND state IN ('signable', 'signed')", [facts.sha1, facts.md5, mender, binary_id, sha256]
            ) == 1  # fmt: skip

        return await self.db.tx("server", run)

    async def start_action(self, device_id: str, release_id: str | None, bundle_id: str) -> m.DeviceAction:
        """Opens an action for a device, or returns the one it has open (two polls at once open
        one action: the catalog's writes are serialised)."""

        def run(tx: Tx) -> Row:
            latest = tx.one(_LATEST, [device_id])
            if latest is not None and latest["status"] in ("open", "canceling"):
                return latest
            t = now()
            row: Row = {"device_id": device_id, "release_id": release_id, "bundle_id": bundle_id, "status": "open",
                        "result": None, "detail": None, "created_at": t, "updated_at": t}  # fmt: skip
            marks = ", ".join("?" * len(row))
            found = tx.one(f"INSERT INTO device_actions ({', '.join(row)}) VALUES ({marks}) RETURNING id", list(row.values()))
            assert found is not None
            row["id"] = found["id"]
            tx.event("open", "action", str(row["id"]), None, row)
            return row

        # Actions are not in the fleet snapshot: opening one leaves the update checks' caches be.
        return _action(await self.db.tx(device_id, run, changes_answers=False))

    async def device_action(self, device_id: str, action_id: int) -> m.DeviceAction:
        """One of a device's actions; NotFound if it is not the device's."""
        row = await self.db.read(
            lambda tx: tx.one("SELECT * FROM device_actions WHERE id = ? AND device_id = ?", [action_id, device_id])
        )
        if row is None:
            raise NotFound(f"device has no action {action_id}")
        return _action(row)

    async def list_device_actions(self, device_id: str, limit: int) -> list[m.DeviceAction]:
        """A device's last ``limit`` actions, newest first."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> list[Row]:
            get_or_404(tx, "devices", device_id, "device")
            return tx.all("SELECT * FROM device_actions WHERE device_id = ? ORDER BY id DESC LIMIT ?", [device_id, limit])

        return [_action(r) for r in await self.db.read(run)]

    async def change_action(
        self, actor: str, device_id: str, action_id: int, status: str, *, result: str | None = None,
        detail: str | None = None, expect: tuple[str, ...] = ("open", "canceling"),
    ) -> m.DeviceAction:  # fmt: skip
        """Moves one of a device's actions to ``status`` if it is in one of ``expect``; Conflict
        otherwise (the action's state is in the error), NotFound if it is not the device's."""

        def run(tx: Tx) -> Row:
            row = tx.one("SELECT * FROM device_actions WHERE id = ? AND device_id = ?", [action_id, device_id])
            if row is None:
                raise NotFound(f"device has no action {action_id}")
            if row["status"] not in expect:
                raise Conflict(f"action {action_id} is {row['status']}", status=row["status"])
            changes: Row = {"status": status, "updated_at": now()}
            if result is not None:
                changes["result"] = result
            if detail is not None:
                changes["detail"] = detail
            sets = ", ".join(f"{c} = ?" for c in changes)
            tx.run(f"UPDATE device_actions SET {sets} WHERE id = ?", [*changes.values(), action_id])
            after = {**row, **changes}
            if changes["status"] != row["status"]:
                tx.event(status, "action", str(action_id), row, after)
            return after

        return _action(await self.db.tx(actor, run, changes_answers=False))

    async def cancel_device_actions(self, actor: str, device_id: str) -> list[m.DeviceAction]:
        """An operator's cancel: the device's open action becomes ``canceling`` (the device is
        told to stop at its next poll)."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> list[Row]:
            get_or_404(tx, "devices", device_id, "device")
            rows = tx.all("SELECT * FROM device_actions WHERE device_id = ? AND status = 'open'", [device_id])
            t = now()
            for row in rows:
                sql = "UPDATE device_actions SET status = 'canceling', result = 'canceled', updated_at = ? WHERE id = ?"
                tx.run(sql, [t, row["id"]])
                tx.event("cancel", "action", str(row["id"]), row, {**row, "status": "canceling", "result": "canceled"})
            return [{**r, "status": "canceling", "result": "canceled", "updated_at": t} for r in rows]

        return [_action(r) for r in await self.db.tx(actor, run, changes_answers=False)]

    async def set_device_attributes(self, device_id: str, attributes: Mapping[str, object], *, replace: bool = False,
                                    remove: bool = False, config: bool = False) -> None:  # fmt: skip
        """Stores what a device tells about itself: merged into what it told before (``replace``:
        instead of it; ``remove``: drops the names given). ``config``: it came as DDI configData,
        which the device is then no longer asked for. Logged only when something changed."""
        given = _clean(attributes)

        def run(tx: Tx) -> None:
            row = get_or_404(tx, "devices", device_id, "device")
            before = json.loads(row["attributes"])
            after = given if replace else {**before, **given}
            if remove:
                after = {k: v for k, v in before.items() if k not in given}
            after = dict(list(after.items())[:MAX_ATTRIBUTES])
            changes: Row = {}
            if after != before:
                changes["attributes"] = json.dumps(after, sort_keys=True)
            if config and row["config_at"] is None:
                changes["config_at"] = now()
            if changes:
                tx.update("devices", device_id, changes)
            if "attributes" in changes:
                tx.event("attributes", "device", device_id, {"attributes": before}, {"attributes": after})

        await self.db.tx(device_id, run, durable=False)

    async def adopt_target(self, device_id: str, target: str) -> None:
        """Gives a device that joined without one (target ``any``) the target its agent reports."""

        def run(tx: Tx) -> None:
            row = get_or_404(tx, "devices", device_id, "device")
            if row["target"] == "any":
                tx.update("devices", device_id, {"target": target, "updated_at": now()})
                tx.event("update", "device", device_id, device_view(row), device_view({**row, "target": target}))

        await self.db.tx(device_id, run)

    # Admission (Mender) ----------------------------------------------------------------------------

    async def authenticate_agent(self, identity: str, identifier: str, public_key: str, keyid: str,
                                 token_hash: str) -> tuple[m.Device, bool]:  # fmt: skip
        """A verified authentication request: the device with this key (one is created,
        ``pending``, for a key never seen) and whether it is accepted; an accepted device's
        token becomes ``token_hash`` (its earlier one stops working)."""

        def run(tx: Tx) -> tuple[Row, bool]:
            row = tx.one("SELECT * FROM devices WHERE auth_keyid = ?", [keyid])
            t = now()
            if row is None:
                name = identifier
                if tx.one("SELECT id FROM devices WHERE identifier = ?", [name]):
                    name = f"{identifier[:200]}-{keyid[:12]}"  # the identity is taken by another key
                row = {
                    "id": new_id("device"), "identifier": name, "target": "any", "tags": "[]", "cohort_id": None,
                    "quarantined": 0, "token_hash": _unusable_token(), "reported_release_id": None,
                    "reported_bundle_id": None, "reported_version": None, "reports": 0, "last_status": None,
                    "last_detail": None, "last_seen_at": None, "created_at": t, "updated_at": t, "region": None,
                    "attributes": "{}", "admission": "pending", "auth_key": public_key, "auth_keyid": keyid,
                    "identity": identity, "config_at": None,
                }  # fmt: skip
                tx.insert("devices", row)
                tx.event("create", "device", row["id"], None, device_view(row))
                return row, False
            if row["admission"] != "accepted":
                return row, False
            changes: Row = {"token_hash": token_hash, "last_seen_at": t}
            if row["identity"] != identity:
                changes["identity"] = identity
            tx.update("devices", row["id"], changes)
            # The update checks cache devices by token: the old token must stop working there too.
            tx.changes_answers = True
            return {**row, **changes}, True

        row, accepted = await self.db.tx("mender", run, changes_answers=False)
        return to(m.Device, device_view(row)), accepted

    async def admit_device(self, actor: str, device_id: str, accept: bool) -> m.Device:
        """An operator's verdict on a device that asked to join: ``accepted`` (it gets a token
        at its next authentication request) or ``rejected`` (its token stops working at once)."""
        check_id(device_id, "device", "device")

        def run(tx: Tx) -> Row:
            row = get_or_404(tx, "devices", device_id, "device")
            admission = "accepted" if accept else "rejected"
            if row["admission"] == admission:
                return device_view(row)
            changes: Row = {"admission": admission, "updated_at": now()}
            if not accept:
                changes["token_hash"] = _unusable_token()
            tx.update("devices", device_id, changes)
            after = device_view({**row, **changes})
            tx.event("accept" if accept else "reject", "device", device_id, device_view(row), after)
            return after

        return to(m.Device, await self.db.tx(actor, run))
