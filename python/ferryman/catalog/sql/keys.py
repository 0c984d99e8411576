"""API keys and signing keys. Tokens are stored as their hash only."""

from __future__ import annotations

import datetime as dt
import secrets

import msgspec

from ferryman.catalog import models as m
from ferryman.catalog.rules import check_id, now
from ferryman.catalog.sql.binaries import follow_signatures
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, page_of, to
from ferryman.errors import Conflict, NotFound
from ferryman.ids import new_id

__all__ = ["ApiKeys", "SigningKeys", "signing_key"]

# Never the token hash.
_API_KEY_COLUMNS = "id, name, role, created_at"


class ApiKeys:
    db: Database

    async def create_api_key(self, actor: str, body: m.ApiKeyCreate, token_hash: str) -> m.ApiKey:
        row: Row = {"id": new_id("api_key"), "name": body.name, "role": body.role, "token_hash": token_hash,
                    "created_at": now()}  # fmt: skip

        def run(tx: Tx) -> Row:
            tx.insert("api_keys", row)
            view = {k: v for k, v in row.items() if k != "token_hash"}
            tx.event("create", "api_key", row["id"], None, view)
            return view

        return to(m.ApiKey, await self.db.tx(actor, run, changes_answers=False))

    async def create_first_api_key(self, actor: str, body: m.ApiKeyCreate, token_hash: str) -> m.ApiKey | None:
        """Creates an API key only if there is none yet (the first start of a catalog; of
        several processes starting at once, one creates it); None if there was one."""
        row: Row = {"id": new_id("api_key"), "name": body.name, "role": body.role, "token_hash": token_hash,
                    "created_at": now()}  # fmt: skip

        def run(tx: Tx) -> Row | None:
            if tx.one("SELECT id FROM api_keys LIMIT 1"):
                return None
            tx.insert("api_keys", row)
            view = {k: v for k, v in row.items() if k != "token_hash"}
            tx.event("create", "api_key", row["id"], None, view)
            return view

        view = await self.db.tx(actor, run, changes_answers=False)
        return None if view is None else to(m.ApiKey, view)

    async def shared_secret(self, name: str) -> str:
        """A random secret every process on this catalog shares, created on first use."""

        def run(tx: Tx) -> str:
            # Of two processes creating it at once, the first insert stands.
            tx.run("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [name, secrets.token_hex(32)])
            return tx.one("SELECT value FROM settings WHERE key = ?", [name])["value"]  # type: ignore[index]

        return await self.db.tx("", run, changes_answers=False)

    async def setting(self, name: str) -> str | None:
        row = await self.db.read(lambda tx: tx.one("SELECT value FROM settings WHERE key = ?", [name]))
        return None if row is None else str(row["value"])

    async def set_setting(self, name: str, value: str) -> None:
        def run(tx: Tx) -> None:
            upsert = "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?"
            tx.run(upsert, [name, value, value])

        await self.db.tx("", run, changes_answers=False)

    async def count_api_keys(self) -> int:
        return await self.db.read(lambda tx: tx.one("SELECT count(*) AS n FROM api_keys")["n"])  # type: ignore[index]

    async def authenticate(self, token_hash: str) -> m.ApiKey | None:
        sql = "SELECT id, name, role, created_at FROM api_keys WHERE token_hash = ?"
        row = await self.db.read(lambda tx: tx.one(sql, [token_hash]))
        return None if row is None else to(m.ApiKey, row)

    async def list_api_keys(self, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.ApiKey]:
        equal = {"name": name} if name is not None else None
        page = await self.db.read(lambda tx: tx.page("api_keys", limit, cursor, equal=equal, columns=_API_KEY_COLUMNS))
        return page_of(m.ApiKey, page)

    async def get_api_key(self, key_id: str) -> m.ApiKey:
        check_id(key_id, "api_key", "API key")
        row = await self.db.read(lambda tx: tx.one(f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE id = ?", [key_id]))
        if row is None:
            raise NotFound(f"no API key {key_id}")
        return to(m.ApiKey, row)

    async def delete_api_key(self, actor: str, key_id: str) -> None:
        check_id(key_id, "api_key", "API key")

        def run(tx: Tx) -> None:
            row = get_or_404(tx, "api_keys", key_id, "API key")
            tx.run("DELETE FROM api_keys WHERE id = ?", [key_id])
            tx.event("delete", "api_key", key_id, {k: v for k, v in row.items() if k != "token_hash"}, None)

        await self.db.tx(actor, run, changes_answers=False)


def _rfc3339(ts: int | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signing_key(row: Row) -> m.SigningKey:
    """The stored key as the API shows it (certificate validity as RFC 3339)."""
    return to(m.SigningKey, {**row, "not_before": _rfc3339(row["not_before"]), "not_after": _rfc3339(row["not_after"])})


class SigningKeys:
    db: Database
    threshold: int

    async def create_signing_key(self, actor: str, key: m.NewSigningKey) -> m.SigningKey:
        t = now()
        row: Row = {"id": new_id("signing_key"), **msgspec.structs.asdict(key), "state": "active", "created_at": t,
                    "updated_at": t}  # fmt: skip

        def run(tx: Tx) -> Row:
            if tx.one("SELECT id FROM signing_keys WHERE name = ?", [row["name"]]):
                raise Conflict(f"a signing key named {row['name']!r} exists", {"name": ["already taken"]})
            existing = tx.one("SELECT id FROM signing_keys WHERE keyid = ?", [row["keyid"]])
            if existing:
                raise Conflict(f"this key is registered already as {existing['id']}", {"public_key": ["duplicate key"]})
            tx.insert("signing_keys", row)
            tx.event("create", "signing_key", row["id"], None, row)
            return row

        return signing_key(await self.db.tx(actor, run, changes_answers=False))

    async def get_signing_key(self, key_id: str) -> m.SigningKey:
        check_id(key_id, "signing_key", "signing key")
        return signing_key(await self.db.read(lambda tx: get_or_404(tx, "signing_keys", key_id, "signing key")))

    async def find_signing_key(self, keyid: str) -> m.SigningKey:
        row = await self.db.read(lambda tx: tx.one("SELECT * FROM signing_keys WHERE keyid = ?", [keyid]))
        if row is None:
            raise NotFound(f"no signing key with keyid {keyid}")
        return signing_key(row)

    async def list_signing_keys(
        self, limit: int, cursor: str | None, state: str | None, keyid: str | None = None, name: str | None = None
    ) -> m.Page[m.SigningKey]:
        equal = {k: v for k, v in (("state", state), ("keyid", keyid and keyid.lower()), ("name", name)) if v}
        page = await self.db.read(lambda tx: tx.page("signing_keys", limit, cursor, equal=equal))
        return m.Page([signing_key(r) for r in page.items], page.next_cursor)

    async def patch_signing_key(self, actor: str, key_id: str, body: m.SigningKeyPatch) -> m.SigningKey:
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
                    follow_signatures(tx, b, self.threshold)
            return after

        return signing_key(await self.db.tx(actor, run))
