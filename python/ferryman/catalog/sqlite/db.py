"""The SQLite database under the embedded catalog: WAL mode with foreign keys; changes on one
writer thread, reads on a reader thread of their own (so no read, an update check's above all,
queues behind a write).

Every public method is a coroutine that runs one transaction on the worker thread, so the event
loop never waits on the disk and transactions never interleave. State changes are conditional
updates (``... WHERE state = ?``) checked by row count, so two requests racing on one binary can
never both win. Every change records its audit event in the same transaction.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ferryman.catalog.models import Page
from ferryman.catalog.rules import now
from ferryman.catalog.sqlite.schema import MIGRATIONS
from ferryman.errors import Conflict, InsufficientStorage, Invalid, NotFound
from ferryman.ids import new_ids
from ferryman.parsing import parse_int

__all__ = ["Database", "Row", "Tx", "get_or_404", "loads_fields", "update_logged"]

T = TypeVar("T")
S = TypeVar("S")
# A row as the SQL layer sees it; it never leaves this package (operations return structs).
Row = dict[str, Any]


def _encode_cursor(rowid: int) -> str:
    return base64.urlsafe_b64encode(str(rowid).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = parse_int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode(), 18)
    except (ValueError, UnicodeDecodeError):
        value = None
    if value is None:
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]})
    return value


class Tx:
    """One transaction's view: helpers over the connection, and the audit log."""

    def __init__(self, conn: sqlite3.Connection, actor: str) -> None:
        self.conn = conn
        self.actor = actor

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        cur = self.conn.execute(sql, args)
        row = cur.fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self.conn.execute(sql, args)]

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, args).rowcount

    def insert(self, table: str, row: Row) -> None:
        cols = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))

    def update(self, table: str, id_: str, changes: Row, where: Row | None = None) -> int:
        sets = ", ".join(f'"{k}" = ?' for k in changes)
        conds = "".join(f' AND "{k}" = ?' for k in (where or {}))
        args = [*changes.values(), id_, *(where or {}).values()]
        return self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?{conds}", args).rowcount

    def page(
        self,
        table: str,
        limit: int,
        cursor: str | None,
        *,
        equal: Mapping[str, Any] | None = None,
        conditions: Sequence[tuple[str, Any]] = (),
        columns: str = "*",
        key: str = "rowid",
    ) -> Page[Row]:
        """One page of ``table`` in creation order: rows whose columns equal ``equal`` (column
        names come from code, never from requests) and that meet each ``(sql, argument)`` of
        ``conditions``, each with one placeholder. ``table`` may be a join; ``key`` then names
        the rowid that orders it (``s.rowid``)."""
        conds = [(f"{col} = ?", value) for col, value in (equal or {}).items()] + list(conditions)
        where = "".join(f"{sql} AND " for sql, _ in conds)
        rows = self.all(
            f"SELECT {key} AS rowid, {columns} FROM {table} WHERE {where}{key} > ? ORDER BY {key} LIMIT ?",
            [*(arg for _, arg in conds), _decode_cursor(cursor), limit + 1],
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]["rowid"]) if more and rows else None
        for r in rows:
            r.pop("rowid", None)
        return Page(rows, next_cursor)

    def event(self, action: str, resource_type: str, resource_id: str, before: Row | None, after: Row | None) -> None:
        self.insert(
            "events",
            {
                "id": new_ids("event", 1)[0],
                "at": now(),
                "actor": self.actor,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "before": None if before is None else msgspec.json.encode(before).decode(),
                "after": None if after is None else msgspec.json.encode(after).decode(),
            },
        )


class Database:
    """The SQLite database (see the module doc). Open with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferryman-sqlite")
        self._read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferryman-sqlite-read")
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        # Counts this process's commits that can change an answer (the fleet's caches compare it).
        self.changes = 0

    @classmethod
    async def open(cls, path: Path) -> Database:
        db = cls(path)
        await db._call(db._connect)
        await asyncio.get_running_loop().run_in_executor(db._read_pool, db._connect_reader)
        return db

    def _connect_reader(self) -> None:
        # In WAL mode a reader never waits for the writer, and each transaction sees the
        # latest commit.
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self._reader = conn

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {i}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        def close_reader() -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

        await asyncio.get_running_loop().run_in_executor(self._read_pool, close_reader)
        await self._call(close)
        self._read_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def tx(
        self,
        actor: str,
        fn: Callable[[Tx], T],
        *,
        durable: bool = True,
        read_only: bool = False,
        changes_answers: bool | None = None,
    ) -> T:
        """Runs ``fn`` in one transaction, on the writer thread (``read_only``: the reader);
        rolls back if it raises.

        ``durable=False`` is bookkeeping (upload leases, check-ins, reports): committed without
        waiting for the disk (WAL, ``synchronous=NORMAL``), still atomic and consistent after
        any crash (the last such commits can be lost if the machine itself goes down). A change
        that can change an update check's answer bumps the generation that the fleet's caches
        key on; ``changes_answers`` (default: ``durable``) says whether this one can. Part
        uploads, for one, are durable but cannot, so they leave the caches warm.
        """
        write = not read_only
        bump = write and (durable if changes_answers is None else changes_answers)

        def run() -> T:
            conn = self._conn if write else self._reader
            assert conn is not None, "catalog is closed"
            if not durable:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    out = fn(Tx(conn, actor))
                    if bump:
                        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (a full disk does that).
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if bump:
                    self.changes += 1
                return out
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous = FULL")

        try:
            if write:
                return await self._call(run)
            return await asyncio.get_running_loop().run_in_executor(self._read_pool, run)
        except sqlite3.IntegrityError as e:
            raise Conflict(f"conflicts with an existing record ({e})") from None
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
                raise InsufficientStorage("the server is out of disk space (catalog); nothing was changed") from None
            raise

    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await self.tx("", fn, read_only=True)


def get_or_404(tx: Tx, table: str, id_: str, what: str) -> Row:
    row = tx.one(f"SELECT * FROM {table} WHERE id = ?", [id_])
    if row is None:
        raise NotFound(f"no {what} {id_}")
    return row


def update_logged(tx: Tx, table: str, id_: str, kind: str, changes: Row, before: Row, view: Callable[[Row], Row]) -> Row:
    """Writes ``changes`` to a row (with a new ``updated_at``), logs an ``update`` event from
    ``before`` to the row's view after, and returns that view."""
    if changes:
        tx.update(table, id_, {**changes, "updated_at": now()})
    after = view(get_or_404(tx, table, id_, kind))
    tx.event("update", kind, id_, before, after)
    return after


def loads_fields(row: Row, fields: Iterable[str] = ("custom_metadata",)) -> Row:
    for f in fields:
        if isinstance(row.get(f), str):
            row[f] = msgspec.json.decode(row[f])
    return row


def to(shape: type[S], row: Row) -> S:
    """A row (or view) as the struct an operation returns; columns the struct lacks (a token
    hash) are left behind."""
    return msgspec.convert(row, shape)


def page_of(shape: type[S], page: Page[Row]) -> Page[S]:
    return Page([msgspec.convert(r, shape) for r in page.items], page.next_cursor)
