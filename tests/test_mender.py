"""Mender's device API over HTTP: the protocol's rules checked request by request (signed
authentication requests, admission, tokens, deployments, statuses, logs, inventory), and
mender-client, unmodified, joining (pending, then accepted by an operator), installing a release
with every status answered 204, and aborting a download whose release was halted (409)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiclient import ADMIN, Api
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tcpproxy import Proxy
from test_agents_rules import V3, artifact
from test_ddi import Site, wait_for
from test_server_binaries import problem
from test_server_fleet import API

AUTH = "/api/devices/v1/authentication/auth_requests"
NEXT_V2 = "/api/devices/v2/deployments/device/deployments/next"
NEXT_V1 = "/api/devices/v1/deployments/device/deployments/next"
DEPLOYMENTS = "/api/devices/v1/deployments/device/deployments"
INVENTORY = "/api/devices/v1/inventory/device/attributes"
BOARD = "board-a"  # a device type the test artifact (V3) is for


class Agent:
    """A device speaking Mender's device API by hand, with an RSA or Ed25519 key."""

    def __init__(self, site: Site, mac: str, kind: str = "rsa") -> None:
        self.api = Api(site.api.host, site.api.port, None)
        self.key: Any = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ed25519.Ed25519PrivateKey.generate()
        self.pem = self.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        self.identity = json.dumps({"mac": mac})
        self.token: str | None = None

    def sign(self, raw: bytes) -> str:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return base64.b64encode(self.key.sign(raw, padding.PKCS1v15(), hashes.SHA256())).decode()
        return base64.b64encode(self.key.sign(raw)).decode()

    def body(self) -> bytes:
        return json.dumps({"id_data": self.identity, "pubkey": self.pem, "tenant_token": ""}).encode()

    def authenticate(self, raw: bytes | None = None, signature: str | None = None) -> Any:
        raw = self.body() if raw is None else raw
        sig = self.sign(raw) if signature is None else signature
        r = self.api.call("POST", AUTH, body=raw, headers={"Content-Type": "application/json", "X-MEN-Signature": sig})
        if r.status == 200:
            self.token = r.body.decode()
        return r

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        return self.api.call(method, path, body, headers={"Authorization": f"Bearer {token or self.token}"})

    def next(self, artifact_name: str = "factory", device_type: str = BOARD) -> Any:
        return self.call("POST", NEXT_V2, {"device_provides": {"artifact_name": artifact_name, "device_type": device_type}})

    def status(self, deployment: str, status: str) -> int:
        return self.call("PUT", f"{DEPLOYMENTS}/{deployment}/status", {"status": status}).status


def joined(site: Site, agent: Agent) -> dict:
    """The device the agent's first request created (pending), accepted and put in the
    site's cohort, as an operator would."""
    problem(agent.authenticate(), 401)
    (dev,) = site.api.ok("GET", f"{API}/devices?admission=pending")["items"]
    site.api.ok("POST", f"{API}/devices/{dev['id']}/accept")
    site.api.ok("PATCH", f"{API}/devices/{dev['id']}", {"cohort_id": site.cohort["id"]})
    assert agent.authenticate().status == 200
    return dev


@pytest.fixture
def site(tmp_path: Path, catalog_url: str | None) -> Iterator[Site]:
    s = Site(tmp_path, catalog_url)
    yield s
    s.stop()


def mender_release(site: Site, version: str = "2.0.0", target: str = BOARD) -> tuple[dict, bytes]:
    data = artifact({**V3, "artifact_provides": {"artifact_name": f"rel-{version}"}})
    b = site.binary(version, data, filename=f"rel-{version}.mender", target=target)
    assert b["mender"] == {"artifact_name": f"rel-{version}", "device_types": ["board-a", "board-b"], "provides": {}}
    return site.release([b["id"]], f"v{version}", version=version), data


def test_admission_pending_then_accepted_then_an_update_from_next_to_success(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:01")
    problem(agent.authenticate(), 401)
    (pending,) = site.api.ok("GET", f"{API}/devices?admission=pending")["items"]
    assert (pending["identifier"], pending["target"], pending["admission"]) == ("52:54:00:aa:bb:01", "any", "pending")
    assert "token" not in pending and "auth_key" not in pending
    problem(agent.authenticate(), 401)  # still pending: asking again changes nothing
    assert len(site.api.ok("GET", f"{API}/devices?admission=pending")["items"]) == 1
    site.api.ok("POST", f"{API}/devices/{pending['id']}/accept")
    site.api.ok("PATCH", f"{API}/devices/{pending['id']}", {"cohort_id": site.cohort["id"]})
    r = agent.authenticate()
    assert r.status == 200 and agent.token
    assert agent.next().status == 204  # nothing released yet
    # Its first poll gave it the device type its agent reports as its target.
    assert site.api.ok("GET", f"{API}/devices/{pending['id']}")["target"] == BOARD
    rel, data = mender_release(site)
    r = agent.next()
    assert r.status == 200
    doc = r.json
    uuid.UUID(doc["id"])
    art = doc["artifact"]
    assert (art["artifact_name"], art["device_types_compatible"]) == ("rel-2.0.0", ["board-a", "board-b"])
    assert art["source"]["expire"].endswith("Z")
    # The link works without the device's token, with ranges.
    url = "/" + art["source"]["uri"].split("/", 3)[3]
    got = Api(site.api.host, site.api.port, None).get(url, headers={"Range": "bytes=10-"})
    assert got.status == 206 and got.body == data[10:]
    # v1 (a query) names the same deployment.
    v1 = agent.call("GET", f"{NEXT_V1}?artifact_name=factory&device_type={BOARD}")
    assert v1.status == 200 and v1.json["id"] == doc["id"]
    for status in ("downloading", "installing", "rebooting"):
        assert agent.status(doc["id"], status) == 204
    assert site.api.ok("GET", f"{API}/devices/{pending['id']}")["last_status"] == "installing"
    assert agent.status(doc["id"], "success") == 204
    (action,) = site.actions(pending)
    assert (action["status"], action["result"]) == ("closed", "success")
    device = site.api.ok("GET", f"{API}/devices/{pending['id']}")
    assert (device["reported_release_id"], device["reported_version"]) == (rel["id"], "2.0.0")
    assert site.api.ok("GET", f"{API}/releases/{rel['id']}/stats")["outcomes"]["installed"] == 1
    assert agent.next(artifact_name="rel-2.0.0").status == 204
    # A status repeated after the end is still 204 and changes nothing.
    assert agent.status(doc["id"], "failure") == 204
    assert site.actions(pending)[0]["result"] == "success"


def test_a_device_that_already_runs_the_artifact_is_recorded_as_installed(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:02", kind="ed25519")
    dev = joined(site, agent)
    rel, _ = mender_release(site)
    assert agent.next(artifact_name="rel-2.0.0").status == 204
    assert site.actions(dev)[0]["result"] == "success"
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["reported_release_id"] == rel["id"]


def test_signatures_must_cover_the_exact_body(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:03")
    raw = agent.body()
    sig = agent.sign(raw)
    # The same document re-serialised (other spacing, other key order): the signature fails.
    doc = json.loads(raw)
    for other in (json.dumps(doc, indent=1).encode(), json.dumps(dict(reversed(doc.items()))).encode()):
        problem(agent.authenticate(other, sig), 401)
    problem(agent.authenticate(raw, Agent(site, "x").sign(raw)), 401)  # another key's signature
    problem(agent.authenticate(raw, "***"), 401)
    problem(agent.authenticate(raw, ""), 401)
    bad = json.dumps({"id_data": agent.identity, "pubkey": "not a key"}).encode()
    problem(agent.authenticate(bad, agent.sign(bad)), 422)
    problem(agent.authenticate(b"{", agent.sign(b"{")), 422)
    problem(agent.authenticate(b"x" * (64 * 1024 + 1), "c2ln"), 422)
    # None of these left a device behind.
    assert site.api.ok("GET", f"{API}/devices")["items"] == []
    problem(agent.authenticate(raw, sig), 401)  # the real one: pending
    assert len(site.api.ok("GET", f"{API}/devices")["items"]) == 1


def test_tokens_are_checked_and_rejecting_revokes_them(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:04")
    dev = joined(site, agent)
    first = agent.token
    assert agent.authenticate().status == 200  # a new token; the old one stops working
    assert agent.token != first
    problem(agent.call("POST", NEXT_V2, {}, token=first), 401)
    assert agent.next().status == 204
    for token in ("nope", ADMIN, "fm_" + "A" * 43):
        problem(agent.call("POST", NEXT_V2, {}, token=token), 401)
    problem(agent.api.call("POST", NEXT_V2, {}), 401)  # no token at all
    site.api.ok("POST", f"{API}/devices/{dev['id']}/reject")
    problem(agent.next(), 401)
    problem(agent.authenticate(), 401)  # rejected: no token either
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["admission"] == "rejected"


def test_a_pre_authorised_key_is_accepted_at_once(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:05", kind="ed25519")
    dev = site.device("gate-7", auth_key=agent.pem, target=BOARD)
    assert dev["auth_keyid"]
    assert agent.authenticate().status == 200
    assert agent.next().status == 204
    got = site.api.ok("GET", f"{API}/devices/{dev['id']}")
    assert got["identifier"] == "gate-7" and got["identity"] == agent.identity
    problem(site.api.call("POST", f"{API}/devices", {"identifier": "gate-8", "target": BOARD, "auth_key": agent.pem}), 409)
    problem(site.api.call("POST", f"{API}/devices", {"identifier": "gate-9", "target": BOARD, "auth_key": "junk"}), 422)


def test_a_halted_or_disabled_release_aborts_a_deployment_under_way(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:06")
    dev = joined(site, agent)
    rel, _ = mender_release(site)
    deployment = agent.next().json["id"]
    assert agent.status(deployment, "downloading") == 204
    site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"halted": True})
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{deployment}/status", {"status": "installing"}), 409)
    assert agent.status(deployment, "failure") == 204  # the client's last word after the abort
    assert site.actions(dev)[0]["status"] == "canceled"
    assert agent.next().status == 204
    # Resumed: offered again as a new deployment; disabled under way: aborted again.
    site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"halted": False})
    second = agent.next().json["id"]
    assert second != deployment
    site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"disabled": True})
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{second}/status", {"status": "downloading"}), 409)
    # An operator's cancel aborts it too.
    site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"disabled": False})
    third = agent.next().json["id"]
    site.api.ok("POST", f"{API}/devices/{dev['id']}/actions/cancel")
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{third}/status", {"status": "rebooting"}), 409)
    assert agent.next().status == 204


def test_statuses_logs_and_bad_deployments(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:07")
    dev = joined(site, agent)
    mender_release(site)
    deployment = agent.next().json["id"]
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{deployment}/status", {"status": 5}), 422)
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{deployment}/status", {"status": "exploded"}), 422)
    problem(agent.call("PUT", f"{DEPLOYMENTS}/not-a-uuid/status", {"status": "installing"}), 404)
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{uuid.UUID(int=999)}/status", {"status": "installing"}), 404)
    assert agent.status(deployment, "failure") == 204
    log = {"messages": [{"timestamp": "2026-12-04T05:00:00Z", "level": "error", "message": f"line {i}"} for i in range(3)]}
    assert agent.call("PUT", f"{DEPLOYMENTS}/{deployment}/log", log).status == 204
    (action,) = site.actions(dev)
    assert (action["status"], action["result"], action["detail"]) == ("closed", "failure", "line 0\nline 1\nline 2")
    problem(agent.call("PUT", f"{DEPLOYMENTS}/{deployment}/log", {"messages": "no"}), 422)


def test_inventory_is_stored_as_attributes_with_exactly_200(site: Site):
    agent = Agent(site, "52:54:00:aa:bb:08")
    dev = joined(site, agent)
    r = agent.call("PATCH", INVENTORY, [{"name": "device_type", "value": BOARD}, {"name": "mem", "value": 512}])
    assert r.status == 200
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["attributes"] == {"device_type": BOARD, "mem": "512"}
    assert agent.call("PATCH", INVENTORY, [{"name": "os", "value": ["a", "b"]}]).status == 200
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["attributes"]["os"] == '["a","b"]'
    assert agent.call("PUT", INVENTORY, [{"name": "kernel", "value": "6.1"}]).status == 200
    assert site.api.ok("GET", f"{API}/devices/{dev['id']}")["attributes"] == {"kernel": "6.1"}
    problem(agent.call("PUT", INVENTORY, {"name": "x"}), 422)


def test_a_bundle_cannot_offer_an_artifact_to_devices_it_excludes(site: Site):
    data = artifact(V3)
    for target in ("board-c", "any"):
        b = site.binary(f"9.{len(target)}", data, filename="rel.mender", target=target)
        r = site.api.call("POST", f"{API}/bundles", {"binaries": [b["id"]]})
        assert "board-a, board-b" in problem(r, 422)["detail"]


# mender-client --------------------------------------------------------------------------------------

needs_mender = pytest.mark.skipif(
    os.environ.get("FERRYMAN_TEST_SERVICES") != "required"
    and not (all(shutil.which(p) for p in ("mender", "mender-artifact", "unshare")) and os.geteuid() == 0),
    reason="mender-client and mender-artifact are not installed, or not root (.ci/run installs them)",
)


def _accept_when_pending(site: Site) -> dict:
    """The device mender-client's first authentication request created, accepted into the
    site's cohort with the CLI."""
    pending = wait_for(lambda: site.api.ok("GET", f"{API}/devices?admission=pending")["items"], 60)
    (dev,) = pending
    env = {**os.environ, "FERRYMAN_URL": f"http://127.0.0.1:{site.api.port}", "FERRYMAN_TOKEN": ADMIN}
    done = subprocess.run([sys.executable, "-m", "ferryman", "devices", "accept", dev["id"], "--cohort", site.cohort["id"]],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{dev['id']} {dev['identifier']} accepted in {site.cohort['id']}"
    return dev


def _mender_binary(site: Site, tmp: Path, name: str, version: str, payload: bytes, dest: Path) -> dict:
    from mender_client import make_artifact

    path = make_artifact(tmp / name, name, "ferry-board", payload, dest)
    return site.binary(version, path.read_bytes(), filename=path.name, target="ferry-board")


@needs_mender
def test_mender_client_joins_installs_and_every_status_gets_204(site: Site, tmp_path: Path):
    from mender_client import MenderClient

    dest = tmp_path / "device"
    dest.mkdir()
    payload = os.urandom(300_000)
    b = _mender_binary(site, tmp_path, "release-2", "2.0.0", payload, dest)
    assert b["mender"]["device_types"] == ["ferry-board"]
    rel = site.release([b["id"]], "v2", version="2.0.0")
    client = MenderClient(tmp_path / "mender", site.url, "ferry-board", "52:54:00:12:34:56")
    try:
        dev = _accept_when_pending(site)
        client.check_now()
        wait_for(lambda: site.actions(dev) and site.actions(dev)[0]["status"] == "closed", 120)
        # attributes is left out of the answer until the first inventory arrives.
        wait_for(lambda: site.api.ok("GET", f"{API}/devices/{dev['id']}").get("attributes", {}).get("test_attribute"), 60)
    finally:
        client.stop()
    log = client.output()
    assert (dest / "payload.bin").read_bytes() == payload, log
    (action,) = site.actions(dev)
    assert action["result"] == "success", log
    device = site.api.ok("GET", f"{API}/devices/{dev['id']}")
    assert (device["target"], device["reported_release_id"], device["reported_version"]) == ("ferry-board", rel["id"], "2.0.0")
    assert device["attributes"]["test_attribute"] == "seen" and device["attributes"]["device_type"] == "ferry-board"
    # Every status it sent was answered 204 (a 200 would have made it roll back).
    sent = log.count('/status\\""')
    assert sent >= 4 and log.count("Status reported, response 204 No Content") == sent, log
    assert "State transition: update-rollback" not in log, log
    assert site.api.ok("GET", f"{API}/releases/{rel['id']}/stats")["outcomes"]["installed"] == 1


@needs_mender
def test_mender_client_aborts_a_download_whose_release_was_halted(tmp_path: Path, catalog_url: str | None):
    from mender_client import MenderClient

    proxy = Proxy(0, after=200_000, mode="stall")
    site = Site(tmp_path, catalog_url, proxy=proxy)
    client = None
    try:
        dest = tmp_path / "device"
        dest.mkdir()
        b = _mender_binary(site, tmp_path, "release-3", "3.0.0", os.urandom(1_000_000), dest)
        rel = site.release([b["id"]], "v3", version="3.0.0")
        client = MenderClient(tmp_path / "mender", site.url, "ferry-board", "52:54:00:12:34:57")
        dev = _accept_when_pending(site)
        client.check_now()
        assert proxy.tripped.wait(120), client.output()
        site.api.ok("PATCH", f"{API}/releases/{rel['id']}", {"halted": True})
        proxy.released.set()
        wait_for(lambda: site.actions(dev)[0]["status"] == "canceled", 120)
        # Its next status after the stall got 409: it gave the deployment up.
        wait_for(lambda: "deployment aborted at the backend" in client.output(), 60)
    finally:
        if client is not None:
            client.stop()
        site.stop()
        proxy.close()
    assert not (dest / "payload.bin").exists(), client.output()
