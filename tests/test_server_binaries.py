"""Binaries over HTTP: declaration, multipart uploads, the lifecycle, hashing, crash safety."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from apiclient import Api, ProcessServer
from services import content_of

MIB = 1 << 20
PART = 5 * MIB
API = "/api/v1"

# The service tests here run on the file store and on S3 (see conftest.py).
pytestmark = pytest.mark.stores


def problem(r, status: int) -> dict:
    assert r.status == status, r
    assert r.headers["Content-Type"].startswith("application/problem+json")
    return r.json


def declare(api: Api, data: bytes, *, target: str = "aarch64-linux-gnu", sha256: str | None = None, version: str = "1.0.0"):
    arts = api.ok("GET", f"{API}/artifacts?name=fw")["items"]
    art = arts[0] if arts else api.ok("POST", f"{API}/artifacts", {"name": "fw"})
    vers = [v for v in api.ok("GET", f"{API}/artifacts/{art['id']}/versions")["items"] if v["version"] == version]
    ver = vers[0] if vers else api.ok("POST", f"{API}/artifacts/{art['id']}/versions", {"version": version})
    body = {"target": target, "size": len(data), "sha256": sha256 or hashlib.sha256(data).hexdigest(), "part_size": PART}
    return api.ok("POST", f"{API}/versions/{ver['id']}/binaries", body)


def put_part(api: Api, binary_id: str, index: int, chunk: bytes, digest: bool = True):
    headers = {}
    if digest:
        headers["Content-Digest"] = "sha-256=:" + base64.b64encode(hashlib.sha256(chunk).digest()).decode() + ":"
    return api.put(f"{API}/binaries/{binary_id}/parts/{index}", chunk, headers=headers)


def parts_of(data: bytes) -> list[bytes]:
    return [data[i : i + PART] for i in range(0, max(len(data), 1), PART)]


def upload(api: Api, data: bytes, **kw) -> dict:
    b = declare(api, data, **kw)
    pieces = parts_of(data)
    order = list(range(len(pieces)))[::-1]  # out of order
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda i: put_part(api, b["id"], i + 1, pieces[i]), order))
    assert all(r.status == 200 for r in replies), replies
    return b


def test_happy_path_concurrent_out_of_order(server: Api):
    data = os.urandom(3 * PART + 12345)
    b = upload(server, data)
    parts = server.ok("GET", f"{API}/binaries/{b['id']}/parts")
    assert parts["missing"] == [] and [p["index"] for p in parts["parts"]] == [1, 2, 3, 4]
    assert [p["sha256"] for p in parts["parts"]] == [hashlib.sha256(c).hexdigest() for c in parts_of(data)]
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    done = server.wait_state(b["id"], {"signable"})
    assert done["error"] is None
    got = server.get(f"{API}/binaries/{b['id']}/content")
    assert got.status == 200 and got.body == data


def test_one_shot_content_upload(server: Api):
    data = os.urandom(100_000)
    b = declare(server, data)
    r = server.put(f"{API}/binaries/{b['id']}/content", data)
    assert r.status == 200, r
    server.wait_state(b["id"], {"signable"})
    assert server.get(f"{API}/binaries/{b['id']}/content").body == data
    big = declare(server, os.urandom(PART + 1), target="x86_64-linux-gnu")
    problem(server.put(f"{API}/binaries/{big['id']}/content", b"x" * (PART + 1)), 409)


def test_empty_binary(server: Api):
    b = declare(server, b"")
    assert put_part(server, b["id"], 1, b"").status == 200
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})


def test_bad_parts_leave_no_trace(server: Api, tmp_path: Path):
    data = os.urandom(PART + 10)
    b = declare(server, data)
    first = parts_of(data)[0]
    # A Content-Digest that does not match the body.
    r = server.put(
        f"{API}/binaries/{b['id']}/parts/1",
        first,
        headers={"Content-Digest": "sha-256=:" + base64.b64encode(hashlib.sha256(b"other").digest()).decode() + ":"},
    )
    assert "content-digest" in problem(r, 422)["errors"]
    # Wrong sizes: short, long, and beyond the declared size.
    problem(put_part(server, b["id"], 1, first[:-1]), 422)
    problem(put_part(server, b["id"], 2, b"x" * 11), 413)
    problem(server.put(f"{API}/binaries/{b['id']}/parts/1", first, headers={"Content-Digest": "garbage"}), 400)
    for bad in ["0", "3", "-1", "abc", "1.5", "99999999999"]:
        assert "index" in problem(server.put(f"{API}/binaries/{b['id']}/parts/{bad}", b"x"), 422)["errors"], bad
    assert server.ok("GET", f"{API}/binaries/{b['id']}/parts")["parts"] == []
    assert content_of(tmp_path / "data", b["id"]) is None
    # The refused bytes are overwritten by the good uploads; the content is exactly the data.
    for i, chunk in enumerate(parts_of(data), start=1):
        assert put_part(server, b["id"], i, chunk).status == 200
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})
    assert server.get(f"{API}/binaries/{b['id']}/content").body == data


def test_upload_in_flight_blocks_hashing(server: Api):
    data = os.urandom(2 * PART)
    b = declare(server, data)
    assert put_part(server, b["id"], 2, data[PART:]).status == 200
    assert put_part(server, b["id"], 1, data[:PART]).status == 200
    conn = _slow_part_upload(server, b["id"], data[:PART])  # re-uploading part 1, half sent
    try:
        time.sleep(0.2)
        p = problem(server.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"}), 409)
        assert "uploads in progress" in p["detail"]
        conn.send(data[:PART][PART // 2 :])
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})


def test_content_length_is_required(server: Api):
    b = declare(server, b"abc")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.putrequest("PUT", f"{API}/binaries/{b['id']}/parts/1")
    conn.putheader("Authorization", f"Bearer {server.token}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"3\r\nabc\r\n0\r\n\r\n")
    try:
        assert conn.getresponse().status == 411
    finally:
        conn.close()


def test_reupload_replaces_a_part(server: Api):
    data = os.urandom(PART + 5)
    b = declare(server, data)
    assert put_part(server, b["id"], 2, b"wrong").status == 200
    assert put_part(server, b["id"], 2, data[PART:]).status == 200
    assert put_part(server, b["id"], 1, data[:PART]).status == 200
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})


def test_missing_part_blocks_hashable(server: Api):
    data = os.urandom(2 * PART + 1)
    b = declare(server, data)
    put_part(server, b["id"], 2, parts_of(data)[1])
    p = problem(server.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"}), 409)
    assert p["missing"] == [1, 3]
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "uploadable"


def test_content_mismatch_returns_to_hashable_with_error(server: Api):
    data = os.urandom(PART + 100)
    b = upload(server, data, sha256="0" * 64)
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    back = server.wait_state(b["id"], {"hashable"})
    assert hashlib.sha256(data).hexdigest() in back["error"] and "0" * 64 in back["error"]
    # Nothing deleted silently: the parts are still there, and a reset discards them.
    assert len(server.ok("GET", f"{API}/binaries/{b['id']}/parts")["parts"]) == 2
    problem(server.get(f"{API}/binaries/{b['id']}/content"), 409)
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "uploadable"})
    assert server.ok("GET", f"{API}/binaries/{b['id']}/parts")["parts"] == []


def test_invalid_transitions_list_the_allowed_ones(server: Api):
    b = declare(server, b"abc")
    for target in ["signable", "signed", "hashing"]:
        p = problem(server.patch(f"{API}/binaries/{b['id']}", {"state": target}), 409)
        assert p["allowed_transitions"] == ["destroyed", "hashable"]
    problem(server.patch(f"{API}/binaries/{b['id']}", {"state": "bogus"}), 422)
    put_part(server, b["id"], 1, b"abc")
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})
    for target in ["hashable", "hashing", "signed"]:
        p = problem(server.patch(f"{API}/binaries/{b['id']}", {"state": target}), 409)
        assert p["allowed_transitions"] == ["destroyed", "uploadable"]
    problem(put_part(server, b["id"], 1, b"abc"), 409)  # content frozen
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "destroyed"})
    p = problem(server.patch(f"{API}/binaries/{b['id']}", {"state": "uploadable"}), 409)
    assert p["allowed_transitions"] == []


def test_destroy_deletes_content_keeps_record(server: Api, tmp_path: Path):
    b = upload(server, b"firmware")
    server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
    server.wait_state(b["id"], {"signable"})
    assert content_of(tmp_path / "data", b["id"]) == b"firmware"
    assert server.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "destroyed"})["state"] == "destroyed"
    assert content_of(tmp_path / "data", b["id"]) is None
    assert server.ok("GET", f"{API}/binaries/{b['id']}")["state"] == "destroyed"
    # A destroyed binary frees its (version, target) slot.
    declare(server, b"again")


def test_duplicate_version_target(server: Api):
    declare(server, b"a")
    vid = server.ok("GET", f"{API}/binaries")["items"][0]["version_id"]
    body = {"target": "aarch64-linux-gnu", "size": 1, "sha256": "0" * 64}
    assert "target" in problem(server.post(f"{API}/versions/{vid}/binaries", body), 409)["errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target": "Aarch64", "size": 1, "sha256": "0" * 64}, "target"),
        ({"target": "aarch64-linux-gnu", "size": -1, "sha256": "0" * 64}, "size"),
        ({"target": "aarch64-linux-gnu", "size": 1, "sha256": "xyz"}, "sha256"),
        ({"target": "aarch64-linux-gnu", "size": 1, "sha256": "0" * 64, "part_size": 1024}, "part_size"),
        ({"target": "aarch64-linux-gnu", "size": 10**12, "sha256": "0" * 64, "part_size": 5 * MIB}, "part_size"),
        ({"target": "a" * 200 + "-linux", "size": 1, "sha256": "0" * 64}, "target"),
        ({"target": "aarch64-linux-gnu", "size": "1", "sha256": "0" * 64}, "size"),
    ],
)
def test_binary_declaration_is_validated(server: Api, body: dict, field: str):
    declare(server, b"seed", target="riscv64-linux-gnu")
    vid = server.ok("GET", f"{API}/binaries")["items"][0]["version_id"]
    assert field in problem(server.post(f"{API}/versions/{vid}/binaries", body), 422)["errors"]


def test_filters(server: Api):
    a = declare(server, b"one", target="aarch64-linux-gnu")
    declare(server, b"two", target="x86_64-linux-gnu")
    items = server.ok("GET", f"{API}/binaries?target=x86_64-linux-gnu")["items"]
    assert [i["target"] for i in items] == ["x86_64-linux-gnu"]
    assert server.ok("GET", f"{API}/binaries?sha256={a['sha256'].upper()}")["items"][0]["id"] == a["id"]
    assert len(server.ok("GET", f"{API}/binaries?state=uploadable")["items"]) == 2
    assert len(server.ok("GET", f"{API}/versions/{a['version_id']}/binaries")["items"]) == 2


def test_racing_transitions_only_one_wins(server: Api):
    b = upload(server, b"race")
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: server.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"}), range(8)))
    assert sorted(r.status for r in replies).count(200) == 1, replies
    server.wait_state(b["id"], {"signable"})
    hashing = [
        e for e in server.ok("GET", f"{API}/events?resource_id={b['id']}&limit=500")["items"] if e["action"] == "state:hashing"
    ]
    assert len(hashing) == 1


# Crash safety: a real server process, killed with SIGKILL.


def _slow_part_upload(api: Api, binary_id: str, chunk: bytes) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    conn.putrequest("PUT", f"{API}/binaries/{binary_id}/parts/1")
    conn.putheader("Authorization", f"Bearer {api.token}")
    conn.putheader("Content-Length", str(len(chunk)))
    conn.endheaders()
    conn.send(chunk[: len(chunk) // 2])
    return conn


def test_sigkill_mid_upload_then_resume(tmp_path: Path, catalog_url: str | None):
    """The upload of a killed server holds hashing back until its lease runs out; on the
    embedded catalog, which no other process can share, the next start ends it at once."""
    # A lease long enough that a restart on a busy machine (tests run two at a time) ends well
    # inside it.
    srv = ProcessServer(tmp_path / "data", catalog_url, "--upload-lease", "10")
    api = srv.start()
    try:
        data = os.urandom(2 * PART)
        b = declare(api, data)
        assert put_part(api, b["id"], 2, data[PART:]).status == 200
        conn = _slow_part_upload(api, b["id"], data[:PART])
        time.sleep(0.3)
        srv.kill()
        conn.close()
        api = srv.start()
        parts = api.ok("GET", f"{API}/binaries/{b['id']}/parts")
        assert parts["missing"] == [1] and [p["index"] for p in parts["parts"]] == [2]
        assert put_part(api, b["id"], 1, data[:PART]).status == 200
        r = api.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"})
        if catalog_url:
            assert r.status == 409 and "uploads in progress for parts 1" in r.json["detail"]
            deadline = time.monotonic() + 20
            while r.status == 409 and time.monotonic() < deadline:  # until the dead upload's lease runs out
                time.sleep(0.5)
                r = api.patch(f"{API}/binaries/{b['id']}", {"state": "hashable"})
        assert r.status == 200, r
        api.wait_state(b["id"], {"signable"})
        assert api.get(f"{API}/binaries/{b['id']}/content").body == data
    finally:
        srv.stop()


def test_sigkill_during_hashing_recovers(tmp_path: Path):
    srv = ProcessServer(tmp_path / "data")
    api = srv.start()
    try:
        data = os.urandom(20 * PART)
        b = upload(api, data)
        api.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
        srv.kill()
        db = sqlite3.connect(tmp_path / "data" / "catalog.sqlite3")
        (state,) = db.execute("SELECT state FROM binaries WHERE id = ?", [b["id"]]).fetchone()
        db.close()
        assert state in ("hashing", "signable")
        content = tmp_path / "data" / "store" / "content" / b["id"]
        if state == "hashing":  # whatever is on disk must not be taken for the content
            assert not content.exists() or content.stat().st_size <= len(data)
        api = srv.start()
        api.wait_state(b["id"], {"signable"})
        assert hashlib.sha256(api.get(f"{API}/binaries/{b['id']}/content").body).hexdigest() == b["sha256"]
    finally:
        srv.stop()


def test_interrupted_hashing_restarts_at_startup(tmp_path: Path):
    """Deterministic version: the process died with the catalog saying hashing."""
    srv = ProcessServer(tmp_path / "data")
    api = srv.start()
    data = os.urandom(PART + 7)
    b = upload(api, data)
    srv.stop()
    db = sqlite3.connect(tmp_path / "data" / "catalog.sqlite3")
    with db:
        db.execute("UPDATE binaries SET state = 'hashing' WHERE id = ?", [b["id"]])
    db.close()
    api = srv.start()
    try:
        api.wait_state(b["id"], {"signable"})
        assert api.get(f"{API}/binaries/{b['id']}/content").body == data
    finally:
        srv.stop()


def test_sigterm_shuts_down_cleanly(tmp_path: Path):
    srv = ProcessServer(tmp_path / "data")
    srv.start()
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0
