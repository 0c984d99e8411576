"""Replication: every binary with content is copied from the region that has it to every other
region, and removed from all of them when it is destroyed or reset.

The queue is the catalog's ``replicas`` rows (``catalog/sql/replicas.py``), so it survives any
crash and is shared by every process on the catalog: each looks for due jobs every ``POLL``
seconds (and at once when a binary of its own becomes signable), takes up to ``concurrency`` of
them under leases it renews while it works, and a job whose process died is taken over when its
lease runs out. A copy streams from the source store into the target's ``write_content`` (no
local staging), hashed on the way: it becomes ``verified`` only if its size and SHA-256 are the
binary's, and a target store makes it visible only whole (a rename, a PUT), so a half copy is
never served. A failed job is retried with exponential backoff and jitter
(``ferryman.replication.retry_delay``). ``verify`` queues every verified copy to be read back:
a missing or different one is copied again, from a verified copy elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from ferryman.blobs import Mismatch
from ferryman.blobs.regions import Regions
from ferryman.catalog import Catalog, ReplicaJob
from ferryman.catalog import models as m
from ferryman.errors import NotFound
from ferryman.ids import new_id
from ferryman.replication import RETRY_MAX, retry_delay, source_for, verified_regions

__all__ = ["Replication"]

log = logging.getLogger("ferryman.replication")
POLL = 2.0  # how often each process looks for due jobs
RECONCILE_EVERY = 30  # polls between passes that queue copies nobody queued (a crash between steps)


class Replication:
    """See the module doc. ``lease``: a job's lease in seconds."""

    def __init__(self, catalog: Catalog, regions: Regions, lease: float, concurrency: int = 4,
                 retry_max: float = RETRY_MAX) -> None:  # fmt: skip
        self.catalog = catalog
        self.regions = regions
        self.lease = lease
        self.concurrency = concurrency
        self.retry_max = retry_max
        self.worker = new_id("upload")  # a fresh lease holder's name per start
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def active(self) -> bool:
        return self.regions.several

    async def start(self) -> None:
        self.regions.start()
        if not self.active:
            return
        await self.catalog.queue_replicas(self.regions.names)
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="replication")

    async def stop(self) -> None:
        """Stops taking jobs and cancels those running (their leases run out; any process takes
        them again)."""
        tasks = [*self._running.values(), *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.regions.stop()

    async def queue(self, binary_id: str) -> None:
        """A binary got content: queue its copies and look for jobs now."""
        if self.active:
            await self.catalog.queue_replicas(self.regions.names, binary_id)
            self._wake.set()

    async def verify(self, actor: str, region: str | None) -> int:
        """Queues every verified copy (in ``region``, else everywhere) to be read back."""
        n = await self.catalog.request_verify(actor, [region] if region else list(self.regions.names))
        self._wake.set()
        return n

    async def status(self) -> m.ReplicationStatus:
        found = await self.catalog.replication_status(self.regions.names)
        regions = []
        for name in self.regions.names:
            counts, lag, failures = found[name]
            queued = sum(counts.get(s, 0) for s in ("pending", "copying", "failed"))
            regions.append(m.RegionReplication(
                region=name, primary=name == self.regions.primary, healthy=self.regions.healthy(name),
                cdn_base_url=self.regions.cdn.get(name), copies=counts, queued=queued, lag_seconds=round(lag, 3),
                failures=failures,
            ))  # fmt: skip
        return m.ReplicationStatus(
            regions=regions,
            queued=sum(r.queued for r in regions),
            lag_seconds=max((r.lag_seconds for r in regions), default=0.0),
            failed=sum(r.copies.get("failed", 0) for r in regions),
        )

    # The jobs -----------------------------------------------------------------------------------

    async def _poll(self) -> None:
        polls = 0
        while True:
            try:
                polls += 1
                if polls % RECONCILE_EVERY == 0:
                    await self.catalog.queue_replicas(self.regions.names)
                await self.take()
            except Exception:
                log.exception("looking for replication jobs failed; retrying")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a cancel that
            # comes as the wake does (and stop() would wait forever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(POLL, self.lease / 3)):
                    await self._wake.wait()

    async def take(self) -> None:
        """Takes due jobs up to the free places and runs them."""
        free = self.concurrency - len(self._running)
        if free <= 0:
            return
        for job in await self.catalog.claim_replicas(self.worker, self.lease, self.regions.names, free):
            key = (job.binary_id, job.region)
            task = asyncio.get_running_loop().create_task(self._leased(job), name=f"replicate {key}")
            self._running[key] = task
            task.add_done_callback(lambda _, key=key: self._done(key))  # type: ignore[misc]

    def _done(self, key: tuple[str, str]) -> None:
        self._running.pop(key, None)
        self._wake.set()  # a place is free

    async def _leased(self, job: ReplicaJob) -> None:
        """Runs a job while renewing its lease; stops if the lease is lost (another process
        has the job then), and settles it."""
        work = asyncio.ensure_future(self._run(job))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self.lease / 3)
                if done:
                    break
                if not await self.catalog.renew_replica(job.binary_id, job.region, self.worker, self.lease):
                    log.warning("%s in %s: lost the replication lease; another process has the job", job.binary_id, job.region)
                    return
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        try:
            outcome, error = work.result()
        except Exception as e:  # the store or the catalog failed: retried with backoff
            outcome, error = "failed", _why(e)
        if outcome == "failed":
            log.warning("%s of %s in region %s failed (attempt %d): %s", job.kind, job.binary_id, job.region,
                        job.attempts + 1, error)  # fmt: skip
        delay = retry_delay(job.attempts + 1, random.random(), self.retry_max)
        try:
            settled = await self.catalog.finish_replica(job, self.worker, outcome, error, delay)
            if settled and outcome == "deleted":
                # A binary reset and uploaded again meanwhile needs its copies back.
                await self.catalog.queue_replicas(self.regions.names, job.binary_id)
        except Exception:
            log.exception("could not record the replication of %s in %s; its lease runs out", job.binary_id, job.region)

    async def _run(self, job: ReplicaJob) -> tuple[str, str | None]:
        """Does a job; its outcome for ``finish_replica`` and the error, if any."""
        store = self.regions.store(job.region)
        if job.kind == "delete":
            if job.region != self.regions.primary:  # the primary's bytes belong to uploads
                await store.delete(job.binary_id)
            return "deleted", None
        if job.kind == "check":
            try:
                size, sha256 = await store.hash_content(job.binary_id)
            except NotFound:
                return "corrupt", "the copy is missing"
            if (size, sha256) != (job.size, job.sha256):
                return "corrupt", f"the copy has {size} bytes with SHA-256 {sha256}; copying it again"
            return "verified", None
        return await self._copy(job)

    async def _copy(self, job: ReplicaJob) -> tuple[str, str | None]:
        states = await self.catalog.replica_states(job.binary_id)
        verified = verified_regions(states, self.regions.primary)
        source = source_for(job.region, self.regions.names, verified, self.regions.healthy)
        if source is None:
            return "failed", "no verified copy in a healthy region to copy from"
        content = await self.regions.store(source).open(job.binary_id)
        try:
            if content.size != job.size:
                return "failed", f"the copy in {source} has {content.size} bytes, not {job.size}"
            await self.regions.store(job.region).write_content(job.binary_id, content.read(0, content.size), job.size, job.sha256)
        except Mismatch as e:
            return "failed", f"copied from {source}: {e}"
        finally:
            content.close()
        log.info("%s copied from %s to %s and verified", job.binary_id, source, job.region)
        return "verified", None


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
