"""The upload service called directly, over a real catalog and blob directory (no HTTP): what
it decides about parts, completion, hashing verdicts and the bytes. Fast enough to run once per
mutant (scripts/mutants)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_agents_rules import V3, artifact
from upload_helpers import MIB, PART, binary_of, chunks, hashed, new_binary, published, run, send, uploaded

from ferryman.catalog import models as m
from ferryman.errors import Conflict, InsufficientStorage, Invalid, TooLarge, Unavailable
from ferryman.services import uploads as uploads_module
from ferryman.services.uploads import Uploads, part_length

# Every test runs on both catalogs.
pytestmark = pytest.mark.usefixtures("catalog_url")


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


def _grow(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"tail")  # bytes past the declared size, in the last part


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        (_grow, f"content has {PART + 14} bytes, {PART + 10} were declared; parts whose bytes differ from their upload: 2"),
        (lambda path: os.truncate(path, PART + 4),
         f"content has {PART + 4} bytes, {PART + 10} were declared; parts whose bytes differ from their upload: 2"),
        (os.unlink, "cannot read the uploaded content: No such file or directory"),
    ],
)  # fmt: skip
def test_uploads_hashing_reports_a_size_that_differs_or_an_unreadable_upload(tmp_path: Path, tamper, error):
    data = os.urandom(PART + 10)

    async def scenario(u: Uploads) -> None:
        b = await new_binary(u, data)
        for index in (1, 2):
            await send(u, b, data, index)
        tamper(u.blobs.root / "uploads" / b.id)  # type: ignore[attr-defined]
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        done = await hashed(u, b.id)
        assert (done.state, done.error) == ("hashable", error)

    run(tmp_path, scenario)


def test_uploads_hashing_learns_sha1_md5_and_a_mender_header(tmp_path: Path):
    data = artifact(V3)

    async def scenario(u: Uploads) -> None:
        done = await uploaded(u, data)
        assert (done.state, done.error) == ("signable", None)
        assert (done.sha1, done.md5) == (hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest())
        assert done.mender == m.MenderHeader(artifact_name="rel-2", device_types=["board-a", "board-b"],
                                             provides={"rootfs-image.version": "2"})  # fmt: skip
        other = await uploaded(u, b"not an artifact")
        assert (other.state, other.mender, other.md5) == ("signable", None, hashlib.md5(b"not an artifact").hexdigest())

    run(tmp_path, scenario)


UNREADABLE = "a Mender artifact whose header cannot be read"


def _first_bytes_fail(u: Uploads, monkeypatch, error: Exception) -> None:
    """The header read (after the first block) fails with ``error``."""
    real = u.blobs.first_bytes

    async def first_bytes(binary_id: str, count: int) -> bytes:
        if count > 512:
            raise error
        return await real(binary_id, count)

    monkeypatch.setattr(u.blobs, "first_bytes", first_bytes)


@pytest.mark.parametrize(
    ("data", "error", "verdict"),
    [
        (artifact({**V3, "artifact_provides": {}}), None, f"{UNREADABLE}: header-info names no artifact"),
        (artifact(V3), OSError("disk on fire"), f"{UNREADABLE}: disk on fire"),
    ],
)  # fmt: skip
def test_uploads_a_mender_artifact_whose_header_cannot_be_read_is_refused(tmp_path: Path, monkeypatch, data, error, verdict):
    async def scenario(u: Uploads) -> None:
        if error is not None:
            _first_bytes_fail(u, monkeypatch, error)
        done = await uploaded(u, data)
        assert (done.state, done.error, done.sha1) == ("hashable", verdict, None)

    run(tmp_path, scenario)


def test_uploads_a_store_away_while_the_header_is_read_leaves_the_job_for_later(tmp_path: Path, monkeypatch):
    async def scenario(u: Uploads) -> None:
        _first_bytes_fail(u, monkeypatch, Unavailable("the store is away"))
        done = await uploaded(u, artifact(V3))
        assert (done.state, done.error, done.sha1) == ("hashing", None, None)

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


def _slow_digest(u: Uploads, monkeypatch, seconds: float) -> None:
    real = u.blobs.digest

    async def digest(*args: Any, **kw: Any) -> Any:
        await asyncio.sleep(seconds)
        return await real(*args, **kw)

    monkeypatch.setattr(u.blobs, "digest", digest)


def test_uploads_a_hashing_job_renews_its_lease_and_stops_once_it_is_lost(tmp_path: Path, monkeypatch):
    async def scenario(u: Uploads) -> None:
        u.job_lease = 0.3
        data = os.urandom(1000)
        b = await new_binary(u, data)
        await u.receive_part("t", b.id, 1, len(data), chunks(data))
        renewals: list[tuple[str, str, float]] = []
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def renew(binary_id: str, worker: str, lease: float) -> bool:
            renewals.append((binary_id, worker, lease))
            times.append(loop.time())
            return len(renewals) < 2  # the second renewal finds another process holding the job

        monkeypatch.setattr(u.catalog, "renew_hashing", renew)
        _slow_digest(u, monkeypatch, 1.0)
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))
        times.append(loop.time())
        assert list(u._hashing) == [b.id]
        await asyncio.sleep(1.3)
        # Renewed every third of the lease, by this process, until lost; then no verdict.
        assert renewals == [(b.id, u.worker, 0.3)] * 2
        # The first from about when the job started, the second a third of the lease later.
        assert 0.05 < times[1] - times[0] < 0.2 and 0.09 < times[2] - times[1] < 0.13
        assert u._hashing == {} and not u._tasks
        assert (await u.catalog.get_binary(b.id)).state == "hashing"

    run(tmp_path, scenario)


def test_uploads_a_job_running_here_is_not_started_twice(tmp_path: Path, monkeypatch):
    async def scenario(u: Uploads) -> None:
        data = os.urandom(1000)
        b = await new_binary(u, data)
        await u.receive_part("t", b.id, 1, len(data), chunks(data))
        _slow_digest(u, monkeypatch, 0.3)
        await u.change("t", b.id, m.BinaryPatch(state="hashable"))

        async def claim(worker: str, lease: float, binary_id: str | None = None, limit: int = 8) -> list[str]:
            return [b.id]  # as if its lease had run out while this process still hashes it

        monkeypatch.setattr(u.catalog, "claim_hashing", claim)
        await u.take_hashing()
        assert len(u._tasks) == 1
        assert (await hashed(u, b.id)).state == "signable"

    run(tmp_path, scenario)


def test_uploads_start_takes_jobs_nobody_holds_and_keeps_looking(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(uploads_module, "HASHING_POLL", 0.1)

    async def scenario(u: Uploads) -> None:
        data = os.urandom(1000)
        left = await new_binary(u, data)
        await u.receive_part("t", left.id, 1, len(data), chunks(data))
        # A job no process holds (moved to hashing by another process that died at once).
        await u.catalog.change_binary("t", left.id, m.BinaryPatch(), uploads_module.State.HASHABLE)
        await u.start()
        assert (await hashed(u, left.id)).state == "signable"
        later = await new_binary(u, data)
        await u.receive_part("t", later.id, 1, len(data), chunks(data))
        await u.catalog.change_binary("t", later.id, m.BinaryPatch(), uploads_module.State.HASHABLE)
        deadline = asyncio.get_running_loop().time() + 5
        while (await u.catalog.get_binary(later.id)).state != "signable":
            assert asyncio.get_running_loop().time() < deadline, "the poller did not take the job"
            await asyncio.sleep(0.05)

    run(tmp_path, scenario)


def test_uploads_the_janitor_discards_upload_files_no_binary_needs(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, "ferryman.uploads")

    async def scenario(u: Uploads) -> None:
        data = os.urandom(1000)
        waiting = await new_binary(u, data)
        await u.receive_part("t", waiting.id, 1, len(data), chunks(data))
        gone = await uploaded(u, data)
        await u.change("t", gone.id, m.BinaryPatch(state="destroyed"))
        # A crash between the destroy and the removal of its bytes leaves its upload file.
        (tmp_path / "blobs" / "uploads" / gone.id).write_bytes(data)
        (tmp_path / "blobs" / "uploads" / "not-ours").write_bytes(b"x")
        assert await u.sweep() == [gone.id]
        assert sorted(p.name for p in (tmp_path / "blobs" / "uploads").iterdir()) == sorted([waiting.id, "not-ours"])
        assert caplog.messages == ["janitor: removed the uploaded bytes of 1 binaries that no longer need them"]
        assert await u.sweep() == []
        assert len(caplog.messages) == 1  # a sweep that finds nothing says nothing

    run(tmp_path, scenario)


def test_uploads_replication_hears_of_each_binary_verified_here_only(tmp_path: Path, caplog):
    good, bad = os.urandom(1000), os.urandom(1000)
    told: list[str] = []

    async def on_content(binary_id: str) -> None:
        told.append(binary_id)
        if len(told) > 1:
            raise ConnectionError("catalog away")

    async def scenario(u: Uploads) -> None:
        u.on_content = on_content
        ok = await uploaded(u, good)
        assert (ok.state, told) == ("signable", [ok.id])
        wrong = await new_binary(u, bad, sha256="cd" * 32)
        await u.receive_content("t", wrong.id, len(bad), chunks(bad))
        assert (await hashed(u, wrong.id)).state == "hashable" and told == [ok.id]
        # A failure to queue it is logged; the verdict stands (replication queues it later).
        again = await uploaded(u, os.urandom(10))
        assert again.state == "signable" and told == [ok.id, again.id]
        assert f"binary {again.id}: could not queue its replication now (catalog away)" in caplog.text

    run(tmp_path, scenario)
