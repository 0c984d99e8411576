"""Real servers the tests run against, started by the test session in temporary directories:
PostgreSQL from Debian's ``postgresql`` package (initdb + pg_ctl on a private port).

pytest-postgresql does much the same, but it runs initdb as the current user, and initdb
refuses to run as root, which CI is; this starts it as the ``postgres`` user then.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from apiclient import free_port

__all__ = ["Postgres", "catalog_for", "grant_secret", "postgres_bin"]

# The catalog URL of the running test (set by conftest's autouse fixture from ``catalog_url``);
# None: the embedded SQLite default.
current_catalog: list[str | None] = [None]


def catalog_for(sqlite_path: Path) -> str | Path:
    """What a test that opens a catalog itself should open: the running test's catalog, or a
    SQLite file at ``sqlite_path``."""
    return current_catalog[0] or sqlite_path


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs, if it is installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def grant_secret(data_dir: Path) -> bytes:
    """The download-grant secret of the running test's server: in its data directory (the
    embedded catalog) or in its shared catalog."""
    url = current_catalog[0]
    if url is None:
        return (data_dir / "url-secret").read_text().strip().encode()
    import psycopg

    with psycopg.connect(url) as c:
        row = c.execute("SELECT value FROM settings WHERE key = 'grant_secret'").fetchone()
    assert row is not None
    return str(row[0]).encode()


class Postgres:
    """A PostgreSQL server of the test session's own. ``database()`` hands out a fresh database
    per test, copied from a template migrated once."""

    user = "ferryman"

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="fm-pg-"))
        self.port = free_port()
        self._names = itertools.count()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> Postgres:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        # Durability off: a test server's data is thrown away (the catalog asks for it anyway).
        self.start_server()
        self._sql("CREATE DATABASE template_ferryman")
        from ferryman.catalog.sql.engines import engine_url
        from ferryman.catalog.sql.migrate import migrate

        asyncio.run(migrate(engine_url(self.url("template_ferryman"))))
        return self

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True) as c:
            c.execute(statement)  # type: ignore[arg-type]

    def database(self) -> str:
        """A fresh, migrated database; returns its URL."""
        name = f"t{next(self._names)}"
        self._sql(f"CREATE DATABASE {name} TEMPLATE template_ferryman")
        return self.url(name)

    def start_server(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")

    def stop_server(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "restart")

    def sql(self, database_url: str, statement: str, *args: object) -> list[tuple]:
        """Runs one statement on a test database (to set up what only a crash leaves behind)."""
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as c:
            cur = c.execute(statement, args)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
