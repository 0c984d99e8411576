"""The check-in service called directly, on its own catalog connection to the database of a
running server (which builds the fleet over HTTP), as a second process would: what it decides,
claims, records and caches. Fast enough to run once per mutant (scripts/mutants)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from apiclient import Api
from services import catalog_for
from test_server_fleet import API, Fleet

from ferryman.catalog import FleetSnapshot, ServedBinary
from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.catalog.sql import SqlCatalog
from ferryman.config import Config
from ferryman.errors import Unauthenticated
from ferryman.releases import Reported
from ferryman.services import checkins as checkins_module
from ferryman.services.checkins import CheckIns


def with_checkins(tmp_path: Path, scenario: Callable[[CheckIns], Awaitable[None]], regions=("default",)) -> None:
    async def main() -> None:
        catalog = await SqlCatalog.open(catalog_for(Config(data_dir=tmp_path / "data").catalog_path))
        checkins = CheckIns(catalog, regions)
        try:
            await scenario(checkins)
        finally:
            await checkins.close()
            await catalog.close()

    asyncio.run(main())


@pytest.fixture
def fleet(server: Api) -> Fleet:
    return Fleet(server)


@pytest.fixture
def rollout(fleet: Fleet, server: Api) -> dict[str, Any]:
    """A channel with one release of a bundle for two targets, and a cohort on it."""
    bundle = fleet.bundle("1.0.0", targets=["aarch64-linux-gnu", "x86_64-linux-gnu", "any"])
    channel = fleet.channel("stable")
    release = fleet.release(channel, "v1", bundle)
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "all", "channel_id": channel["id"]})
    return {"bundle": bundle, "channel": channel, "release": release, "cohort": cohort}


def device_token(fleet: Fleet, rollout: dict[str, Any], name: str, target: str = "aarch64-linux-gnu") -> tuple[dict, str]:
    d, _ = fleet.device(name, target, rollout["cohort"])
    return d, hash_token(d["token"])


def test_check_in_answers_with_the_entries_for_the_device_target(tmp_path: Path, fleet: Fleet, rollout):
    dev, token = device_token(fleet, rollout, "d1", "x86_64-linux-gnu")

    async def scenario(c: CheckIns) -> None:
        answer = await c.check_in(Reported(), token_hash=token)
        assert answer.decision.status == "update" and answer.decision.bundle_id == rollout["bundle"]["id"]
        assert answer.device.id == dev["id"]
        assert sorted(e.target for e in answer.entries) == ["any", "x86_64-linux-gnu"]
        assert answer.generation == (await c.snapshot()).generation
        with pytest.raises(Unauthenticated):
            await c.check_in(Reported(), token_hash=hash_token("fd_not-a-device"))
        # Up to date: no update, and no entries.
        current = Reported(release_id=rollout["release"]["id"], bundle_id=rollout["bundle"]["id"])
        latest = await c.check_in(current, token_hash=token)
        assert latest.decision.status == "no_update" and latest.entries == []

    with_checkins(tmp_path, scenario)


@pytest.fixture
def one_place(fleet: Fleet, server: Api, rollout) -> list[tuple[dict, str]]:
    """The release phased to one device (a count phase of 1), and two devices that want it."""
    server.ok("PATCH", f"{API}/releases/{rollout['release']['id']}", {"phase": {"mode": "count", "value": 1}})
    return [device_token(fleet, rollout, "d1"), device_token(fleet, rollout, "d2")]


def test_check_in_a_count_phase_filled_meanwhile_is_decided_again(tmp_path: Path, rollout, one_place):
    (first, first_token), (second, second_token) = one_place

    async def scenario(c: CheckIns) -> None:
        dry = await c.check_in(Reported(), token_hash=second_token, write=False)
        assert dry.decision.status == "update" and dry.decision.claim == rollout["release"]["id"]
        assert await c.catalog.claims_of(second["id"]) == frozenset()  # a dry run claims nothing
        # Another process takes the only place after this one read its snapshot.
        assert await c.catalog.claim(rollout["release"]["id"], first["id"], 1)
        late = await c.check_in(Reported(), token_hash=second_token)
        assert late.decision.status == "no_update"
        assert await c.catalog.claims_of(second["id"]) == frozenset()
        # The device holding the place keeps it.
        held = await c.check_in(Reported(), token_hash=first_token)
        assert held.decision.status == "update"

    with_checkins(tmp_path, scenario)


def test_check_in_a_count_phase_place_is_claimed_when_written(tmp_path: Path, rollout, one_place):
    (first, first_token), (_, second_token) = one_place

    async def scenario(c: CheckIns) -> None:
        assert (await c.check_in(Reported(), token_hash=first_token)).decision.status == "update"
        assert await c.catalog.claims_of(first["id"]) == {rollout["release"]["id"]}
        assert (await c.check_in(Reported(), token_hash=second_token)).decision.status == "no_update"

    with_checkins(tmp_path, scenario)


def test_check_in_records_last_seen_and_only_changed_decisions(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    dev, token = device_token(fleet, rollout, "d1")
    other, other_token = device_token(fleet, rollout, "d2")
    current = Reported(release_id=rollout["release"]["id"], bundle_id=rollout["bundle"]["id"])

    async def resolves(c: CheckIns, device_id: str) -> list[dict]:
        page = await c.catalog.list_events(100, None, {"resource_id": device_id, "action": "resolve"})
        return [e.after for e in page.items]

    async def scenario(c: CheckIns) -> None:
        await c.check_in(Reported(), token_hash=token, write=False)  # a dry run records nothing
        await c.flush()
        assert (await c.catalog.get_device(dev["id"])).last_seen_at is None
        assert await resolves(c, dev["id"]) == []
        await c.check_in(Reported(), token_hash=token)
        await c.check_in(Reported(), token_hash=token)  # the same answer: no second event
        await c.check_in(current, token_hash=token)  # a different one
        await c.check_in(Reported(), token_hash=other_token)
        await c.flush()
        events = await resolves(c, dev["id"])
        assert [e["status"] for e in events] == ["update", "no_update"]
        assert events[0]["release_id"] == rollout["release"]["id"] and events[0]["bundle_id"] == rollout["bundle"]["id"]
        assert events[0]["reported"] == {"release_id": None, "bundle_id": None, "version": None}
        assert "by" not in events[0]
        seen = (await c.catalog.get_device(dev["id"])).last_seen_at
        assert seen is not None and (await c.catalog.get_device(other["id"])).last_seen_at is not None
        # Within a minute of the last write, last-seen is not written again; after it, it is.
        await asyncio.sleep(0.01)
        await c.check_in(Reported(), token_hash=token)
        await c.flush()
        assert (await c.catalog.get_device(dev["id"])).last_seen_at == seen
        monkeypatch.setattr(checkins_module, "LAST_SEEN_RESOLUTION", 0.0)
        await asyncio.sleep(0.01)
        await c.check_in(Reported(), token_hash=token)
        await c.flush()
        assert (await c.catalog.get_device(dev["id"])).last_seen_at > seen
        # An operator's check on a device's behalf is always recorded, with who made it.
        device = await c.catalog.get_device(dev["id"])
        for _ in range(2):
            await c.check_in(Reported(), device=device, actor="key_ops")
        await c.flush()
        by = [e for e in await resolves(c, dev["id"]) if e.get("by") == "key_ops"]
        assert len(by) == 2

    with_checkins(tmp_path, scenario)


def test_check_in_an_offer_starts_the_device_outcome_once(tmp_path: Path, fleet: Fleet, rollout):
    d1, t1 = device_token(fleet, rollout, "d1")
    d2, t2 = device_token(fleet, rollout, "d2")
    release = rollout["release"]["id"]
    current = Reported(release_id=release, bundle_id=rollout["bundle"]["id"])

    async def scenario(c: CheckIns) -> None:
        async def offered() -> int:
            await c.flush()
            return (await c.catalog.release_stats(release)).outcomes.offered

        await c.check_in(current, token_hash=t1)  # no_update (current): no offer
        assert await offered() == 0
        await c.check_in(Reported(), token_hash=t1)
        assert await offered() == 1
        await c.check_in(Reported(), token_hash=t1)  # the same answer again
        await c.check_in(current, token_hash=t1)
        await c.check_in(Reported(), token_hash=t1)  # offered again: still one device
        assert await offered() == 1
        device = await c.catalog.get_device(d2["id"])
        await c.check_in(Reported(), token_hash=t2, write=False)  # a dry run
        await c.check_in(Reported(), device=device, actor="key_ops")  # an operator's check
        assert await offered() == 1
        await c.check_in(Reported(), token_hash=t2)
        assert await offered() == 2
        stats = await c.catalog.release_stats(release)
        assert stats.devices == 2 and stats.outcomes.installed == 0
        # Each device's first check-in was its first sighting, logged once.
        for d in (d1, d2):
            page = await c.catalog.list_events(10, None, {"resource_id": d["id"], "action": "first_seen"})
            assert len(page.items) == 1

    with_checkins(tmp_path, scenario)


def test_check_in_a_fleet_at_once_is_looked_up_in_batches(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    tokens = [device_token(fleet, rollout, f"d{i}")[1] for i in range(6)]

    async def scenario(c: CheckIns) -> None:
        batches = []
        real = c.catalog.devices_for_check_in

        async def counted(hashes):
            batches.append(len(hashes))
            return await real(hashes)

        monkeypatch.setattr(c.catalog, "devices_for_check_in", counted)
        await c.snapshot()
        answers = await asyncio.gather(*(c.check_in(Reported(), token_hash=t, write=False) for t in tokens))
        assert all(a.decision.status == "update" for a in answers)
        assert len({a.device.id for a in answers}) == 6
        assert batches == [6]  # all arrived before the read began: one read
        # Known now: a second round reads nothing.
        await asyncio.gather(*(c.check_in(Reported(), token_hash=t, write=False) for t in tokens))
        assert sum(batches) == 6
        # A full cache drops its oldest device.
        monkeypatch.setattr(checkins_module, "DEVICE_CACHE_SIZE", 6)
        extra = device_token(fleet, rollout, "d-extra")[1]
        await c.check_in(Reported(), token_hash=extra, write=False)
        cached = (await c.snapshot()).devices
        assert len(cached) == 6 and tokens[0] not in cached and extra in cached

    with_checkins(tmp_path, scenario)


def test_check_in_a_local_change_is_seen_at_once_another_process_soon(tmp_path: Path, fleet: Fleet, server: Api, rollout):
    _, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        assert (await c.check_in(Reported(), token_hash=token, write=False)).decision.status == "update"
        assert c.rebuilds == 1
        await c.check_in(Reported(), token_hash=token, write=False)
        assert c.rebuilds == 1  # nothing changed: the same snapshot
        # This process's change: the next answer is decided on a new snapshot.
        await c.catalog.patch_release("t", rollout["release"]["id"], m.ReleasePatch(disabled=True))
        assert (await c.check_in(Reported(), token_hash=token, write=False)).decision.status == "no_update"
        assert c.rebuilds == 2
        # Another process's change: noticed by the background check, within moments.
        server.ok("PATCH", f"{API}/releases/{rollout['release']['id']}", {"disabled": False})
        for _ in range(200):
            if (await c.check_in(Reported(), token_hash=token, write=False)).decision.status == "update":
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("another process's change was never seen")
        assert c.rebuilds == 3

    with_checkins(tmp_path, scenario)


def test_check_in_an_overridden_device_gets_its_override(tmp_path: Path, fleet: Fleet, server: Api, rollout):
    dev, token = device_token(fleet, rollout, "d1")
    _, other = device_token(fleet, rollout, "d2")
    pinned = fleet.bundle("0.9.0", targets=["aarch64-linux-gnu"])
    server.ok("POST", f"{API}/bundle-overrides", {"bundle_id": pinned["id"], "device_ids": [dev["id"]]})

    async def scenario(c: CheckIns) -> None:
        answer = await c.check_in(Reported(), token_hash=token, write=False)
        assert (answer.decision.source, answer.decision.bundle_id) == ("override", pinned["id"])
        assert [e.binary_id for e in answer.entries] == [e["binary_id"] for e in pinned["entries"]]
        plain = await c.check_in(Reported(), token_hash=other, write=False)
        assert (plain.decision.source, plain.decision.bundle_id) == ("release", rollout["bundle"]["id"])

    with_checkins(tmp_path, scenario)


def test_check_in_a_place_is_claimed_once(tmp_path: Path, fleet: Fleet, server: Api, rollout, monkeypatch):
    server.ok("PATCH", f"{API}/releases/{rollout['release']['id']}", {"phase": {"mode": "count", "value": 5}})
    _, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        calls = []
        real = c.catalog.claim

        async def claim(*args: Any) -> bool:
            calls.append(args)
            return await real(*args)

        monkeypatch.setattr(c.catalog, "claim", claim)
        assert (await c.check_in(Reported(), token_hash=token)).decision.status == "update"
        assert len(calls) == 1

    with_checkins(tmp_path, scenario)


def test_check_in_a_failed_lookup_fails_its_batch_only(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    tokens = [device_token(fleet, rollout, f"d{i}")[1] for i in range(4)]

    async def scenario(c: CheckIns) -> None:
        real = c.catalog.devices_for_check_in
        calls = []

        async def flaky(hashes):
            calls.append(list(hashes))
            if len(calls) == 1:
                await asyncio.sleep(0.05)  # the others arrive meanwhile: the next batch
                raise RuntimeError("the catalog hiccuped")
            return await real(hashes)

        monkeypatch.setattr(c.catalog, "devices_for_check_in", flaky)
        await c.snapshot()
        first = asyncio.ensure_future(c.check_in(Reported(), token_hash=tokens[0], write=False))
        await asyncio.sleep(0.01)  # its lookup is under way
        rest = [c.check_in(Reported(), token_hash=t, write=False) for t in tokens[1:]]
        answers = await asyncio.wait_for(asyncio.gather(*rest), 5)
        assert [a.decision.status for a in answers] == ["update"] * 3
        with pytest.raises(RuntimeError, match="hiccuped"):
            await first
        assert calls == [[tokens[0]], tokens[1:]]

    with_checkins(tmp_path, scenario)


def test_check_in_the_device_cache_stays_within_its_size(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    # A size beyond Python's small cached ints, as the real one is: counted, not identified.
    monkeypatch.setattr(checkins_module, "DEVICE_CACHE_SIZE", 300)
    dev, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        snap = await c.snapshot()
        some = await c.catalog.get_device(dev["id"])
        for i in range(300):
            snap.devices[f"filler{i}"] = some
        await c.check_in(Reported(), token_hash=token, write=False)
        assert len(snap.devices) == 300 and "filler0" not in snap.devices and token in snap.devices

    with_checkins(tmp_path, scenario)


@pytest.mark.parametrize(("records", "flushed"), [(299, False), (300, True)])
def test_check_in_a_full_buffer_is_written_at_once(tmp_path: Path, fleet: Fleet, rollout, monkeypatch, records, flushed):
    monkeypatch.setattr(checkins_module, "FLUSH_BATCH", 300)
    dev, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        for _ in range(records):
            await c.check_in(Reported(), token_hash=token)
        await asyncio.sleep(0.2)  # the flush task, if one was started, runs
        assert ((await c.catalog.get_device(dev["id"])).last_seen_at is not None) == flushed
        assert len(c._pending) == (0 if flushed else records)

    with_checkins(tmp_path, scenario)


def test_check_in_a_failed_write_keeps_every_check_in_for_the_next(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    devices = [device_token(fleet, rollout, f"d{i}") for i in range(3)]

    async def scenario(c: CheckIns) -> None:
        real = c.catalog.record_check_ins
        attempts = []

        async def failing_once(last_seen, events, offers):
            attempts.append((len(events), len(offers)))
            if len(attempts) == 1:
                for _, token in devices[1:]:  # buffered meanwhile
                    await c.check_in(Reported(), token_hash=token)
                raise RuntimeError("the disk is busy")
            return await real(last_seen, events, offers)

        monkeypatch.setattr(c.catalog, "record_check_ins", failing_once)
        await c.check_in(Reported(), token_hash=devices[0][1])
        with pytest.raises(RuntimeError):
            await c.flush()
        await c.flush()
        assert attempts == [(1, 1), (3, 3)]
        assert (await c.catalog.release_stats(rollout["release"]["id"])).outcomes.offered == 3
        for dev, _ in devices:
            assert (await c.catalog.get_device(dev["id"])).last_seen_at is not None
            events = await c.catalog.list_events(10, None, {"resource_id": dev["id"], "action": "resolve"})
            assert len(events.items) == 1

    with_checkins(tmp_path, scenario)


def test_check_in_the_generation_is_checked_at_most_every_recheck_interval(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    monkeypatch.setattr(checkins_module, "GENERATION_RECHECK_SECONDS", 0.3)
    # A clock of the module's own that starts at zero (a process started just after boot).
    start = time.monotonic()
    monkeypatch.setattr(checkins_module, "time", SimpleNamespace(monotonic=lambda: time.monotonic() - start + 0.001))
    _, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        checks = []
        real = c.catalog.generation

        async def generation() -> int:
            checks.append(1)
            return await real()

        monkeypatch.setattr(c.catalog, "generation", generation)
        for _ in range(20):
            await c.check_in(Reported(), token_hash=token, write=False)
            await asyncio.sleep(0)
        assert checks == []  # the snapshot was read moments ago
        await asyncio.sleep(0.35)
        for _ in range(20):
            await c.check_in(Reported(), token_hash=token, write=False)
            await asyncio.sleep(0)
        assert checks == [1]  # one check, in the background, then confirmed for a while

    with_checkins(tmp_path, scenario)


def test_check_in_last_seen_is_written_again_after_the_resolution(tmp_path: Path, fleet: Fleet, rollout, monkeypatch):
    dev, token = device_token(fleet, rollout, "d1")
    # A clock of the module's own, far from zero (a machine up for days).
    monkeypatch.setattr(checkins_module, "time", SimpleNamespace(monotonic=lambda: time.monotonic() + 1e6))

    async def scenario(c: CheckIns) -> None:
        for written in (checkins_module.time.monotonic() - 61, 1.0):  # 61 s ago; long, long ago
            c._last_seen_written[dev["id"]] = written
            await c.check_in(Reported(), token_hash=token)
            await c.flush()
            assert c._last_seen_written[dev["id"]] > written, written

    with_checkins(tmp_path, scenario)


def test_check_in_one_rebuild_serves_every_waiting_check_in(tmp_path: Path, fleet: Fleet, server: Api, rollout):
    _, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        await c.check_in(Reported(), token_hash=token, write=False)
        assert c.rebuilds == 1
        await c.catalog.patch_release("t", rollout["release"]["id"], m.ReleasePatch(disabled=True))
        answers = await asyncio.gather(*(c.check_in(Reported(), token_hash=token, write=False) for _ in range(10)))
        assert {a.decision.status for a in answers} == {"no_update"}
        assert c.rebuilds == 2

    with_checkins(tmp_path, scenario)


def test_a_device_downloads_from_its_own_region_else_its_cohorts(fleet: Fleet, rollout: dict[str, Any], tmp_path: Path):
    d, token = device_token(fleet, rollout, "d1")

    async def scenario(checkins: CheckIns) -> None:
        catalog = checkins.catalog
        assert (await checkins.check_in(Reported(), token_hash=token)).region is None
        await catalog.patch_cohort("t", rollout["cohort"]["id"], m.CohortPatch(region="ap"))
        assert (await checkins.check_in(Reported(), token_hash=token)).region == "ap"
        await catalog.patch_device("t", d["id"], m.DevicePatch(region="us"))
        assert (await checkins.check_in(Reported(), token_hash=token)).region == "us"
        await catalog.patch_cohort("t", rollout["cohort"]["id"], m.CohortPatch(region=None))
        assert (await checkins.check_in(Reported(), token_hash=token)).region == "us"

    with_checkins(tmp_path, scenario)


def test_a_release_is_offered_once_its_bundle_is_verified_in_every_region(fleet: Fleet, rollout: dict[str, Any], tmp_path: Path):
    _, token = device_token(fleet, rollout, "d1")
    bundle = rollout["bundle"]["id"]

    async def scenario(checkins: CheckIns) -> None:
        catalog = checkins.catalog

        async def answer() -> tuple[str, str]:
            d = (await checkins.check_in(Reported(), token_hash=token)).decision
            return d.status, d.reason

        assert await answer() == ("no_update", "bundle_not_replicated")  # no copy in ap yet
        assert not checkins.replicated(await checkins.snapshot(), bundle)
        assert await catalog.queue_replicas(["eu", "ap"]) == 6  # three binaries, two regions
        assert await catalog.queue_replicas(["eu", "ap"]) == 0
        jobs = await catalog.claim_replicas("w", 30, ["eu", "ap"], 10)
        assert sorted(j.region for j in jobs) == ["ap"] * 3 and {j.kind for j in jobs} == {"copy"}
        assert await catalog.claim_replicas("w2", 30, ["ap"], 10) == []  # leased
        for job in jobs[:-1]:
            assert await catalog.finish_replica(job, "w", "verified")
        assert await answer() == ("no_update", "bundle_not_replicated")  # one binary to go
        assert not await catalog.finish_replica(jobs[-1], "other", "verified")  # not its lease
        assert await catalog.finish_replica(jobs[-1], "w", "verified")
        assert await answer() == ("update", "release")
        assert checkins.replicated(await checkins.snapshot(), bundle)
        # A check that finds a copy corrupt takes the bundle out until it is copied again.
        assert await catalog.request_verify("t", ["ap"]) == 3
        checks = await catalog.claim_replicas("w", 30, ["ap"], 1)
        assert [j.kind for j in checks] == ["check"]
        assert await answer() == ("update", "release")  # being checked: still served
        assert await catalog.finish_replica(checks[0], "w", "corrupt", "the copy is missing")
        assert await answer() == ("no_update", "bundle_not_replicated")

    with_checkins(tmp_path, scenario, regions=("eu", "ap"))


def test_with_one_region_every_bundle_counts_as_replicated(fleet: Fleet, rollout: dict[str, Any], tmp_path: Path):
    _, token = device_token(fleet, rollout, "d1")

    async def scenario(checkins: CheckIns) -> None:
        assert checkins.replicated(await checkins.snapshot(), rollout["bundle"]["id"])
        assert (await checkins.check_in(Reported(), token_hash=token)).decision.reason == "release"

    with_checkins(tmp_path, scenario)


def _snapshot(*copies: dict[str, str]) -> FleetSnapshot:
    fields = {"artifact": "a", "version": "1", "target": "any", "size": 1, "sha256": "0" * 64, "custom_metadata": {}}
    entries = [ServedBinary(binary_id=f"bin_{i}", signatures=[], replicas=c, **fields) for i, c in enumerate(copies)]
    return FleetSnapshot(1, {}, {}, set(), {"bnd_1": entries}, set(), set())


@pytest.mark.parametrize(("regions", "copies", "want"), [
    (("eu", "ap"), [{"ap": "verified"}], True),  # the primary's row not written yet: hashing verified it
    (("eu", "ap"), [{"ap": "verified"}, {"ap": "copying"}], False),
    (("eu", "ap"), [{"eu": "pending", "ap": "verified"}], False),  # the primary's copy is broken
    (("eu", "ap"), [{"ap": "verified", "old": "verified"}], True),  # a region no longer configured
    (("eu",), [{"eu": "pending"}], True),  # one region: rows left by an earlier configuration do not count
])  # fmt: skip
def test_replicated_means_verified_in_every_configured_region(regions, copies, want):
    checkins = CheckIns(None, regions)  # type: ignore[arg-type]
    snap = _snapshot(*copies)
    assert checkins.replicated(snap, "bnd_1") is want
    assert checkins.replicated(snap, "bnd_1") is want  # kept for the snapshot
