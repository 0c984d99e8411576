"""Update outcomes and rollout health over HTTP: structured reports, per-device history,
stats per release, cohort and channel, a release halting itself on its failure threshold,
hold and resume, scheduled phase steps, and the CLI's stats and watch."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ThreadServer
from services import catalog_for
from test_server_binaries import problem
from test_server_fleet import API, Fleet, check

from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.catalog.sql import SqlCatalog
from ferryman.cli import main
from ferryman.config import Config
from ferryman.errors import Invalid, Unauthenticated
from ferryman.releases import in_percent

TARGET = "x86_64-linux-gnu"


@pytest.fixture
def ops(tmp_path: Path, catalog_url: str | None):
    """A service whose scheduled steps are looked for five times a second."""
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, catalog=catalog_url,
                              rollout_check_interval=0.2, webhook_allow_private=True))  # fmt: skip
    api = srv.start()
    yield api
    srv.stop()


class Rollout:
    """A channel with v1 (every device on it) and v2, a cohort and devices in it."""

    def __init__(self, api: Api, devices: int, **v2: object) -> None:
        self.api = api
        fleet = Fleet(api)
        self.b1, self.b2 = (fleet.bundle(v, targets=[TARGET]) for v in ("1.0.0", "2.0.0"))
        self.channel = fleet.channel("stable")
        self.cohort = api.ok("POST", f"{API}/cohorts", {"name": "fleet", "channel_id": self.channel["id"]})
        self.r1 = fleet.release(self.channel, "v1", self.b1, version="1.0.0")
        self.r2 = fleet.release(self.channel, "v2", self.b2, version="2.0.0", **v2)
        self.devices = [fleet.device(f"d{i:03d}", TARGET, self.cohort) for i in range(devices)]
        self.on_v1 = {"release_id": self.r1["id"], "bundle_id": self.b1["id"]}

    def report(self, device: Api, status: str, release: dict | None = None, **extra: object) -> dict:
        rel = release or self.r2
        body = {"bundle_id": rel["bundle_id"], "release_id": rel["id"], "version": rel["version"], "status": status, **extra}
        r = device.post("/device/v1/report", body)
        assert r.status == 200, r
        return r.json

    def stats(self, release: dict | None = None) -> dict:
        return self.api.ok("GET", f"{API}/releases/{(release or self.r2)['id']}/stats")


def wait_for(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def outcomes(**n: int) -> dict[str, int]:
    return {s: n.get(s, 0) for s in ("offered", "downloading", "installing", "installed", "failed", "rolled_back")}


def test_a_phased_rollout_halts_itself_when_failures_cross_the_threshold(ops: Api):
    r = Rollout(ops, 80, phase={"mode": "percent", "value": 0.2},
                halt={"max_failure_rate": 0.25, "min_reports": 8})  # fmt: skip
    answers = [(d, api, check(api, r.on_v1)) for d, api in r.devices]
    offered = [(d, api) for d, api, a in answers if a["status"] == "update"]
    assert [d["id"] for d, _ in offered] == [d["id"] for d, _ in r.devices if in_percent(d["id"], r.r2["id"], 0.2)]
    assert len(offered) >= 10, "the draw left too few devices in the 20% (re-run)"
    assert all(a["release"]["id"] == r.r2["id"] for *_, a in answers if a["status"] == "update")
    # Offers are recorded with the check-ins (within about a second).
    assert wait_for(lambda: r.stats()["outcomes"] == outcomes(offered=len(offered)))

    # Reports: 5 install; one is still downloading, one installing; 2 fail (7 ended < 8).
    for _, api in offered[:5]:
        r.report(api, "downloading")
        r.report(api, "installing")
        r.report(api, "installed")
    r.report(offered[5][1], "downloading")
    r.report(offered[6][1], "installing")
    r.report(offered[7][1], "failed", reason="checksum_mismatch", detail="slot b did not verify")
    r.report(offered[8][1], "rolled_back", reason="boot_failed")
    s = r.stats()
    rest = len(offered) - 9
    assert s["outcomes"] == outcomes(offered=rest, downloading=1, installing=1, installed=5, failed=1, rolled_back=1)
    assert s["devices"] == len(offered) and s["success_rate"] == pytest.approx(5 / 7)
    assert s["install_seconds"]["count"] == 5 and 0 <= s["install_seconds"]["p50"] <= s["install_seconds"]["p95"] < 60
    assert s["halted"] is False and s["phase"] == {"mode": "percent", "value": 0.2}

    # The third failure makes 3 of 8: 37.5% > 25% with 8 reports. The release halts.
    r.report(offered[9][1], "failed", reason="disk_full")
    s = r.stats()
    assert s["halted"] is True
    assert s["halted_reason"] == "3 of 8 devices failed (37.5%), above max_failure_rate 25.0% (min_reports 8)"
    assert s["outcomes"]["failed"] == 2 and s["outcomes"]["rolled_back"] == 1
    release = ops.ok("GET", f"{API}/releases/{r.r2['id']}")
    assert release["halted"] is True and release["halted_at"]
    halts = ops.ok("GET", f"{API}/events?resource_id={r.r2['id']}&action=halt")["items"]
    assert (
        len(halts) == 1 and halts[0]["after"]["halted_reason"] == s["halted_reason"] and halts[0]["actor"] == offered[9][0]["id"]
    )

    # No new device is offered it: one offered before that never started, and one outside
    # the 20%, both get no_update saying why. Devices that installed it keep it.
    if rest > 1:
        a = check(offered[-1][1], r.on_v1)
        assert (a["status"], a["reason"]) == ("no_update", "release_halted")
    outside = next(api for d, api in r.devices if not in_percent(d["id"], r.r2["id"], 0.2))
    assert check(outside, r.on_v1)["reason"] == "release_halted"
    a = check(offered[0][1], {"release_id": r.r2["id"], "bundle_id": r.b2["id"]})
    assert (a["status"], a["reason"]) == ("no_update", "at_latest")
    # More failures do not halt it twice.
    r.report(offered[6][1], "failed")
    assert len(ops.ok("GET", f"{API}/events?resource_id={r.r2['id']}&action=halt")["items"]) == 1

    # Resumed: offered again (and, still above its rule, halted again by the next failure).
    resumed = ops.ok("PATCH", f"{API}/releases/{r.r2['id']}", {"halted": False})
    assert resumed["halted"] is False and resumed["halted_reason"] is None
    if rest > 1:
        assert check(offered[-1][1], r.on_v1)["status"] == "update"
    r.report(offered[5][1], "failed")
    assert r.stats()["halted"] is True


def test_stats_per_cohort_and_channel_add_up_their_releases(ops: Api):
    r = Rollout(ops, 6)
    other = ops.ok("POST", f"{API}/cohorts", {"name": "lab", "channel_id": r.channel["id"]})
    lab = ops.ok("PATCH", f"{API}/devices/{r.devices[5][0]['id']}", {"cohort_id": other["id"]})
    assert lab["cohort_id"] == other["id"]
    for i, (_, api) in enumerate(r.devices):
        check(api, r.on_v1)
        r.report(api, ("installed", "failed", "rolled_back", "installed", "downloading", "installed")[i])
    # A device new to the fleet is offered v2 directly and reports on v1 (an older image).
    r.report(r.devices[0][1], "installed", release=r.r1)
    cohort = ops.ok("GET", f"{API}/cohorts/{r.cohort['id']}/stats")
    assert cohort["scope"] == "cohort" and cohort["devices"] == 6
    assert cohort["outcomes"] == outcomes(installed=3, failed=1, rolled_back=1, downloading=1)
    per = {x["release_id"]: x for x in cohort["releases"]}
    assert per[r.r2["id"]]["outcomes"] == outcomes(installed=2, failed=1, rolled_back=1, downloading=1)
    assert per[r.r1["id"]]["devices"] == 1 and per[r.r1["id"]]["name"] == "v1"
    lab_stats = ops.ok("GET", f"{API}/cohorts/{other['id']}/stats")
    assert lab_stats["outcomes"] == outcomes(installed=1)
    channel = ops.ok("GET", f"{API}/channels/{r.channel['id']}/stats")
    assert channel["devices"] == 7 and channel["outcomes"]["installed"] == 4
    assert channel["success_rate"] == pytest.approx(4 / 6)
    assert problem(ops.get(f"{API}/cohorts/coh_00000000000000000000000000/stats"), 404)
    assert problem(ops.get(f"{API}/releases/nope/stats"), 404)


def test_reports_are_checked_and_a_refused_one_changes_nothing(ops: Api):
    r = Rollout(ops, 1)
    device, api = r.devices[0]
    check(api, r.on_v1)
    before = r.stats()
    bad = [
        ({"bundle_id": r.b2["id"], "status": "exploded"}, 422),
        ({"bundle_id": "bun_00000000000000000000000000", "status": "failed"}, 422),
        ({"bundle_id": r.b2["id"], "release_id": r.r1["id"], "status": "failed"}, 422),
        ({"bundle_id": r.b2["id"], "status": "failed", "reason": "has spaces"}, 422),
        ({"bundle_id": r.b2["id"], "status": "failed", "reason": "x" * 129}, 422),
    ]
    for body, status in bad:
        assert problem(api.post("/device/v1/report", body), status)
    assert problem(ops.as_("fd_wrong").post("/device/v1/report", {"bundle_id": r.b2["id"], "status": "failed"}), 401)
    assert r.stats() == before
    assert ops.ok("GET", f"{API}/devices/{device['id']}/reports")["items"] == []
    # Without release_id, the report is about the release that offered the device its bundle.
    ok = api.post("/device/v1/report", {"bundle_id": r.b2["id"], "status": "failed", "reason": "no_space"})
    assert ok.status == 200
    assert r.stats()["outcomes"]["failed"] == 1
    history = ops.ok("GET", f"{API}/devices/{device['id']}/reports")["items"]
    assert [(h["status"], h["reason"], h["release_id"]) for h in history] == [("failed", "no_space", r.r2["id"])]


def test_each_device_keeps_its_last_hundred_reports(ops: Api):
    r = Rollout(ops, 1)
    device, api = r.devices[0]
    for i in range(105):
        r.report(api, "downloading", detail=f"report {i}")
    history = ops.ok("GET", f"{API}/devices/{device['id']}/reports?limit=500")["items"]
    assert [h["detail"] for h in history] == [f"report {i}" for i in range(104, 4, -1)]
    assert len(ops.ok("GET", f"{API}/devices/{device['id']}/reports?limit=3")["items"]) == 3
    assert ops.ok("GET", f"{API}/devices/{device['id']}")["last_status"] == "downloading"


def test_reports_arriving_together_are_each_recorded(ops: Api):
    r = Rollout(ops, 24)

    def one(i: int) -> None:
        _, api = r.devices[i]
        r.report(api, "installed" if i % 3 else "failed", detail=str(i))

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(one, range(24)))
    assert r.stats()["outcomes"] == outcomes(installed=16, failed=8)
    for i in (0, 7, 23):
        d, _ = r.devices[i]
        assert [h["detail"] for h in ops.ok("GET", f"{API}/devices/{d['id']}/reports")["items"]] == [str(i)]
    installed = [ops.ok("GET", f"{API}/devices/{d['id']}")["reported_release_id"] for d, _ in r.devices]
    assert installed.count(r.r2["id"]) == 16 and installed.count(None) == 8


def test_a_hold_by_hand_and_a_resume_are_logged_and_change_answers(ops: Api):
    r = Rollout(ops, 1)
    _, api = r.devices[0]
    assert check(api, r.on_v1)["status"] == "update"
    held = ops.ok("PATCH", f"{API}/releases/{r.r2['id']}", {"halted": True})
    assert held["halted"] is True and held["halted_reason"] == "held by env:FERRYMAN_ADMIN_TOKEN"
    assert check(api, r.on_v1)["reason"] == "release_halted"
    ops.ok("PATCH", f"{API}/releases/{r.r2['id']}", {"halted": False})
    assert check(api, r.on_v1)["status"] == "update"
    actions = [e["action"] for e in ops.ok("GET", f"{API}/events?resource_id={r.r2['id']}")["items"]]
    assert actions[-2:] == ["halt", "resume"]
    for bad in ({"max_failure_rate": 1.5}, {"min_reports": 5}, {}, {"max_failures": -1}):
        assert problem(ops.patch(f"{API}/releases/{r.r2['id']}", {"halt": bad}), 422)


def _at(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_scheduled_phase_steps_apply_on_time_and_wait_while_halted(ops: Api):
    steps = [{"at": _at(60), "phase": None}, {"at": _at(0.6), "phase": {"mode": "percent", "value": 1.0}}]
    r = Rollout(ops, 1, phase={"mode": "percent", "value": 0.0}, advance=steps)
    _, api = r.devices[0]
    assert [s["phase"] for s in r.r2["advance"]] == [{"mode": "percent", "value": 1.0}, None]  # in time order
    assert check(api, r.on_v1)["reason"] == "none_selectable"
    rel = wait_for(lambda: (x := ops.ok("GET", f"{API}/releases/{r.r2['id']}"))["phase"]["value"] == 1.0 and x)
    assert rel and len(rel["advance"]) == 1 and rel["advance"][0]["phase"] is None
    assert check(api, r.on_v1)["status"] == "update"
    assert [e["actor"] for e in ops.ok("GET", f"{API}/events?resource_id={r.r2['id']}&action=advance")["items"]] == ["server"]

    # A halted release does not advance; resumed, it goes to where its schedule stands.
    held = ops.ok("PATCH", f"{API}/releases/{r.r2['id']}", {"halted": True, "phase": {"mode": "percent", "value": 0.1},
                                                           "advance": [{"at": _at(0.3), "phase": None}]})  # fmt: skip
    assert held["advance"] and held["halted"]
    time.sleep(1.0)
    assert ops.ok("GET", f"{API}/releases/{r.r2['id']}")["phase"] == {"mode": "percent", "value": 0.1}
    ops.ok("PATCH", f"{API}/releases/{r.r2['id']}", {"halted": False})
    assert wait_for(lambda: ops.ok("GET", f"{API}/releases/{r.r2['id']}")["advance"] is None)
    assert ops.ok("GET", f"{API}/releases/{r.r2['id']}")["phase"] is None
    two_at_once = [{"at": "2030-01-01T00:00:00Z", "phase": None}, {"at": "2030-01-01T00:00:00.000Z", "phase": None}]
    assert problem(ops.patch(f"{API}/releases/{r.r2['id']}", {"advance": two_at_once}), 422)


def test_the_cli_shows_stats_and_watches_a_rollout_until_halted_or_done(ops: Api, capsys):
    r = Rollout(ops, 3, halt={"max_failures": 0})
    url = f"http://{ops.host}:{ops.port}"
    base = ["--url", url, "--token", ADMIN]
    for _, api in r.devices:
        check(api, r.on_v1)
    r.report(r.devices[0][1], "installed")
    assert wait_for(lambda: r.stats()["devices"] == 3)
    capsys.readouterr()
    assert main(["releases", "stats", r.r2["id"], *base]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["OFFERED", "DOWNLOADING", "INSTALLING", "INSTALLED", "FAILED", "ROLLED_BACK"]
    assert table[1].split() == ["2", "0", "0", "1", "0", "0"]
    assert "devices 3, success rate 100.0%" in table[2] and table[3] == "phase: every device"
    assert main(["releases", "stats", r.r2["id"], "--json", *base]) == 0
    assert json.loads(capsys.readouterr().out) == r.stats()

    # watch: the remaining two install, so the rollout is done (exit 0).
    def finish() -> None:
        time.sleep(0.5)
        for _, api in r.devices[1:]:
            r.report(api, "installed")

    threading.Thread(target=finish).start()
    assert main(["rollout", "watch", r.r2["id"], "--interval", "0.1", "--timeout", "20", *base]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[" + "#" * 10) and lines[-1].startswith(f"release {r.r2['id']} rolled out: 3 installed")
    # One failure halts it (max_failures 0): watch says so and exits 1.
    r.report(r.devices[2][1], "rolled_back", reason="watchdog")
    assert main(["rollout", "watch", r.r2["id"], "--interval", "0.1", *base]) == 1
    assert "halted: 1 devices failed, more than max_failures 0" in capsys.readouterr().err
    assert main(["releases", "resume", r.r2["id"], *base]) == 0
    assert capsys.readouterr().out == f"{r.r2['id']} resumed\n"
    assert main(["releases", "hold", r.r2["id"], "--json", *base]) == 0
    assert json.loads(capsys.readouterr().out)["halted"] is True
    assert main(["releases", "stats", "rel_00000000000000000000000000", *base]) == 1


def test_a_group_of_reports_lands_as_if_sent_one_after_the_other(ops: Api, tmp_path: Path):
    """The catalog's group write, called directly on the server's database: two reports of
    one device in one group, a refused one between them, and an unknown token."""
    r = Rollout(ops, 2, halt={"max_failures": 0})
    (d0, _), (d1, _) = r.devices
    t0, t1 = hash_token(d0["token"]), hash_token(d1["token"])

    def body(status: str, **kw: object) -> m.DeviceReport:
        return m.DeviceReport(bundle_id=r.b2["id"], release_id=r.r2["id"], status=status, **kw)  # type: ignore[arg-type]

    async def scenario() -> None:
        catalog = await SqlCatalog.open(catalog_for(Config(data_dir=tmp_path / "data").catalog_path))
        try:
            group = [
                (t0, body("downloading")),
                (t0, m.DeviceReport(bundle_id=r.b1["id"], release_id=r.r2["id"], status="failed")),
                (hash_token("fd_nobody"), body("installed")),
                (t0, body("installed")),
                (t1, body("failed", reason="io")),
            ]
            out = await catalog.report_many(group)
            assert isinstance(out[1], Invalid) and isinstance(out[2], Unauthenticated)
            assert [o.last_status for o in (out[0], out[3], out[4])] == ["downloading", "installed", "failed"]
            assert out[3].reported_release_id == r.r2["id"] and out[0].reported_release_id is None
            history = await catalog.device_reports(d0["id"], 10)
            assert [h.status for h in history] == ["installed", "downloading"]
            stats = await catalog.release_stats(r.r2["id"])
            assert (stats.outcomes.installed, stats.outcomes.failed, stats.halted) == (1, 1, True)
            page = await catalog.list_events(10, None, {"resource_id": d0["id"], "action": "report"})
            assert [e.after["report"]["status"] for e in page.items] == ["downloading", "installed"]
            assert [e.actor for e in page.items] == [d0["id"], d0["id"]]
        finally:
            await catalog.close()

    asyncio.run(scenario())
