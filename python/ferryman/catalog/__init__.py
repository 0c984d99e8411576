"""The catalog: what exists (artifacts, versions, binaries, keys, signatures, API keys, events)
and the rules for changing it. ``Catalog`` is storage-agnostic in its interface; the embedded
store is SQLite (``sqlite.py``)."""

from ferryman.catalog.sqlite import Page
from ferryman.catalog.store import Catalog, hash_token

__all__ = ["Catalog", "Page", "hash_token"]
