"""Binaries: declaration, the lifecycle's conditional state changes, parts and their
in-flight leases, and signatures. The lifecycle's rules come from ``ferryman.lifecycle``."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from ferryman.catalog import models as m
from ferryman.catalog.rules import check_id, later, now
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, loads_fields, page_of, to, update_logged
from ferryman.catalog.sql.replicas import mark_deleting, replicas_of
from ferryman.errors import Conflict, Invalid
from ferryman.ids import new_id
from ferryman.lifecycle import State, check_client_transition, check_server_transition

__all__ = ["Binaries", "changes_of", "follow_signatures", "move"]

_PART = 'SELECT "index", size, sha256, created_at FROM parts'
# A hashing job's lease: bookkeeping of the workers, not part of the binary's record.
_LEASE = ("lease_owner", "lease_until")


def binary_view(tx: Tx, row: Row) -> Row:
    ver = tx.one("SELECT artifact_id FROM versions WHERE id = ?", [row["version_id"]])
    out = loads_fields({k: v for k, v in row.items() if k not in _LEASE}, ("custom_metadata", "mender"))
    out["artifact_id"] = ver["artifact_id"] if ver else ""
    out["part_count"] = max(1, -(-row["size"] // row["part_size"]))
    return out


def changes_of(body: msgspec.Struct, exclude: tuple[str, ...] = ()) -> Row:
    """A patch's set fields as column values (custom metadata checked and stored as JSON)."""
    changes: Row = {}
    for field in body.__struct_fields__:
        value = getattr(body, field)
        if field in exclude or value is msgspec.UNSET:
            continue
        if field == "custom_metadata":
            m.check_metadata(value)
            value = msgspec.json.encode(value).decode()
        changes[field] = value
    return changes


def move(tx: Tx, row: Row, target: State, error: str | None) -> Row:
    """Moves a binary to ``target`` if it is still in the state ``row`` was read in; logs it."""
    before = binary_view(tx, row)
    changed = tx.update(
        "binaries",
        row["id"],
        {"state": target.value, "error": error, "updated_at": now(), "lease_owner": None, "lease_until": None},
        where={"state": row["state"]},
    )
    if changed != 1:
        raise Conflict("the binary changed state meanwhile; retry")
    if target in (State.UPLOADABLE, State.DESTROYED):
        tx.run("DELETE FROM parts WHERE binary_id = ?", [row["id"]])
        mark_deleting(tx, row["id"])
    after = binary_view(tx, get_or_404(tx, "binaries", row["id"], "binary"))
    tx.event(f"state:{target}", "binary", row["id"], before, after)
    return after


def follow_signatures(tx: Tx, binary: Row, threshold: int) -> None:
    """Moves a binary between signable and signed to match its count of valid signatures."""
    n = tx.one(
        "SELECT count(DISTINCT s.signing_key_id) AS n FROM signatures s "
        "JOIN signing_keys k ON k.id = s.signing_key_id WHERE s.binary_id = ? AND k.state = 'active'",
        [binary["id"]],
    )["n"]  # type: ignore[index]
    current = State(binary["state"])
    target = State.SIGNED if n >= threshold else State.SIGNABLE
    if target is current or current not in (State.SIGNABLE, State.SIGNED):
        return
    check_server_transition(current, target)
    move(tx, binary, target, None)


def _all_parts_present(tx: Tx, binary: Row) -> None:
    busy = tx.all(
        'SELECT DISTINCT "index" FROM uploads_in_flight WHERE binary_id = ? AND expires_at > ? ORDER BY "index"',
        [binary["id"], now()],
    )
    if busy:
        raise Conflict("uploads in progress for parts " + ", ".join(str(r["index"]) for r in busy))
    count = max(1, -(-binary["size"] // binary["part_size"]))
    have = {r["index"] for r in tx.all('SELECT "index" FROM parts WHERE binary_id = ?', [binary["id"]])}
    missing = [i for i in range(1, count + 1) if i not in have]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise Conflict(f"parts missing: {shown}", missing=missing[:1000])


def _uploadable(tx: Tx, binary_id: str) -> Row:
    row = get_or_404(tx, "binaries", binary_id, "binary")
    if row["state"] != State.UPLOADABLE:
        raise Conflict(f"binary is {row['state']}; parts are accepted only while uploadable")
    return row


class Binaries:
    db: Database
    threshold: int

    async def create_binary(self, actor: str, version_id: str, body: m.BinaryCreate) -> m.Binary:
        check_id(version_id, "version", "version")
        m.check_metadata(body.custom_metadata)
        part_size = body.part_size or m.DEFAULT_PART
        parts = max(1, -(-body.size // part_size))
        if parts > m.MAX_PARTS:
            raise Invalid(
                f"{parts} parts of {part_size} bytes; at most {m.MAX_PARTS} are allowed",
                {"part_size": [f"too small for {body.size} bytes (at most {m.MAX_PARTS} parts)"]},
            )
        t = now()
        row: Row = {
            "id": new_id("binary"), "version_id": version_id, "target": body.target, "size": body.size,
            "sha256": body.sha256.lower(), "part_size": part_size, "state": State.UPLOADABLE.value, "error": None,
            "description": body.description, "custom_metadata": msgspec.json.encode(body.custom_metadata).decode(),
            "created_at": t, "updated_at": t, "filename": body.filename,
        }  # fmt: skip

        def run(tx: Tx) -> Row:
            get_or_404(tx, "versions", version_id, "version")
            live = tx.one(
                "SELECT id FROM binaries WHERE version_id = ? AND target = ? AND state != 'destroyed'",
                [version_id, body.target],
            )
            if live:
                raise Conflict(
                    f"version already has a binary for {body.target} ({live['id']})",
                    {"target": ["a binary for this target exists"]},
                )
            tx.insert("binaries", row)
            view = binary_view(tx, row)
            tx.event("create", "binary", row["id"], None, view)
            return view

        return to(m.Binary, await self.db.tx(actor, run, changes_answers=False))

    async def get_binary(self, binary_id: str) -> m.Binary:
        check_id(binary_id, "binary", "binary")

        def run(tx: Tx) -> Row:
            view = binary_view(tx, get_or_404(tx, "binaries", binary_id, "binary"))
            view["replicas"] = replicas_of(tx, [binary_id])[binary_id]
            return view

        return to(m.Binary, await self.db.read(run))

    async def list_binaries(self, limit: int, cursor: str | None, filters: Mapping[str, str]) -> m.Page[m.Binary]:
        equal: dict[str, str] = {c: filters[c] for c in ("version_id", "target", "state", "sha256") if c in filters}
        if "sha256" in equal:
            equal["sha256"] = equal["sha256"].lower()

        signed_by = filters.get("signing_key_id")
        conditions = [("id IN (SELECT binary_id FROM signatures WHERE signing_key_id = ?)", signed_by)] if signed_by else []

        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("binaries", limit, cursor, equal=equal, conditions=conditions)
            copies = replicas_of(tx, [r["id"] for r in page.items])
            page.items = [{**binary_view(tx, r), "replicas": copies[r["id"]]} for r in page.items]
            return page

        return page_of(m.Binary, await self.db.read(run))

    async def binaries_in_state(self, state: State) -> list[str]:
        rows = await self.db.read(lambda tx: tx.all("SELECT id FROM binaries WHERE state = ?", [state.value]))
        return [r["id"] for r in rows]

    async def change_binary(
        self,
        actor: str,
        binary_id: str,
        fields: m.BinaryPatch,
        target: State | None = None,
        *,
        by_server: bool = False,
        expect: State | None = None,
        error: str | None = None,
        content: m.ContentFacts | None = None,
    ) -> m.Binary:
        """Changes a binary's fields and, with ``target``, moves it there if the lifecycle
        allows it from its current state (with ``expect``, only from that state), in one
        transaction: a refused move changes nothing. A client's move to ``hashable`` needs every
        part in and no upload in flight, and continues at once to ``hashing`` (DESIGN.md). The update is
        conditional on the state read, so of two racing requests only one can win. ``content``:
        what hashing learnt of the bytes (the server's)."""
        check_id(binary_id, "binary", "binary")
        changes = changes_of(fields, exclude=("state",))
        if content is not None:
            mender = msgspec.json.encode(content.mender).decode() if content.mender else None
            changes.update(sha1=content.sha1, md5=content.md5, mender=mender)

        def run(tx: Tx) -> Row:
            row = get_or_404(tx, "binaries", binary_id, "binary")
            if target is not None:
                current = State(row["state"])
                if expect is not None and current is not expect:
                    raise Conflict(f"binary is {current}, not {expect}", state=str(current))
                (check_server_transition if by_server else check_client_transition)(current, target)
                if target is State.HASHABLE and not by_server:
                    _all_parts_present(tx, row)
            if changes:
                before = binary_view(tx, row)
                update_logged(tx, "binaries", binary_id, "binary", changes, before, lambda r: binary_view(tx, r))
                row = get_or_404(tx, "binaries", binary_id, "binary")
            if target is None:
                return binary_view(tx, row)
            after = move(tx, row, target, error)
            if target is State.HASHABLE and not by_server:
                after = move(tx, get_or_404(tx, "binaries", binary_id, "binary"), State.HASHING, None)
            return after

        def with_replicas(tx: Tx) -> Row:
            return {**run(tx), "replicas": replicas_of(tx, [binary_id])[binary_id]}

        return to(m.Binary, await self.db.tx(actor, with_replicas))

    # Parts ------------------------------------------------------------------------------------

    async def begin_part(self, actor: str, binary_id: str, index: int, lease: float) -> tuple[str, m.Binary]:
        """Registers an upload of part ``index`` as in flight for ``lease`` seconds (renew with
        ``renew_part``), only while the binary is ``uploadable``; hashing cannot start while an
        unexpired upload is in flight. A marker whose process died or whose end could not be
        written expires by itself. Returns the marker's token and the binary."""
        check_id(binary_id, "binary", "binary")

        def run(tx: Tx) -> tuple[str, Row]:
            row = _uploadable(tx, binary_id)
            token = new_id("upload")
            tx.insert(
                "uploads_in_flight",
                {"id": token, "binary_id": binary_id, "index": index, "started_at": now(), "expires_at": later(lease)},
            )
            return token, binary_view(tx, row)

        token, view = await self.db.tx(actor, run, durable=False)
        return token, to(m.Binary, view)

    async def renew_part(self, token: str, lease: float) -> None:
        sql = "UPDATE uploads_in_flight SET expires_at = ? WHERE id = ?"
        await self.db.tx("", lambda tx: tx.run(sql, [later(lease), token]), durable=False)

    async def end_part(self, token: str) -> None:
        await self.db.tx("", lambda tx: tx.run("DELETE FROM uploads_in_flight WHERE id = ?", [token]), durable=False)

    async def release_leases(self) -> None:
        """Ends every upload lease and hashing lease: called when no process that could hold
        one is running (an embedded catalog, before its server starts)."""

        def run(tx: Tx) -> None:
            tx.run("DELETE FROM uploads_in_flight")
            tx.run("UPDATE binaries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
            tx.run("UPDATE replicas SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
            tx.run("UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")

        await self.db.tx("", run, changes_answers=False)

    # Hashing jobs -----------------------------------------------------------------------------

    async def claim_hashing(self, worker: str, lease: float, binary_id: str | None = None, limit: int = 8) -> list[str]:
        """Takes up to ``limit`` binaries in ``hashing`` whose lease is free or expired (with
        ``binary_id``, only that one) for ``worker`` for ``lease`` seconds; returns their IDs.
        Conditional on the lease read, so one job goes to one worker."""

        def run(tx: Tx) -> list[str]:
            t = now()
            only, args = (" AND id = ?", [binary_id]) if binary_id else ("", [])
            rows = tx.all(
                "SELECT id FROM binaries WHERE state = 'hashing' AND (lease_until IS NULL OR lease_until < ?)"
                f"{only} ORDER BY updated_at LIMIT ?{tx.skip_locked()}",
                [t, *args, limit],
            )
            until = later(lease)
            return [
                r["id"]
                for r in rows
                if tx.run(
                    "UPDATE binaries SET lease_owner = ?, lease_until = ? WHERE id = ? AND state = 'hashing' "
                    "AND (lease_until IS NULL OR lease_until < ?)",
                    [worker, until, r["id"], t],
                )
                == 1
            ]

        return await self.db.tx("", run, changes_answers=False)

    async def renew_hashing(self, binary_id: str, worker: str, lease: float) -> bool:
        """Extends ``worker``'s lease on a hashing job; false if it holds it no longer."""
        sql = "UPDATE binaries SET lease_until = ? WHERE id = ? AND state = 'hashing' AND lease_owner = ?"
        return await self.db.tx("", lambda tx: tx.run(sql, [later(lease), binary_id, worker]), durable=False) == 1

    async def record_part(self, actor: str, token: str, binary_id: str, index: int, size: int, sha256: str) -> m.Part:
        """Records an uploaded part (replacing an earlier upload of the same index) and ends its
        in-flight marker ``token``, only while the binary is still ``uploadable``."""

        def run(tx: Tx) -> Row:
            _uploadable(tx, binary_id)
            part = {"binary_id": binary_id, "index": index, "size": size, "sha256": sha256, "created_at": now()}
            before = tx.one(_PART + ' WHERE binary_id = ? AND "index" = ?', [binary_id, index])
            tx.run('DELETE FROM parts WHERE binary_id = ? AND "index" = ?', [binary_id, index])
            tx.insert("parts", part)
            tx.run("DELETE FROM uploads_in_flight WHERE id = ?", [token])
            tx.event("part", "binary", binary_id, before, {"index": index, "size": size, "sha256": sha256})
            return part

        return to(m.Part, await self.db.tx(actor, run, changes_answers=False))

    async def list_parts(self, binary_id: str) -> list[m.Part]:
        check_id(binary_id, "binary", "binary")
        rows = await self.db.read(lambda tx: tx.all(_PART + ' WHERE binary_id = ? ORDER BY "index"', [binary_id]))
        return [to(m.Part, r) for r in rows]

    # Signatures -------------------------------------------------------------------------------

    async def add_signature(
        self, actor: str, binary_id: str, key_id: str, signature_hex: str, message: str
    ) -> tuple[m.Signature, bool]:
        """Stores a verified signature; returns it and whether it is new (a repeat is a no-op)."""

        def run(tx: Tx) -> tuple[Row, bool]:
            binary = get_or_404(tx, "binaries", binary_id, "binary")
            if binary["state"] not in (State.SIGNABLE, State.SIGNED):
                raise Conflict(f"binary is {binary['state']}; signatures are accepted once it is signable")
            k = get_or_404(tx, "signing_keys", key_id, "signing key")
            if k["state"] != "active":
                raise Invalid("the signing key is revoked", {"signing_key_id": ["revoked"]})
            key = {"keyid": k["keyid"], "algorithm": k["algorithm"], "key_state": k["state"]}
            existing = tx.one("SELECT * FROM signatures WHERE binary_id = ? AND signing_key_id = ?", [binary_id, key_id])
            if existing:
                return {**existing, **key}, False
            row = {"id": new_id("signature"), "binary_id": binary_id, "signing_key_id": key_id, "signature": signature_hex,
                   "message": message, "created_at": now()}  # fmt: skip
            tx.insert("signatures", row)
            tx.event("sign", "binary", binary_id, None, {**row, "keyid": k["keyid"]})
            follow_signatures(tx, binary, self.threshold)
            return {**row, **key}, True

        row, created = await self.db.tx(actor, run)
        return to(m.Signature, row), created

    async def list_signatures(self, binary_id: str, limit: int = 500, cursor: str | None = None) -> m.Page[m.Signature]:
        check_id(binary_id, "binary", "binary")

        def run(tx: Tx) -> m.Page[Row]:
            get_or_404(tx, "binaries", binary_id, "binary")
            return tx.page(
                "signatures s JOIN signing_keys k ON k.id = s.signing_key_id",
                limit,
                cursor,
                equal={"s.binary_id": binary_id},
                columns="s.*, k.keyid, k.algorithm, k.state AS key_state",
                key=("s.created_at", "s.id"),
            )

        return page_of(m.Signature, await self.db.read(run))
