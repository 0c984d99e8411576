"""Regions: the named stores binaries are replicated to (``--region NAME=URL``), one of them
primary (uploads land there and hashing verifies them), each perhaps behind a CDN.

Each process checks every region's store every ``interval`` seconds (``BlobStore.check``) and
keeps the verdicts in memory; a store that fails a download is marked unhealthy at once and
checked again at the next round. Health is each process's own view, so nothing is shared.
``epoch`` moves whenever a verdict changes, for caches of answers that name regions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ferryman.blobs import BlobStore, open_store
from ferryman.config import Config, Region

__all__ = ["Regions"]

log = logging.getLogger("ferryman.regions")
CHECK_TIMEOUT = 10.0


class Regions:
    """See the module doc. ``regions`` primary first."""

    def __init__(self, regions: Sequence[Region], stores: Sequence[BlobStore], interval: float) -> None:
        self.names = tuple(r.name for r in regions)
        self.primary = self.names[0]
        self.stores = dict(zip(self.names, stores, strict=True))
        self.cdn = {r.name: r.cdn_base_url.rstrip("/") for r in regions if r.cdn_base_url}
        self.interval = interval
        self.epoch = 0
        self._healthy = dict.fromkeys(self.names, True)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, config: Config, primary: BlobStore | None = None) -> Regions:
        """The configured regions' stores (``primary``: the primary's, already open)."""
        regions = config.region_list
        stores = [primary or open_store(regions[0].store, config.store_dir(regions[0]))]
        stores += [open_store(r.store, config.store_dir(r)) for r in regions[1:]]
        return cls(regions, stores, config.region_check_interval)

    @property
    def several(self) -> bool:
        return len(self.names) > 1

    def healthy(self, name: str) -> bool:
        return self._healthy.get(name, False)

    def store(self, name: str) -> BlobStore:
        return self.stores[name]

    def _set(self, name: str, healthy: bool, why: str = "") -> None:
        if self._healthy[name] != healthy:
            self._healthy[name] = healthy
            self.epoch += 1
            if healthy:
                log.info("region %s: its store is reachable again", name)
            else:
                log.warning("region %s: its store fails (%s); its copies are not served meanwhile", name, why)

    def failed(self, name: str, why: str) -> None:
        """A store failed a request: skip it until its next check passes."""
        self._set(name, False, why)

    async def check(self) -> None:
        """Checks every region's store once, together."""

        async def one(name: str) -> None:
            try:
                await asyncio.wait_for(self.stores[name].check(), CHECK_TIMEOUT)
            except Exception as e:  # any failure, in the store's own words
                self._set(name, False, str(e).splitlines()[0] if str(e) else type(e).__name__)
            else:
                self._set(name, True)

        await asyncio.gather(*(one(n) for n in self.names))

    async def _check_every(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("checking the regions' stores failed; retrying")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.several:
            self._task = asyncio.get_running_loop().create_task(self._check_every(), name="region checks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
