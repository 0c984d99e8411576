"""Uploads under stress: stalled clients, leases on parts in flight, a full disk, refused patches
that must change nothing, and values that only look valid (a trailing newline)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ThreadServer
from test_server_binaries import PART, declare, parts_of, problem, put_part

from ferryman.catalog import Catalog
from ferryman.catalog import models as m
from ferryman.catalog.sql import SqlCatalog
from ferryman.cli import main
from ferryman.config import Config
from ferryman.errors import Conflict
from ferryman.lifecycle import State

API = "/api/v1"


@pytest.fixture
def quick(tmp_path: Path, catalog_url: str | None):
    """A service whose uploads time out after one idle second."""
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, upload_idle_timeout=1.0, catalog=catalog_url))
    api = srv.start()
    yield api
    srv.stop()


def _stalled_put(api: Api, binary_id: str, index: int, declared: int, sent: bytes) -> socket.socket:
    """Starts a part upload that declares ``declared`` bytes, sends ``sent`` and then waits."""
    s = socket.create_connection((api.host, api.port))
    s.sendall(
        f"PUT {API}/binaries/{binary_id}/parts/{index} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n"
        f"Content-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    return s


def _read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def test_a_stalled_part_is_refused_and_releases_hashing(quick: Api):
    """A client that sends 4 of 10 bytes and waits blocks hashing only until the idle timeout:
    then its part is refused with 408 and the binary can complete."""
    data = b"0123456789"
    b = declare(quick, data)
    s = _stalled_put(quick, b["id"], 1, len(data), data[:4])
    try:
        time.sleep(0.3)
        busy = problem(quick.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"}), 409)
        assert "uploads in progress" in busy["detail"]
        answer = _read_all(s, 5)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"application/problem+json" in answer
    assert quick.ok("GET", f"{API}/binaries/{b['id']}/parts")["missing"] == [1]
    assert put_part(quick, b["id"], 1, data).status == 200
    quick.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    assert quick.wait_state(b["id"], {"signable", "hashable"})["state"] == "signable"


def test_a_slow_but_steady_upload_is_not_cut(quick: Api):
    """The timeout is on silence, not on the whole upload: bytes every half second for longer
    than the idle timeout are accepted."""
    data = os.urandom(64)
    b = declare(quick, data)
    s = _stalled_put(quick, b["id"], 1, len(data), b"")
    try:
        for i in range(0, 64, 16):
            time.sleep(0.5)
            s.sendall(data[i : i + 16])
        answer = _read_all(s, 5)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


async def _one_byte_binary(catalog: Catalog) -> m.Binary:
    art = await catalog.create_artifact("t", m.ArtifactCreate(name="fw"))
    ver = await catalog.create_version("t", art.id, m.VersionCreate(version="1.0.0"))
    body = m.BinaryCreate(target="aarch64-linux-gnu", size=1, sha256=hashlib.sha256(b"x").hexdigest())
    return await catalog.create_binary("t", ver.id, body)


async def _record_part(catalog: Catalog, b: m.Binary) -> None:
    """Part 1 uploaded by an upload of its own (which ends its own lease)."""
    token, _ = await catalog.begin_part("t", b.id, 1, lease=30)
    await catalog.record_part("t", token, b.id, 1, 1, hashlib.sha256(b"x").hexdigest())


async def _complete(catalog: Catalog, b: m.Binary) -> str:
    return (await catalog.change_binary("t", b.id, m.BinaryPatch(), State.HASHABLE)).state


def test_in_flight_markers_expire(tmp_path: Path):
    """A marker whose upload died without ending it (a killed process, a failed write) stops
    counting once its lease runs out."""

    async def run() -> None:
        catalog = await SqlCatalog.open(tmp_path / "c.sqlite3")
        try:
            b = await _one_byte_binary(catalog)
            await catalog.begin_part("t", b.id, 1, lease=0.5)  # never ended
            await _record_part(catalog, b)
            with pytest.raises(Conflict, match="uploads in progress"):
                await _complete(catalog, b)
            await asyncio.sleep(0.6)
            assert await _complete(catalog, b) == "hashing"
        finally:
            await catalog.close()

    asyncio.run(run())


def test_a_lease_is_renewed_while_the_upload_lives(tmp_path: Path):
    """An upload that keeps sending for longer than its lease still holds hashing back."""

    async def run() -> None:
        catalog = await SqlCatalog.open(tmp_path / "c.sqlite3")
        try:
            b = await _one_byte_binary(catalog)
            token, _ = await catalog.begin_part("t", b.id, 1, lease=0.3)
            await _record_part(catalog, b)
            for _ in range(4):
                await asyncio.sleep(0.2)
                await catalog.renew_part(token, 0.3)
            with pytest.raises(Conflict, match="uploads in progress"):
                await _complete(catalog, b)
            await catalog.end_part(token)
            assert await _complete(catalog, b) == "hashing"
        finally:
            await catalog.close()

    asyncio.run(run())


def test_a_refused_patch_changes_nothing(server: Api):
    """Fields and state in one PATCH are all-or-nothing: a refused state change leaves the
    description as it was and writes no audit event."""
    data = os.urandom(1000)
    b = declare(server, data)
    assert put_part(server, b["id"], 1, data).status == 200
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})
    events = server.ok("GET", f"{API}/events?resource_id={b['id']}&limit=500")["items"]
    r = server.patch(f"{API}/binaries/{b['id']}", {"description": "changed", "state": "hashable"})
    assert problem(r, 409)["allowed_transitions"] == ["destroyed", "uploadable"]
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["description"] is None
    assert server.ok("GET", f"{API}/events?resource_id={b['id']}&limit=500")["items"] == events
    # Accepted together, both land.
    after = server.ok("PATCH", f"{API}/binaries/{b['id']}", {"description": "reset", "state": "uploadable"})
    assert (after["description"], after["state"]) == ("reset", "uploadable")


def test_a_refused_complete_changes_nothing(server: Api):
    """The same for ``hashable`` refused because parts are missing."""
    data = os.urandom(2 * PART)
    b = declare(server, data)
    r = server.patch(f"{API}/binaries/{b['id']}", {"description": "x", "state": "hashable"})
    assert problem(r, 409)["missing"] == [1, 2]
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["description"] is None


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/artifacts", {"name": "fw\n"}, "name"),
        ("/devices", {"identifier": "nl-dev\n", "target": "aarch64-linux-gnu"}, "identifier"),
        ("/devices", {"identifier": "nl-dev", "target": "aarch64-linux-gnu\n"}, "target"),
        ("/devices", {"identifier": "nl-dev", "target": "aarch64-linux-gnu", "tags": ["canary\n"]}, "tags[0]"),
        ("/channels", {"name": "stable\n"}, "name"),
        ("/cohorts", {"name": "field", "channel_id": "chn_0000000000000000000000000\n"}, "channel_id"),
    ],
)
def test_a_trailing_newline_is_not_a_match(server: Api, path: str, body: dict, field: str):
    assert field in problem(server.post(f"{API}{path}", body), 422)["errors"]


def test_a_digest_with_a_trailing_newline_is_refused(server: Api):
    data = b"abc"
    b = declare(server, data)
    ver = b["version_id"]
    body = {"target": "x86_64-linux-gnu", "size": 3, "sha256": hashlib.sha256(data).hexdigest() + "\n"}
    assert "sha256" in problem(server.post(f"{API}/versions/{ver}/binaries", body), 422)["errors"]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 24 MiB tmpfs for the data directory (needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Writes a file that leaves about ``leave`` bytes free on its file system."""
    st = os.statvfs(path.parent)
    free = st.f_bavail * st.f_frsize
    with path.open("wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_is_507_and_loses_nothing(small_disk: Path, tmp_path: Path, capsys):
    """A part that does not fit is answered 507 with a problem body; the catalog stays
    consistent; once space is freed the same binary completes without a restart; the CLI says
    what happened in plain words."""
    config = Config(data_dir=small_disk / "data", admin_token=ADMIN, upload_idle_timeout=1.0, upload_lease=2.0)
    srv = ThreadServer(config)
    api = srv.start()
    try:
        data = os.urandom(2 * PART)
        b = declare(api, data)
        pieces = parts_of(data)
        assert put_part(api, b["id"], 1, pieces[0]).status == 200
        filler = small_disk / "filler"
        _fill(filler, 1 << 20)
        body = problem(put_part(api, b["id"], 2, pieces[1]), 507)
        assert "out of disk space" in body["detail"]
        got = api.ok("GET", f"{API}/binaries/{b['id']}/parts")
        assert got["missing"] == [2] and got["state"] == "uploadable"

        src = tmp_path / "fw.bin"
        src.write_bytes(os.urandom(PART + 1))
        code = main(["upload", str(src), "--url", f"http://{api.host}:{api.port}", "--token", ADMIN,
                     "--artifact", "fw", "--version", "2.0.0", "--target", "aarch64-linux-gnu", "--create"])  # fmt: skip
        assert code == 1
        assert "the server is out of disk space" in capsys.readouterr().err

        filler.unlink()
        assert put_part(api, b["id"], 2, pieces[1]).status == 200
        deadline = time.monotonic() + 30  # a marker whose end could not be written expires
        while (r := api.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"})).status == 409:
            assert time.monotonic() < deadline, r
            time.sleep(0.5)
        assert r.status == 200, r
        assert api.wait_state(b["id"], {"signable", "hashable"})["state"] == "signable"
        assert api.get(f"{API}/binaries/{b['id']}/content").body == data
    finally:
        srv.stop()
