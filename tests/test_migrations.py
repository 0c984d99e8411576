"""The catalog's schema versions: a fresh catalog is migrated to the newest revision, one made
before versioned migrations is taken over with its data, and a schema this server does not know
is refused in words an operator can act on. On PostgreSQL too: ``ferryman migrate``."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from services import Postgres

from ferryman.catalog import models as m
from ferryman.catalog.sql import SqlCatalog
from ferryman.catalog.sql.engines import engine_url
from ferryman.catalog.sql.migrate import SchemaError, check_schema, head, migrate


def _revision(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


async def _artifact_names(path: Path) -> list[str]:
    catalog = await SqlCatalog.open(path)
    try:
        return [a.name for a in (await catalog.list_artifacts(10, None)).items]
    finally:
        await catalog.close()


def test_a_fresh_catalog_is_at_the_newest_revision(tmp_path: Path):
    path = tmp_path / "c.sqlite3"
    assert asyncio.run(_artifact_names(path)) == []
    assert _revision(path) == head()


def test_a_catalog_from_before_versioned_migrations_is_taken_over_with_its_data(tmp_path: Path):
    path = tmp_path / "c.sqlite3"
    url = engine_url(f"sqlite:///{path}")
    asyncio.run(migrate(url))

    async def fill() -> None:
        catalog = await SqlCatalog.open(path)
        await catalog.create_artifact("t", m.ArtifactCreate(name="rootfs"))
        await catalog.close()

    asyncio.run(fill())
    # What the hand-kept migrations left (revision 0001's schema, PRAGMA user_version 6, no
    # Alembic table), rebuilt from this catalog: revision 0002 on added only indexes, 0003 to
    # 0006 columns and tables, 0007 an index.
    with sqlite3.connect(path) as db:
        for index in [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '%_created'")]:
            db.execute(f"DROP INDEX {index}")
        db.execute("DROP INDEX events_at")
        db.execute("DROP INDEX devices_auth_keyid")
        db.execute("DROP INDEX devices_admission")
        db.execute("DROP INDEX devices_reported_release")
        tables = ("settings", "replicas", "rollouts", "device_reports", "webhook_deliveries", "webhooks", "device_actions")
        for table in tables:
            db.execute(f"DROP TABLE {table}")
        dropped = [("devices", "region"), ("cohorts", "region"), ("releases", "require_replicated"), ("devices", "reports")]
        dropped += [("releases", c) for c in ("halt", "halted", "halted_reason", "halted_at", "advance")]
        dropped += [("binaries", c) for c in ("filename", "sha1", "md5", "mender")]
        dropped += [("devices", c) for c in ("attributes", "admission", "auth_key", "auth_keyid", "identity", "config_at")]
        for table, column in dropped:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("ALTER TABLE binaries DROP COLUMN lease_owner")
        db.execute("ALTER TABLE binaries DROP COLUMN lease_until")
        db.execute("DROP TABLE alembic_version")
        db.execute("PRAGMA user_version = 6")
    assert asyncio.run(_artifact_names(path)) == ["rootfs"]
    assert _revision(path) == head()


@pytest.mark.parametrize(
    ("prepare", "says"),
    [
        ("UPDATE alembic_version SET version_num = '9999'", "revision 9999, which this server does not know"),
        ("DROP TABLE alembic_version; PRAGMA user_version = 3", "schema version 3, which this server cannot upgrade"),
    ],
)
def test_a_schema_this_server_does_not_know_is_refused(tmp_path: Path, prepare: str, says: str):
    path = tmp_path / "c.sqlite3"
    asyncio.run(migrate(engine_url(f"sqlite:///{path}")))
    with sqlite3.connect(path) as db:
        db.executescript(prepare)
    with pytest.raises(SchemaError, match=says):
        asyncio.run(_artifact_names(path))
    r = subprocess.run([sys.executable, "-m", "ferryman", "serve", "--data", str(tmp_path), "--catalog",
                        f"sqlite:///{path}"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr


def test_ferryman_migrate_on_postgresql(postgres: Postgres):
    url = postgres.url("migrated")
    postgres.sql(postgres.url("postgres"), "CREATE DATABASE migrated")
    with pytest.raises(SchemaError, match="empty"):
        asyncio.run(check_schema(engine_url(url)))
    cmd = [sys.executable, "-m", "ferryman", "migrate", "--catalog", url]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and f"migrated from an empty database to revision {head()}" in first.stdout, first.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and f"at revision {head()}, nothing to do" in again.stdout
    asyncio.run(check_schema(engine_url(url)))
