"""Shared fixtures: the known-answer vectors in tests/vectors (also read by the Rust tests),
and the catalogs and stores a service runs on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def vector_message(v: dict[str, Any]) -> bytes:
    """Expands a vector's message exactly as rust/src/hashing.rs does."""
    if "pattern251" in v:
        return bytes(i % 251 for i in range(v["pattern251"]))
    if "hex" in v:
        return bytes.fromhex(v["hex"])
    return v["repeat"].encode() * v["count"]


@pytest.fixture
def write_file(tmp_path: Path):
    """Writes bytes to a fresh file under tmp_path and returns its path."""
    counter = iter(range(1_000_000))

    def write(data: bytes, name: str | None = None) -> Path:
        path = tmp_path / (name or f"file{next(counter)}.bin")
        path.write_bytes(data)
        return path

    return write


def _missing(what: str) -> None:
    """Skips a test that needs a server this machine lacks; fails instead on CI
    (``FERRYMAN_TEST_SERVICES=required``, set by .ci/run, which installs them)."""
    if os.environ.get("FERRYMAN_TEST_SERVICES") == "required":
        pytest.fail(f"{what} is not installed (FERRYMAN_TEST_SERVICES=required)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def postgres():
    """The test session's PostgreSQL server, started on first use."""
    from services import Postgres, postgres_bin

    found = postgres_bin()
    if found is None:
        _missing("PostgreSQL (Debian package postgresql)")
    pg = Postgres(found).start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def s3():
    """The test session's S3 server, started on first use."""
    from services import S3Server

    srv = S3Server().start()
    yield srv
    srv.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests of modules marked ``stores`` run on the file store and on S3; the rest on files."""
    if "store_url" in metafunc.fixturenames:
        kinds = ["file", "s3"] if metafunc.definition.get_closest_marker("stores") else ["file"]
        metafunc.parametrize("store_url", kinds, indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest):
    """The store a test's service runs on: the data directory (None) or a fresh S3 bucket."""
    import services

    if request.param == "file":
        yield None
        return
    url, client, bucket = request.getfixturevalue("s3").bucket()
    services.current_bucket[0] = (client, bucket, "fm")
    yield url
    services.current_bucket[0] = None


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> str | None:
    """The catalog a test's service runs on: the embedded SQLite default (None) or a fresh
    database on the session's PostgreSQL server. Every test that uses it runs on both."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").database()


@pytest.fixture(autouse=True)
def _current_catalog(request: pytest.FixtureRequest):
    """Tells helpers that open a catalog themselves (``services.catalog_for``) which one the
    test runs on."""
    import services

    services.current_catalog[0] = request.getfixturevalue("catalog_url") if "catalog_url" in request.fixturenames else None
    yield
    services.current_catalog[0] = None


@pytest.fixture
def server(tmp_path: Path, catalog_url: str | None, store_url: str | None):
    """A fresh service (own data directory) on a real socket, on each catalog (and in modules
    marked ``stores``, each store); yields an admin client."""
    from apiclient import ADMIN, ThreadServer

    from ferryman.config import Config

    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, catalog=catalog_url, store=store_url))
    api = srv.start()
    yield api
    srv.stop()
