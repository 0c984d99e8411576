"""The catalog: what exists and the rules for changing it. ``Catalog`` (``protocol.py``) is
the seam every layer above uses; ``sql`` implements it on SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from ferryman.catalog.protocol import Catalog, DeliveryJob, DeliveryOutcome, FleetSnapshot, ReplicaJob, ServedBinary
from ferryman.config import Config

__all__ = ["Catalog", "DeliveryJob", "DeliveryOutcome", "FleetSnapshot", "ReplicaJob", "ServedBinary", "open_catalog"]


async def open_catalog(config: Config) -> Catalog:
    """The catalog a configuration names: ``config.catalog`` (a URL), by default the embedded
    SQLite file in the data directory."""
    from ferryman.catalog.sql import SqlCatalog

    return await SqlCatalog.open(config.catalog_url, config.signature_threshold)
