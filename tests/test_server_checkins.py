"""The check-in caches: bookkeeping (uploads, reports, check-ins themselves) leaves the fleet
snapshot and the encoded answers warm; a change that can change an answer drops them."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ThreadServer
from test_server_fleet import Fleet, check, install

from ferryman.config import Config
from ferryman.server.keys import ANSWERS, CHECKINS
from ferryman.services.checkins import FLUSH_SECONDS

API = "/api/v1"
PART = 5 << 20


@pytest.fixture
def live(tmp_path: Path, catalog_url: str | None):
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, catalog=catalog_url))
    api = srv.start().as_(ADMIN)
    yield srv, api
    srv.stop()


def _counters(srv: ThreadServer) -> tuple[int, int]:
    return srv.app[CHECKINS].rebuilds, srv.app[ANSWERS].encoded


def test_uploads_reports_and_check_ins_leave_the_caches_warm(live: tuple[ThreadServer, Api]):
    srv, api = live
    fleet = Fleet(api)
    bundle = fleet.bundle("1.0.0")
    channel = fleet.channel("stable")
    fleet.release(channel, "r1", bundle)
    cohort = api.ok("POST", f"{API}/cohorts", {"name": "all", "channel_id": channel["id"]})
    _, dev = fleet.device("d1", "x86_64-linux-gnu", cohort)
    _, other = fleet.device("d2", "x86_64-linux-gnu", cohort)
    manifest = check(dev)
    assert manifest["status"] == "update"
    check(other)
    warm = _counters(srv)

    # Bookkeeping of every kind while devices keep polling.
    ver = api.ok("POST", f"{API}/artifacts/{fleet.artifact['id']}/versions", {"version": "2.0.0"})
    data = os.urandom(2 * PART)
    b = api.ok("POST", f"{API}/versions/{ver['id']}/binaries",
               {"target": "x86_64-linux-gnu", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "part_size": PART})  # fmt: skip
    for index in (1, 2):
        assert api.put(f"{API}/binaries/{b['id']}/parts/{index}", data[(index - 1) * PART : index * PART]).status == 200
        assert check(other) == manifest
    install(dev, manifest)
    time.sleep(FLUSH_SECONDS + 0.5)  # buffered check-ins written meanwhile
    for _ in range(3):
        assert check(other) == manifest
    assert _counters(srv) == warm, "bookkeeping dropped the snapshot or the encoded answers"

    # A change that can change an answer is seen at once, and rebuilds.
    api.ok("PATCH", f"{API}/devices/{api.ok('GET', f'{API}/devices')['items'][1]['id']}", {"quarantined": True})
    assert check(other)["status"] == "quarantined"
    rebuilds, encoded = _counters(srv)
    assert rebuilds == warm[0] + 1 and encoded > warm[1]
