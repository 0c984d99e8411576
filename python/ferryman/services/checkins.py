"""Update checks ("check-ins"): the one path by which a device's update is decided, for the
device itself (``GET /device/v1/update``) and for an operator's dry run on its behalf.

A check must be cheap: fleets check in constantly. Everything resolution needs that all
devices share (channel graphs, cohort channels, which bundles are servable, each bundle's
manifest entries) is kept as a ``FleetSnapshot`` and rebuilt when the catalog changes: at once
for this process's changes (``local_changes``), within ``GENERATION_RECHECK_SECONDS`` for
another process's (``generation``). Devices found by token are kept with the snapshot, so a
fleet's steady polling reads nothing from the catalog; only a device named by an override, or
in a channel with a count phase, costs a read. Last-seen times and ``resolve`` events are
buffered and written together at most ``FLUSH_SECONDS`` later (bookkeeping: it never
invalidates the snapshot or the answers cached on its generation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, NamedTuple

import msgspec

from ferryman.catalog import Catalog, FleetSnapshot, ServedBinary
from ferryman.catalog import models as m
from ferryman.catalog.rules import now, to_time
from ferryman.errors import Unauthenticated
from ferryman.releases import CountPhase, Decision, Device, Override, Reported, resolve

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

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._snapshot: FleetSnapshot | None = None
        self._built_at_changes = -1  # catalog.local_changes() when the snapshot was read
        self._confirmed = 0.0  # when the snapshot's generation was last confirmed current
        self._refresh = asyncio.Lock()
        self._pending: list[tuple[str, str, dict[str, Any] | None]] = []
        self._last_decision: dict[str, tuple[str | None, ...]] = {}  # last one logged, per device
        self._last_seen_written: dict[str, float] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.rebuilds = 0  # snapshots read from the catalog so far

    # The snapshot ------------------------------------------------------------------------------

    def _fresh(self) -> FleetSnapshot | None:
        snap = self._snapshot
        if snap is None or self._built_at_changes != self.catalog.local_changes():
            return None
        if time.monotonic() - self._confirmed > GENERATION_RECHECK_SECONDS:
            return None
        return snap

    async def snapshot(self) -> FleetSnapshot:
        """The current snapshot: the cached one while it is current, else confirmed or rebuilt
        (one request at a time does that; the others wait for its result)."""
        snap = self._fresh()
        if snap is not None:
            return snap
        async with self._refresh:
            snap = self._fresh()
            if snap is not None:
                return snap
            changes = self.catalog.local_changes()
            snap = self._snapshot
            if snap is None or self._built_at_changes != changes or await self.catalog.generation() != snap.generation:
                snap = await self.catalog.fleet_snapshot()
                self._snapshot, self._built_at_changes = snap, changes
                self.rebuilds += 1
            self._confirmed = time.monotonic()
            return snap

    async def _device(self, snap: FleetSnapshot, token_hash: str) -> m.Device:
        dev = snap.devices.get(token_hash)
        if dev is None:
            dev = await self.catalog.device_for_check_in(token_hash=token_hash)
            if dev is None:
                raise Unauthenticated("the device token is not valid")
            if len(snap.devices) >= DEVICE_CACHE_SIZE:
                del snap.devices[next(iter(snap.devices))]  # the oldest entry
            snap.devices[token_hash] = dev
        return dev

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
            decision = resolve(subject, reported, releases, overrides, when, snap.servable, claimed)
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
            self._record(dev.id, t, _event(decision, reported, actor))
        entries = []
        if decision.status == "update" and decision.bundle_id:
            entries = [e for e in snap.entries.get(decision.bundle_id, []) if e.target in (dev.target, "any")]
        return CheckIn(decision, dev, entries, snap.generation)

    # The buffer --------------------------------------------------------------------------------

    def _record(self, device_id: str, at: str, event: dict[str, Any]) -> None:
        """Buffers a check-in: its last-seen time always, and a ``resolve`` event in the audit log
        when the decision differs from the last one recorded for the device (a fleet polling
        every few minutes would otherwise fill the log with identical answers)."""
        key = (event["status"], event["reason"], event["release_id"], event["bundle_id"])
        changed = self._last_decision.get(device_id) != key or "by" in event
        if changed:
            self._last_decision[device_id] = key
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
        if not pending:
            return
        last_seen: dict[str, str] = {}
        clock = time.monotonic()
        for d, t, _ in pending:
            if clock - self._last_seen_written.get(d, -LAST_SEEN_RESOLUTION) >= LAST_SEEN_RESOLUTION or d in last_seen:
                last_seen[d] = t
        events = [(d, t, ev) for d, t, ev in pending if ev is not None]
        try:
            await self.catalog.record_check_ins(list(last_seen.items()), events)
        except BaseException:
            self._pending[:0] = pending  # kept for the next attempt
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
