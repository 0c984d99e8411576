"""Shared fixtures: the known-answer vectors in tests/vectors (also read by the Rust tests)."""

from __future__ import annotations

import json
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


@pytest.fixture
def server(tmp_path: Path):
    """A fresh service (own data directory) on a real socket; yields an admin client."""
    from apiclient import ADMIN, ThreadServer

    from ferryman.config import Config

    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN))
    api = srv.start()
    yield api
    srv.stop()
