"""Replication across regions, end to end on real stores: a primary file store, a second file
store and an S3 server (``rclone serve s3``, files on disk, so it can be stopped and started
again) as three regions of one ``ferryman serve`` process. Uploads are copied and verified
everywhere, devices get URLs of their own region (or its CDN), a dead region is skipped and
caught up, a killed copy resumes, corrupt copies are repaired, destroyed binaries leave every
region."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import ADMIN, Api, ProcessServer
from services import Postgres, Rclone
from test_server_binaries import PART
from test_server_fleet import API, Fleet, check

TARGET = "x86_64-linux-gnu"


class Regions:
    """A server with regions eu (primary, the data directory's store), ap (a directory) and us
    (S3), checking its stores every 0.3 s and retrying failed copies within 1 s."""

    def __init__(self, tmp: Path, *extra: str, catalog: str | None = None) -> None:
        self.tmp = tmp
        self.catalog = catalog
        self.ap = tmp / "ap"
        self.s3 = Rclone(tmp / "s3").start()
        self.extra = extra
        self.server = self._server()

    def _server(self) -> ProcessServer:
        return ProcessServer(
            self.tmp / "data", self.catalog, "--region", "eu=file://" + str(self.tmp / "data" / "store"), "--region",
            f"ap=file://{self.ap}", "--region", f"us={self.s3.url()}", "--region-check-interval", "0.3",
            "--replication-retry-max", "1", "--job-lease", "2", *self.extra,
        )  # fmt: skip

    def start(self) -> Api:
        return self.server.start()

    def restart(self) -> Api:
        self.server.stop()
        self.server = self._server()
        return self.server.start()

    def copies(self, binary_id: str) -> dict[str, bytes | None]:
        """Each region's bytes of a binary as its store holds them (None: none)."""
        paths = {
            "eu": self.tmp / "data" / "store" / "content" / binary_id,
            "ap": self.ap / "content" / binary_id,
            "us": self.s3.object(f"store/content/{binary_id}"),
        }
        return {r: p.read_bytes() if p.exists() else None for r, p in paths.items()}

    def s3_delete(self, key: str) -> None:
        """Deletes an object through the S3 API (rclone keeps a cache of what it saw on disk)."""
        import asyncio

        import obstore

        from ferryman.blobs.objects import open_object_store

        async def delete() -> None:
            await obstore.delete_async(open_object_store(self.s3.url("")), key)

        asyncio.run(delete())

    def stop(self) -> None:
        self.server.stop()
        self.s3.stop()


@pytest.fixture
def regions(tmp_path: Path) -> Iterator[Regions]:
    r = Regions(tmp_path)
    yield r
    r.stop()


def replicas(api: Api, binary_id: str) -> dict[str, dict]:
    return {r["region"]: r for r in api.ok("GET", f"{API}/binaries/{binary_id}")["replicas"]}


def wait_replicas(api: Api, binary_id: str, want: dict[str, str], timeout: float = 30) -> dict[str, dict]:
    """Waits until the binary's copies are in the wanted states (region → state)."""
    deadline = time.monotonic() + timeout
    while True:
        got = replicas(api, binary_id)
        if all(got.get(r, {}).get("state") == s for r, s in want.items()):
            return got
        assert time.monotonic() < deadline, f"copies of {binary_id}: {got}"
        time.sleep(0.05)


EVERYWHERE = {"eu": "verified", "ap": "verified", "us": "verified"}


def one_binary(api: Api, data: bytes) -> dict:
    art = api.ok("POST", f"{API}/artifacts", {"name": f"fw{time.monotonic_ns()}"})
    ver = api.ok("POST", f"{API}/artifacts/{art['id']}/versions", {"version": "1.0.0"})
    sha = hashlib.sha256(data).hexdigest()
    b = api.ok("POST", f"{API}/versions/{ver['id']}/binaries", {"target": TARGET, "size": len(data), "sha256": sha,
                                                                 "part_size": max(PART, len(data))})  # fmt: skip
    assert api.put(f"{API}/binaries/{b['id']}/content", data).status == 200
    return api.wait_state(b["id"], {"signable"})


def released_in_asia(api: Api) -> tuple[Fleet, dict, str]:
    """A one-binary bundle released on a channel, copied everywhere, and a cohort on the channel
    whose devices download from region ap: the fleet, the cohort and the binary's ID."""
    fleet = Fleet(api)
    bundle = fleet.bundle("1.0.0", targets=[TARGET])
    channel = fleet.channel("stable")
    fleet.release(channel, "v1", bundle)
    cohort = api.ok("POST", f"{API}/cohorts", {"name": "asia", "channel_id": channel["id"], "region": "ap"})
    binary_id = bundle["entries"][0]["binary_id"]
    wait_replicas(api, binary_id, EVERYWHERE)
    return fleet, cohort, binary_id


def test_an_upload_is_verified_in_three_regions_with_identical_bytes(regions: Regions):
    api = regions.start()
    data = os.urandom(3 * 1024 * 1024 + 17)
    b = one_binary(api, data)
    got = wait_replicas(api, b["id"], EVERYWHERE)
    assert all(r["error"] is None and r["verified_at"] for r in got.values())
    assert regions.copies(b["id"]) == {"eu": data, "ap": data, "us": data}
    status = api.ok("GET", f"{API}/replication")
    assert [r["region"] for r in status["regions"]] == ["eu", "ap", "us"] and status["regions"][0]["primary"]
    assert status["queued"] == 0 and status["failed"] == 0
    assert all(r["healthy"] and r["copies"] == {"verified": 1} for r in status["regions"])
    events = api.ok("GET", f"{API}/events?resource_id={b['id']}&action=replica:verified")["items"]
    assert sorted(e["after"]["region"] for e in events) == ["ap", "us"]


def test_devices_download_from_their_own_region_or_its_cdn(tmp_path: Path):
    r = Regions(tmp_path, "--cdn-base-url", "ap=https://cdn-ap.example.net/fm")
    try:
        api = r.start()
        fleet, cohort, binary_id = released_in_asia(api)
        devices: dict[str, Api] = {}
        urls = {}
        for region in ("eu", "us"):
            d = api.ok("POST", f"{API}/devices", {"identifier": f"d-{region}", "target": TARGET,
                                                  "cohort_id": cohort["id"], "region": region})  # fmt: skip
            devices[region] = api.as_(d["token"])
        devices["ap"] = fleet.device("d-ap", TARGET, cohort)[1]  # the cohort's region
        for region, device in devices.items():
            manifest = check(device)
            assert manifest["status"] == "update", manifest
            urls[region] = manifest["binaries"][0]["url"]
        assert urlsplit(urls["eu"]).path.startswith("/dl/eu/") and urlsplit(urls["us"]).path.startswith("/dl/us/")
        assert urls["ap"].startswith("https://cdn-ap.example.net/fm/dl/ap/")
        data = fleet.content[binary_id]
        for region, url in urls.items():
            # The CDN's origin is this service, at the same path below the CDN's base.
            path = urlsplit(url).path.removeprefix("/fm")
            got = api.as_(None).get(path)
            assert got.status == 200 and got.body == data, region
            assert got.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
            assert "immutable" in got.headers["Cache-Control"]
        # Ranges from a cache, and a stale cache's If-Range (another binary's tag): the whole
        # body, never a splice of two versions.
        path = urlsplit(urls["us"]).path
        part = api.as_(None).get(path, headers={"Range": "bytes=10-19"})
        assert part.status == 206 and part.body == data[10:20]
        stale = api.as_(None).get(path, headers={"Range": "bytes=10-19", "If-Range": '"' + "0" * 64 + '"'})
        assert stale.status == 200 and stale.body == data
        assert api.as_(None).get(path.replace("/dl/us/", "/dl/mars/")).status == 404
    finally:
        r.stop()


def test_a_stopped_s3_region_fails_is_skipped_and_catches_up(regions: Regions):
    api = regions.start()
    fleet = Fleet(api)
    channel = fleet.channel("stable")
    cohort = api.ok("POST", f"{API}/cohorts", {"name": "us", "channel_id": channel["id"], "region": "us"})
    device = fleet.device("d-us", TARGET, cohort)[1]
    regions.s3.stop()
    bundle = fleet.bundle("1.0.0", targets=[TARGET])
    binary_id = bundle["entries"][0]["binary_id"]
    got = wait_replicas(api, binary_id, {"eu": "verified", "ap": "verified", "us": "failed"})
    assert got["us"]["attempts"] >= 1 and got["us"]["error"]
    deadline = time.monotonic() + 5
    while (us := api.ok("GET", f"{API}/replication")["regions"][2])["healthy"]:
        assert time.monotonic() < deadline, us  # its store's next check fails
        time.sleep(0.05)
    assert us["failures"][0]["binary_id"] == binary_id and us["queued"] == 1
    # Required by default (three regions): the device stays where it is, and says why.
    release = fleet.release(channel, "v1", bundle)
    manifest = check(device)
    assert (manifest["status"], manifest["reason"]) == ("no_update", "bundle_not_replicated")
    # Waived: served from a verified copy in a healthy region, never from the failed one.
    api.ok("PATCH", f"{API}/releases/{release['id']}", {"require_replicated": False})
    manifest = check(device)
    url = manifest["binaries"][0]["url"]
    assert manifest["status"] == "update" and urlsplit(url).path.startswith("/dl/eu/"), url
    assert api.as_(None).get(urlsplit(url).path).body == fleet.content[binary_id]
    # A grant naming the dead region is served from a healthy copy too.
    assert api.as_(None).get(urlsplit(url).path.replace("/dl/eu/", "/dl/us/")).body == fleet.content[binary_id]
    regions.s3.start()
    wait_replicas(api, binary_id, EVERYWHERE)
    assert regions.copies(binary_id)["us"] == fleet.content[binary_id]
    assert api.ok("GET", f"{API}/replication")["queued"] == 0
    api.ok("PATCH", f"{API}/releases/{release['id']}", {"require_replicated": None})
    deadline = time.monotonic() + 5
    while urlsplit(url := check(device)["binaries"][0]["url"]).path.startswith("/dl/eu/"):
        assert time.monotonic() < deadline, url  # its store's next check passes
        time.sleep(0.1)
    assert urlsplit(url).path.startswith("/dl/us/")


def test_a_copy_killed_midway_resumes_and_no_half_copy_is_served(regions: Regions):
    api = regions.start()
    data = os.urandom(256 * 1024 * 1024)
    b = one_binary(api, data)
    deadline = time.monotonic() + 30
    while not any(r["state"] == "copying" for r in replicas(api, b["id"]).values()):
        assert time.monotonic() < deadline
    regions.server.kill()
    halfway = regions.copies(b["id"])
    assert None in halfway.values(), "no copy was in flight when the server was killed"
    assert all(c is None or c == data for c in halfway.values()), "a half copy became visible"
    api = regions.restart()
    wait_replicas(api, b["id"], EVERYWHERE, timeout=60)
    assert regions.copies(b["id"]) == {"eu": data, "ap": data, "us": data}


def test_verify_repairs_a_corrupt_and_a_missing_copy(regions: Regions, tmp_path: Path):
    api = regions.start()
    data = os.urandom(1024 * 1024)
    b = one_binary(api, data)
    wait_replicas(api, b["id"], EVERYWHERE)
    ap = regions.ap / "content" / b["id"]
    ap.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    regions.s3_delete(f"store/content/{b['id']}")
    cli = [sys.executable, "-m", "ferryman", "replication", "verify", "--wait", "30", "--url",
           f"http://127.0.0.1:{regions.server.port}", "--token", ADMIN]  # fmt: skip
    r = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("3 copies queued")
    wait_replicas(api, b["id"], EVERYWHERE)
    assert regions.copies(b["id"]) == {"eu": data, "ap": data, "us": data}
    found = api.ok("GET", f"{API}/events?resource_id={b['id']}&action=replica:corrupt")["items"]
    assert sorted(e["after"]["region"] for e in found) == ["ap", "us"]
    # The primary's copy is repaired from another region the same way.
    primary = tmp_path / "data" / "store" / "content" / b["id"]
    primary.write_bytes(b"x" * len(data))
    r = subprocess.run([*cli, "--region", "eu"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("1 copies queued"), r
    wait_replicas(api, b["id"], EVERYWHERE)
    assert primary.read_bytes() == data
    shown = subprocess.run([sys.executable, "-m", "ferryman", "binaries", "show", b["id"], "--url",
                            f"http://127.0.0.1:{regions.server.port}", "--token", ADMIN],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert shown.returncode == 0 and "region us" in shown.stdout and "verified" in shown.stdout


def test_a_destroyed_binary_leaves_every_region(regions: Regions):
    api = regions.start()
    data = os.urandom(2048)
    b = one_binary(api, data)
    wait_replicas(api, b["id"], EVERYWHERE)
    api.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "destroyed"})
    deadline = time.monotonic() + 20
    while replicas(api, b["id"]) or any(regions.copies(b["id"]).values()):
        assert time.monotonic() < deadline, (replicas(api, b["id"]), regions.copies(b["id"]))
        time.sleep(0.05)


def test_regions_are_checked_before_the_server_starts(tmp_path: Path):
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "ferryman", "serve", "--check", "--data", str(tmp_path / "d"), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    ok = serve("--region", f"eu=file://{tmp_path}/eu", "--region", f"ap=file://{tmp_path}/ap", "--primary-region", "ap")
    assert ok.returncode == 0 and f"stores ap file://{tmp_path}/ap, eu file://{tmp_path}/eu" in ok.stdout, ok
    for args, says in [
        (["--region", "EU=file:///x"], "expected NAME=VALUE"),
        (["--region", "eu=file:///x", "--region", "eu=file:///y"], "configured twice"),
        (["--region", "eu=file:///x", "--store", "file:///y"], "each region names its store"),
        (["--region", "eu=file:///x", "--primary-region", "ap"], "primary region 'ap' is not a configured region"),
        (["--region", "eu=file:///x", "--cdn-base-url", "ap=https://cdn"], "names no configured region: ap"),
        (["--region", "eu=file:///x", "--cdn-base-url", "eu=ftp://cdn"], "must be http(s)://host"),
        (
            [
                "--region",
                "eu=file:///x",
                "--region",
                "us=s3://b/p?endpoint=http://127.0.0.1:1&allow_http=true&access_key_id=k&secret_access_key=s&region=us-east-1",
            ],
            "region us: store s3://b/p: cannot use it",
        ),
    ]:
        r = serve(*args)
        assert r.returncode == 1 and says in r.stderr and "secret" not in r.stderr, (args, r.stderr)
    file = tmp_path / "regions.toml"
    file.write_text(f'[regions.eu]\nstore = "file://{tmp_path}/eu"\n[regions.ap]\nstore = "file://{tmp_path}/ap"\n'
                    'cdn_base_url = "https://cdn.example"\nprimary = true\n')  # fmt: skip
    r = serve("--regions-file", str(file))
    assert r.returncode == 0 and "stores ap" in r.stdout, r


def test_a_region_named_in_the_api_must_be_configured(regions: Regions):
    api = regions.start()
    r = api.post(f"{API}/devices", {"identifier": "x", "target": TARGET, "region": "mars"})
    assert r.status == 422 and "no region 'mars'" in r.json["detail"] and r.json["errors"] == {"region": ["unknown region"]}
    r = api.post(f"{API}/cohorts", {"name": "c", "region": "Mars"})
    assert r.status == 422
    assert api.post(f"{API}/replication/verify", {"region": "mars"}).status == 422
    viewer = api.as_(api.ok("POST", f"{API}/api-keys", {"name": "v", "role": "viewer"})["token"])
    assert viewer.post(f"{API}/replication/verify", {}).status == 403
    assert viewer.get(f"{API}/replication").status == 200


def test_two_servers_on_one_catalog_copy_each_binary_once(tmp_path: Path, postgres: Postgres):
    r = Regions(tmp_path, catalog=postgres.database())
    other = r._server()
    try:
        api, api2 = r.start(), other.start()
        contents = [os.urandom(300_000 + i) for i in range(6)]
        made = [one_binary((api, api2)[i % 2], data) for i, data in enumerate(contents)]
        for b, data in zip(made, contents, strict=True):
            wait_replicas(api2, b["id"], EVERYWHERE)
            events = api.ok("GET", f"{API}/events?resource_id={b['id']}&action=replica:verified")["items"]
            assert sorted(e["after"]["region"] for e in events) == ["ap", "us"]
            assert r.copies(b["id"]) == {"eu": data, "ap": data, "us": data}
    finally:
        other.stop()
        r.stop()


def test_a_reset_binary_uploaded_again_is_copied_again(regions: Regions):
    api = regions.start()
    data = os.urandom(4096)
    b = one_binary(api, data)
    wait_replicas(api, b["id"], EVERYWHERE)
    api.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "uploadable"})
    assert {r["state"] for r in replicas(api, b["id"]).values()} <= {"deleting"}
    assert api.put(f"{API}/binaries/{b['id']}/content", data).status == 200
    api.wait_state(b["id"], {"signable"})
    wait_replicas(api, b["id"], EVERYWHERE, timeout=30)
    assert regions.copies(b["id"]) == {"eu": data, "ap": data, "us": data}
