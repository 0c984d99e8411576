"""hawkBit's DDI API over HTTP: the protocol's rules checked request by request, and SWUpdate's
suricatta, unmodified, installing a release from Ferryman (a .swu signed by a test CA, uploaded
with the CLI, signed with Ferryman, bundled and released), resuming a cut download, getting
nothing from a phase it is not in, and canceling an action an operator canceled."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import ADMIN, Api, ThreadServer
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tcpproxy import Proxy
from test_server_binaries import problem
from test_server_fleet import API

from ferryman.config import Config

TARGET = "x86_64-linux-gnu"
GATEWAY = "gateway-secret-for-tests"


def wait_for(what: Callable[[], Any], timeout: float = 60, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


class Site:
    """A server (behind ``proxy`` when given: its public URL is then the proxy's), a signing
    key, a channel with a cohort, and helpers to release binaries and register devices."""

    def __init__(self, tmp: Path, catalog: str | None = None, proxy: Proxy | None = None, **config: Any) -> None:
        public = {"public_url": proxy.url} if proxy else {}
        self.srv = ThreadServer(Config(data_dir=tmp / "data", admin_token=ADMIN, catalog=catalog, agent_poll_interval=1,
                                       ddi_gateway_token=GATEWAY, **public, **config))  # fmt: skip
        self.api = self.srv.start()
        if proxy:
            proxy.upstream = self.api.port
        self.url = proxy.url if proxy else f"http://127.0.0.1:{self.api.port}"
        self.sk = ed25519.Ed25519PrivateKey.generate()
        pem = self.sk.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        self.key = self.api.ok("POST", f"{API}/signing-keys", {"name": "ci", "public_key": pem})
        self.artifact = self.api.ok("POST", f"{API}/artifacts", {"name": "firmware"})
        self.channel = self.api.ok("POST", f"{API}/channels", {"name": "stable"})
        self.cohort = self.api.ok("POST", f"{API}/cohorts", {"name": "boards", "channel_id": self.channel["id"]})

    def binary(self, version: str, data: bytes, filename: str | None = "firmware.swu", target: str = TARGET) -> dict:
        api = self.api
        ver = api.ok("POST", f"{API}/artifacts/{self.artifact['id']}/versions", {"version": version})
        body = {"target": target, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "filename": filename}
        b = api.ok("POST", f"{API}/versions/{ver['id']}/binaries", body)
        assert api.put(f"{API}/binaries/{b['id']}/content", data).status == 200
        b = api.wait_state(b["id"], {"signable"})
        sig = self.sk.sign(bytes.fromhex(b["sha256"])).hex()
        api.ok("POST", f"{API}/binaries/{b['id']}/signatures", {"signing_key_id": self.key["id"], "signature": sig})
        return api.ok("GET", f"{API}/binaries/{b['id']}")

    def release(self, binary_ids: list[str], name: str, **fields: Any) -> dict:
        bundle = self.api.ok("POST", f"{API}/bundles", {"binaries": binary_ids})
        body = {"name": name, "bundle_id": bundle["id"], **fields}
        return self.api.ok("POST", f"{API}/channels/{self.channel['id']}/releases", body)

    def device(self, identifier: str, **fields: Any) -> dict:
        body = {"identifier": identifier, "target": TARGET, "cohort_id": self.cohort["id"], **fields}
        return self.api.ok("POST", f"{API}/devices", body)

    def actions(self, device: dict) -> list[dict]:
        return self.api.ok("GET", f"{API}/devices/{device['id']}/actions")["items"]

    def stop(self) -> None:
        self.srv.stop()


class Controller:
    """A device speaking DDI by hand."""

    def __init__(self, site: Site, identifier: str, token: str, scheme: str = "TargetToken", tenant: str = "DEFAULT") -> None:
        self.api = Api(site.api.host, site.api.port, None)
        self.base = f"/{tenant}/controller/v1/{identifier}"
        self.auth = {"Authorization": f"{scheme} {token}"}

    def get(self, path: str = "") -> Any:
        r = self.api.get(self.base + path, headers=self.auth)
        assert r.status == 200, r
        return r.json

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.api.call(method, self.base + path, body, headers=self.auth)

    def feedback(self, action_id: str, execution: str, finished: str = "none", time_: Any = "20261204T050000", **kw: Any):
        body = {"id": int(action_id), "time": time_, "status": {"execution": execution, "result": {"finished": finished}, **kw}}
        return self.call("POST", f"/deploymentBase/{action_id}/feedback", body)


@pytest.fixture
def site(tmp_path: Path, catalog_url: str | None) -> Iterator[Site]:
    s = Site(tmp_path, catalog_url)
    yield s
    s.stop()


def _path(href: str) -> str:
    return "/" + href.split("/", 3)[3]


def test_an_update_from_poll_to_closed_success(site: Site):
    data = os.urandom(5000)
    b = site.binary("1.0.1", data)
    rel = site.release([b["id"]], "v1", version="1.0.1")
    dev = site.device("board-1")
    c = Controller(site, "board-1", dev["token"])
    root = c.get()
    assert root["config"] == {"polling": {"sleep": "00:00:01"}}
    href = root["_links"]["deploymentBase"]["href"]
    assert href.startswith(site.url + "/DEFAULT/controller/v1/board-1/deploymentBase/")
    assert root["_links"]["configData"]["href"] == site.url + "/DEFAULT/controller/v1/board-1/configData"
    deployment = c.api.get(_path(href), headers=c.auth).json
    action_id = deployment["id"]
    (chunk,) = deployment["deployment"]["chunks"]
    assert (chunk["part"], chunk["version"], chunk["name"]) == ("os", "1.0.1", "firmware")
    (art,) = chunk["artifacts"]
    assert art["filename"] == "firmware.swu" and art["size"] == len(data)
    assert art["hashes"] == {"sha1": hashlib.sha1(data).hexdigest(), "md5": hashlib.md5(data).hexdigest(),
                             "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    dl = _path(art["_links"]["download-http"]["href"])
    got = c.api.get(dl, headers={**c.auth, "Range": "bytes=100-"})
    assert (
        got.status == 206 and got.body == data[100:] and got.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    )
    # A second poll while it installs: the same action (never a second one).
    assert c.get()["_links"]["deploymentBase"]["href"] == href
    assert c.feedback(action_id, "proceeding", details=["Installing"]).status == 200
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["last_status"] == "installing"
    assert c.feedback(action_id, "closed", "success", details=["Update Installed."]).status == 200
    assert "deploymentBase" not in c.get().get("_links", {})
    device = site.api.ok("GET", f"{API}/devices/{dev['id']}")
    assert (device["reported_release_id"], device["reported_version"]) == (rel["id"], "1.0.1")
    stats = site.api.ok("GET", f"{API}/releases/{rel['id']}/stats")
    assert stats["outcomes"]["installed"] == 1
    (action,) = site.actions(dev)
    assert (action["status"], action["result"], action["detail"]) == ("closed", "success", "Update Installed.")
    # The finished action stays readable as installedBase; no longer as deploymentBase.
    assert c.get(f"/installedBase/{action_id}")["actionHistory"]["status"] == "FINISHED"
    problem(c.call("GET", f"/deploymentBase/{action_id}"), 404)
    # A repeated final feedback changes nothing.
    assert c.feedback(action_id, "closed", "failure").status == 200
    assert site.actions(dev)[0]["result"] == "success"


def test_binaries_hashed_before_sha1_and_md5_were_kept_get_them_at_start(tmp_path: Path, catalog_url: str | None):
    from sqlalchemy import create_engine, text

    from ferryman.catalog.sql.engines import engine_url

    site = Site(tmp_path, catalog_url)
    data = os.urandom(70_000)
    b = site.binary("1.0.1", data)
    site.stop()
    url = engine_url(catalog_url or f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite3'}")
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    with engine.begin() as conn:  # as a binary hashed before migration 0006 is
        conn.execute(text("UPDATE binaries SET sha1 = NULL, md5 = NULL"))
    engine.dispose()
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, catalog=catalog_url))
    api = srv.start()
    try:
        got = wait_for(lambda: api.ok("GET", f"{API}/binaries/{b['id']}").get("sha1"), 30)
        assert got == hashlib.sha1(data).hexdigest()
        assert api.ok("GET", f"{API}/binaries/{b['id']}")["md5"] == hashlib.md5(data).hexdigest()
    finally:
        srv.stop()


def test_a_failed_install_is_reported_and_not_offered_again(site: Site):
    b = site.binary("1.0.1", os.urandom(3000))
    rel = site.release([b["id"]], "v1", version="1.0.1")
    dev = site.device("board-1")
    c = Controller(site, "board-1", dev["token"])
    action_id = _path(c.get()["_links"]["deploymentBase"]["href"]).split("/")[-1].split("?")[0]
    assert c.feedback(action_id, "closed", "failure", details=["checksum mismatch"]).status == 200
    assert "deploymentBase" not in c.get().get("_links", {})
    assert site.api.ok("GET", f"{API}/releases/{rel['id']}/stats")["outcomes"]["failed"] == 1
    assert site.actions(dev)[0]["result"] == "failure"


@pytest.mark.parametrize("time_", ["20261204T050000", "2026-12-04T05:00:00+01:00", 1764824400, None, "", "garbage"])
def test_feedback_with_odd_time_formats_is_taken(site: Site, time_: Any):
    site.release([site.binary("1.0.1", os.urandom(100))["id"]], "v1")
    dev = site.device("board-1")
    c = Controller(site, "board-1", dev["token"])
    action_id = _path(c.get()["_links"]["deploymentBase"]["href"]).split("/")[-1].split("?")[0]
    assert c.feedback(action_id, "closed", "success", time_=time_).status == 200
    assert site.actions(dev)[0]["status"] == "closed"


def test_credentials_tenants_and_other_devices(site: Site):
    site.release([site.binary("1.0.1", os.urandom(100))["id"]], "v1")
    a, b = site.device("board-a"), site.device("board-b")
    assert Controller(site, "board-a", a["token"]).get()
    for token, scheme, who in [
        ("nope", "TargetToken", "board-a"),  # no such token
        (b["token"], "TargetToken", "board-a"),  # another device's token
        ("", "TargetToken", "board-a"),
        (a["token"], "Bearer", "board-a"),  # not a DDI scheme
        ("wrong", "GatewayToken", "board-a"),
        (a["token"], "GatewayToken", "board-a"),
        (GATEWAY, "TargetToken", "board-a"),
        (GATEWAY, "GatewayToken", "board-zz"),  # no such device
    ]:
        r = Controller(site, who, token, scheme).call("GET", "")
        problem(r, 401)
    # The gateway token stands for any device of the tenant; the tenant is compared without case.
    assert "deploymentBase" in Controller(site, "board-b", GATEWAY, "GatewayToken", tenant="default").get()["_links"]
    problem(Controller(site, "board-a", a["token"], tenant="other").call("GET", ""), 404)
    # An action of another device is not found (not shown).
    other = _path(Controller(site, "board-b", b["token"]).get()["_links"]["deploymentBase"]["href"])
    mine = Controller(site, "board-a", a["token"])
    problem(mine.api.get(other.replace("board-b", "board-a"), headers=mine.auth), 404)
    for bad in ("/deploymentBase/abc", "/deploymentBase/99999999999999999999", "/deploymentBase/424242"):
        problem(Controller(site, "board-a", a["token"]).call("GET", bad), 404)


def test_config_data_is_stored_and_asked_for_only_until_received(site: Site):
    dev = site.device("board-1")
    c = Controller(site, "board-1", dev["token"])
    assert "configData" in c.get()["_links"]
    assert (
        c.call("PUT", "/configData", {"data": {"hwRevision": "2", "serial": 7}, "status": {"execution": "closed"}}).status == 200
    )
    assert "_links" not in c.get()
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["attributes"] == {"hwRevision": "2", "serial": "7"}
    assert c.call("PUT", "/configData", {"data": {"mac": "aa"}}).status == 200
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["attributes"] == {"hwRevision": "2", "serial": "7", "mac": "aa"}
    assert c.call("PUT", "/configData", {"data": {"mac": "bb"}, "mode": "replace"}).status == 200
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["attributes"] == {"mac": "bb"}
    assert c.call("PUT", "/configData", {"data": {"mac": ""}, "mode": "remove"}).status == 200
    assert "attributes" not in site.api.ok("GET", f"{API}/devices/{dev['id']}")
    problem(c.call("PUT", "/configData", {"nodata": 1}), 422)
    problem(c.api.call("PUT", c.base + "/configData", body=b"{", headers={**c.auth, "Content-Type": "application/json"}), 400)


def test_a_disabled_release_and_an_operator_cancel_cancel_the_action(site: Site):
    b = site.binary("1.0.1", os.urandom(100))
    rel = site.release([b["id"]], "v1")
    dev = site.device("board-1")
    c = Controller(site, "board-1", dev["token"])
    first = _path(c.get()["_links"]["deploymentBase"]["href"]).split("/")[-1].split("?")[0]
    site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"disabled": True})
    links = c.get()["_links"]
    assert "deploymentBase" not in links
    cancel = c.api.get(_path(links["cancelAction"]["href"]), headers=c.auth).json
    assert cancel == {"id": first, "cancelAction": {"stopId": first}}
    assert site.actions(dev)[0]["status"] == "canceling"
    body = {"id": int(first), "status": {"execution": "closed", "result": {"finished": "success"}}}
    assert c.call("POST", f"/cancelAction/{first}/feedback", body).status == 200
    assert site.actions(dev)[0]["status"] == "canceled"
    assert set(c.get()["_links"]) == {"configData"}
    # Enabled again: offered again, as a new action; an operator's cancel of that one sticks.
    site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"disabled": False})
    second = _path(c.get()["_links"]["deploymentBase"]["href"]).split("/")[-1].split("?")[0]
    assert second != first
    (canceled,) = site.api.ok("POST", f"{API}/devices/{dev['id']}/actions/cancel")["items"]
    assert (canceled["id"], canceled["status"]) == (int(second), "canceling")
    assert "cancelAction" in c.get()["_links"]
    assert c.call("POST", f"/cancelAction/{second}/feedback", body).status == 200
    assert set(c.get()["_links"]) == {"configData"}
    assert site.api.ok("POST", f"{API}/devices/{dev['id']}/actions/cancel") == {"items": [], "next_cursor": None}


def _cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERRYMAN_URL": f"http://127.0.0.1:{site.api.port}", "FERRYMAN_TOKEN": ADMIN}
    return subprocess.run([sys.executable, "-m", "ferryman", *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_lists_and_cancels_a_devices_actions(site: Site):
    site.release([site.binary("1.0.1", os.urandom(100))["id"]], "v1")
    dev = site.device("board-1")
    assert _cli(site, "devices", "actions", dev["id"]).stdout.strip() == "no actions"
    action_id = _path(Controller(site, "board-1", dev["token"]).get()["_links"]["deploymentBase"]["href"]).split("/")[-1]
    action_id = action_id.split("?")[0]
    listed = json.loads(_cli(site, "devices", "actions", dev["id"], "--json").stdout)
    assert [(a["id"], a["status"]) for a in listed] == [(int(action_id), "open")]
    done = _cli(site, "devices", "cancel", dev["id"])
    assert (done.returncode, done.stdout.strip()) == (0, f"action {action_id} canceling")
    assert _cli(site, "devices", "cancel", dev["id"]).stdout.strip() == "no open action"
    done = _cli(site, "devices", "cancel", "dev_" + "0" * 26)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_a_phased_release_the_device_is_not_in_offers_nothing(site: Site):
    site.release([site.binary("1.0.1", os.urandom(100))["id"]], "v1", phase={"mode": "tags", "tags": ["canary"]})
    plain, canary = site.device("board-1"), site.device("board-2", tags=["canary"])
    assert set(Controller(site, "board-1", plain["token"]).get()["_links"]) == {"configData"}
    assert "deploymentBase" in Controller(site, "board-2", canary["token"]).get()["_links"]
    assert site.actions(plain) == []
    wait_for(lambda: site.api.ok("GET", f"{API}/devices/{plain['id']}")["last_seen_at"], 10)  # written within a second


def test_pending_and_rejected_devices_get_nothing(site: Site):
    dev = site.device("board-1")
    c = Controller(site, "board-1", dev["token"])
    assert c.get()
    site.api.ok("POST", f"{API}/devices/{dev['id']}/reject")
    problem(c.call("GET", ""), 401)
    problem(Controller(site, "board-1", GATEWAY, "GatewayToken").call("GET", ""), 401)


# SWUpdate's suricatta -------------------------------------------------------------------------------

needs_swupdate = pytest.mark.skipif(
    os.environ.get("FERRYMAN_TEST_SERVICES") != "required" and not all(shutil.which(p) for p in ("swupdate", "cpio", "openssl")),
    reason="swupdate and cpio are not installed (.ci/run installs them)",
)


@pytest.fixture
def swu_site(tmp_path: Path) -> Iterator[tuple[Site, Proxy, Path]]:
    from swu import make_ca

    proxy = Proxy(0, after=150_000, mode="cut")
    s = Site(tmp_path, proxy=proxy)
    ca = make_ca(tmp_path / "ca")
    yield s, proxy, ca
    s.stop()
    proxy.close()


def _upload_with_cli(site: Site, path: Path, version: str, key: Path) -> dict:
    env = {**os.environ, "FERRYMAN_URL": f"http://127.0.0.1:{site.api.port}", "FERRYMAN_TOKEN": ADMIN}
    done = subprocess.run([sys.executable, "-m", "ferryman", "upload", str(path), "--artifact", "firmware", "--version",
                           version, "--target", TARGET, "--create", "--sign", str(key), "--json"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_swupdate
def test_suricatta_installs_a_release_resuming_a_cut_download_and_confirms_after_reboot(swu_site, tmp_path: Path):
    from swu import Suricatta, make_swu

    site, proxy, ca = swu_site
    key_dir = tmp_path / "keys"
    subprocess.run([sys.executable, "-m", "ferryman", "keys", "generate", "--out", str(key_dir)], check=True, capture_output=True)
    site.api.ok("POST", f"{API}/signing-keys", {"name": "release", "public_key": (key_dir / "signing.pub").read_text()})
    dest = tmp_path / "device" / "rootfs.img"
    dest.parent.mkdir()
    payload = os.urandom(400_000)
    swu = make_swu(tmp_path / "image", tmp_path / "ca", payload, dest, "1.0.1", "firmware-1.0.1.swu")
    b = _upload_with_cli(site, swu, "1.0.1", key_dir / "signing.pem")
    assert b["state"] == "signed" and b["filename"] == "firmware-1.0.1.swu"
    rel = site.release([b["id"]], "v1", version="1.0.1")
    dev = site.device("board-1")
    s = Suricatta(tmp_path / "swupdate", ca, site.url, "board-1", dev["token"])
    try:
        wait_for(lambda: dest.exists() and dest.read_bytes() == payload, 90)
        # Its progress feedback ("proceeding") reached the device's record.
        wait_for(lambda: site.api.ok("GET", f"{API}/devices/{dev['id']}")["last_status"] == "installing", 30)
        (action,) = site.actions(dev)
    finally:
        s.stop()
    assert proxy.tripped.is_set()
    downloads = [r for r in proxy.requests if "/dl/" in r and r.startswith("GET")]
    assert len(downloads) >= 2 and "Range: bytes=" in downloads[-1], proxy.requests
    assert action["status"] == "open"  # installed; the verdict comes after the "reboot"
    # The "reboot": SWUpdate starts again and confirms the update (-c 2).
    s = Suricatta(tmp_path / "swupdate", ca, site.url, "board-1", dev["token"], confirm=2)
    try:
        wait_for(lambda: site.actions(dev)[0]["status"] == "closed", 60)
    finally:
        s.stop()
    assert site.actions(dev)[0]["result"] == "success"
    device = site.api.ok("GET", f"{API}/devices/{dev['id']}")
    assert (device["reported_release_id"], device["reported_version"]) == (rel["id"], "1.0.1")
    assert site.api.ok("GET", f"{API}/releases/{rel['id']}/stats")["outcomes"]["installed"] == 1


@needs_swupdate
def test_suricatta_gets_nothing_from_a_phase_it_is_not_in_and_cancels_a_canceled_action(swu_site, tmp_path: Path):
    from swu import Suricatta, make_swu

    site, _, ca = swu_site
    dest = tmp_path / "device" / "rootfs.img"
    dest.parent.mkdir()
    swu = make_swu(tmp_path / "image", tmp_path / "ca", os.urandom(1000), dest, "1.0.1")
    rel = site.release([site.binary("1.0.1", swu.read_bytes())["id"]], "v1", phase={"mode": "tags", "tags": ["canary"]})
    plain, canary = site.device("board-1"), site.device("board-2", tags=["canary"])
    # An action the canary was offered (its first poll), canceled before it installed.
    assert "deploymentBase" in Controller(site, "board-2", canary["token"]).get()["_links"]
    site.api.ok("POST", f"{API}/devices/{canary['id']}/actions/cancel")
    first = Suricatta(tmp_path / "sw1", ca, site.url, "board-1", plain["token"])
    second = Suricatta(tmp_path / "sw2", ca, site.url, "board-2", canary["token"])
    try:
        wait_for(lambda: site.actions(canary)[0]["status"] == "canceled", 60)
        # Its polls are check-ins like any other (written in batches: the audit event and
        # last-seen time appear together).
        wait_for(lambda: site.api.ok("GET", f"{API}/events?resource_id={plain['id']}&action=resolve")["items"], 30)
        polled = site.api.ok("GET", f"{API}/devices/{plain['id']}")["last_seen_at"]
        time.sleep(3)  # a few more polls
    finally:
        first.stop()
        second.stop()
    assert polled and site.actions(plain) == [] and not dest.exists()
    assert site.api.ok("GET", f"{API}/releases/{rel['id']}/stats")["devices"] == 1  # only the canary was offered it
