"""The domain services called directly, over a real SQLite catalog and blob directory (no HTTP):
what uploads decide about parts, completion and hashing, and what check-ins decide and record.
Fast enough to run once per mutant (scripts/mutants)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from apiclient import Api
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_server_fleet import API, Fleet

from ferryman.blobs.fs import FsBlobStore
from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.catalog.sqlite import SqliteCatalog
from ferryman.config import Config
from ferryman.errors import Conflict, InsufficientStorage, Invalid, NotFound, TooLarge, Unauthenticated
from ferryman.parsing import parse_rfc3339
from ferryman.releases import Reported
from ferryman.services import checkins as checkins_module
from ferryman.services import signatures as signatures_module
from ferryman.services import uploads as uploads_module
from ferryman.services.checkins import CheckIns
from ferryman.services.signatures import Signatures
from ferryman.services.uploads import Uploads, part_length
from ferryman.signing import load_public_key

MIB = 1 << 20
PART = 5 * MIB


def run(tmp_path: Path, scenario: Callable[[Uploads], Awaitable[None]]) -> None:
    async def main() -> None:
        catalog = await SqliteCatalog.open(tmp_path / "catalog.db")
        uploads = Uploads(catalog, FsBlobStore(tmp_path / "blobs"), lease=30.0)
        try:
            await scenario(uploads)
        finally:
            await uploads.stop()
            await catalog.close()

    asyncio.run(main())


async def new_binary(u: Uploads, data: bytes, *, part_size: int = PART, sha256: str | None = None) -> m.Binary:
    c = u.catalog
    artifact = await c.create_artifact("t", m.ArtifactCreate(name=f"a{os.urandom(4).hex()}"))
    version = await c.create_version("t", artifact.id, m.VersionCreate(version="1.0.0"))
    body = m.BinaryCreate(target="aarch64-linux-gnu", size=len(data), sha256=sha256 or hashlib.sha256(data).hexdigest(),
                          part_size=part_size)  # fmt: skip
    return await c.create_binary("t", version.id, body)


async def chunks(data: bytes, step: int = 1 * MIB) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def send(u: Uploads, b: m.Binary, data: bytes, index: int, **kw: object) -> m.Part:
    piece = data[(index - 1) * b.part_size : index * b.part_size]
    length = kw.pop("length", len(piece))
    body = kw.pop("body", piece)
    return await u.receive_part("t", b.id, index, length, chunks(body), **kw)  # type: ignore[arg-type]


async def hashed(u: Uploads, binary_id: str) -> m.Binary:
    """The binary once its hashing job is over."""
    await asyncio.gather(*u._tasks)
    return await u.catalog.get_binary(binary_id)


async def uploaded(u: Uploads, data: bytes) -> m.Binary:
    """A one-part binary of ``data``, uploaded in one request and hashed."""
    b = await new_binary(u, data)
    await u.receive_content("t", b.id, len(data), chunks(data))
    return await hashed(u, b.id)


async def published(u: Uploads, binary_id: str) -> int | None:
    """The size of the binary's published content; None if there is none."""
    try:
        content = await u.blobs.open(binary_id)
    except NotFound:
        return None
    content.close()
    return content.size


def binary_of(size: int, part_size: int = PART) -> m.Binary:
    count = max(1, -(-size // part_size))
    return m.Binary(id="binary_x", version_id="v", artifact_id="a", target="t", size=size, sha256="0" * 64,
                    part_size=part_size, part_count=count, state="uploadable", error=None, description=None,
                    custom_metadata={}, created_at="", updated_at="")  # fmt: skip


# Uploads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "index", "length"),
    [
        (11 * MIB, 1, PART),
        (11 * MIB, 2, PART),
        (11 * MIB, 3, MIB),  # the last part holds the rest
        (10 * MIB, 2, PART),  # a size that divides evenly: the last part is whole
        (PART + 1, 2, 1),
        (3, 1, 3),  # one part smaller than a part size
        (0, 1, 0),  # an empty binary has one empty part
    ],
)
def test_uploads_part_length(size: int, index: int, length: int):
    assert part_length(binary_of(size), index) == length


@pytest.mark.parametrize(("size", "index"), [(11 * MIB, 0), (11 * MIB, 4), (11 * MIB, -1), (PART, 2)])
def test_uploads_part_length_refuses_a_part_the_binary_does_not_have(size: int, index: int):
    with pytest.raises(Invalid) as e:
        part_length(binary_of(size), index)
    count = binary_of(size).part_count
    assert str(e.value.detail) == f"part index must be 1 to {count}" and e.value.errors == {"index": [f"1..{count}"]}


def test_uploads_parts_complete_and_hash_to_signable(tmp_path: Path):
    data = os.urandom(11 * MIB)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        assert b.part_count == 3
        for index in (3, 1):  # any order
            part = await send(u, b, data, index, declared=hashlib.sha256(data[(index - 1) * PART : index * PART]).hexdigest())
            assert (part.index, part.size) == (index, len(data[(index - 1) * PART : index * PART]))
            assert part.sha256 == hashlib.sha256(data[(index - 1) * PART : index * PART]).hexdigest()
        progress = await u.progress(b.id)
        assert [p.index for p in progress.parts] == [1, 3] and progress.missing == [2]
        assert (progress.binary_id, progress.state, progress.part_size, progress.part_count) == (b.id, "uploadable", PART, 3)
        await send(u, b, data, 2)
        assert (await u.progress(b.id)).missing == []
        changed = await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        assert changed.state == "hashing"
        done = await hashed(u, b.id)
        assert (done.state, done.error) == ("signable", None)
        assert await published(u, b.id) == len(data)

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("length", "body", "error", "detail"),
    [
        (PART + 1, None, TooLarge, "part 1 has 5242880 bytes; 5242881 were sent"),
        (PART - 1, None, Invalid, "part 1 has 5242880 bytes; 5242879 were sent"),
        (PART, b"x" * (PART - 10), Invalid, "part 1 has 5242880 bytes; 5242870 arrived"),
    ],
)
def test_uploads_a_part_of_the_wrong_size_is_refused_and_not_recorded(tmp_path: Path, length, body, error, detail):
    data = os.urandom(11 * MIB)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        kw = {"length": length} if body is None else {"length": length, "body": body}
        with pytest.raises(error) as e:
            await send(u, b, data, 1, **kw)
        assert e.value.detail == detail
        assert (await u.progress(b.id)).missing == [1, 2, 3]
        # The refused part's lease has ended: with every part in, hashing may start.
        for index in (1, 2, 3):
            await send(u, b, data, index)
        assert (await u.change("t", b.id, m.BinaryPatch(state="hashable"))).state == "hashing"
        assert (await hashed(u, b.id)).state == "signable"

    run(tmp_path, scenario)


def test_uploads_a_part_whose_digest_differs_from_the_declared_one_is_refused(tmp_path: Path):
    data = os.urandom(11 * MIB)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        with pytest.raises(Invalid) as e:
            await send(u, b, data, 2, declared="0" * 64)
        assert e.value.errors == {"content-digest": ["does not match the body"]}
        assert f"Content-Digest said {'0' * 64}" in e.value.detail
        assert (await u.progress(b.id)).missing == [1, 2, 3]

    run(tmp_path, scenario)


def test_uploads_content_in_one_request_only_for_a_one_part_binary(tmp_path: Path):
    small, large = os.urandom(1000), os.urandom(PART + 1)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, small)
        done = await u.receive_content("t", b.id, len(small), chunks(small))
        assert done.state == "hashing"
        assert (await hashed(u, b.id)).state == "signable"
        two = await new_binary(u, large)
        with pytest.raises(Conflict) as e:
            await u.receive_content("t", two.id, len(large), chunks(large))
        assert e.value.extra == {"part_count": 2}
        assert (await u.progress(two.id)).missing == [1, 2]

    run(tmp_path, scenario)


def test_uploads_reset_and_destroy_remove_the_bytes(tmp_path: Path):
    data = os.urandom(1000)

    async def scenario(u: Uploads) -> None:
        b = await uploaded(u, data)
        assert await published(u, b.id) == len(data)
        reset = await u.change("t", b.id, m.BinaryPatch(state="uploadable"))
        assert reset.state == "uploadable"
        assert await published(u, b.id) is None
        assert not (u.blobs.root / "uploads" / b.id).exists()  # type: ignore[attr-defined]
        await u.receive_content("t", b.id, len(data), chunks(data))
        await hashed(u, b.id)
        await u.change("t", b.id, m.BinaryPatch(state="destroyed"))
        assert await published(u, b.id) is None
        # A change of fields alone touches no bytes.
        other = await uploaded(u, data)
        described = await u.change("t", other.id, m.BinaryPatch(description="kept"))
        assert (described.state, described.description) == ("signable", "kept")
        assert await published(u, other.id) == len(data)

    run(tmp_path, scenario)


def test_uploads_hashing_names_the_parts_whose_bytes_changed(tmp_path: Path):
    data = os.urandom(11 * MIB)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        for index in (1, 2, 3):
            await send(u, b, data, index)
        # Part 2's bytes change on disk after its upload was recorded.
        with open(u.blobs.root / "uploads" / b.id, "r+b") as f:  # type: ignore[attr-defined]
            f.seek(PART + 7)
            f.write(b"\x00" if data[PART + 7] else b"\x01")
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        done = await hashed(u, b.id)
        assert done.state == "hashable"
        got = hashlib.sha256(data[: PART + 7] + (b"\x00" if data[PART + 7] else b"\x01") + data[PART + 8 :]).hexdigest()
        assert done.error == (f"content SHA-256 is {got}, {b.sha256} was declared; parts whose bytes differ from their upload: 2")

    run(tmp_path, scenario)


def test_uploads_hashing_blames_the_declaration_when_every_part_matches(tmp_path: Path):
    data = os.urandom(PART + 10)

    async def scenario(u: Uploads) -> None:
        wrong = await new_binary(u, data, sha256="ab" * 32)
        for index in (1, 2):
            await send(u, wrong, data, index)
        await u.change("t", wrong.id, m.BinaryPatch(state="hashable"))
        done = await hashed(u, wrong.id)
        assert done.state == "hashable"
        assert done.error == (
            f"content SHA-256 is {hashlib.sha256(data).hexdigest()}, {'ab' * 32} was declared; "
            "every part matches its upload, so the declared digest or size is wrong"
        )
        assert await published(u, wrong.id) is None

    run(tmp_path, scenario)


def test_uploads_hashing_reports_a_size_that_differs(tmp_path: Path):
    data = os.urandom(PART + 10)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        for index in (1, 2):
            await send(u, b, data, index)
        with open(u.blobs.root / "uploads" / b.id, "ab") as f:  # type: ignore[attr-defined]
            f.write(b"tail")  # bytes past the declared size, in the last part
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        done = await hashed(u, b.id)
        assert done.state == "hashable"
        assert (
            done.error
            == f"content has {PART + 14} bytes, {PART + 10} were declared; parts whose bytes differ from their upload: 2"
        )

    run(tmp_path, scenario)


def test_uploads_hashing_lists_at_most_twenty_bad_parts(tmp_path: Path):
    # Parts far below the API's minimum (built directly, not decoded, so it is not checked):
    # the rule does not depend on their size, and 21 parts of 5 MiB would take seconds.
    small = 64 << 10

    async def scenario(u: Uploads) -> None:
        for count, shown in ((20, ", ".join(map(str, range(1, 21)))), (21, ", ".join(map(str, range(1, 21))) + " ...")):
            data = os.urandom(count * small)
            b = await new_binary(u, data, part_size=small)
            for index in range(1, count + 1):
                await send(u, b, data, index)
            with open(u.blobs.root / "uploads" / b.id, "r+b") as f:  # type: ignore[attr-defined]
                f.write(bytes(len(data)))  # every part's bytes changed
            await u.change("t", b.id, m.BinaryPatch(state="hashable"))
            done = await hashed(u, b.id)
            assert done.error is not None and done.error.endswith(f"parts whose bytes differ from their upload: {shown}")

    run(tmp_path, scenario)


def test_uploads_hashing_a_missing_upload_is_an_error_not_a_crash(tmp_path: Path):
    data = os.urandom(1000)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        await send(u, b, data, 1)
        os.unlink(u.blobs.root / "uploads" / b.id)  # type: ignore[attr-defined]
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        done = await hashed(u, b.id)
        assert done.state == "hashable"
        assert done.error is not None and done.error.startswith("cannot read the uploaded content: ")

    run(tmp_path, scenario)


# Check-ins ------------------------------------------------------------------------------------
# The fleet is built over HTTP (a running server); the service under test runs here, on its own
# catalog connection to the same database, as a second process would.


def with_checkins(tmp_path: Path, scenario: Callable[[CheckIns], Awaitable[None]]) -> None:
    async def main() -> None:
        catalog = await SqliteCatalog.open(Config(data_dir=tmp_path / "data").catalog_path)
        checkins = CheckIns(catalog)
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


def test_check_in_a_count_phase_filled_meanwhile_is_decided_again(tmp_path: Path, fleet: Fleet, server: Api, rollout):
    server.ok("PATCH", f"{API}/releases/{rollout['release']['id']}", {"phase": {"mode": "count", "value": 1}})
    first, first_token = device_token(fleet, rollout, "d1")
    second, second_token = device_token(fleet, rollout, "d2")

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


def test_check_in_a_count_phase_place_is_claimed_when_written(tmp_path: Path, fleet: Fleet, server: Api, rollout):
    server.ok("PATCH", f"{API}/releases/{rollout['release']['id']}", {"phase": {"mode": "count", "value": 1}})
    first, first_token = device_token(fleet, rollout, "d1")
    _, second_token = device_token(fleet, rollout, "d2")

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


# Signatures -----------------------------------------------------------------------------------

CERT = json.loads((Path(__file__).parent / "vectors" / "rsa.json").read_text())["certificate"]


def with_signatures(tmp_path: Path, scenario: Callable[[Signatures, Uploads], Awaitable[None]]) -> None:
    async def main() -> None:
        catalog = await SqliteCatalog.open(tmp_path / "catalog.db")
        uploads = Uploads(catalog, FsBlobStore(tmp_path / "blobs"), lease=30.0)
        try:
            await scenario(Signatures(catalog), uploads)
        finally:
            await uploads.stop()
            await catalog.close()

    asyncio.run(main())


async def signable(u: Uploads) -> m.Binary:
    return await uploaded(u, os.urandom(1000))


def ed25519_pem(sk: ed25519.Ed25519PrivateKey) -> str:
    return sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_signing_keys_are_parsed_and_checked_when_registered(tmp_path: Path):
    async def scenario(s: Signatures, u: Uploads) -> None:
        with pytest.raises(Invalid) as e:
            await s.register_key("t", m.SigningKeyCreate(name="bad", public_key="not a key"))
        assert list(e.value.errors) == ["public_key"]
        sk = ed25519.Ed25519PrivateKey.generate()
        with pytest.raises(Invalid) as e:
            await s.register_key("t", m.SigningKeyCreate(name="k", public_key=ed25519_pem(sk), algorithm="rsa-pss-sha256"))
        assert e.value.detail == "algorithm rsa-pss-sha256 does not fit a ed25519 key"
        assert e.value.errors == {"algorithm": ["does not fit the key"]}
        key = await s.register_key("t", m.SigningKeyCreate(name="k", public_key=ed25519_pem(sk)))
        assert (key.algorithm, key.kind, key.bits, key.not_before, key.not_after) == ("ed25519", "ed25519", 256, None, None)
        cert = await s.register_key("t", m.SigningKeyCreate(name="c", public_key=CERT["pem"]))
        assert (cert.keyid, cert.kind, cert.algorithm) == (CERT["keyid"], "rsa", "rsa-pkcs1v15-sha256")
        assert cert.public_key.startswith("-----BEGIN PUBLIC KEY-----")  # the key, not the certificate
        assert [parse_rfc3339(t).timestamp() for t in (cert.not_before, cert.not_after)] == [  # type: ignore[union-attr]
            CERT["not_before"],
            CERT["not_after"],
        ]

    with_signatures(tmp_path, scenario)


def test_signatures_name_exactly_one_known_active_key(tmp_path: Path):
    async def scenario(s: Signatures, u: Uploads) -> None:
        b = await signable(u)
        sk = ed25519.Ed25519PrivateKey.generate()
        key = await s.register_key("t", m.SigningKeyCreate(name="k", public_key=ed25519_pem(sk)))
        good = sk.sign(bytes.fromhex(b.sha256)).hex()
        refusals = [
            (m.SignatureCreate(signature=good), "signing_key_id"),
            (m.SignatureCreate(signature=good, signing_key_id=key.id, keyid=key.keyid), "signing_key_id"),
            (m.SignatureCreate(signature=good, signing_key_id="sk_00000000000000000000000000"), "signing_key_id"),
            (m.SignatureCreate(signature=good, keyid="0" * 64), "keyid"),
            (m.SignatureCreate(signature=sk.sign(b"other").hex(), keyid=key.keyid), "signature"),
        ]
        for body, field in refusals:
            with pytest.raises(Invalid) as e:
                await s.sign_binary("t", b.id, body)
            assert list(e.value.errors) == [field], body
        assert (await u.catalog.list_signatures(b.id)).items == []
        sig, new = await s.sign_binary("t", b.id, m.SignatureCreate(signature=good, keyid=key.keyid))
        assert new and (sig.binary_id, sig.signing_key_id, sig.signature) == (b.id, key.id, good)
        again, new = await s.sign_binary("t", b.id, m.SignatureCreate(signature=good, signing_key_id=key.id))
        assert not new and again.id == sig.id
        bundle = await u.catalog.create_bundle("t", m.BundleCreate(binaries=[b.id]))
        await u.catalog.patch_signing_key("t", key.id, m.SigningKeyPatch(state="revoked"))
        with pytest.raises(Invalid) as e:
            await s.sign_binary("t", b.id, m.SignatureCreate(signature=good, signing_key_id=key.id))
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        over_bundle = sk.sign(bytes.fromhex(bundle.hash)).hex()
        with pytest.raises(Invalid) as e:
            await s.sign_bundle("t", bundle.id, m.SignatureCreate(signature=over_bundle, signing_key_id=key.id))
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        # Revoked between the check and the write: the catalog refuses it in the writing
        # transaction, for bundles as for binaries.
        with pytest.raises(Invalid) as e:
            await u.catalog.add_bundle_signature("t", bundle.id, key, over_bundle, "digest")
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        with pytest.raises(Invalid) as e:
            await u.catalog.add_signature("t", b.id, key.id, good, "digest")
        assert e.value.errors == {"signing_key_id": ["revoked"]}
        assert (await u.catalog.get_bundle(bundle.id)).signatures == []

    with_signatures(tmp_path, scenario)


def test_signatures_count_only_inside_the_certificate_validity(tmp_path: Path, monkeypatch):
    async def scenario(s: Signatures, u: Uploads) -> None:
        b = await signable(u)
        cert = await s.register_key("t", m.SigningKeyCreate(name="c", public_key=CERT["pem"]))
        body = m.SignatureCreate(signature="00" * 256, signing_key_id=cert.id)  # not a valid signature
        for at, field in [
            (CERT["not_before"] - 1, "signing_key_id"),
            (CERT["not_before"], "signature"),  # valid from its first second: on to the signature
            (CERT["not_after"], "signature"),  # through its last
            (CERT["not_after"] + 1, "signing_key_id"),
        ]:
            monkeypatch.setattr(signatures_module.time, "time", lambda at=at: float(at))
            with pytest.raises(Invalid) as e:
                await s.sign_binary("t", b.id, body)
            assert list(e.value.errors) == [field], at

    with_signatures(tmp_path, scenario)


def test_signatures_keep_parsed_keys_within_the_cache_size(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(signatures_module, "KEY_CACHE_SIZE", 1)

    async def scenario(s: Signatures, u: Uploads) -> None:
        b = await signable(u)
        # A size beyond Python's small cached ints, as the real one is: counted, not identified.
        monkeypatch.setattr(signatures_module, "KEY_CACHE_SIZE", 300)
        filler = load_public_key(CERT["pem"])
        s._keys.update({f"filler{i}": filler for i in range(300)})
        sk = ed25519.Ed25519PrivateKey.generate()
        key = await s.register_key("t", m.SigningKeyCreate(name="big", public_key=ed25519_pem(sk)))
        body = m.SignatureCreate(signature=sk.sign(bytes.fromhex(b.sha256)).hex(), signing_key_id=key.id)
        await s.sign_binary("t", b.id, body)
        assert len(s._keys) == 300 and "filler0" not in s._keys and key.keyid in s._keys
        s._keys.clear()
        monkeypatch.setattr(signatures_module, "KEY_CACHE_SIZE", 1)
        for _ in range(2):
            for name in ("a", "b"):
                sk = ed25519.Ed25519PrivateKey.generate()
                key = await s.register_key(
                    "t", m.SigningKeyCreate(name=f"{name}{os.urandom(3).hex()}", public_key=ed25519_pem(sk))
                )
                body = m.SignatureCreate(signature=sk.sign(bytes.fromhex(b.sha256)).hex(), signing_key_id=key.id)
                assert (await s.sign_binary("t", b.id, body))[1]
                assert list(s._keys) == [key.keyid]

    with_signatures(tmp_path, scenario)


# Uploads, continued: the edges a mutant found.


def test_uploads_part_length_where_the_subtraction_borrows():
    assert part_length(binary_of(2 * PART - 1), 2) == PART - 1


def test_uploads_a_declared_digest_is_compared_for_equality(tmp_path: Path):
    data = os.urandom(1000)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        for declared in ("0" * 64, "f" * 64):  # below and above the true digest
            with pytest.raises(Invalid):
                await send(u, b, data, 1, declared=declared)
        assert (await u.progress(b.id)).missing == [1]

    run(tmp_path, scenario)


def test_uploads_a_lease_that_cannot_be_renewed_stops_the_upload(tmp_path: Path):
    data = os.urandom(PART)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        u.lease = 0.03  # renewed every 10 ms

        async def renew(token: str, lease: float) -> None:
            raise RuntimeError("the catalog is gone")

        u.catalog.renew_part = renew  # type: ignore[method-assign]

        async def slow() -> AsyncIterator[bytes]:
            yield data[:MIB]
            await asyncio.sleep(1)
            yield data[MIB:]

        with pytest.raises(RuntimeError, match="the catalog is gone"):
            await u.receive_part("t", b.id, 1, len(data), slow())
        assert (await u.progress(b.id)).missing == [1]

    run(tmp_path, scenario)


def test_uploads_a_cancelled_upload_is_cancelled_and_releases_its_part(tmp_path: Path):
    data = os.urandom(PART)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)

        async def stalled() -> AsyncIterator[bytes]:
            yield data[:MIB]
            await asyncio.sleep(30)
            yield data[MIB:]

        task = asyncio.ensure_future(u.receive_part("t", b.id, 1, len(data), stalled()))
        await asyncio.sleep(0.05)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        await send(u, b, data, 1)  # the part is free again
        assert (await u.change("t", b.id, m.BinaryPatch(state="hashable"))).state == "hashing"

    run(tmp_path, scenario)


def test_uploads_hashing_reports_missing_bytes_and_unreadable_uploads_exactly(tmp_path: Path):
    data = os.urandom(PART + 10)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        for index in (1, 2):
            await send(u, b, data, index)
        os.truncate(u.blobs.root / "uploads" / b.id, PART + 4)  # type: ignore[attr-defined]
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        done = await hashed(u, b.id)
        assert (
            done.error
            == f"content has {PART + 4} bytes, {PART + 10} were declared; parts whose bytes differ from their upload: 2"
        )
        gone = await new_binary(u, data[:1000])
        await send(u, gone, data[:1000], 1)
        os.unlink(u.blobs.root / "uploads" / gone.id)  # type: ignore[attr-defined]
        await u.change("t", gone.id, m.BinaryPatch(state="hashable"))
        assert (await hashed(u, gone.id)).error == "cannot read the uploaded content: No such file or directory"

    run(tmp_path, scenario)


def test_uploads_hashing_a_binary_that_left_hashing_ends_quietly(tmp_path: Path):
    data = os.urandom(1000)

    async def scenario(u: Uploads) -> None:
        b = await uploaded(u, data)
        await u.change("t", b.id, m.BinaryPatch(state="destroyed"))
        assert await u.hash_binary(b.id) is None  # its verdict is refused (409) and dropped
        assert (await u.catalog.get_binary(b.id)).state == "destroyed"

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("retries", "failures", "state", "waits"),
    [(4, 3, "signable", 3), (300, 300, "hashing", 299)],  # 300: past Python's small cached ints
)
def test_uploads_a_full_disk_delays_the_verdict_then_gives_up(tmp_path: Path, monkeypatch, retries, failures, state, waits):
    monkeypatch.setattr(uploads_module, "FULL_DISK_RETRIES", retries)
    monkeypatch.setattr(uploads_module, "FULL_DISK_WAIT", 0.001234)  # told apart from other sleeps
    data = os.urandom(1000)
    real_sleep = asyncio.sleep
    slept: list[float] = []

    async def sleep(seconds: float, *args: Any) -> Any:
        slept.append(seconds)
        return await real_sleep(seconds, *args)

    monkeypatch.setattr(uploads_module.asyncio, "sleep", sleep)

    async def scenario(u: Uploads) -> None:
        real_change = u.catalog.change_binary
        refused = []

        async def change(*args: Any, **kw: Any) -> m.Binary:
            if kw.get("by_server") and len(refused) < failures:
                refused.append(1)
                raise InsufficientStorage("the disk is full")
            return await real_change(*args, **kw)

        u.catalog.change_binary = change  # type: ignore[method-assign]
        b = await new_binary(u, data)
        await u.receive_content("t", b.id, len(data), chunks(data))
        assert (await hashed(u, b.id)).state == state
        assert slept.count(0.001234) == waits  # none after the last attempt

    run(tmp_path, scenario)


# Check-ins, continued: the edges a mutant found.


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
    _, token = device_token(fleet, rollout, "d1")

    async def scenario(c: CheckIns) -> None:
        snap = await c.snapshot()
        some = await c.catalog.get_device(rollout_device_id(fleet))
        for i in range(300):
            snap.devices[f"filler{i}"] = some
        await c.check_in(Reported(), token_hash=token, write=False)
        assert len(snap.devices) == 300 and "filler0" not in snap.devices and token in snap.devices

    with_checkins(tmp_path, scenario)


def rollout_device_id(fleet: Fleet) -> str:
    return fleet.api.ok("GET", f"{API}/devices")["items"][0]["id"]


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

        async def failing_once(last_seen, events):
            attempts.append(len(events))
            if len(attempts) == 1:
                for _, token in devices[1:]:  # buffered meanwhile
                    await c.check_in(Reported(), token_hash=token)
                raise RuntimeError("the disk is busy")
            return await real(last_seen, events)

        monkeypatch.setattr(c.catalog, "record_check_ins", failing_once)
        await c.check_in(Reported(), token_hash=devices[0][1])
        with pytest.raises(RuntimeError):
            await c.flush()
        await c.flush()
        assert attempts == [1, 3]
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
