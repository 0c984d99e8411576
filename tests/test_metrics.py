"""``GET /metrics``: the Prometheus text format, parsed with prometheus_client's own parser,
with counters that match the traffic sent (requests by route and status, update checks by
decision, reports, bytes served and uploaded, webhook deliveries) and rollout gauges that match
the stats; summed across ``serve --workers`` processes; off with ``--no-metrics``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import ADMIN, Api, ThreadServer, free_port
from prometheus_client.parser import text_string_to_metric_families
from test_server_binaries import problem
from test_server_fleet import API, Fleet, check
from test_webhooks import Receiver

from ferryman.config import Config

TARGET = "x86_64-linux-gnu"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: Api) -> Samples:
    r = api.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Api]:
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, webhook_allow_private=True))
    yield srv.start()
    srv.stop()


def test_counters_match_the_traffic_sent(server: Api):
    receiver = Receiver().start()
    try:
        hook = server.ok("POST", f"{API}/webhooks", {"url": receiver.url("/h"), "events": ["update.*"]})
        receiver.secrets["/h"] = hook["secret"]
        fleet = Fleet(server)
        b1, b2 = fleet.bundle("1.0.0", targets=[TARGET]), fleet.bundle("2.0.0", targets=[TARGET])
        ch = fleet.channel("stable")
        cohort = server.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": ch["id"]})
        r1 = fleet.release(ch, "v1", b1)
        r2 = fleet.release(ch, "v2", b2)
        devices = [fleet.device(f"d{i}", TARGET, cohort)[1] for i in range(6)]
        before = scrape(server)

        on_v1 = {"release_id": r1["id"], "bundle_id": b1["id"]}
        answers = [check(d, on_v1) for d in devices]  # 6 updates
        for d in devices[:2]:
            check(d, {"release_id": r2["id"], "bundle_id": b2["id"]})  # 2 at_latest
        url = urlsplit(answers[0]["binaries"][0]["url"]).path
        size = answers[0]["binaries"][0]["size"]
        assert server.as_(None).get(url).status == 200
        assert server.as_(None).get(url, headers={"Range": "bytes=0-99"}).status == 206
        for i, d in enumerate(devices[:4]):
            status = "failed" if i == 3 else "installed"
            assert d.post("/device/v1/report", {"bundle_id": b2["id"], "release_id": r2["id"], "status": status}).status == 200
        assert problem(server.get(f"{API}/releases/rel_00000000000000000000000000"), 404)
        assert server.as_("wrong").get(f"{API}/channels").status == 401
        assert server.get("/no/such/path").status == 404
        deadline = time.monotonic() + 10
        while len(receiver.of("/h")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        after = scrape(server)
    finally:
        receiver.stop()

    checks = dict(route="/device/v1/update", method="GET", status="200")
    assert delta(before, after, "ferryman_http_requests_total", **checks) == 8
    assert delta(before, after, "ferryman_http_request_duration_seconds_count", route="/device/v1/update") == 8
    assert delta(before, after, "ferryman_update_checks_total", status="update", reason="release") == 6
    assert delta(before, after, "ferryman_update_checks_total", status="no_update", reason="at_latest") == 2
    assert delta(before, after, "ferryman_device_reports_total", status="installed") == 3
    assert delta(before, after, "ferryman_device_reports_total", status="failed") == 1
    report = dict(route="/device/v1/report", method="POST", status="200")
    assert delta(before, after, "ferryman_http_requests_total", **report) == 4
    assert delta(before, after, "ferryman_http_requests_total", route="/api/v1/releases/{release_id}", method="GET",
                 status="404") == 1  # fmt: skip
    assert delta(before, after, "ferryman_http_requests_total", route="/api/v1/channels", method="GET", status="401") == 1
    assert delta(before, after, "ferryman_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta(before, after, "ferryman_download_bytes_total", route="/dl/{token}") == size + 100
    assert delta(before, after, "ferryman_webhook_deliveries_total", outcome="delivered") == 4
    assert delta(before, after, "ferryman_webhook_delivery_duration_seconds_count") == 4
    # Uploads and hashing were counted when the fleet's binaries were made (before the first scrape).
    assert value(before, "ferryman_upload_bytes_total") >= 2 * 1000 and value(before, "ferryman_hashed_bytes_total") >= 2000
    assert value(before, "ferryman_hashing_seconds_total") > 0
    # Rollout gauges: what the stats say (once the offers are written, within a second).
    deadline = time.monotonic() + 10
    while server.ok("GET", f"{API}/releases/{r2['id']}/stats")["devices"] < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = server.ok("GET", f"{API}/releases/{r2['id']}/stats")["outcomes"]
    after = scrape(server)
    for outcome, n in stats.items():
        assert value(after, "ferryman_rollout_devices", release_id=r2["id"], channel_id=ch["id"], outcome=outcome) == n
    assert stats["installed"] == 3 and stats["failed"] == 1 and stats["offered"] == 2
    assert value(after, "ferryman_release_halted", release_id=r2["id"], channel_id=ch["id"]) == 0


def test_metrics_need_a_token_and_can_be_turned_off(server: Api, tmp_path: Path):
    assert problem(server.as_(None).get("/metrics"), 401)
    viewer = server.ok("POST", f"{API}/api-keys", {"name": "prom", "role": "viewer"})["token"]
    assert server.as_(viewer).get("/metrics").status == 200
    off = ThreadServer(Config(data_dir=tmp_path / "off", admin_token=ADMIN, metrics=False))
    api = off.start()
    try:
        assert problem(api.get("/metrics"), 404)
    finally:
        off.stop()


def test_workers_are_summed(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "FERRYMAN_ADMIN_TOKEN": ADMIN}
    cmd = [sys.executable, "-m", "ferryman", "serve", "--workers", "2", "--port", str(port), "--data", str(tmp_path / "d")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = Api("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if api.get("/healthz").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "workers did not start"
            time.sleep(0.1)
        time.sleep(1.0)  # both workers up
        before = scrape(api)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: api.get("/healthz"), range(200)))
        api.get("/healthz")
        after = scrape(api)
        # Each scrape, whichever worker answers it, counts every worker's requests.
        assert delta(before, after, "ferryman_http_requests_total", route="/healthz", method="GET", status="200") == 201
        assert delta(before, after, "ferryman_http_requests_total", route="/metrics", method="GET", status="200") == 1
        files = os.listdir(tmp_path / "d" / "metrics")
        assert len({f.rsplit("_", 1)[1] for f in files if f.startswith("counter_")}) == 2  # two workers recorded
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
