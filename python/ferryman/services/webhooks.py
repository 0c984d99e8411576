"""Webhook deliveries: the outbox's rows (``catalog/sql/webhooks.py``) sent to their receivers.

Every process looks for due deliveries every ``POLL`` seconds, and at once after a commit of its
own that queued some. It holds at most ``concurrency`` in flight, and at most ``per_webhook``
for any one webhook, so a slow or hanging receiver (each attempt ends after ``timeout``) holds
only its own slots and never delays another's deliveries. Deliveries are taken in batches of
up to ``per_webhook`` beyond those in flight, so a fast receiver costs one claim per batch. An attempt that gets no 2xx answer is
retried after an exponential backoff with jitter (``ferryman.webhooks.retry_delay``) until
``max_attempts``; then it is ``failed`` (an operator can redeliver it). Results are written in
groups, as they come.

Unless the operator allows private targets, a delivery connects only to public addresses: a
name is resolved and refused if any address it has is not public (a name cannot be pointed at
an internal service after the check), an address is checked as written. Redirects are not
followed and no proxy settings are read from the environment.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import errno
import logging
import random
import secrets
import socket
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from ferryman import __version__, metrics, webhooks
from ferryman.catalog import Catalog, DeliveryJob, DeliveryOutcome
from ferryman.catalog import models as m
from ferryman.catalog.rules import later, now
from ferryman.errors import Invalid
from ferryman.ids import new_id

__all__ = ["Webhooks"]

log = logging.getLogger("ferryman.webhooks")
POLL = 1.0  # how often each process looks for deliveries other processes queued
USER_AGENT = f"ferryman-webhooks/{__version__}"


class _PublicOnly(AbstractResolver):
    """Resolves names and refuses any that has a non-public address."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        for r in found:
            if not webhooks.address_allowed(r["host"]):
                # With an errno, so that aiohttp's connection error keeps the message.
                raise OSError(
                    errno.EACCES, f"{host} resolves to the non-public address {r['host']} (see --webhook-allow-private)"
                )
        return found

    async def close(self) -> None:
        await self._resolver.close()


class Webhooks:
    """See the module doc. ``start`` begins delivering; ``stop`` ends it (deliveries in flight
    keep their leases, which run out, and are sent again by whichever process takes them)."""

    def __init__(self, catalog: Catalog, *, allow_private: bool = False, timeout: float = 10.0, max_attempts: int = 10,
                 retry_base: float = webhooks.RETRY_BASE, retry_max: float = webhooks.RETRY_MAX, concurrency: int = 64,
                 per_webhook: int = 8, lease: float = 30.0) -> None:  # fmt: skip
        self.catalog = catalog
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.concurrency = concurrency
        self.per_webhook = per_webhook
        # Deliveries are taken in batches, up to ``per_webhook`` more than are in flight (a
        # fast receiver is not held up by a claim per delivery); a taken delivery waits at most
        # one attempt of another before its own, so the lease outlives two and the write.
        self.lease = 2 * timeout + lease
        self.worker = new_id("upload")  # a fresh lease holder's name per start
        self._busy: dict[str, int] = {}  # webhook → deliveries in flight here
        self._queued: dict[str, collections.deque[DeliveryJob]] = {}  # webhook → taken, not yet sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[DeliveryOutcome] = []
        self._writing: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._next_retry = float("inf")  # when the soonest retry of this process's is due (monotonic)
        self._poller: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # Webhooks (the operator's side) -------------------------------------------------------------

    def _check(self, url: str) -> None:
        try:
            webhooks.check_url(url, self.allow_private)
        except ValueError as e:
            raise Invalid(f"webhook URL {e}", {"url": [str(e)]}) from None

    async def create(self, actor: str, body: m.WebhookCreate) -> m.Webhook:
        """Registers a webhook with a fresh secret (in the answer only)."""
        self._check(body.url)
        secret = webhooks.SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
        return await self.catalog.create_webhook(actor, body, secret)

    async def patch(self, actor: str, webhook_id: str, body: m.WebhookPatch) -> m.Webhook:
        if isinstance(body.url, str):
            self._check(body.url)
        return await self.catalog.patch_webhook(actor, webhook_id, body)

    # Delivering ---------------------------------------------------------------------------------

    def start(self) -> None:
        resolver = None if self.allow_private else _PublicOnly()
        connector = aiohttp.TCPConnector(limit=self.concurrency, resolver=resolver)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout),
                                              headers={"User-Agent": USER_AGENT})  # fmt: skip
        self.catalog.on_webhook_queued(self._wake.set)
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="webhook deliveries")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _held(self, webhook_id: str) -> int:
        return self._busy.get(webhook_id, 0) + len(self._queued.get(webhook_id, ()))

    async def _poll(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake meanwhile means look again
            held = {w: self._held(w) for w in {*self._busy, *self._queued}}
            room = 2 * self.concurrency - sum(held.values())
            jobs: list[DeliveryJob] = []
            if room > 0:
                try:
                    jobs = await self.catalog.claim_deliveries(self.worker, self.lease, held, 2 * self.per_webhook, room)
                except Exception:
                    log.exception("taking webhook deliveries failed; retrying")
            for job in jobs:
                self._queued.setdefault(job.webhook_id, collections.deque()).append(job)
            self._pump()
            if jobs and len(jobs) == room:
                continue  # perhaps more are due
            # Until a wake, the next poll, or the soonest retry this process scheduled (once
            # looked for after it was due, it is forgotten).
            clock = time.monotonic()
            if self._next_retry <= clock:
                self._next_retry = float("inf")
            wait = max(0.0, min(POLL, self._next_retry + 0.005 - clock))
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a cancel that
            # comes as the wake does, and stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _pump(self) -> None:
        """Starts taken deliveries while their webhook and this process have room."""
        for webhook_id in list(self._queued):
            queue = self._queued[webhook_id]
            while queue and self._busy.get(webhook_id, 0) < self.per_webhook and len(self._tasks) < self.concurrency:
                job = queue.popleft()
                self._busy[webhook_id] = self._busy.get(webhook_id, 0) + 1
                task = asyncio.get_running_loop().create_task(self._deliver(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if not queue:
                del self._queued[webhook_id]

    async def _deliver(self, job: DeliveryJob) -> None:
        at, started = now(), time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            status = await self._send(job)
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = f"no answer within {self.timeout:g}s"
        except (aiohttp.ClientError, OSError, ValueError) as e:
            error = str(e) or type(e).__name__
        finally:
            self._busy[job.webhook_id] -= 1
            if not self._busy[job.webhook_id]:
                del self._busy[job.webhook_id]
            self._tasks.discard(asyncio.current_task())  # the slot is free for _pump now
            self._pump()
            if self._held(job.webhook_id) <= self.per_webhook:
                self._wake.set()  # room for a batch: take more
        seconds = time.perf_counter() - started
        delivered = error is None
        attempts = job.attempts + 1
        retry_at = None
        if not delivered and attempts < self.max_attempts:
            retry_in = webhooks.retry_delay(attempts, random.random(), self.retry_base, self.retry_max)
            retry_at = later(retry_in)
            self._next_retry = min(self._next_retry, time.monotonic() + retry_in)
            self._wake.set()  # the wait ahead is shortened to the retry
        if metrics.enabled:
            metrics.DELIVERIES.labels("delivered" if delivered else ("retry" if retry_at is not None else "failed")).inc()
            metrics.DELIVERY_SECONDS.observe(seconds)
        if not delivered:
            log.info("webhook %s delivery %s failed (attempt %d): %s", job.webhook_id, job.id, attempts, error)
        self._results.append(DeliveryOutcome(job.id, at, delivered, status, error, seconds, retry_at))
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write())

    async def _send(self, job: DeliveryJob) -> int:
        url = URL(job.url)
        if not self.allow_private and url.host is not None:
            try:
                allowed = webhooks.address_allowed(url.host)
            except ValueError:
                allowed = True  # a name: the resolver checks what it resolves to
            if not allowed:
                raise ValueError(f"refusing the non-public address {url.host} (see --webhook-allow-private)")
        timestamp = int(time.time())
        headers: dict[str, Any] = {
            "Content-Type": "application/json",
            "webhook-id": job.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": webhooks.sign(job.secret, job.id, timestamp, job.body),
        }
        assert self._session is not None
        async with self._session.post(url, data=job.body, headers=headers, allow_redirects=False) as resp:
            await resp.content.read(65536)  # the answer's body is not kept; reading some lets the connection be reused
            return resp.status

    async def _write(self) -> None:
        try:
            while self._results:
                group, self._results = self._results, []
                try:
                    await self.catalog.finish_deliveries(self.worker, group)
                except Exception:
                    # The leases run out and the deliveries are sent again: at least once.
                    log.exception("recording %d webhook delivery results failed", len(group))
        finally:
            self._writing = None
