"""Device tokens (rotation, deletion), validated reports, and the URLs handed to devices."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import ADMIN, Api, ThreadServer
from test_server_binaries import problem
from test_server_fleet import Fleet, check, install

from ferryman.cli import main
from ferryman.config import Config

API = "/api/v1"


@pytest.fixture
def fleet(server: Api) -> Fleet:
    return Fleet(server)


def _rollout(fleet: Fleet) -> tuple[dict, dict, dict]:
    bundle = fleet.bundle("1.0.0", targets=["aarch64-linux-gnu"])
    channel = fleet.channel("stable")
    release = fleet.release(channel, "v1", bundle, version="1.0.0")
    cohort = fleet.api.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": channel["id"]})
    return bundle, release, cohort


def test_rotating_a_token_cuts_the_old_one_at_once(fleet: Fleet, server: Api):
    _, _, cohort = _rollout(fleet)
    dev, old = fleet.device("d1", "aarch64-linux-gnu", cohort)
    assert check(old)["status"] == "update"  # warms the answer and device caches
    rotated = server.ok("POST", f"{API}/devices/{dev['id']}/token")
    assert rotated["token"].startswith("fd_") and rotated["token"] != dev["token"]
    assert problem(old.get("/device/v1/update"), 401)
    assert check(server.as_(rotated["token"]))["status"] == "update"
    assert "token" not in server.ok("GET", f"{API}/devices/{dev['id']}")


def test_deleting_a_device_revokes_it_and_keeps_its_trail(fleet: Fleet, server: Api):
    _, _, cohort = _rollout(fleet)
    dev, api = fleet.device("d1", "aarch64-linux-gnu", cohort)
    check(api)
    assert server.call("DELETE", f"{API}/devices/{dev['id']}").status == 204
    assert problem(api.get("/device/v1/update"), 401)
    assert problem(api.post("/device/v1/report", {"bundle_id": "bun_" + "0" * 26, "status": "failed"}), 401)
    problem(server.get(f"{API}/devices/{dev['id']}"), 404)
    events = server.ok("GET", f"{API}/events?resource_id={dev['id']}&limit=500")["items"]
    assert events[0]["action"] == "create" and events[-1]["action"] == "delete"
    assert events[-1]["before"]["identifier"] == "d1"
    # The identifier is free again.
    fleet.device("d1", "aarch64-linux-gnu", cohort)


def test_device_roles(fleet: Fleet, server: Api):
    dev, _ = fleet.device("d1", "aarch64-linux-gnu")
    viewer = server.ok("POST", f"{API}/api-keys", {"name": "v", "role": "viewer"})["token"]
    problem(server.as_(viewer).post(f"{API}/devices/{dev['id']}/token"), 403)
    problem(server.as_(viewer).call("DELETE", f"{API}/devices/{dev['id']}"), 403)
    problem(server.as_(dev["token"]).post(f"{API}/devices/{dev['id']}/token"), 401)


def test_reports_must_name_what_the_device_could_have(fleet: Fleet, server: Api):
    bundle, release, cohort = _rollout(fleet)
    other = fleet.bundle("2.0.0", targets=["aarch64-linux-gnu"])  # in no channel, no override
    dev, api = fleet.device("d1", "aarch64-linux-gnu", cohort)
    server.ok("PATCH", f"{API}/devices/{dev['id']}", {"quarantined": True})

    def refused(report: dict, field: str) -> None:
        assert field in problem(api.post("/device/v1/report", report), 422)["errors"]

    refused({"bundle_id": "bun_" + "0" * 26, "status": "installed"}, "bundle_id")
    refused({"bundle_id": "bun_" + "0" * 26, "status": "failed"}, "bundle_id")
    refused({"bundle_id": other["id"], "status": "installed"}, "bundle_id")
    refused({"bundle_id": other["id"], "status": "installed", "release_id": release["id"]}, "bundle_id")
    refused({"bundle_id": bundle["id"], "status": "installed", "release_id": "rel_" + "0" * 26}, "release_id")
    refused({"bundle_id": bundle["id"], "status": "installed", "release_id": release["id"], "version": "9.9.9"}, "version")
    refused({"bundle_id": "bun_0", "status": "installed"}, "bundle_id")
    assert server.ok("GET", f"{API}/devices/{dev['id']}")["reported_bundle_id"] is None
    # A failure with a bundle that exists is recorded without changing what the device has.
    api.ok("POST", "/device/v1/report", {"bundle_id": other["id"], "status": "failed", "detail": "no space"})
    # What its channel serves is accepted, also from a quarantined device.
    api.ok("POST", "/device/v1/report", {"bundle_id": bundle["id"], "status": "installed", "release_id": release["id"]})
    got = server.ok("GET", f"{API}/devices/{dev['id']}")
    assert (got["reported_bundle_id"], got["reported_release_id"]) == (bundle["id"], release["id"])
    # An override makes its bundle acceptable for the devices it names.
    server.ok("POST", f"{API}/bundle-overrides", {"bundle_id": other["id"], "device_ids": [dev["id"]]})
    api.ok("POST", "/device/v1/report", {"bundle_id": other["id"], "status": "installed"})


def test_cli_rotates_and_deletes(fleet: Fleet, server: Api, capsys):
    dev, api = fleet.device("d1", "aarch64-linux-gnu")
    url = ["--url", f"http://{server.host}:{server.port}", "--token", ADMIN]
    assert main(["devices", "rotate-token", dev["id"], *url]) == 0
    new = capsys.readouterr().out.split()[-1]
    assert new.startswith("fd_") and new != dev["token"]
    problem(api.get("/device/v1/update"), 401)
    assert server.as_(new).get("/device/v1/update").status == 200
    assert main(["devices", "delete", dev["id"], *url]) == 0
    problem(server.as_(new).get("/device/v1/update"), 401)
    assert main(["devices", "delete", dev["id"], *url]) == 1
    assert "404" in capsys.readouterr().err


def test_urls_never_come_from_the_host_header(fleet: Fleet, server: Api):
    _, _, cohort = _rollout(fleet)
    _, api = fleet.device("d1", "aarch64-linux-gnu", cohort)
    honest = api.get("/device/v1/update").json
    forged = api.get("/device/v1/update", headers={"Host": "evil.example:666"}).json
    assert forged == honest
    for b in forged["binaries"]:
        assert urlsplit(b["url"]).netloc == f"{server.host}:{server.port}"
    install(api, forged)


def test_urls_come_from_the_public_url(tmp_path: Path):
    config = Config(data_dir=tmp_path / "data", admin_token=ADMIN, public_url="https://updates.example.com/fleet/")
    srv = ThreadServer(config)
    server = srv.start()
    try:
        fleet = Fleet(server)
        _, _, cohort = _rollout(fleet)
        _, api = fleet.device("d1", "aarch64-linux-gnu", cohort)
        m = api.get("/device/v1/update", headers={"Host": "evil.example:666"}).json
        assert m["binaries"] and all(b["url"].startswith("https://updates.example.com/fleet/dl/") for b in m["binaries"])
    finally:
        srv.stop()


@pytest.mark.parametrize("url", ["ftp://x", "https://", "http://h/?q=1", "http://u:p@h/", "http://h:port/", "h.example"])
def test_public_url_must_be_an_http_origin(url: str, tmp_path: Path):
    with pytest.raises(ValueError):
        Config(data_dir=tmp_path, public_url=url)
