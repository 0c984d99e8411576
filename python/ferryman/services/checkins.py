"""Update checks ("check-ins"): the one path by which a device's update is decided, for the
device itself (``GET /device/v1/update``) and for an operator's dry run on its behalf.

A check must be cheap: fleets check in constantly. Everything resolution needs that all
devices share (channel graphs, cohort channels, which bundles are servable, each bundle's
manifest entries) is kept as a ``FleetSnapshot`` and rebuilt when the catalog changes: at once
for this process's changes (``local_changes``), about ``GENERATION_RECHECK_SECONDS`` after
another process's (``generation``, checked in the background). Devices found by token are kept with the snapshot, so a
fleet's steady polling reads nothing from the catalog; only a device named by an override, or
in a channel with a count phase, costs a read. Last-seen times and ``resolve`` events are
buffered and written together at most ``FLUSH_SECONDS`` later (bookkeeping: it never
invalidates the snapshot or the answers cached on its generation). Devices not in the cache
yet (after a restart, or a change that dropped the snapshot) are looked up together: the
lookups that arrive while one batch is read form the next, so a fleet checking in at once costs
a few reads, not one per device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import msgspec

from ferryman.catalog import Catalog, FleetSnapshot, ServedBinary
from ferryman.catalog import models as m
from ferryman.catalog.rules import now, to_time
from ferryman.errors import Unauthenticated
from ferryman.releases import CountPhase, Decision, Device, Override, Reported, resolve
from ferryman.replication import verified_regions

__all__ = ["CheckIn", "CheckIns"]

log = logging.getLogger("ferryman.checkins")
FLUSH_SECONDS = 1.0
FLUSH_BATCH = 1000
GENERATION_RECHECK_SECONDS = 0.05
LAST_SEEN_RESOLUTION = 60.0
DEVICE_CACHE_SIZE = 100_000  # devices kept with the snapshot, about 40 MB


class CheckIn(NamedTuple):
    """The answer to one update check."""

    decision: Decision
    device: m.Device
    entries: list[ServedBinary]  # the manifest: the bundle's entries for the device's target
    generation: int  # of the snapshot it was resolved against: equal generations, equal catalogs
    region: str | None = None  # where the device downloads from: its own region, else its cohort's


def _event(decision: Decision, reported: Reported, actor: str) -> dict[str, Any]:
    return {
        "status": decision.status,
        "reason": decision.reason,
        "source": decision.source,
        "release_id": decision.release.id if decision.release else None,
        "bundle_id": decision.bundle_id,
        "reported": msgspec.to_builtins(reported),
        **({"by": actor} if actor else {}),
    }


class CheckIns:
    """See the module doc. ``start`` runs the flush timer; ``close`` flushes what is left."""

    def __init__(self, catalog: Catalog, regions: Sequence[str] = ("default",)) -> None:
        self.catalog = catalog
        self.regions = tuple(regions)  # primary first
        self._replicated: tuple[FleetSnapshot | None, dict[str, bool]] = (None, {})
        self._snapshot: FleetSnapshot | None = None
        self._built_at_changes = -1  # catalog.local_changes() when the snapshot was read
        self._confirmed = 0.0  # when the snapshot's generation was last confirmed current
        self._confirming: asyncio.Task[None] | None = None
        self._refresh = asyncio.Lock()
        self._pending: list[tuple[str, str, dict[str, Any] | None]] = []
        self._offers: list[tuple[str, str, str | None, str]] = []  # (device, release, cohort, at)
        self._offered: dict[str, str] = {}  # the release last offered, per device
        self._last_decision: dict[str, tuple[str | None, ...]] = {}  # last one logged, per device
        self._last_seen_written: dict[str, float] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.rebuilds = 0  # snapshots read from the catalog so far
        self._wanted: dict[str, asyncio.Future[m.Device | None]] = {}  # token hash → its lookup
        self._looking_up: asyncio.Task[None] | None = None

    # The snapshot ------------------------------------------------------------------------------

    async def snapshot(self) -> FleetSnapshot:
        """The current snapshot. After a change of this process's, it is rebuilt before any
        answer is given (one request at a time does that; the others wait for its result).
        Another process's change is noticed by a check of the catalog's generation at most every
        GENERATION_RECHECK_SECONDS, made in the background: answers meanwhile come from the
        snapshot in hand, so no check-in waits on it."""
        snap = self._snapshot
        if snap is not None and self._built_at_changes == self.catalog.local_changes():
            if time.monotonic() - self._confirmed > GENERATION_RECHECK_SECONDS and self._confirming is None:
                self._confirming = asyncio.get_running_loop().create_task(self._confirm(snap))
            return snap
        async with self._refresh:
            snap = self._snapshot
            if snap is None or self._built_at_changes != self.catalog.local_changes():
                snap = await self._rebuild()
            return snap

    async def _rebuild(self) -> FleetSnapshot:
        changes = self.catalog.local_changes()
        snap = await self.catalog.fleet_snapshot()
        self._snapshot, self._built_at_changes, self._confirmed = snap, changes, time.monotonic()
        self.rebuilds += 1
        return snap

    async def _confirm(self, snap: FleetSnapshot) -> None:
        try:
            if await self.catalog.generation() != snap.generation:
                async with self._refresh:
                    if self._snapshot is snap:
                        await self._rebuild()
            else:
                self._confirmed = time.monotonic()
        except Exception:
            log.exception("checking the catalog's generation failed; retrying")
            self._confirmed = time.monotonic()
        finally:
            self._confirming = None

    async def device(self, token_hash: str) -> m.Device:
        """The device with this token (from the snapshot's cache when it is there); raises
        Unauthenticated."""
        return await self._device(await self.snapshot(), token_hash)

    async def _device(self, snap: FleetSnapshot, token_hash: str) -> m.Device:
        dev = snap.devices.get(token_hash)
        if dev is not None:
            return dev
        wanted = self._wanted.get(token_hash)
        if wanted is None:
            wanted = self._wanted[token_hash] = asyncio.get_running_loop().create_future()
            if self._looking_up is None:
                self._looking_up = asyncio.get_running_loop().create_task(self._look_up())
        dev = await asyncio.shield(wanted)
        if dev is None:
            raise Unauthenticated("the device token is not valid")
        if len(snap.devices) >= DEVICE_CACHE_SIZE:
            del snap.devices[next(iter(snap.devices))]  # the oldest entry
        snap.devices[token_hash] = dev
        return dev

    async def _look_up(self) -> None:
        """Reads the wanted devices in batches until none is wanted (see the module doc)."""
        try:
            while self._wanted:
                batch, self._wanted = self._wanted, {}
                try:
                    found = await self.catalog.devices_for_check_in(list(batch))
                except Exception as e:
                    for wanted in batch.values():
                        wanted.set_exception(e)
                    continue
                for token_hash, wanted in batch.items():
                    wanted.set_result(found.get(token_hash))
        finally:
            self._looking_up = None

    # The check ---------------------------------------------------------------------------------

    async def check_in(
        self,
        reported: Reported,
        *,
        token_hash: str | None = None,
        device: m.Device | None = None,
        actor: str = "",
        write: bool = True,
    ) -> CheckIn:
        """Decides one device's update: the device named by its token hash (a device's own
        check), or given (an operator's, as ``actor``). With ``write``, claims a count phase
        atomically and records the check-in (buffered); without, it is a dry run."""
        snap = await self.snapshot()
        dev = device if device is not None else await self._device(snap, token_hash or "")
        t = now()
        when = to_time(t)
        assert when is not None
        channel = snap.cohort_channel.get(dev.cohort_id) if dev.cohort_id else None
        releases = snap.graphs.get(channel, {}) if channel else None
        overrides: list[Override] = await self.catalog.overrides_of(dev.id, t) if dev.id in snap.overridden else []
        claimed = await self.catalog.claims_of(dev.id) if channel in snap.counted else frozenset()
        subject = Device(dev.id, dev.target, frozenset(dev.tags), dev.quarantined)
        for _ in range(64):
            decision = resolve(subject, reported, releases, overrides, when, snap.servable, claimed,
                               lambda bundle_id: self.replicated(snap, bundle_id))  # fmt: skip
            if not (write and decision.claim) or releases is None:
                break
            rel = releases[decision.claim]
            assert isinstance(rel.phase, CountPhase)
            if await self.catalog.claim(rel.id, dev.id, rel.phase.value):
                break
            # Filled up meanwhile: decide again with the phase full.
            full = CountPhase(rel.phase.value, rel.phase.value)
            releases = {**releases, rel.id: replace(rel, phase=full)}
        if write:
            self._record(dev.id, t, _event(decision, reported, actor), dev.cohort_id)
        entries = []
        if decision.status == "update" and decision.bundle_id:
            entries = [e for e in snap.entries.get(decision.bundle_id, []) if e.target in (dev.target, "any")]
        region = dev.region or (snap.cohort_region.get(dev.cohort_id) if dev.cohort_id else None)
        return CheckIn(decision, dev, entries, snap.generation, region)

    def replicated(self, snap: FleetSnapshot, bundle_id: str) -> bool:
        """Whether every binary of a bundle has a verified copy in every region (kept per
        snapshot: copies becoming verified change the generation)."""
        if len(self.regions) == 1:
            return True
        held, known = self._replicated
        if held is not snap:
            known = {}
            self._replicated = (snap, known)
        if bundle_id not in known:
            everywhere = frozenset(self.regions)
            known[bundle_id] = all(
                verified_regions(e.replicas, self.regions[0]) >= everywhere for e in snap.entries.get(bundle_id, [])
            )
        return known[bundle_id]

    # The buffer --------------------------------------------------------------------------------

    def _record(self, device_id: str, at: str, event: dict[str, Any], cohort_id: str | None) -> None:
        """Buffers a check-in: its last-seen time always, and a ``resolve`` event in the audit log
        when the decision differs from the last one recorded for the device (a fleet polling
        every few minutes would otherwise fill the log with identical answers). A device's own
        check that offers it a release it was not offered last is an offer (its rollout outcome
        starts there; the catalog keeps the first)."""
        key = (event["status"], event["reason"], event["release_id"], event["bundle_id"])
        changed = self._last_decision.get(device_id) != key or "by" in event
        if changed:
            self._last_decision[device_id] = key
        # An update from a release (an override's names none).
        offer = event["status"] == "update" and event["release_id"] is not None and "by" not in event
        if offer and self._offered.get(device_id) != event["release_id"]:
            self._offered[device_id] = event["release_id"]
            self._offers.append((device_id, event["release_id"], cohort_id, at))
        self._pending.append((device_id, at, event if changed else None))
        if len(self._pending) >= FLUSH_BATCH and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await self.flush()
        except Exception:
            log.exception("writing check-ins failed; retrying at the next flush")
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Writes buffered check-ins now. last_seen_at is kept to the minute: one write per
        device per LAST_SEEN_RESOLUTION."""
        pending, self._pending = self._pending, []
        offers, self._offers = self._offers, []
        if not pending:
            return
        last_seen: dict[str, str] = {}
        clock = time.monotonic()
        for d, t, _ in pending:
            written = self._last_seen_written.get(d)
            if written is None or clock - written >= LAST_SEEN_RESOLUTION or d in last_seen:
                last_seen[d] = t
        events = [(d, t, ev) for d, t, ev in pending if ev is not None]
        try:
            await self.catalog.record_check_ins(list(last_seen.items()), events, offers)
        except BaseException:
            self._pending[:0] = pending  # kept for the next attempt
            self._offers[:0] = offers
            raise
        for d in last_seen:
            self._last_seen_written[d] = clock

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("writing check-ins failed; retrying")

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self._flush_every(), name="flush check-ins")

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.flush()
