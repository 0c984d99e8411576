"""The catalog: what exists and the rules for changing it. ``Catalog`` (``protocol.py``) is
the seam every layer above uses; ``sqlite`` is the embedded implementation."""

from __future__ import annotations

from ferryman.catalog.protocol import Catalog, FleetSnapshot, ServedBinary
from ferryman.config import Config

__all__ = ["Catalog", "FleetSnapshot", "ServedBinary", "open_catalog"]


async def open_catalog(config: Config) -> Catalog:
    """The catalog a configuration names (today: the embedded SQLite file)."""
    from ferryman.catalog.sqlite import SqliteCatalog

    return await SqliteCatalog.open(config.catalog_path, config.signature_threshold)
