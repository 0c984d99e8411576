"""Catalog operations: artifacts, versions, binaries and their parts, signing keys, signatures,
API keys and the audit log. Each operation is one transaction (see ``sqlite.py``); the rules of
the binary lifecycle come from ``ferryman.lifecycle``. Nothing here knows about HTTP.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import semver

from ferryman.catalog import models as m
from ferryman.catalog.fleet import FleetOps
from ferryman.catalog.sqlite import (
    Page,
    Row,
    SqliteCatalog,
    Tx,
    check_id,
    get_or_404,
    later,
    loads_fields,
    now,
    update_logged,
)
from ferryman.errors import Conflict, Invalid, NotFound
from ferryman.ids import new_id
from ferryman.lifecycle import State, check_client_transition, check_server_transition

__all__ = ["Catalog", "hash_token", "version_order"]


def hash_token(token: str) -> str:
    """Tokens are stored as their SHA-256 (they are 256-bit random, so no salt or KDF is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def version_order(rows: list[Row]) -> list[Row]:
    """SemVer precedence (pre-releases first), then non-SemVer strings by creation time."""
    semvers = sorted((r for r in rows if r["semver"]), key=lambda r: semver.Version.parse(r["version"]))
    others = sorted((r for r in rows if not r["semver"]), key=lambda r: r["created_at"])
    return semvers + others


def _binary_view(tx: Tx, row: Row) -> Row:
    ver = tx.one("SELECT artifact_id FROM versions WHERE id = ?", [row["version_id"]])
    out = loads_fields(dict(row))
    out["artifact_id"] = ver["artifact_id"] if ver else ""
    out["part_count"] = max(1, -(-row["size"] // row["part_size"]))
    return out


class Catalog(FleetOps):
    """The catalog (see the module doc). ``threshold`` is the number of distinct active keys
    whose valid signatures make a binary ``signed``."""

    def __init__(self, db: SqliteCatalog, threshold: int = 1) -> None:
        self.db = db
        self.threshold = threshold
        self._world_cache = None
        self._checkins = []
        self._last_decision = {}
        self._last_seen_written = {}
        self._generation_checked = 0.0
        self._checkins_lock = threading.Lock()
        self._checkins_flushed = time.monotonic()

    @classmethod
    async def open(cls, path: Path, threshold: int = 1) -> Catalog:
        return cls(await SqliteCatalog.open(path), threshold)

    async def close(self) -> None:
        await self.flush_checkins()
        await self.db.close()

    # API keys ---------------------------------------------------------------------------

    async def create_api_key(self, actor: str, body: m.ApiKeyCreate, token: str) -> Row:
        row: Row = {
            "id": new_id("api_key"),
            "name": body.name,
            "role": body.role,
            "token_hash": hash_token(token),
            "created_at": now(),
        }

        def run(tx: Tx) -> Row:
            tx.insert("api_keys", row)
            view = {k: v for k, v in row.items() if k != "token_hash"}
            tx.event("create", "api_key", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def count_api_keys(self) -> int:
        return await self.db.read(lambda tx: tx.one("SELECT count(*) AS n FROM api_keys")["n"])  # type: ignore[index]

    async def authenticate(self, token: str) -> Row | None:
        digest = hash_token(token)
        return await self.db.read(lambda tx: tx.one("SELECT id, name, role FROM api_keys WHERE token_hash = ?", [digest]))

    async def list_api_keys(self, limit: int, cursor: str | None) -> Page:
        return await self.db.read(lambda tx: tx.page("api_keys", limit, cursor, columns="id, name, role, created_at"))

    async def delete_api_key(self, actor: str, key_id: str) -> None:
        check_id(key_id, "api_key", "API key")

        def run(tx: Tx) -> None:
            row = get_or_404(tx, "api_keys", key_id, "API key")
            tx.run("DELETE FROM api_keys WHERE id = ?", [key_id])
            tx.event("delete", "api_key", key_id, {k: v for k, v in row.items() if k != "token_hash"}, None)

        await self.db.tx(actor, run)

    # Artifacts ------------------------------------------------------------------------------

    async def create_artifact(self, actor: str, body: m.ArtifactCreate) -> Row:
        m.check_metadata(body.custom_metadata)
        t = now()
        row: Row = {
            "id": new_id("artifact"),
            "name": body.name,
            "description": body.description,
            "custom_metadata": _json(body.custom_metadata),
            "created_at": t,
            "updated_at": t,
        }

        def run(tx: Tx) -> Row:
            if tx.one("SELECT id FROM artifacts WHERE name = ?", [body.name]):
                raise Conflict(f"an artifact named {body.name!r} exists", {"name": ["already taken"]})
            tx.insert("artifacts", row)
            view = loads_fields(dict(row))
            tx.event("create", "artifact", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def get_artifact(self, artifact_id: str) -> Row:
        check_id(artifact_id, "artifact", "artifact")
        return await self.db.read(lambda tx: loads_fields(get_or_404(tx, "artifacts", artifact_id, "artifact")))

    async def list_artifacts(self, limit: int, cursor: str | None, name: str | None = None) -> Page:
        def run(tx: Tx) -> Page:
            page = tx.page("artifacts", limit, cursor, equal={"name": name} if name is not None else None)
            page.items = [loads_fields(r) for r in page.items]
            return page

        return await self.db.read(run)

    async def patch_artifact(self, actor: str, artifact_id: str, body: m.ArtifactPatch) -> Row:
        check_id(artifact_id, "artifact", "artifact")
        changes = _changes(body)

        def run(tx: Tx) -> Row:
            before = loads_fields(get_or_404(tx, "artifacts", artifact_id, "artifact"))
            return update_logged(tx, "artifacts", artifact_id, "artifact", changes, before, loads_fields)

        return await self.db.tx(actor, run)

    async def delete_artifact(self, actor: str, artifact_id: str) -> None:
        check_id(artifact_id, "artifact", "artifact")

        def run(tx: Tx) -> None:
            before = loads_fields(get_or_404(tx, "artifacts", artifact_id, "artifact"))
            if tx.one("SELECT id FROM versions WHERE artifact_id = ? LIMIT 1", [artifact_id]):
                raise Conflict("the artifact has versions; it cannot be deleted")
            tx.run("DELETE FROM artifacts WHERE id = ?", [artifact_id])
            tx.event("delete", "artifact", artifact_id, before, None)

        await self.db.tx(actor, run)

    # Versions -------------------------------------------------------------------------------

    async def create_version(self, actor: str, artifact_id: str, body: m.VersionCreate) -> Row:
        check_id(artifact_id, "artifact", "artifact")
        m.check_metadata(body.custom_metadata)
        t = now()
        row: Row = {
            "id": new_id("version"),
            "artifact_id": artifact_id,
            "version": body.version,
            "semver": int(semver.Version.is_valid(body.version)),
            "description": body.description,
            "custom_metadata": _json(body.custom_metadata),
            "created_at": t,
            "updated_at": t,
        }

        def run(tx: Tx) -> Row:
            get_or_404(tx, "artifacts", artifact_id, "artifact")
            if tx.one("SELECT id FROM versions WHERE artifact_id = ? AND version = ?", [artifact_id, body.version]):
                raise Conflict(f"version {body.version!r} exists", {"version": ["already exists for this artifact"]})
            tx.insert("versions", row)
            view = _version_view(row)
            tx.event("create", "version", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def get_version(self, version_id: str) -> Row:
        check_id(version_id, "version", "version")
        return await self.db.read(lambda tx: _version_view(get_or_404(tx, "versions", version_id, "version")))

    async def list_versions(self, artifact_id: str, limit: int, cursor: str | None) -> Page:
        """All versions of an artifact in version order (DESIGN.md); the cursor is an offset."""
        check_id(artifact_id, "artifact", "artifact")
        start = _decode_offset(cursor)

        def run(tx: Tx) -> Page:
            get_or_404(tx, "artifacts", artifact_id, "artifact")
            rows = version_order(tx.all("SELECT * FROM versions WHERE artifact_id = ?", [artifact_id]))
            chunk = rows[start : start + limit]
            more = start + limit < len(rows)
            return Page([_version_view(r) for r in chunk], _encode_offset(start + limit) if more else None)

        return await self.db.read(run)

    async def patch_version(self, actor: str, version_id: str, body: m.VersionPatch) -> Row:
        check_id(version_id, "version", "version")
        changes = _changes(body)

        def run(tx: Tx) -> Row:
            before = _version_view(get_or_404(tx, "versions", version_id, "version"))
            return update_logged(tx, "versions", version_id, "version", changes, before, _version_view)

        return await self.db.tx(actor, run)

    # Binaries -------------------------------------------------------------------------------

    async def create_binary(self, actor: str, version_id: str, body: m.BinaryCreate) -> Row:
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
            "id": new_id("binary"),
            "version_id": version_id,
            "target": body.target,
            "size": body.size,
            "sha256": body.sha256.lower(),
            "part_size": part_size,
            "state": State.UPLOADABLE.value,
            "error": None,
            "description": body.description,
            "custom_metadata": _json(body.custom_metadata),
            "created_at": t,
            "updated_at": t,
        }

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
            view = _binary_view(tx, row)
            tx.event("create", "binary", row["id"], None, view)
            return view

        return await self.db.tx(actor, run)

    async def get_binary(self, binary_id: str) -> Row:
        check_id(binary_id, "binary", "binary")
        return await self.db.read(lambda tx: _binary_view(tx, get_or_404(tx, "binaries", binary_id, "binary")))

    async def list_binaries(self, limit: int, cursor: str | None, filters: dict[str, str]) -> Page:
        equal: dict[str, str] = {c: filters[c] for c in ("version_id", "target", "state", "sha256") if c in filters}
        if "sha256" in equal:
            equal["sha256"] = equal["sha256"].lower()

        def run(tx: Tx) -> Page:
            page = tx.page("binaries", limit, cursor, equal=equal)
            page.items = [_binary_view(tx, r) for r in page.items]
            return page

        return await self.db.read(run)

    async def patch_binary_fields(self, actor: str, binary_id: str, body: m.BinaryPatch) -> Row:
        check_id(binary_id, "binary", "binary")
        changes = _changes(body, exclude=("state",))

        def run(tx: Tx) -> Row:
            before = _binary_view(tx, get_or_404(tx, "binaries", binary_id, "binary"))
            if not changes:
                return before
            return update_logged(tx, "binaries", binary_id, "binary", changes, before, lambda r: _binary_view(tx, r))

        return await self.db.tx(actor, run)

    async def transition(
        self,
        actor: str,
        binary_id: str,
        target: State,
        *,
        by_server: bool = False,
        expect: State | None = None,
        error: str | None = None,
        check: Any = None,
        then: State | None = None,
        fields: m.BinaryPatch | None = None,
    ) -> Row:
        """Moves a binary to ``target`` if the lifecycle allows it from its current state (and,
        with ``expect``, only from that state); ``then`` continues at once, as the server, to a
        further state in the same transaction. ``check(tx, row)`` may refuse. ``fields`` (a
        patch's other fields) change in the same transaction, so a refused move changes
        nothing. The update is conditional on the state read, so of two racing requests only
        one can win."""
        check_id(binary_id, "binary", "binary")
        changes = _changes(fields, exclude=("state",)) if fields is not None else {}

        def run(tx: Tx) -> Row:
            row = get_or_404(tx, "binaries", binary_id, "binary")
            current = State(row["state"])
            if expect is not None and current is not expect:
                raise Conflict(f"binary is {current}, not {expect}", state=str(current))
            if by_server:
                check_server_transition(current, target)
            else:
                check_client_transition(current, target)
            if check is not None:
                check(tx, row)
            if changes:
                before = _binary_view(tx, row)
                update_logged(tx, "binaries", binary_id, "binary", changes, before, lambda r: _binary_view(tx, r))
                row = get_or_404(tx, "binaries", binary_id, "binary")
            after = self._move(tx, row, target, error)
            if then is not None:
                check_server_transition(target, then)
                after = self._move(tx, get_or_404(tx, "binaries", binary_id, "binary"), then, None)
            return after

        return await self.db.tx(actor, run)

    def _move(self, tx: Tx, row: Row, target: State, error: str | None) -> Row:
        before = _binary_view(tx, row)
        changed = tx.update(
            "binaries",
            row["id"],
            {"state": target.value, "error": error, "updated_at": now()},
            where={"state": row["state"]},
        )
        if changed != 1:
            raise Conflict("the binary changed state meanwhile; retry")
        if target in (State.UPLOADABLE, State.DESTROYED):
            tx.run("DELETE FROM parts WHERE binary_id = ?", [row["id"]])
        after = _binary_view(tx, get_or_404(tx, "binaries", row["id"], "binary"))
        tx.event(f"state:{target}", "binary", row["id"], before, after)
        return after

    async def binaries_in_state(self, state: State) -> list[str]:
        rows = await self.db.read(lambda tx: tx.all("SELECT id FROM binaries WHERE state = ?", [state.value]))
        return [r["id"] for r in rows]

    # Parts ------------------------------------------------------------------------------------

    async def begin_part(self, actor: str, binary_id: str, index: int, lease: float) -> str:
        """Registers an upload of part ``index`` as in flight for ``lease`` seconds (renew with
        ``renew_part``), only while the binary is ``uploadable``; hashing cannot start while an
        unexpired upload is in flight. A marker whose process died or whose end could not be
        written expires by itself. Bookkeeping: these writes leave read caches warm."""

        def run(tx: Tx) -> str:
            row = get_or_404(tx, "binaries", binary_id, "binary")
            if row["state"] != State.UPLOADABLE:
                raise Conflict(f"binary is {row['state']}; parts are accepted only while uploadable")
            token = new_id("upload")
            tx.insert(
                "uploads_in_flight",
                {"id": token, "binary_id": binary_id, "idx": index, "started_at": now(), "expires_at": later(lease)},
            )
            return token

        return await self.db.tx(actor, run, durable=False)

    async def renew_part(self, token: str, lease: float) -> None:
        await self.db.tx(
            "",
            lambda tx: tx.run("UPDATE uploads_in_flight SET expires_at = ? WHERE id = ?", [later(lease), token]),
            durable=False,
        )

    async def end_part(self, token: str) -> None:
        await self.db.tx("", lambda tx: tx.run("DELETE FROM uploads_in_flight WHERE id = ?", [token]), durable=False)

    async def clear_uploads_in_flight(self) -> None:
        """At start-up: uploads of a previous process are over (single-process deployments)."""
        await self.db.tx("", lambda tx: tx.run("DELETE FROM uploads_in_flight"), durable=False)

    async def complete_upload(self, actor: str, binary_id: str, fields: m.BinaryPatch | None = None) -> Row:
        """``hashable`` once every part is in and no upload is in flight, and in the same
        transaction on to ``hashing`` (DESIGN.md); the caller starts the hashing job."""
        return await self.transition(
            actor, binary_id, State.HASHABLE, check=_all_parts_present, then=State.HASHING, fields=fields
        )

    async def record_part(self, actor: str, binary_id: str, index: int, size: int, sha256: str) -> Row:
        """Records an uploaded part (replacing an earlier upload of the same index), only while
        the binary is still ``uploadable``."""

        def run(tx: Tx) -> Row:
            row = get_or_404(tx, "binaries", binary_id, "binary")
            if row["state"] != State.UPLOADABLE:
                raise Conflict(f"binary is {row['state']}; parts are accepted only while uploadable")
            part = {"binary_id": binary_id, "idx": index, "size": size, "sha256": sha256, "created_at": now()}
            before = tx.one("SELECT idx, size, sha256 FROM parts WHERE binary_id = ? AND idx = ?", [binary_id, index])
            tx.run("DELETE FROM parts WHERE binary_id = ? AND idx = ?", [binary_id, index])
            tx.insert("parts", part)
            tx.event("part", "binary", binary_id, before, {"idx": index, "size": size, "sha256": sha256})
            return part

        return await self.db.tx(actor, run)

    async def parts(self, binary_id: str) -> list[Row]:
        check_id(binary_id, "binary", "binary")
        return await self.db.read(
            lambda tx: tx.all("SELECT idx, size, sha256, created_at FROM parts WHERE binary_id = ? ORDER BY idx", [binary_id])
        )

    # Signing keys -----------------------------------------------------------------------------

    async def create_signing_key(self, actor: str, row: Row) -> Row:
        t = now()
        row = {"id": new_id("signing_key"), **row, "state": "active", "created_at": t, "updated_at": t}

        def run(tx: Tx) -> Row:
            if tx.one("SELECT id FROM signing_keys WHERE name = ?", [row["name"]]):
                raise Conflict(f"a signing key named {row['name']!r} exists", {"name": ["already taken"]})
            existing = tx.one("SELECT id FROM signing_keys WHERE keyid = ?", [row["keyid"]])
            if existing:
                raise Conflict(f"this key is registered already as {existing['id']}", {"public_key": ["duplicate key"]})
            tx.insert("signing_keys", row)
            tx.event("create", "signing_key", row["id"], None, row)
            return row

        return await self.db.tx(actor, run)

    async def get_signing_key(self, key_id: str) -> Row:
        check_id(key_id, "signing_key", "signing key")
        return await self.db.read(lambda tx: get_or_404(tx, "signing_keys", key_id, "signing key"))

    async def find_signing_key(self, keyid: str) -> Row:
        row = await self.db.read(lambda tx: tx.one("SELECT * FROM signing_keys WHERE keyid = ?", [keyid]))
        if row is None:
            raise NotFound(f"no signing key with keyid {keyid}")
        return row

    async def list_signing_keys(self, limit: int, cursor: str | None, state: str | None) -> Page:
        equal = {"state": state} if state else None
        return await self.db.read(lambda tx: tx.page("signing_keys", limit, cursor, equal=equal))

    async def patch_signing_key(self, actor: str, key_id: str, body: m.SigningKeyPatch) -> Row:
        check_id(key_id, "signing_key", "signing key")

        def run(tx: Tx) -> Row:
            before = get_or_404(tx, "signing_keys", key_id, "signing key")
            changes: Row = {}
            if body.name is not msgspec.UNSET and body.name != before["name"]:
                if tx.one("SELECT id FROM signing_keys WHERE name = ?", [body.name]):
                    raise Conflict(f"a signing key named {body.name!r} exists", {"name": ["already taken"]})
                changes["name"] = body.name
            if body.state is not msgspec.UNSET and body.state != before["state"]:
                if before["state"] == "revoked":
                    raise Conflict("a revoked key stays revoked; register a new key instead")
                changes["state"] = body.state
            if changes:
                tx.update("signing_keys", key_id, {**changes, "updated_at": now()})
            after = get_or_404(tx, "signing_keys", key_id, "signing key")
            tx.event("revoke" if changes.get("state") == "revoked" else "update", "signing_key", key_id, before, after)
            if changes.get("state") == "revoked":
                # Signatures by a revoked key stop counting: signed binaries may fall back.
                for b in tx.all(
                    "SELECT DISTINCT b.* FROM binaries b JOIN signatures s ON s.binary_id = b.id "
                    "WHERE s.signing_key_id = ? AND b.state = 'signed'",
                    [key_id],
                ):
                    self._follow_signatures(tx, b)
            return after

        return await self.db.tx(actor, run)

    # Signatures -------------------------------------------------------------------------------

    def _follow_signatures(self, tx: Tx, binary: Row) -> None:
        """Moves a binary between signable and signed to match its count of valid signatures."""
        n = tx.one(
            "SELECT count(DISTINCT s.signing_key_id) AS n FROM signatures s "
            "JOIN signing_keys k ON k.id = s.signing_key_id WHERE s.binary_id = ? AND k.state = 'active'",
            [binary["id"]],
        )["n"]  # type: ignore[index]
        current = State(binary["state"])
        target = State.SIGNED if n >= self.threshold else State.SIGNABLE
        if target is current or current not in (State.SIGNABLE, State.SIGNED):
            return
        check_server_transition(current, target)
        before = _binary_view(tx, binary)
        tx.update("binaries", binary["id"], {"state": target.value, "updated_at": now()}, where={"state": current.value})
        after = _binary_view(tx, get_or_404(tx, "binaries", binary["id"], "binary"))
        tx.event(f"state:{target}", "binary", binary["id"], before, after)

    async def add_signature(self, actor: str, binary_id: str, key: Row, signature_hex: str, message: str) -> tuple[Row, bool]:
        """Stores a verified signature; returns it and whether it is new (a repeat is a no-op)."""

        def run(tx: Tx) -> tuple[Row, bool]:
            binary = get_or_404(tx, "binaries", binary_id, "binary")
            if binary["state"] not in (State.SIGNABLE, State.SIGNED):
                raise Conflict(f"binary is {binary['state']}; signatures are accepted once it is signable")
            k = get_or_404(tx, "signing_keys", key["id"], "signing key")
            if k["state"] != "active":
                raise Invalid("the signing key is revoked", {"signing_key_id": ["revoked"]})
            existing = tx.one("SELECT * FROM signatures WHERE binary_id = ? AND signing_key_id = ?", [binary_id, key["id"]])
            if existing:
                return existing, False
            row = {
                "id": new_id("signature"),
                "binary_id": binary_id,
                "signing_key_id": key["id"],
                "signature": signature_hex,
                "message": message,
                "created_at": now(),
            }
            tx.insert("signatures", row)
            tx.event("sign", "binary", binary_id, None, {**row, "keyid": key["keyid"]})
            self._follow_signatures(tx, binary)
            return row, True

        return await self.db.tx(actor, run)

    async def list_signatures(self, binary_id: str, limit: int = 500, cursor: str | None = None) -> Page:
        check_id(binary_id, "binary", "binary")

        def run(tx: Tx) -> Page:
            get_or_404(tx, "binaries", binary_id, "binary")
            return tx.page(
                "signatures s JOIN signing_keys k ON k.id = s.signing_key_id",
                limit,
                cursor,
                equal={"s.binary_id": binary_id},
                columns="s.*, k.keyid, k.algorithm, k.state AS key_state",
                key="s.rowid",
            )

        return await self.db.read(run)

    # Events -----------------------------------------------------------------------------------

    async def list_events(self, limit: int, cursor: str | None, filters: dict[str, str]) -> Page:
        equal: dict[str, str] = {c: filters[c] for c in ("resource_id", "resource_type", "action", "actor") if c in filters}

        def run(tx: Tx) -> Page:
            page = tx.page("events", limit, cursor, equal=equal)
            page.items = [loads_fields(r, ("before", "after")) for r in page.items]
            return page

        return await self.db.read(run)


def _version_view(row: Row) -> Row:
    out = loads_fields(dict(row))
    out["semver"] = bool(out["semver"])
    return out


def _all_parts_present(tx: Tx, binary: Row) -> None:
    busy = tx.all(
        "SELECT DISTINCT idx FROM uploads_in_flight WHERE binary_id = ? AND expires_at > ? ORDER BY idx", [binary["id"], now()]
    )
    if busy:
        raise Conflict("uploads in progress for parts " + ", ".join(str(r["idx"]) for r in busy))
    count = max(1, -(-binary["size"] // binary["part_size"]))
    have = {r["idx"] for r in tx.all("SELECT idx FROM parts WHERE binary_id = ?", [binary["id"]])}
    missing = [i for i in range(1, count + 1) if i not in have]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise Conflict(f"parts missing: {shown}", missing=missing[:1000])


def _changes(body: msgspec.Struct, exclude: tuple[str, ...] = ()) -> Row:
    changes: Row = {}
    for field in body.__struct_fields__:
        value = getattr(body, field)
        if field in exclude or value is msgspec.UNSET:
            continue
        if field == "custom_metadata":
            m.check_metadata(value)
            value = _json(value)
        changes[field] = value
    return changes


def _encode_offset(n: int) -> str:
    return msgspec.json.encode({"o": n}).hex()


def _decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        n = msgspec.json.decode(bytes.fromhex(cursor))["o"]
    except (ValueError, KeyError, TypeError, msgspec.DecodeError):
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]}) from None
    if not isinstance(n, int) or n < 0:
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]})
    return n
