"""What a server needs before it starts, checked in one pass (``ferryman serve --check``, and
before every start): the catalog reachable with a schema this server runs on, the data
directory writable. Each problem is one line an operator can act on."""

from __future__ import annotations

import os
import tempfile

from ferryman.catalog.sql.engines import engine_url, shown
from ferryman.catalog.sql.migrate import SchemaError, check_schema, check_upgradable
from ferryman.config import Config

__all__ = ["preflight", "reason"]


def reason(e: BaseException) -> str:
    """The first line of what went wrong, in the driver's own words."""
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


async def _catalog(config: Config) -> str | None:
    try:
        url = engine_url(config.catalog_url)
    except ValueError as e:
        return f"catalog: {e}"
    where = shown(url)
    try:
        if url.get_backend_name() == "sqlite":
            await check_upgradable(url)  # an older schema is migrated at start
        else:
            await check_schema(url)
    except SchemaError as e:
        return f"catalog {where}: {e}"
    except Exception as e:  # any failure to connect or read, in the driver's own words
        return f"catalog {where}: cannot use it: {reason(e)}"
    return None


def _data_dir(config: Config) -> str | None:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=config.data_dir, prefix=".check-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        return f"data directory {config.data_dir}: not writable: {e.strerror or e}"
    return None


async def _stores(config: Config) -> list[str]:
    """Every region's store: its URL valid, and an object store reachable with its bucket."""
    from ferryman.blobs import open_store
    from ferryman.blobs.objects import ObjectBlobStore

    problems = []
    several = len(config.region_list) > 1
    for region in config.region_list:
        label = f"region {region.name}: store" if several else "store"
        if region.store is None and region.name == config.primary.name:
            continue  # the data directory's, checked with it
        try:
            store = open_store(region.store, config.store_dir(region))
        except (ValueError, OSError) as e:
            problems.append(f"{label}: {e}")
            continue
        if isinstance(store, ObjectBlobStore):
            try:
                await store.check()
            except Exception as e:  # unreachable, credentials refused, no such bucket: obstore's words
                problems.append(f"{label} {store.where}: cannot use it: {reason(e)}")
    return problems


async def preflight(config: Config) -> list[str]:
    """Every problem found, one line each; empty when the server can start."""
    data = _data_dir(config)
    # The embedded catalog lives in the data directory: no use opening it if that failed.
    catalog = None if data and config.catalog is None else await _catalog(config)
    return [p for p in (data, catalog) if p] + await _stores(config)
