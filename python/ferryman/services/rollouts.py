"""Device reports and scheduled rollout steps.

Reports arrive from a whole fleet at once, and each is a transaction (the device's state, its
history, the release's outcome for it, perhaps a halt). They are written in groups: the reports
that arrive while one group is written form the next, each answered only once its group is
committed (a group commit), so a fleet reporting at once costs a few transactions, not one per
device. A refused report (unknown bundle, say) fails alone.

Scheduled phase steps (``advance``) are applied by every process every ``interval`` seconds;
the catalog applies each step once, whichever process sees it first.
"""

from __future__ import annotations

import asyncio
import logging

from ferryman import metrics
from ferryman.catalog import Catalog
from ferryman.catalog import models as m
from ferryman.errors import DomainError

__all__ = ["Rollouts"]

log = logging.getLogger("ferryman.rollouts")
GROUP_MAX = 500  # reports written in one transaction at most


class Rollouts:
    """See the module doc. ``start`` runs the step scheduler; ``stop`` ends it."""

    def __init__(self, catalog: Catalog, interval: float) -> None:
        self.catalog = catalog
        self.interval = interval
        self._waiting: list[tuple[str, m.DeviceReport, asyncio.Future[m.Device | DomainError]]] = []
        self._writing: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None

    async def report(self, token_hash: str, body: m.DeviceReport) -> m.Device:
        """Records a device's report (see the module doc); raises what refused it."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((token_hash, body, done))
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write())
        result = await asyncio.shield(done)
        if isinstance(result, DomainError):
            raise result
        if metrics.enabled:
            metrics.REPORTS.labels(body.status).inc()
        return result

    async def _write(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
                try:
                    results = await self.catalog.report_many([(t, b) for t, b, _ in group])
                except Exception as e:
                    for *_, done in group:
                        done.set_exception(e)
                    continue
                for (*_, done), result in zip(group, results, strict=True):
                    done.set_result(result)
        finally:
            self._writing = None

    async def _advance_every(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                changed = await self.catalog.advance_rollouts()
                if changed:
                    log.info("scheduled phase steps applied to %s", ", ".join(changed))
            except Exception:
                log.exception("applying scheduled phase steps failed; retrying")

    def start(self) -> None:
        self._scheduler = asyncio.get_running_loop().create_task(self._advance_every(), name="rollout steps")

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
