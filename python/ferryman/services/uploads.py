"""Uploads and the binary lifecycle around them: receiving a part, completing an upload,
state changes that touch the bytes (reset, destroy), and the hashing job.

A part is received in two catalog hops: ``begin_part`` checks the binary is uploadable and
takes a lease (bookkeeping, no fsync), ``record_part`` stores the part's digest and ends the
lease in one durable transaction. While the bytes stream in, the lease is renewed; if renewing
fails the upload stops rather than write after its lease lapsed (hashing may then begin).

Hashing reads the upload back natively, off the event loop, and moves the binary to
``signable`` when its size and SHA-256 match the declared ones (publishing the content), or
back to ``hashable`` with an ``error`` naming the parts whose bytes no longer match what their
upload reported (the upload is kept, so nothing is lost).

A binary in ``hashing`` is a job that any process on the catalog may run: the process that
takes it holds a lease (``claim_hashing``), renewed while it hashes. Every process looks for
jobs whose lease is free or expired every ``HASHING_POLL`` seconds, so a job whose process died
is taken over once its lease runs out, and one left by a crash is picked up at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ferryman import metrics
from ferryman.agents.menderfile import HEADER_PREFIX, MenderFileError, is_mender, parse_header
from ferryman.blobs import BlobStore, Received
from ferryman.catalog import Catalog
from ferryman.catalog import models as m
from ferryman.catalog.rules import to_time
from ferryman.errors import Conflict, InsufficientStorage, Invalid, NotFound, TooLarge, Unavailable
from ferryman.ids import new_id
from ferryman.lifecycle import State

__all__ = ["Uploads", "part_length"]

log = logging.getLogger("ferryman.uploads")
SERVER = "server"
# While the disk is full, a finished hash's verdict is written again every FULL_DISK_WAIT
# seconds, for about an hour.
FULL_DISK_WAIT = 5.0
FULL_DISK_RETRIES = 720
# A hashing job's lease, renewed every third of it while the job runs: how long a job of a
# process that died waits to be taken over.
HASHING_LEASE = 30.0
HASHING_POLL = 5.0  # how often each process looks for jobs nobody holds
# How often the janitor looks for uploaded bytes no binary needs.
SWEEP_INTERVAL = 3600.0
# Part objects are needed while a binary is in these states (afterwards they were published or
# discarded; leftovers are from a crash between two steps).
_PARTS_NEEDED = {State.UPLOADABLE, State.HASHABLE, State.HASHING}


def part_length(binary: m.Binary, index: int) -> int:
    """The exact size of part ``index`` (1-based); 422 if the binary has no such part."""
    if not 1 <= index <= binary.part_count:
        raise Invalid(f"part index must be 1 to {binary.part_count}", {"index": [f"1..{binary.part_count}"]})
    return min(binary.part_size, binary.size - (index - 1) * binary.part_size)


class Uploads:
    """See the module doc. ``lease`` is the in-flight lease of a part upload, in seconds."""

    def __init__(self, catalog: Catalog, blobs: BlobStore, lease: float, job_lease: float = HASHING_LEASE,
                 on_content: Callable[[str], Awaitable[None]] | None = None) -> None:  # fmt: skip
        self.catalog = catalog
        # Told of each binary whose content this process verified (replication queues it).
        self.on_content = on_content
        self.blobs = blobs
        self.lease = lease
        self.job_lease = job_lease
        # Names this process as a lease holder (a fresh name per start: a restarted process
        # holds nothing).
        self.worker = new_id("upload")
        self._tasks: set[asyncio.Task[None]] = set()
        self._hashing: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._backfill: asyncio.Task[int] | None = None

    async def receive_part(
        self, actor: str, binary_id: str, index: int, length: int, body: AsyncIterator[bytes], declared: str | None = None
    ) -> m.Part:
        """Streams part ``index`` (``length`` bytes announced; ``declared`` its SHA-256, if the
        client sent one) into the binary's upload, checks it and records it. A bad part is not
        recorded (its bytes are overwritten by the next upload of that part)."""
        token, binary = await self.catalog.begin_part(actor, binary_id, index, self.lease)
        try:
            expected = part_length(binary, index)
            if length > expected:
                raise TooLarge(f"part {index} has {expected} bytes; {length} were sent")
            if length < expected:
                raise Invalid(f"part {index} has {expected} bytes; {length} were sent", {"content-length": [str(expected)]})
            offset = (index - 1) * binary.part_size
            upload = asyncio.ensure_future(self.blobs.receive_part(binary_id, body, offset, expected))
            keeper = asyncio.ensure_future(self._keep_lease(token, upload))
            try:
                result = await upload
            except asyncio.CancelledError:
                if keeper.done() and not keeper.cancelled():
                    raise keeper.result() from None
                raise
            finally:
                keeper.cancel()
            if result.size != expected:
                raise Invalid(f"part {index} has {expected} bytes; {result.size} arrived", {"body": ["short"]})
            if declared is not None and declared != result.sha256:
                raise Invalid(
                    f"part {index} SHA-256 is {result.sha256}; Content-Digest said {declared}",
                    {"content-digest": ["does not match the body"]},
                )
            part = await self.catalog.record_part(actor, token, binary_id, index, result.size, result.sha256)
            metrics.uploaded(result.size)
            return part
        except BaseException:
            await asyncio.shield(self.catalog.end_part(token))
            raise

    async def _keep_lease(self, token: str, upload: asyncio.Future[Received]) -> Exception:
        """Renews an in-flight lease while its upload runs; stops the upload and returns the
        failure if renewing fails."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.catalog.renew_part(token, self.lease)
            except Exception as e:
                log.warning("could not renew the lease of an upload (%s); stopping it", e)
                upload.cancel()
                return e

    async def progress(self, binary_id: str) -> m.PartList:
        """The parts received so far and those still missing."""
        binary = await self.catalog.get_binary(binary_id)
        parts = await self.catalog.list_parts(binary.id)
        have = {p.index for p in parts}
        missing = [i for i in range(1, binary.part_count + 1) if i not in have]
        return m.PartList(binary_id=binary.id, state=binary.state, part_size=binary.part_size,
                          part_count=binary.part_count, parts=parts, missing=missing)  # fmt: skip

    async def receive_content(self, actor: str, binary_id: str, length: int, body: AsyncIterator[bytes],
                              declared: str | None = None) -> m.Binary:  # fmt: skip
        """A one-part binary in one request: the part, then completion (and hashing)."""
        binary = await self.catalog.get_binary(binary_id)
        if binary.part_count != 1:
            raise Conflict(
                f"the binary has {binary.part_count} parts; upload them with PUT .../parts/{{index}}",
                part_count=binary.part_count,
            )
        await self.receive_part(actor, binary_id, 1, length, body, declared)
        return await self.change(actor, binary_id, m.BinaryPatch(state=State.HASHABLE.value))

    async def change(self, actor: str, binary_id: str, patch: m.BinaryPatch) -> m.Binary:
        """A binary's fields and state in one transaction (a refused change changes nothing),
        then what the new state needs: hashing starts; a reset or destroy removes the bytes."""
        target = None if patch.state is m.UNSET else State(patch.state)
        binary = await self.catalog.change_binary(actor, binary_id, patch, target)
        if target in (State.HASHABLE, State.HASHING):
            await self.take_hashing(binary_id)
        elif target in (State.UPLOADABLE, State.DESTROYED):
            await self.blobs.delete(binary_id)
        return binary

    # Hashing ----------------------------------------------------------------------------------

    async def take_hashing(self, binary_id: str | None = None) -> None:
        """Claims hashing jobs nobody holds (with ``binary_id``, that one) and runs them."""
        for claimed in await self.catalog.claim_hashing(self.worker, self.job_lease, binary_id):
            if claimed not in self._hashing:
                self._run(claimed)

    def _run(self, binary_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._hash_leased(binary_id), name=f"hash {binary_id}")
        self._hashing[binary_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._hashing.pop(binary_id, None))
        task.add_done_callback(_log_failure)

    async def _hash_leased(self, binary_id: str) -> None:
        """Hashes a binary while renewing the lease on it; stops if the lease is lost (another
        process has the job then)."""
        job = asyncio.create_task(self.hash_binary(binary_id))
        try:
            while True:
                done, _ = await asyncio.wait({job}, timeout=self.job_lease / 3)
                if done:
                    return job.result()
                if not await self.catalog.renew_hashing(binary_id, self.worker, self.job_lease):
                    log.warning("binary %s: lost the hashing lease; another process hashes it", binary_id)
                    return None
        finally:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job

    async def start(self, release_leases: bool = False) -> None:
        """Starts looking for hashing jobs. ``release_leases``: no other process runs on this
        catalog (the embedded one), so leases held by earlier processes end now."""
        if release_leases:
            await self.catalog.release_leases()
        await self.take_hashing()
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="hashing jobs")
        self._backfill = asyncio.get_running_loop().create_task(self.backfill(), name="SHA-1 and MD5 backfill")
        self._backfill.add_done_callback(_log_failure)
        self._janitor = asyncio.get_running_loop().create_task(self._sweep_every(), name="janitor")

    async def sweep(self) -> list[str]:
        """Removes uploaded bytes that no binary needs any more (its binary destroyed, published
        or unknown): what a crash between two steps leaves behind. Bytes written after the
        binary's last change belong to a new upload (a reset binary's) and stay. Returns the
        binaries swept."""
        swept = []
        for binary_id, newest in (await self.blobs.uploads_held()).items():
            try:
                binary = await self.catalog.get_binary(binary_id)
            except (NotFound, ValueError):
                state, changed = None, None
            else:
                state, changed = State(binary.state), to_time(binary.updated_at)
            # Destroyed is final; a published binary may be reset, and parts newer than that
            # change are its new upload's (stores report times to the second: a margin of two).
            older = changed is not None and newest + 2 < changed.timestamp()
            if state not in _PARTS_NEEDED and (state in (None, State.DESTROYED) or older):
                await self.blobs.discard_parts(binary_id)
                swept.append(binary_id)
        if swept:
            log.info("janitor: removed the uploaded bytes of %d binaries that no longer need them", len(swept))
        return swept

    async def _sweep_every(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("the janitor failed; it runs again later")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(min(HASHING_POLL, self.job_lease / 3))
            try:
                await self.take_hashing()
            except Exception:
                log.exception("looking for hashing jobs failed; retrying")

    async def stop(self) -> None:
        """Stops looking for jobs and cancels hashing in progress (its lease runs out, and this
        or another process takes the job again)."""
        tasks = [*self._tasks, *(t for t in (self._poller, self._janitor, self._backfill) if t)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def backfill(self) -> int:
        """Reads again, once, the binaries published before SHA-1, MD5 and Mender headers were
        kept (hawkBit's DDI agents need the SHA-1), one at a time; returns how many it filled.
        Several processes may do one binary at once: the first to finish records it."""
        done, skipped = 0, set[str]()
        while True:
            found = await self.catalog.binaries_without_legacy_hashes(16 + len(skipped))
            todo = [(b, sha) for b, sha in found if b not in skipped]
            if not todo:
                return done
            for binary_id, sha256 in todo:
                try:
                    d = await self.blobs.digest(binary_id, legacy=True)
                    facts = m.ContentFacts(sha1=d.sha1, md5=d.md5, mender=await self._mender_header(binary_id, d.size))
                    if d.sha256 == sha256 and await self.catalog.fill_content_facts(binary_id, sha256, facts):
                        done += 1
                        continue
                except (OSError, MenderFileError, Unavailable, NotFound) as e:
                    log.warning("binary %s: could not read it for its SHA-1 and MD5: %s", binary_id, e)
                skipped.add(binary_id)

    async def _explain(self, binary: m.Binary, declared_what: str) -> str:
        recorded = {p.index: p.sha256 for p in await self.catalog.list_parts(binary.id)}
        d = await self.blobs.digest(binary.id, binary.part_size)
        bad = [p.index for p in d.parts or [] if recorded.get(p.index) != p.sha256]
        if bad:
            shown = ", ".join(map(str, bad[:20])) + (" ..." if len(bad) > 20 else "")
            return f"{declared_what}; parts whose bytes differ from their upload: {shown}"
        return f"{declared_what}; every part matches its upload, so the declared digest or size is wrong"

    async def _mender_header(self, binary_id: str, size: int) -> m.MenderHeader | None:
        """The header of a Mender artifact (None for any other binary): read from its first
        bytes, the tar member that names it first."""
        if not is_mender(await self.blobs.first_bytes(binary_id, 512)):
            return None
        count = min(size, HEADER_PREFIX)
        return parse_header(await self.blobs.first_bytes(binary_id, count), whole=count == size)

    async def hash_binary(self, binary_id: str) -> None:
        binary = await self.catalog.get_binary(binary_id)
        error = None
        started = time.perf_counter()
        try:
            d = await self.blobs.digest(binary_id, keep=True, legacy=True)
        except Unavailable:
            # No verdict without the bytes: the lease runs out and the job is taken again.
            log.warning("binary %s: the store is unavailable; hashing is retried later", binary_id)
            return
        except OSError as e:
            error = f"cannot read the uploaded content: {e.strerror or e}"
        else:
            metrics.hashed(d.size, started)
            if d.size != binary.size:
                error = await self._explain(binary, f"content has {d.size} bytes, {binary.size} were declared")
            elif d.sha256 != binary.sha256:
                error = await self._explain(binary, f"content SHA-256 is {d.sha256}, {binary.sha256} was declared")
        content = None
        if error is None:
            try:
                content = m.ContentFacts(sha1=d.sha1, md5=d.md5, mender=await self._mender_header(binary_id, d.size))
            except Unavailable:
                log.warning("binary %s: the store is unavailable; hashing is retried later", binary_id)
                return
            except (OSError, MenderFileError) as e:
                error = f"a Mender artifact whose header cannot be read: {e}"
        no_fields = m.BinaryPatch()
        for attempt in range(FULL_DISK_RETRIES):
            try:
                if error is None:
                    await self.blobs.publish(binary_id)
                    target = State.SIGNABLE
                else:
                    target = State.HASHABLE
                await self.catalog.change_binary(SERVER, binary_id, no_fields, target, by_server=True, expect=State.HASHING,
                                                 error=error, content=content)  # fmt: skip
                if target is State.SIGNABLE and self.on_content is not None:
                    # Best effort: replication's own pass queues what this misses.
                    try:
                        await self.on_content(binary_id)
                    except Exception as e:
                        log.warning("binary %s: could not queue its replication now (%s); it is queued later", binary_id, e)
                return
            except Conflict:
                # Destroyed (or otherwise moved) while hashing: its own change cleaned up.
                log.info("binary %s left hashing while it was hashed", binary_id)
                return
            except Unavailable:
                # The store or the catalog is away: the lease runs out and the job is taken again.
                log.warning("binary %s: could not record its hashing result; retried later", binary_id)
                return
            except InsufficientStorage:
                # The verdict stands; only writing it down failed. It stays in hashing meanwhile.
                log.warning("binary %s: the disk is full; recording its hashing result again in %ss", binary_id, FULL_DISK_WAIT)
                if attempt + 1 < FULL_DISK_RETRIES:
                    await asyncio.sleep(FULL_DISK_WAIT)
        log.error("binary %s: gave up recording its hashing result; it is retried at the next start", binary_id)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
