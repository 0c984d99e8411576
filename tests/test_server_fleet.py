"""Distribution over HTTP: bundles, channels and releases, devices, overrides, update checks,
manifests and downloads, and a whole fleet rollout."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from apiclient import Api
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_server_binaries import PART, problem

from ferryman.releases import in_percent
from ferryman.signing import load_public_key

API = "/api/v1"
PEM, SPKI = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
TARGETS = ["aarch64-linux-gnu", "arm-linux-gnueabihf", "x86_64-linux-gnu"]

# The service tests here run on the file store and on S3 (see conftest.py).
pytestmark = pytest.mark.stores


class Fleet:
    """Builds signed binaries, bundles and releases through the API."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.sk = ed25519.Ed25519PrivateKey.generate()
        self.key = api.ok(
            "POST", f"{API}/signing-keys", {"name": "ci", "public_key": self.sk.public_key().public_bytes(PEM, SPKI).decode()}
        )
        self.artifact = api.ok("POST", f"{API}/artifacts", {"name": "rootfs"})
        self.content: dict[str, bytes] = {}

    def binaries(self, version: str, targets=TARGETS, sign: bool = True) -> list[dict]:
        api = self.api
        ver = api.ok("POST", f"{API}/artifacts/{self.artifact['id']}/versions", {"version": version})
        out = []
        for target in targets:
            data = os.urandom(1000) + f"{version} {target}".encode()
            b = api.ok(
                "POST",
                f"{API}/versions/{ver['id']}/binaries",
                {"target": target, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "part_size": PART},
            )
            assert api.put(f"{API}/binaries/{b['id']}/content", data).status == 200
            b = api.wait_state(b["id"], {"signable"})
            if sign:
                sig = self.sk.sign(bytes.fromhex(b["sha256"])).hex()
                api.ok("POST", f"{API}/binaries/{b['id']}/signatures", {"signing_key_id": self.key["id"], "signature": sig})
                b = api.ok("GET", f"{API}/binaries/{b['id']}")
            self.content[b["id"]] = data
            out.append(b)
        return out

    def bundle(self, version: str, **kw) -> dict:
        bins = self.binaries(version, **kw)
        return self.api.ok(
            "POST",
            f"{API}/bundles",
            {"name": f"rootfs {version}", "binaries": [{"binary_id": b["id"], "custom_metadata": {"slot": "a"}} for b in bins]},
        )

    def channel(self, name: str) -> dict:
        return self.api.ok("POST", f"{API}/channels", {"name": name})

    def release(self, channel: dict, name: str, bundle: dict, **fields) -> dict:
        return self.api.ok(
            "POST", f"{API}/channels/{channel['id']}/releases", {"name": name, "bundle_id": bundle["id"], **fields}
        )

    def one_device_on_a_release(self, target: str = "x86_64-linux-gnu") -> Api:
        """A release of a one-binary bundle on a channel, a cohort on it and one device in it;
        returns the device's client."""
        bundle = self.bundle("1.0.0", targets=[target])
        channel = self.channel("stable")
        self.release(channel, "v1", bundle)
        cohort = self.api.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": channel["id"]})
        return self.device("d1", target, cohort)[1]

    def device(self, identifier: str, target: str, cohort: dict | None = None, tags=()) -> tuple[dict, Api]:
        d = self.api.ok(
            "POST",
            f"{API}/devices",
            {"identifier": identifier, "target": target, "cohort_id": cohort["id"] if cohort else None, "tags": list(tags)},
        )
        assert d["token"].startswith("fd_")
        return d, self.api.as_(d["token"])


def check(device_api: Api, reported: dict | None = None) -> dict:
    headers = {}
    for k, h in (
        ("release_id", "Ferryman-Release-Id"),
        ("bundle_id", "Ferryman-Bundle-Id"),
        ("version", "Ferryman-Release-Version"),
    ):
        if reported and reported.get(k):
            headers[h] = reported[k]
    r = device_api.get("/device/v1/update", headers=headers)
    assert r.status == 200, r
    return r.json


def install(device_api: Api, manifest: dict) -> dict:
    """Downloads every binary, checks digest and signatures, reports installed."""
    for b in manifest["binaries"]:
        url = urlsplit(b["url"])
        body = device_api.as_(None).get(url.path).body
        assert hashlib.sha256(body).hexdigest() == b["sha256"] and len(body) == b["size"]
        assert b["signatures"]
        for s in b["signatures"]:
            load_public_key(s["public_key"]).verify_binary(
                bytes.fromhex(b["sha256"]), bytes.fromhex(s["signature"]), s["algorithm"]
            )
    rel = manifest["release"]
    report = {
        "bundle_id": manifest["bundle"]["id"],
        "status": "installed",
        "release_id": rel["id"] if rel else None,
        "version": rel["version"] if rel else None,
    }
    r = device_api.post("/device/v1/report", report)
    assert r.status == 200, r
    return report


@pytest.fixture
def fleet(server: Api) -> Fleet:
    return Fleet(server)


def test_bundles(fleet: Fleet, server: Api):
    bundle = fleet.bundle("1.0.0")
    assert [e["target"] for e in bundle["entries"]] == TARGETS
    # The documented hash definition, recomputed independently.
    doc = {
        "entries": [
            {k: e[k] for k in ("artifact", "custom_metadata", "sha256", "size", "target", "version")} for e in bundle["entries"]
        ]
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert bundle["hash"] == hashlib.sha256(text.encode()).hexdigest()
    unsigned = fleet.binaries("1.1.0", targets=["x86_64-linux-gnu"], sign=False)[0]
    p = problem(server.post(f"{API}/bundles", {"binaries": [bundle["entries"][0]["binary_id"], unsigned["id"]]}), 422)
    assert "binaries[1]" in p["errors"]
    assert "binaries[0]" in problem(server.post(f"{API}/bundles", {"binaries": ["bin_" + "0" * 26]}), 422)["errors"]
    sig = fleet.sk.sign(bytes.fromhex(bundle["hash"])).hex()
    r = server.post(f"{API}/bundles/{bundle['id']}/signatures", {"signing_key_id": fleet.key["id"], "signature": sig})
    assert r.status == 201
    assert problem(
        server.post(f"{API}/bundles/{bundle['id']}/signatures", {"signing_key_id": fleet.key["id"], "signature": "00" * 64}), 422
    )
    assert len(server.ok("GET", f"{API}/bundles/{bundle['id']}")["signatures"]) == 1


def test_release_graph_over_http(fleet: Fleet, server: Api):
    b = fleet.bundle("1.0.0", targets=["x86_64-linux-gnu"])
    ch = fleet.channel("stable")
    r1 = fleet.release(ch, "r1", b)
    r2 = fleet.release(ch, "r2", b)
    assert server.ok("GET", f"{API}/releases/{r1['id']}")["next_release_id"] == r2["id"]
    mid = fleet.release(ch, "mid", b, previous_release_id=r1["id"], next_release_id=r2["id"])
    assert server.ok("GET", f"{API}/releases/{r1['id']}")["next_release_id"] == mid["id"]
    side = fleet.release(ch, "side", b, next_release_id=r2["id"])  # a merging branch
    assert side["next_release_id"] == r2["id"]
    assert server.ok("GET", f"{API}/channels/{ch['id']}")["latest_release_id"] == r2["id"]
    before = server.ok("GET", f"{API}/channels/{ch['id']}/releases")["items"]
    # Violations are refused and change nothing.
    bad = [
        (f"{API}/releases/{r1['id']}", "PATCH", {"phase": {"mode": "percent", "value": 0.5}}),
        (f"{API}/releases/{r1['id']}", "PATCH", {"schedule_at": "2030-01-01T00:00:00Z"}),
        (
            f"{API}/channels/{ch['id']}/releases",
            "POST",
            {"name": "x", "bundle_id": b["id"], "previous_release_id": r1["id"], "next_release_id": r2["id"]},
        ),
        (f"{API}/channels/{ch['id']}/releases", "POST", {"name": "y", "bundle_id": b["id"], "version": "not-semver"}),
        (f"{API}/channels/{ch['id']}/releases", "POST", {"name": "z", "bundle_id": b["id"], "version_requirement": "banana"}),
        (
            f"{API}/channels/{ch['id']}/releases",
            "POST",
            {"name": "w", "bundle_id": b["id"], "phase": {"mode": "percent", "value": 2}},
        ),
        (
            f"{API}/channels/{ch['id']}/releases",
            "POST",
            {"name": "v", "bundle_id": b["id"], "phase": {"mode": "count", "value": 0}},
        ),
        (f"{API}/channels/{ch['id']}/releases", "POST", {"name": "r1", "bundle_id": b["id"]}),
    ]
    for path, method, body in bad:
        # Every rule broken is 422, except a name already taken in the channel (409).
        problem(server.call(method, path, body), 409 if body.get("name") == "r1" else 422)
    assert server.ok("GET", f"{API}/channels/{ch['id']}/releases")["items"] == before
    # Phasing the latest is fine; then no new latest until it is lifted.
    server.ok("PATCH", f"{API}/releases/{r2['id']}", {"phase": {"mode": "percent", "value": 0.2}})
    problem(server.post(f"{API}/channels/{ch['id']}/releases", {"name": "r3", "bundle_id": b["id"]}), 422)
    server.ok("PATCH", f"{API}/releases/{r2['id']}", {"phase": None})
    fleet.release(ch, "r3", b)


def test_devices_and_update_flow(fleet: Fleet, server: Api):
    bundle = fleet.bundle("1.0.0")
    ch = fleet.channel("stable")
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": ch["id"]})
    rel = fleet.release(ch, "v1", bundle, version="1.0.0")
    dev, dapi = fleet.device("unit-1", "arm-linux-gnueabihf", cohort, tags=["lab"])
    assert "token" not in server.ok("GET", f"{API}/devices/{dev['id']}")
    m = check(dapi)
    assert (m["status"], m["source"], m["release"]["id"]) == ("update", "release", rel["id"])
    assert [b["target"] for b in m["binaries"]] == ["arm-linux-gnueabihf"]
    assert m["binaries"][0]["custom_metadata"] == {"slot": "a"}
    reported = install(dapi, m)
    after = server.ok("GET", f"{API}/devices/{dev['id']}")
    assert after["reported_bundle_id"] == bundle["id"] and after["last_seen_at"]
    assert check(dapi, reported)["status"] == "no_update"
    # API tokens do not reach the device API, device tokens do not reach the management API.
    assert server.get("/device/v1/update").status == 401
    assert dapi.get(f"{API}/devices").status == 401
    # Filters.
    assert [d["id"] for d in server.ok("GET", f"{API}/devices?tag=lab")["items"]] == [dev["id"]]
    assert server.ok("GET", f"{API}/devices?cohort_id={cohort['id']}&target=x86_64-linux-gnu")["items"] == []
    # Quarantine.
    server.ok("PATCH", f"{API}/devices/{dev['id']}", {"quarantined": True})
    assert check(dapi)["status"] == "quarantined"
    # A device whose target matches nothing: the answer lists no binary for it.
    _, oapi = fleet.device("unit-2", "riscv64-linux-gnu", cohort)
    m2 = check(oapi)
    assert m2["binaries"] == []
    # Check-ins are written in batches, at most a second or so later.
    deadline = time.monotonic() + 5
    while True:
        events = server.ok("GET", f"{API}/events?resource_id={dev['id']}&limit=500")["items"]
        if {"resolve", "report"} <= {e["action"] for e in events} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {"resolve", "report"} <= {e["action"] for e in events}
    resolved = [e for e in events if e["action"] == "resolve"]
    assert resolved[0]["after"]["reason"] == "release" and resolved[0]["actor"] == dev["id"]


def test_cached_answers_follow_catalog_changes(fleet: Fleet, server: Api):
    """Devices and encoded answers are cached between checks; every change to what an answer
    is made of must show in the next check."""
    bundle = fleet.bundle("1.0.0")
    ch = fleet.channel("stable")
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "field", "channel_id": ch["id"]})
    rel = fleet.release(ch, "v1", bundle, version="1.0.0")
    dev, dapi = fleet.device("unit-1", "arm-linux-gnueabihf", cohort)
    _, other = fleet.device("unit-2", "arm-linux-gnueabihf", cohort)

    def in_one_minute(*calls: Callable[[], dict]) -> list[dict]:
        # Grants expire on whole minutes, so answers a minute boundary apart differ in their
        # URLs; calls that straddle one are made again.
        while True:
            start = time.time()
            answers = [call() for call in calls]
            if start // 60 == time.time() // 60:
                return answers

    before = time.time()
    first, again, for_other = in_one_minute(lambda: check(dapi), lambda: check(dapi), lambda: check(other))
    after = time.time()
    assert again == first
    # Grants expire on whole minutes, at least grant_ttl from the check: one URL for every device.
    assert for_other["binaries"][0]["url"] == first["binaries"][0]["url"]
    expires = int(urlsplit(first["binaries"][0]["url"]).path.split(".")[1])
    assert expires % 60 == 0 and before + 3600 <= expires <= after + 3660

    def settled(api: Api) -> dict:
        # The first check after a change may take the slow path; the second takes the cached one.
        answer, again = in_one_minute(lambda: check(api), lambda: check(api))
        assert again == answer
        return answer

    # The device's target, its release's fields, its bundle's signatures, then its cohort.
    server.ok("PATCH", f"{API}/devices/{dev['id']}", {"target": "x86_64-linux-gnu"})
    assert [b["target"] for b in settled(dapi)["binaries"]] == ["x86_64-linux-gnu"]
    server.ok("PATCH", f"{API}/releases/{rel['id']}", {"required": True})
    assert settled(dapi)["release"]["required"] is True
    server.ok("PATCH", f"{API}/signing-keys/{fleet.key['id']}", {"state": "revoked"})
    assert settled(dapi)["reason"] == "bundle_not_servable"
    server.ok("PATCH", f"{API}/devices/{dev['id']}", {"cohort_id": None})
    assert settled(dapi)["reason"] == "no_channel"
    assert settled(other)["reason"] == "bundle_not_servable"


def test_overrides_take_precedence(fleet: Fleet, server: Api):
    b1, b2 = fleet.bundle("1.0.0"), fleet.bundle("2.0.0")
    ch = fleet.channel("stable")
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": ch["id"]})
    fleet.release(ch, "v1", b1)
    dev, dapi = fleet.device("d", "x86_64-linux-gnu", cohort)
    o = server.ok("POST", f"{API}/bundle-overrides", {"bundle_id": b2["id"], "device_ids": [dev["id"]]})
    m = check(dapi)
    assert (m["source"], m["bundle"]["id"]) == ("override", b2["id"])
    assert check(dapi, {"bundle_id": b2["id"]})["reason"] == "override_current"
    server.ok(
        "PATCH", f"{API}/bundle-overrides/{o['id']}", {"ends_at": "2000-01-01T00:00:00Z", "starts_at": "1999-01-01T00:00:00Z"}
    )
    assert check(dapi)["source"] == "release"
    assert server.call("DELETE", f"{API}/bundle-overrides/{o['id']}").status == 204
    problem(server.post(f"{API}/bundle-overrides", {"bundle_id": b2["id"], "device_ids": ["dev_" + "0" * 26]}), 422)


def test_count_phase_claims_are_atomic(fleet: Fleet, server: Api):
    b1, b2 = fleet.bundle("1.0.0", targets=["x86_64-linux-gnu"]), fleet.bundle("2.0.0", targets=["x86_64-linux-gnu"])
    ch = fleet.channel("stable")
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": ch["id"]})
    r1 = fleet.release(ch, "v1", b1)
    r2 = fleet.release(ch, "v2", b2, phase={"mode": "count", "value": 3})
    devices = [fleet.device(f"d{i}", "x86_64-linux-gnu", cohort)[1] for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda d: check(d, {"release_id": r1["id"], "bundle_id": b1["id"]}), devices))
    assert sum(1 for m in results if m["status"] == "update" and m["release"]["id"] == r2["id"]) == 3
    assert server.ok("GET", f"{API}/releases/{r2['id']}")["claimed"] == 3
    # A device that claimed keeps its answer.
    winner = next(d for d, m in zip(devices, results, strict=True) if m["status"] == "update")
    assert check(winner, {"release_id": r1["id"], "bundle_id": b1["id"]})["release"]["id"] == r2["id"]


def test_admin_resolution_dry_run(fleet: Fleet, server: Api):
    b = fleet.bundle("1.0.0", targets=["x86_64-linux-gnu"])
    ch = fleet.channel("stable")
    cohort = server.ok("POST", f"{API}/cohorts", {"name": "c", "channel_id": ch["id"]})
    fleet.release(ch, "v1", b, phase={"mode": "count", "value": 1})
    dev, _ = fleet.device("d", "x86_64-linux-gnu", cohort)
    m = server.ok("POST", f"{API}/devices/{dev['id']}/update", {})
    assert m["status"] == "update"
    rel = server.ok("GET", f"{API}/channels/{ch['id']}/releases")["items"][0]
    assert rel["claimed"] == 0  # dry run claims nothing
    server.ok("POST", f"{API}/devices/{dev['id']}/update", {"write": True})
    assert server.ok("GET", f"{API}/releases/{rel['id']}")["claimed"] == 1


def test_fleet_rollout_scenario(fleet: Fleet, server: Api):
    """3 targets, 2 channels; a phased rollout to 20% then 100%; a required release; a rollback
    release (a new latest pointing at the older bundle); devices follow it to the end."""
    b1, b2, b3 = fleet.bundle("1.0.0"), fleet.bundle("2.0.0"), fleet.bundle("3.0.0")
    stable, beta = fleet.channel("stable"), fleet.channel("beta")
    c_stable = server.ok("POST", f"{API}/cohorts", {"name": "stable-fleet", "channel_id": stable["id"]})
    c_beta = server.ok("POST", f"{API}/cohorts", {"name": "beta-fleet", "channel_id": beta["id"]})
    s1 = fleet.release(stable, "s1", b1, version="1.0.0")
    fleet.release(beta, "b1", b1, version="1.0.0")
    fleet.release(beta, "b3", b3, version="3.0.0")
    devices = []
    for i in range(30):
        target = TARGETS[i % 3]
        cohort = c_beta if i % 10 == 0 else c_stable
        d, dapi = fleet.device(f"unit-{i:02d}", target, cohort)
        devices.append({"dev": d, "api": dapi, "reported": None})

    def round_trip() -> list[dict]:
        out = []
        for d in devices:
            m = check(d["api"], d["reported"])
            if m["status"] == "update":
                assert all(b["target"] == d["dev"]["target"] for b in m["binaries"]) and len(m["binaries"]) == 1
                d["reported"] = install(d["api"], m)
            out.append(m)
        return out

    round_trip()
    assert all(d["reported"]["bundle_id"] == (b3["id"] if d["dev"]["identifier"].endswith("0") else b1["id"]) for d in devices)
    # 2.0.0, required, phased to 20%.
    s2 = fleet.release(stable, "s2", b2, version="2.0.0", required=True, phase={"mode": "percent", "value": 0.2})
    round_trip()
    on_s2 = [d for d in devices if d["reported"]["release_id"] == s2["id"]]
    stable_devices = [d for d in devices if not d["dev"]["identifier"].endswith("0")]
    # Exactly the devices the stable draw admits (device IDs are random: with 27 devices at
    # 20%, "some but not all" fails once in about 400 runs).
    assert on_s2 == [d for d in stable_devices if in_percent(d["dev"]["id"], s2["id"], 0.2)]
    round_trip()  # stable answers: nobody moves back and forth
    assert [d for d in devices if d["reported"]["release_id"] == s2["id"]] == on_s2
    server.ok("PATCH", f"{API}/releases/{s2['id']}", {"phase": None})  # 100%: the phase is lifted
    round_trip()
    assert all(d["reported"]["release_id"] == s2["id"] for d in stable_devices)
    # 3.0.0, then a rollback: a new latest pointing at 2.0.0's bundle.
    s3 = fleet.release(stable, "s3", b3, version="3.0.0")
    round_trip()
    assert all(d["reported"]["bundle_id"] == b3["id"] for d in stable_devices)
    s4 = fleet.release(stable, "s4-rollback", b2, version="3.0.1")
    round_trip()
    assert all((d["reported"]["release_id"], d["reported"]["bundle_id"]) == (s4["id"], b2["id"]) for d in stable_devices)
    # A late device that reports the first release walks the whole path: stops at required s2.
    _, lapi = fleet.device("late", "x86_64-linux-gnu", c_stable)
    m = check(lapi, {"release_id": s1["id"], "bundle_id": b1["id"]})
    assert m["release"]["id"] == s2["id"]
    reported = install(lapi, m)
    assert check(lapi, reported)["release"]["id"] == s4["id"]
    assert s3
