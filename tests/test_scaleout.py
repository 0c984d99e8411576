"""Several server processes on one PostgreSQL catalog (and one store): an upload split across
them, hashing jobs taken over from a dead process, racing state changes, a count phase
across processes, ``serve --workers``, and PostgreSQL restarting or going away under them."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import ADMIN, Api, ProcessServer, ThreadServer, free_port
from services import Postgres
from test_server_binaries import PART, _slow_part_upload, declare, parts_of, problem, put_part, upload
from test_server_fleet import API, Fleet, check

from ferryman.config import Config

Pair = tuple[Api, Api, ProcessServer, ProcessServer, str]

# The two-server tests run on the file store and on S3 (see conftest.py).
pytestmark = pytest.mark.stores


@pytest.fixture
def pair(tmp_path: Path, postgres: Postgres, store_url: str | None) -> Iterator[Pair]:
    """Two servers on one fresh PostgreSQL database and one store: S3, or the file store of
    one data directory (two servers on one machine)."""
    url = postgres.database()
    store = ["--store", store_url] if store_url else []
    a = ProcessServer(tmp_path / "data", url, "--job-lease", "3", *store)
    b = ProcessServer(tmp_path / "data", url, "--job-lease", "3", *store)
    try:
        yield a.start(), b.start(), a, b, url
    finally:
        a.stop()
        b.stop()


def test_parts_through_different_servers_make_one_binary(pair: Pair):
    a, b, *_ = pair
    data = os.urandom(3 * PART + 123)
    binary = declare(a, data)
    for i, piece in enumerate(parts_of(data)):
        assert put_part((a, b)[i % 2], binary["id"], i + 1, piece).status == 200
    assert b.ok("GET", f"{API}/binaries/{binary['id']}/parts")["missing"] == []
    b.ok("PATCH", f"{API}/binaries/{binary['id']}", {"state": "hashable"})
    a.wait_state(binary["id"], {"signable"})
    assert a.get(f"{API}/binaries/{binary['id']}/content").body == data
    assert b.get(f"{API}/binaries/{binary['id']}/content").body == data


def test_a_grant_from_one_server_is_served_by_another(pair: Pair):
    a, b, *_ = pair
    entry = check(Fleet(a).one_device_on_a_release())["binaries"][0]
    body = b.as_(None).get(urlsplit(entry["url"]).path).body
    assert hashlib.sha256(body).hexdigest() == entry["sha256"]


def test_a_server_killed_during_an_upload_holds_hashing_back_until_its_lease_ends(
    tmp_path: Path, postgres: Postgres, store_url: str | None
):
    url = postgres.database()
    store = ["--store", store_url] if store_url else []
    # A lease that a busy machine (tests run two at a time) does not outlast by accident.
    a = ProcessServer(tmp_path / "data", url, "--upload-lease", "10", *store)
    b = ProcessServer(tmp_path / "data", url, "--upload-lease", "10", *store)
    api_a, api_b = a.start(), b.start()
    try:
        data = os.urandom(2 * PART)
        binary = declare(api_a, data)
        assert put_part(api_b, binary["id"], 2, data[PART:]).status == 200
        conn = _slow_part_upload(api_a, binary["id"], data[:PART])
        time.sleep(0.3)
        a.kill()
        conn.close()
        # The part is uploaded again through the other server; the dead one's upload still
        # counts as in flight until its lease runs out (nobody can tell it from a slow one).
        assert put_part(api_b, binary["id"], 1, data[:PART]).status == 200
        r = api_b.patch(f"{API}/binaries/{binary['id']}", {"state": "hashable"})
        assert r.status == 409 and "uploads in progress for parts 1" in r.json["detail"]
        deadline = time.monotonic() + 20
        while r.status == 409 and time.monotonic() < deadline:  # until the dead upload's lease runs out
            time.sleep(0.5)
            r = api_b.patch(f"{API}/binaries/{binary['id']}", {"state": "hashable"})
        assert r.status == 200, r
        api_b.wait_state(binary["id"], {"signable"})
        assert api_b.get(f"{API}/binaries/{binary['id']}/content").body == data
    finally:
        a.stop()
        b.stop()


def test_a_hashing_job_of_a_dead_server_is_taken_over(pair: Pair, postgres: Postgres):
    a, b, _, _, url = pair
    data = os.urandom(2 * PART)
    binary = upload(a, data)
    # What a server killed while hashing leaves: the binary in hashing, leased to it.
    postgres.sql(
        url,
        "UPDATE binaries SET state = 'hashing', lease_owner = 'upl_gone', "
        "lease_until = to_char(now() AT TIME ZONE 'UTC' + interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
        "WHERE id = %s",
        binary["id"],
    )
    assert b.ok("GET", f"{API}/binaries/{binary['id']}")["state"] == "hashing"
    b.wait_state(binary["id"], {"signable"}, timeout=15)
    assert b.get(f"{API}/binaries/{binary['id']}/content").body == data
    assert postgres.sql(url, "SELECT lease_owner FROM binaries WHERE id = %s", binary["id"]) == [(None,)]


def test_a_server_killed_while_hashing_loses_nothing(pair: Pair):
    a, b, sa, _, _ = pair
    data = os.urandom(40 * PART)
    binary = upload(a, data)
    a.ok("PATCH", f"{API}/binaries/{binary['id']}", {"state": "hashable"})
    sa.kill()
    # Whether the killed server had finished or not, the other one ends it, and only with
    # the right bytes published.
    done = b.wait_state(binary["id"], {"signable"}, timeout=20)
    assert done["error"] is None
    assert hashlib.sha256(b.get(f"{API}/binaries/{binary['id']}/content").body).hexdigest() == binary["sha256"]


def test_racing_state_changes_through_both_servers_have_one_winner(pair: Pair):
    a, b, *_ = pair
    binary = upload(a, os.urandom(PART))
    a.ok("PATCH", f"{API}/binaries/{binary['id']}", {"state": "hashable"})
    a.wait_state(binary["id"], {"signable"})
    with ThreadPoolExecutor(16) as pool:
        replies = list(
            pool.map(lambda i: (a, b)[i % 2].patch(f"{API}/binaries/{binary['id']}", {"state": "destroyed"}), range(16))
        )
    assert sorted(r.status for r in replies) == [200] + [409] * 15
    events = a.ok("GET", f"{API}/events?resource_id={binary['id']}&action=state:destroyed")["items"]
    assert len(events) == 1


def test_a_count_phase_admits_exactly_n_devices_across_servers(pair: Pair):
    a, b, *_ = pair
    fleet = Fleet(a)
    b1, b2 = fleet.bundle("1.0.0", targets=["x86_64-linux-gnu"]), fleet.bundle("2.0.0", targets=["x86_64-linux-gnu"])
    channel = fleet.channel("stable")
    cohort = a.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": channel["id"]})
    r1 = fleet.release(channel, "v1", b1)
    r2 = fleet.release(channel, "v2", b2, phase={"mode": "count", "value": 4})
    devices = [fleet.device(f"d{i}", "x86_64-linux-gnu", cohort)[1] for i in range(16)]
    via = [(a, b)[i % 2].as_(d.token) for i, d in enumerate(devices)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda d: check(d, {"release_id": r1["id"], "bundle_id": b1["id"]}), via))
    assert sum(1 for m in answers if m["status"] == "update" and m["release"]["id"] == r2["id"]) == 4
    assert b.ok("GET", f"{API}/releases/{r2['id']}")["claimed"] == 4


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _healthy(api: Api) -> bool:
    try:
        return api.get("/healthz").status == 200
    except OSError:
        return False


def test_serve_workers_shares_the_port_and_restarts_a_dead_worker(tmp_path: Path, postgres: Postgres):
    port = free_port()
    env = {**os.environ, "FERRYMAN_ADMIN_TOKEN": ADMIN}
    cmd = [sys.executable, "-m", "ferryman", "serve", "--workers", "2", "--port", str(port), "--data", str(tmp_path / "d"),
           "--catalog", postgres.database()]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = Api("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 30
        while len(_children(proc.pid)) < 2 or not _healthy(api):
            assert time.monotonic() < deadline and proc.poll() is None, "workers did not start"
            time.sleep(0.1)
        workers = _children(proc.pid)
        # Connections go to both workers; a change made through one is seen through any.
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda i: api.ok("POST", f"{API}/artifacts", {"name": f"a{i}"})["id"], range(20)))
        assert {a["id"] for a in api.ok("GET", f"{API}/artifacts?limit=100")["items"]} == set(made)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while len(_children(proc.pid) - {victim}) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        assert all(api.get("/healthz").status == 200 for _ in range(20))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not _children(proc.pid)


@pytest.fixture
def on_postgres(tmp_path: Path, postgres: Postgres) -> Iterator[Api]:
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, catalog=postgres.database()))
    try:
        yield srv.start()
    finally:
        srv.stop()


def test_postgres_restarted_under_load_the_servers_reconnect(on_postgres: Api, postgres: Postgres):
    api = on_postgres
    statuses: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            r = api.get(f"{API}/artifacts")
            statuses.append((r.status, r.headers.get("Retry-After")))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    postgres.restart()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert statuses and {s for s, _ in statuses} <= {200, 503}
    assert all(retry == "1" for s, retry in statuses if s == 503)
    assert statuses[-1][0] == 200
    assert api.ok("POST", f"{API}/artifacts", {"name": "after"})["name"] == "after"


def test_postgres_down_answers_503_and_records_nothing(on_postgres: Api, postgres: Postgres):
    api = on_postgres
    api.ok("POST", f"{API}/artifacts", {"name": "before"})
    postgres.stop_server()
    try:
        body = problem(api.post(f"{API}/artifacts", {"name": "during"}), 503)
        assert "catalog database" in body["detail"]
        assert problem(api.get(f"{API}/artifacts"), 503)
    finally:
        postgres.start_server()
    names = [a["name"] for a in api.ok("GET", f"{API}/artifacts")["items"]]
    assert names == ["before"]


@pytest.mark.parametrize(
    ("catalog", "says"),
    [
        ("mysql://db/ferryman", "expected sqlite:///path or postgresql://"),
        ("postgresql://nobody@127.0.0.1:{port}/x", 'role "nobody" does not exist'),
        ("postgresql://ferryman@127.0.0.1:1/x", "cannot use it"),
        ("postgresql://ferryman@127.0.0.1:{port}/postgres", "run `ferryman migrate"),
    ],
)
def test_a_bad_catalog_is_one_line_at_start(tmp_path: Path, postgres: Postgres, catalog: str, says: str):
    cmd = [sys.executable, "-m", "ferryman", "serve", "--data", str(tmp_path), "--catalog", catalog.format(port=postgres.port)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr
