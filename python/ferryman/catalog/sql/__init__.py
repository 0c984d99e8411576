"""The catalog on SQL: the ``Catalog`` operations, one module per group of resources, written
once over ``db.Tx`` and run on SQLite (embedded, the default) or PostgreSQL (``engines.py``),
with versioned migrations for both (``migrate.py``)."""

from __future__ import annotations

from pathlib import Path

from ferryman.catalog.sql.agents import Agents
from ferryman.catalog.sql.artifacts import Artifacts
from ferryman.catalog.sql.binaries import Binaries
from ferryman.catalog.sql.bundles import Bundles
from ferryman.catalog.sql.channels import Channels
from ferryman.catalog.sql.checkins import Checkins
from ferryman.catalog.sql.db import Database
from ferryman.catalog.sql.devices import Devices
from ferryman.catalog.sql.engines import Engine, PostgresEngine, SqliteEngine, engine_url
from ferryman.catalog.sql.events import Events
from ferryman.catalog.sql.keys import ApiKeys, SigningKeys
from ferryman.catalog.sql.migrate import check_schema, migrate
from ferryman.catalog.sql.replicas import Replicas
from ferryman.catalog.sql.rollouts import Rollouts
from ferryman.catalog.sql.webhooks import Webhooks

__all__ = ["SqlCatalog"]


class SqlCatalog(
    Agents, ApiKeys, Artifacts, Binaries, SigningKeys, Bundles, Channels, Devices, Checkins, Events, Replicas, Rollouts, Webhooks
):
    """The ``Catalog`` on SQL. Each base holds the operations of one group of resources and
    shares nothing but ``db`` and ``threshold``."""

    def __init__(self, db: Database, threshold: int = 1) -> None:
        self.db = db
        self.threshold = threshold

    @classmethod
    async def open(cls, catalog: str | Path, threshold: int = 1) -> SqlCatalog:
        """Opens the catalog at a URL (``sqlite:///path``, ``postgresql://…``) or SQLite file
        path. SQLite is migrated to the newest schema on the spot (one process owns it);
        PostgreSQL must be at it already (``ferryman migrate``), since many servers share it."""
        url = engine_url(f"sqlite:///{catalog}" if isinstance(catalog, Path) else catalog)
        engine: Engine
        if url.get_backend_name() == "sqlite":
            await migrate(url)
            engine = await SqliteEngine.open(Path(url.database or ""))
        else:
            await check_schema(url)
            engine = PostgresEngine(url)
        return cls(Database(engine), threshold)

    async def close(self) -> None:
        await self.db.close()
