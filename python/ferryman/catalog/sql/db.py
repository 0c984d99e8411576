"""One transaction's view of the catalog database, the same on SQLite and PostgreSQL: ``Tx``
runs the resource modules' SQL (written once, with ``?`` marks, in the subset both dialects
speak) on one connection of an ``Engine`` (``engines.py``), and records the audit log and the
webhook outbox. Statements go to the driver as written, in its own parameter style: SQLAlchemy
provides the connections, pools, transactions and error mapping, but compiling and processing
each statement's parameters cost more than SQLite's own work on the short statements the
catalog runs by the thousand (device reports, check-ins).

``Database.tx`` runs one operation as one transaction. State changes are conditional updates
(``... WHERE state = ?``) checked by row count, and the engines serialise transactions (SQLite:
one writer; PostgreSQL: SERIALIZABLE, retried on a serialisation failure), so two requests
racing on one binary can never both win, whichever processes they run in. Every change records
its audit event in the same transaction.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Connection

from ferryman import webhooks
from ferryman.catalog.models import Page
from ferryman.catalog.rules import now
from ferryman.catalog.sql.engines import Engine
from ferryman.errors import Invalid, NotFound
from ferryman.ids import new_ids

__all__ = ["Database", "Row", "Tx", "get_or_404", "loads_fields", "update_logged"]

T = TypeVar("T")
S = TypeVar("S")
# A row as the SQL layer sees it; it never leaves this package (operations return structs).
Row = dict[str, Any]

_MARK = re.compile(r"\?")


@functools.lru_cache(maxsize=2048)
def _driver_sql(sql: str, dialect: str) -> str:
    """SQL written with ``?`` marks (as every query here is: the marks are never inside a
    literal) in the driver's own parameter style: SQLite's is ``?`` already, asyncpg's is
    ``$1, $2…``."""
    if dialect == "sqlite":
        return sql
    count = iter(range(1, 1 << 30))
    return _MARK.sub(lambda _: f"${next(count)}", sql)


def _values(args: Sequence[Any]) -> tuple[Any, ...]:
    """A statement's parameters. Booleans are stored as integers on both dialects (PostgreSQL
    refuses a bool for an integer column). PostgreSQL's text cannot hold U+0000, so no catalog
    text may, on either dialect: such a value is refused before it reaches the database."""
    out = []
    for a in args:
        if a is True or a is False:
            a = int(a)
        elif isinstance(a, str) and "\x00" in a:
            raise Invalid("text must not contain the character U+0000 (NUL)")
        out.append(a)
    return tuple(out)


def _encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(key))).decode().rstrip("=")


def _decode_cursor(cursor: str, width: int) -> list[Any]:
    try:
        key = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, msgspec.DecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == width and all(isinstance(k, str) for k in key)):
        raise Invalid("malformed cursor", {"cursor": ["not a cursor this server issued"]})
    return key


class Tx:
    """One transaction's view: helpers over the connection, and the audit log."""

    def __init__(self, conn: Connection, actor: str, dialect: str) -> None:
        self.conn = conn
        self.actor = actor
        self.dialect = dialect
        # Set by a change that turned out to change update checks' answers (a release halted
        # by a report): the transaction then bumps the generation as a durable change does.
        self.changes_answers = False
        self.queued = 0  # webhook deliveries this transaction wrote to the outbox
        self._webhooks: list[tuple[str, list[str]]] | None = None
        # Audit events and deliveries, written together when the transaction's work is done
        # (nothing reads them back within it): one statement each for a whole group of reports.
        self._events: list[tuple[Any, ...]] = []
        self._deliveries: list[tuple[Any, ...]] = []

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        result = self.conn.exec_driver_sql(_driver_sql(sql, self.dialect), _values(args))
        row = result.fetchone()
        return None if row is None else dict(zip(result.keys(), row, strict=True))

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        result = self.conn.exec_driver_sql(_driver_sql(sql, self.dialect), _values(args))
        keys = list(result.keys())
        return [dict(zip(keys, row, strict=True)) for row in result.fetchall()]

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.exec_driver_sql(_driver_sql(sql, self.dialect), _values(args)).rowcount

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``sql`` once per row, in one round."""
        if rows:
            self.conn.exec_driver_sql(_driver_sql(sql, self.dialect), [_values(r) for r in rows])

    def insert(self, table: str, row: Row) -> None:
        cols = ", ".join(f'"{c}"' for c in row)
        self.run(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def update(self, table: str, id_: str, changes: Row, where: Row | None = None) -> int:
        sets = ", ".join(f'"{k}" = ?' for k in changes)
        conds = "".join(f' AND "{k}" = ?' for k in (where or {}))
        return self.run(f"UPDATE {table} SET {sets} WHERE id = ?{conds}", [*changes.values(), id_, *(where or {}).values()])

    def skip_locked(self) -> str:
        """A clause for a SELECT that claims work: on PostgreSQL, rows another transaction is
        claiming are passed over instead of waited for (SQLite has one writer: nothing to skip)."""
        return " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""

    def json_has(self, column: str) -> str:
        """A condition, with one mark: the JSON array of strings in ``column`` holds the mark's
        value. With ``skip_locked``, the places the dialects differ in what the catalog asks."""
        if self.dialect == "postgresql":
            return f"EXISTS (SELECT 1 FROM json_array_elements_text(CAST({column} AS json)) WHERE value = ?)"
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)"

    def page(
        self,
        table: str,
        limit: int,
        cursor: str | None,
        *,
        equal: Mapping[str, Any] | None = None,
        conditions: Sequence[tuple[str, Any]] = (),
        columns: str = "*",
        key: Sequence[str] = ("created_at", "id"),
        descending: bool = False,
    ) -> Page[Row]:
        """One page of ``table`` in creation order (the columns of ``key``, unique together,
        with an index to walk; ``descending``: newest first): rows whose columns equal ``equal``
        (column names come from code, never from requests) and that meet each
        ``(sql, argument)`` of ``conditions``, each with one mark. ``table`` may be a join;
        ``key`` then names its table's columns."""
        conds = [(f"{col} = ?", value) for col, value in (equal or {}).items()] + list(conditions)
        args = [arg for _, arg in conds]
        if cursor:
            conds.append((f"({', '.join(key)}) {'<' if descending else '>'} ({', '.join('?' * len(key))})", None))
            args += _decode_cursor(cursor, len(key))
        where = " AND ".join(sql for sql, _ in conds) or "1 = 1"
        keys = ", ".join(f"{k} AS _key{i}" for i, k in enumerate(key))
        order = ", ".join(f"{k} DESC" if descending else k for k in key)
        rows = self.all(f"SELECT {keys}, {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT ?", [*args, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor([rows[-1][f"_key{i}"] for i in range(len(key))]) if more and rows else None
        for r in rows:
            for i in range(len(key)):
                del r[f"_key{i}"]
        return Page(rows, next_cursor)

    def event(self, action: str, resource_type: str, resource_id: str, before: Row | None, after: Row | None) -> None:
        """Records an audit event and, in the same transaction, a delivery of it in the
        outbox of every webhook subscribed to the webhook event it is (if any)."""
        event_id, at = new_ids("event", 1)[0], now()
        encode = msgspec.json.encode
        self._events.append((event_id, at, self.actor, action, resource_type, resource_id,
                             None if before is None else encode(before).decode(),
                             None if after is None else encode(after).decode()))  # fmt: skip
        status = (after or {}).get("report", {}).get("status") if action == "report" else None
        kind = webhooks.event_type(action, resource_type, status)
        if kind is not None:
            self._to_outbox(kind, event_id, at, (self.actor, action, resource_type, resource_id), after or before)

    def _to_outbox(self, kind: str, event_id: str, at: str, what: tuple[str, str, str, str], state: Row | None) -> None:
        if self._webhooks is None:
            rows = self.all("SELECT id, events FROM webhooks WHERE disabled = 0")
            self._webhooks = [(r["id"], json.loads(r["events"])) for r in rows]
        targets = [wid for wid, events in self._webhooks if webhooks.subscribed(events, kind)]
        if not targets:
            return
        data = dict(zip(("actor", "action", "resource_type", "resource_id"), what, strict=True))
        body = msgspec.json.encode(webhooks.payload(kind, at, {"event_id": event_id, **data, "object": state})).decode()
        for mid, wid in zip(new_ids("delivery", len(targets)), targets, strict=True):
            self._deliveries.append((mid, wid, event_id, kind, body, "pending", 0, at, "[]", at, at))
        self.queued += len(targets)

    def write_log(self) -> None:
        """Writes the events and deliveries recorded so far."""
        self.run_many(
            "INSERT INTO events (id, at, actor, action, resource_type, resource_id, before, after) VALUES (?,?,?,?,?,?,?,?)",
            self._events,
        )
        self.run_many(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, type, payload, state, attempts, next_attempt_at, "
            "log, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            self._deliveries,
        )
        self._events, self._deliveries = [], []


class Database:
    """The catalog database over an ``Engine``. ``changes`` counts this process's commits that
    can change an update check's answer (the fleet's caches compare it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.changes = 0
        # Called after a commit that queued webhook deliveries (the deliverer wakes at once).
        self.on_queued: list[Callable[[], None]] = []

    async def close(self) -> None:
        await self.engine.close()

    async def tx(
        self,
        actor: str,
        fn: Callable[[Tx], T],
        *,
        durable: bool = True,
        read_only: bool = False,
        changes_answers: bool | None = None,
    ) -> T:
        """Runs ``fn`` in one transaction (``read_only``: a consistent read); rolls back if it
        raises. The engine may run ``fn`` more than once (PostgreSQL retries a transaction that
        lost a race), so ``fn`` acts only through ``Tx``.

        ``durable=False`` is bookkeeping (upload leases, check-ins, reports): committed without
        waiting for the disk, still atomic and consistent after any crash (the last such
        commits can be lost if the machine itself goes down). A change that can change an
        update check's answer bumps the generation that the fleet's caches key on;
        ``changes_answers`` (default: ``durable``) says whether this one can. Part uploads, for
        one, are durable but cannot, so they leave the caches warm.
        """
        write = not read_only
        bump = write and (durable if changes_answers is None else changes_answers)
        dialect = self.engine.dialect

        seen: list[Tx] = []

        def run(conn: Connection) -> T:
            tx = Tx(conn, actor, dialect)
            seen[:] = [tx]
            out = fn(tx)
            tx.write_log()
            if bump or tx.changes_answers:
                conn.exec_driver_sql("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            return out

        out = await self.engine.run(run, write=write, durable=durable)
        if seen and (bump or seen[0].changes_answers):
            self.changes += 1
        if seen and seen[0].queued:
            for wake in self.on_queued:
                wake()
        return out

    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await self.tx("", fn, read_only=True)


def get_or_404(tx: Tx, table: str, id_: str, what: str) -> Row:
    row = tx.one(f"SELECT * FROM {table} WHERE id = ?", [id_])
    if row is None:
        raise NotFound(f"no {what} {id_}")
    return row


def update_logged(tx: Tx, table: str, id_: str, kind: str, changes: Row, before: Row, view: Callable[[Row], Row],
                  action: str = "update") -> Row:  # fmt: skip
    """Writes ``changes`` to a row (with a new ``updated_at``), logs an ``action`` event from
    ``before`` to the row's view after, and returns that view."""
    if changes:
        tx.update(table, id_, {**changes, "updated_at": now()})
    after = view(get_or_404(tx, table, id_, kind))
    tx.event(action, kind, id_, before, after)
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
