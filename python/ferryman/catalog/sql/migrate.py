"""The catalog's schema versions: Alembic migrations (``migrations/versions``) for both dialects,
applied by ``ferryman migrate`` (and, for the embedded SQLite catalog, at start-up), and checked
before a server starts: it refuses a schema it does not know.

A SQLite catalog created before versioned migrations (``PRAGMA user_version`` 6, the last of
the hand-kept ones) holds exactly revision 0001 and is stamped with it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from ferryman.catalog.sql.engines import CONNECT_TIMEOUT, sqlite_engine
from ferryman.errors import FerrymanError

__all__ = ["SchemaError", "check_schema", "head", "migrate"]

# Alembic narrates each step at INFO; ``ferryman migrate`` says in one line what it did.
logging.getLogger("alembic").setLevel(logging.WARNING)

_LEGACY_SQLITE_VERSION = 6
_LEGACY_REVISION = "0001"


class SchemaError(FerrymanError):
    """The catalog's schema is not the one this server runs on; the message says what to do."""


def _config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def _known() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def _state(conn: Connection) -> str | None:
    """The schema's revision; None for an empty database. A pre-Alembic SQLite catalog is
    stamped first."""
    current = MigrationContext.configure(conn).get_current_revision()
    if current is not None or conn.dialect.name != "sqlite":
        return current
    tables = set(inspect(conn).get_table_names())
    if not tables:
        return None
    version = conn.exec_driver_sql("PRAGMA user_version").scalar()
    if version != _LEGACY_SQLITE_VERSION or "meta" not in tables:
        raise SchemaError(f"the SQLite catalog has schema version {version}, which this server cannot upgrade")
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.stamp(cfg, _LEGACY_REVISION)
    conn.commit()
    return _LEGACY_REVISION


def _upgrade(conn: Connection) -> str | None:
    before = _state(conn)
    if before is not None and before not in _known():
        raise SchemaError(f"the catalog has schema revision {before}, which this server does not know (newer than {head()})")
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    conn.commit()
    return before


def _check(conn: Connection) -> None:
    current = _state(conn)
    if current == head():
        return
    if current is None:
        raise SchemaError("the catalog database is empty: run `ferryman migrate --catalog URL` first")
    if current in _known():
        raise SchemaError(f"the catalog has schema revision {current}, not {head()}: run `ferryman migrate` first")
    raise SchemaError(f"the catalog has schema revision {current}, which this server does not know (newer than {head()})")


async def _on(url: URL, fn: object) -> object:
    """Runs ``fn(connection)`` on a connection of its own (the server's engines are not open yet)."""
    if url.get_backend_name() == "sqlite":
        engine = sqlite_engine(url)

        def run() -> object:
            with engine.connect() as conn:
                return fn(conn)  # type: ignore[operator]

        try:
            return await asyncio.get_running_loop().run_in_executor(None, run)
        finally:
            engine.dispose()
    from sqlalchemy.ext.asyncio import create_async_engine

    aengine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT})
    try:
        async with aengine.connect() as conn:
            return await conn.run_sync(fn)  # type: ignore[arg-type]
    finally:
        await aengine.dispose()


async def migrate(url: URL) -> tuple[str | None, str]:
    """Brings the catalog at ``url`` to the newest revision; returns the revision before (None:
    the database was empty) and after."""
    before = await _on(url, _upgrade)
    return before, head()  # type: ignore[return-value]


async def check_schema(url: URL) -> None:
    """Raises SchemaError unless the catalog is at the newest revision."""
    await _on(url, _check)


def _check_known(conn: Connection) -> None:
    current = _state(conn)
    if current is not None and current not in _known():
        raise SchemaError(f"the catalog has schema revision {current}, which this server does not know (newer than {head()})")


async def check_upgradable(url: URL) -> None:
    """Raises SchemaError if the catalog's schema is one this code cannot migrate (a newer one)."""
    await _on(url, _check_known)
