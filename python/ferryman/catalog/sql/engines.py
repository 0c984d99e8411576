"""The engines under the SQL catalog: where a transaction's SQL runs, and how it is isolated.

- ``SqliteEngine`` (embedded): WAL mode with foreign keys; writes on one writer thread (so
  transactions never interleave: ``BEGIN IMMEDIATE``), reads on a reader thread of their own
  (so no read, an update check's above all, queues behind a write). The event loop never waits
  on the disk.
- ``PostgresEngine``: asyncpg through SQLAlchemy's asyncio engine. A transaction's function is
  the same synchronous code as , run with ``run_sync`` (SQLAlchemy's greenlet bridge,
  no thread hop). Writes are SERIALIZABLE and retried when PostgreSQL reports that they lost a
  race with another process; reads are REPEATABLE READ, READ ONLY (one consistent snapshot).

asyncpg was chosen over psycopg 3 by measurement (``benches/catalog_drivers.py``): point reads
through SQLAlchemy from the event loop ran about twice as fast as psycopg on worker threads, and
faster than psycopg's own asyncio mode.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy import Engine as Engine_
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from ferryman.errors import Conflict, InsufficientStorage, Unavailable

__all__ = ["Engine", "PostgresEngine", "SqliteEngine", "engine_url", "shown", "sqlite_engine"]

log = logging.getLogger("ferryman.catalog")
T = TypeVar("T")

# PostgreSQL's codes for a transaction that lost a race (serialisation failure, deadlock): run again.
_RETRY = {"40001", "40P01"}
_RETRIES = 20
_RECONNECTS = 3  # for reads, over 0.7 s
_DISK_FULL = "53100"
# Codes (and classes) meaning PostgreSQL cannot serve now: connection failures, shutting down or
# starting up, too many connections.
_UNAVAILABLE = ("08", "57P", "53300")
CONNECT_TIMEOUT = 10  # seconds to reach PostgreSQL before a request is answered 503


class Engine(Protocol):
    dialect: str  # "sqlite" or "postgresql", as SQLAlchemy names them

    async def run(self, fn: Callable[[Connection], T], *, write: bool, durable: bool) -> T:
        """Runs ``fn`` in one transaction: committed if it returns, rolled back if it raises."""

    async def close(self) -> None: ...


def engine_url(catalog: str) -> URL:
    """The SQLAlchemy URL for a catalog URL (``sqlite:///path``, ``postgresql://…``); raises
    ValueError, in words an operator can act on, for anything else."""
    try:
        url = make_url(catalog)
    except Exception:
        raise ValueError(f"catalog URL {catalog!r} is not a URL (sqlite:///path or postgresql://user@host/db)") from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite") and url.database:
        return url.set(drivername="sqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "asyncpg"):
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"catalog URL {url.render_as_string()!r}: expected sqlite:///path or postgresql://user@host/db")


def shown(url: URL) -> str:
    """A catalog URL as an operator wrote it, for messages: no driver name, no password."""
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def sqlite_engine(url: str | URL, write: bool = True) -> Engine_:
    """A SQLite engine whose transactions are begun by hand, as SQLAlchemy's documentation
    advises for pysqlite (whose own handling leaves DDL outside transactions): BEGIN IMMEDIATE
    for writers (the write lock at once), with foreign keys on."""
    engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30})
    begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    @event.listens_for(engine, "connect")
    def _connect(dbapi: sqlite3.Connection, _record: Any) -> None:
        dbapi.isolation_level = None
        if write:
            dbapi.execute("PRAGMA journal_mode = WAL")
            dbapi.execute("PRAGMA synchronous = FULL")
        dbapi.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _integrity(e: IntegrityError) -> Conflict:
    return Conflict(f"conflicts with an existing record ({e.orig})")


class SqliteEngine:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferryman-sqlite")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferryman-sqlite-read")
        self._conns: dict[bool, Connection] = {}

    @classmethod
    async def open(cls, path: Path) -> SqliteEngine:
        engine = cls(path)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(engine._writer, engine._connect, True)
        await loop.run_in_executor(engine._reader, engine._connect, False)
        return engine

    def _connect(self, write: bool) -> None:
        # In WAL mode a reader never waits for the writer, and each transaction sees the
        # latest commit.
        url = f"sqlite:///{self.path}" if write else f"sqlite:///file:{self.path}?mode=ro&uri=true"
        self._conns[write] = sqlite_engine(url, write).connect()

    async def run(self, fn: Callable[[Connection], T], *, write: bool, durable: bool) -> T:
        def run() -> T:
            conn = self._conns.get(write)
            assert conn is not None, "catalog is closed"
            raw = conn.connection.dbapi_connection
            assert raw is not None
            if not durable:
                raw.execute("PRAGMA synchronous = NORMAL")
            try:
                with conn.begin():
                    return fn(conn)
            finally:
                if not durable:
                    raw.execute("PRAGMA synchronous = FULL")

        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer if write else self._reader, run)
        except IntegrityError as e:
            raise _integrity(e) from None
        except OperationalError as e:
            code = getattr(e.orig, "sqlite_errorcode", 0)
            if code & 0xFF == sqlite3.SQLITE_FULL:
                raise InsufficientStorage("the server is out of disk space (catalog); nothing was changed") from None
            raise

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for write, pool in ((False, self._reader), (True, self._writer)):
            conn = self._conns.pop(write, None)
            if conn is not None:
                await loop.run_in_executor(pool, conn.close)
            pool.shutdown(wait=True)


class PostgresEngine:
    dialect = "postgresql"

    def __init__(self, url: URL, pool_size: int = 10) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        self._engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            isolation_level="SERIALIZABLE",
            pool_recycle=3600,
            connect_args={"timeout": CONNECT_TIMEOUT},
        )
        self._reader = self._engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        self.url = url
        self._running: set[asyncio.Task[Any]] = set()

    async def run(self, fn: Callable[[Connection], T], *, write: bool, durable: bool) -> T:
        # A transaction runs to its end even if its caller is cancelled (a client that went
        # away, a shutdown): as on SQLite's threads, it commits or rolls back as a whole, and
        # its connection goes back to the pool rather than to the garbage collector.
        task = asyncio.get_running_loop().create_task(self._run(fn, write=write, durable=durable))
        self._running.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: its caller may have gone

    async def _run(self, fn: Callable[[Connection], T], *, write: bool, durable: bool) -> T:
        engine = self._engine if write else self._reader
        races = reconnects = 0
        while True:
            try:
                async with engine.connect() as conn, conn.begin():
                    if not durable:
                        await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    return await conn.run_sync(fn)
            except IntegrityError as e:
                raise _integrity(e) from None
            except (DBAPIError, OSError) as e:
                orig = e.orig if isinstance(e, DBAPIError) else e
                state = getattr(orig, "sqlstate", None)
                if state in _RETRY and races < _RETRIES:
                    # Lost a race with another transaction: nothing was written; run it again
                    # after a short, jittered pause so the racers spread out.
                    races += 1
                    await asyncio.sleep(random.uniform(0, 0.002 * races))
                    continue
                if state == _DISK_FULL:
                    raise InsufficientStorage("the catalog database is out of disk space; nothing was changed") from None
                broken = isinstance(e, OSError) or e.connection_invalidated or isinstance(orig, OSError)
                if not (broken or state is None or state.startswith(_UNAVAILABLE)):
                    raise
                # The connection broke or PostgreSQL cannot serve now (restarting, unreachable):
                # the pool drops the connection. A read is tried again on a new one, briefly (a
                # restart leaves every pooled connection broken); a write may or may not have
                # committed, so the client hears 503 and retries.
                if not write and reconnects < _RECONNECTS:
                    reconnects += 1
                    await asyncio.sleep(0.05 * 2**reconnects)
                    continue
                log.warning("catalog database unavailable: %s", orig)
                raise Unavailable("the catalog database is unavailable; retry") from None

    async def close(self) -> None:
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._engine.dispose()
