"""The embedded catalog: the ``Catalog`` operations on SQLite, one module per group of
resources over one ``Database`` (``db.py``: the worker thread, transactions, pages)."""

from __future__ import annotations

from pathlib import Path

from ferryman.catalog.sqlite.artifacts import Artifacts
from ferryman.catalog.sqlite.binaries import Binaries
from ferryman.catalog.sqlite.bundles import Bundles
from ferryman.catalog.sqlite.channels import Channels
from ferryman.catalog.sqlite.checkins import Checkins
from ferryman.catalog.sqlite.db import Database
from ferryman.catalog.sqlite.devices import Devices
from ferryman.catalog.sqlite.events import Events
from ferryman.catalog.sqlite.keys import ApiKeys, SigningKeys

__all__ = ["SqliteCatalog"]


class SqliteCatalog(ApiKeys, Artifacts, Binaries, SigningKeys, Bundles, Channels, Devices, Checkins, Events):
    """The ``Catalog`` on SQLite. Each base holds the operations of one group of resources and
    shares nothing but ``db`` and ``threshold``."""

    def __init__(self, db: Database, threshold: int = 1) -> None:
        self.db = db
        self.threshold = threshold

    @classmethod
    async def open(cls, path: Path, threshold: int = 1) -> SqliteCatalog:
        return cls(await Database.open(path), threshold)

    async def close(self) -> None:
        await self.db.close()
