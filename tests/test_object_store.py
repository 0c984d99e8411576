"""The object store on a real S3 server (moto's, in a process of its own): redirects to
presigned URLs, a store that cannot be reached, the janitor, and store URLs for S3, Azure and
GCS (Azure and GCS are configured here, not run: no emulator installs on this machine)."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import ADMIN, Api, ThreadServer, free_port
from services import S3Server
from test_server_binaries import PART, declare, problem, put_part, upload
from test_server_fleet import API, Fleet, check
from upload_helpers import chunks, new_binary, run, uploaded

from ferryman.blobs.objects import ObjectBlobStore, open_object_store
from ferryman.catalog import models as m
from ferryman.config import Config
from ferryman.lifecycle import State


@pytest.fixture
def redirecting(tmp_path: Path, s3: S3Server) -> Iterator[Api]:
    url, _, _ = s3.bucket()
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, store=url, download_mode="redirect"))
    try:
        yield srv.start()
    finally:
        srv.stop()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""), headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def test_redirect_mode_sends_devices_to_a_presigned_url(redirecting: Api):
    api = redirecting
    fleet = Fleet(api)
    entry = check(fleet.one_device_on_a_release())["binaries"][0]
    (data,) = fleet.content.values()
    status, headers, _ = _get(entry["url"])
    assert status == 302
    assert headers["ETag"] == f'"{entry["sha256"]}"' and headers["Cache-Control"].startswith("public, max-age=")
    location = headers["Location"]
    assert "X-Amz-Signature=" in location
    status, _, body = _get(location)
    assert status == 200 and body == data and hashlib.sha256(body).hexdigest() == entry["sha256"]
    # The store serves ranges itself.
    status, _, body = _get(location, {"Range": "bytes=10-19"})
    assert (status, body) == (206, data[10:20])
    # Operators' downloads are still proxied.
    binary_id = urlsplit(entry["url"]).path.split("/")[-1].split(".")[0]
    assert api.get(f"{API}/binaries/{binary_id}/content").body == data


def test_an_unreachable_store_answers_503_and_records_nothing(tmp_path: Path):
    dead = f"s3://nowhere/p?endpoint=http://127.0.0.1:{free_port()}&allow_http=true&region=us-east-1&access_key_id=a&secret_access_key=b"
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, store=dead))
    api = srv.start()
    try:
        data = os.urandom(PART + 10)
        b = declare(api, data)
        started = time.monotonic()
        r = put_part(api, b["id"], 1, data[:PART])
        body = problem(r, 503)
        assert r.headers["Retry-After"] == "1" and "object store" in body["detail"]
        assert time.monotonic() - started < 30
        assert api.ok("GET", f"{API}/binaries/{b['id']}/parts")["parts"] == []
    finally:
        srv.stop()


def test_the_janitor_removes_only_parts_nobody_needs(tmp_path: Path, s3: S3Server):
    url, client, bucket = s3.bucket()
    store = ObjectBlobStore(open_object_store(url), url)

    def part_objects() -> set[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="fm/uploads/").get("Contents", [])
        return {o["Key"].split("/")[2] for o in listed}

    async def scenario(u) -> None:
        c = u.catalog
        published = await uploaded(u, os.urandom(1000))  # signable: its part was removed
        pending = await new_binary(u, os.urandom(PART))  # uploadable: its part is needed
        data = os.urandom(PART)
        await u.receive_part("t", pending.id, 1, len(data), chunks(data))
        destroyed = await uploaded(u, os.urandom(10))
        await u.change("t", destroyed.id, m.BinaryPatch(state="destroyed"))
        reset_later = await uploaded(u, os.urandom(1000))
        just_changed = await uploaded(u, os.urandom(1000))
        # What crashes leave: parts of published and of destroyed binaries, of one the
        # catalog never knew, and something that is not ours at all.
        for binary_id in (published.id, reset_later.id, just_changed.id, destroyed.id, "bin_" + "z" * 26):
            client.put_object(Bucket=bucket, Key=f"fm/uploads/{binary_id}/{0:020d}", Body=b"left over")
        client.put_object(Bucket=bucket, Key="fm/uploads/not-ours/x", Body=b"keep")
        # The store keeps whole seconds; the janitor allows a margin of two. A change 1.5 s
        # after the parts' second is within it (kept), one 2.5 s after is not (swept).
        head = client.head_object(Bucket=bucket, Key=f"fm/uploads/{published.id}/{0:020d}")
        second = head["LastModified"].timestamp()
        time.sleep(max(0.0, second + 1.5 - time.time()))
        await c.change_binary("t", just_changed.id, m.BinaryPatch(description="released"))
        time.sleep(max(0.0, second + 2.5 - time.time()))
        await c.change_binary("t", published.id, m.BinaryPatch(description="released"))
        assert (await c.get_binary(published.id)).state == State.SIGNABLE
        swept = await u.sweep()
        # reset_later's part is newer than its last change (as a new upload after a reset
        # would be), just_changed's is too close to tell: both kept.
        assert sorted(swept) == sorted([published.id, destroyed.id, "bin_" + "z" * 26])
        assert part_objects() == {pending.id, reset_later.id, just_changed.id, "not-ours"}

    run(tmp_path, scenario, store)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("s3://bucket/prefix?region=eu-west-1&access_key_id=a&secret_access_key=b", None),
        ("az://container/prefix?account_name=devstoreaccount1&account_key=a2V5", None),
        ("gs://bucket/prefix?skip_signature=true", None),
        ("gs://bucket/prefix?service_account_key=%7B%7D", "Unable to decode service account"),
        ("ftp://host/x", "expected file:///path, s3://bucket/prefix"),
        ("s3:///prefix", "expected file:///path"),
        ("s3://bucket/p?no_such_option=1", "store URL"),
    ],
)
def test_store_urls(url: str, error: str | None):
    if error is None:
        assert open_object_store(url) is not None
    else:
        with pytest.raises(ValueError, match=error.replace("?", r"\?")):
            open_object_store(url)


def test_serve_check_names_a_store_it_cannot_use(tmp_path: Path, s3: S3Server):
    good, _, _ = s3.bucket()
    missing = good.replace("s3://ferryman-", "s3://no-such-bucket-")
    for store, says in ((good, "ferryman: ok"), (missing, "cannot use it"), ("s3:///x", "expected file:///path")):
        cmd = [sys.executable, "-m", "ferryman", "serve", "--check", "--data", str(tmp_path / "d"), "--store", store]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip().splitlines()
        assert len(out) == 1 and says in out[0], (store, r.stdout, r.stderr)
        assert r.returncode == (0 if store is good else 1)


def test_a_file_store_url(tmp_path: Path):
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, store=f"file://{tmp_path / 'bytes'}"))
    api = srv.start()
    try:
        b = upload(api, b"firmware")
        api.ok("PATCH", f"{API}/binaries/{b['id']}", {"state": "hashable"})
        api.wait_state(b["id"], {"signable"})
        assert (tmp_path / "bytes" / "content" / b["id"]).read_bytes() == b"firmware"
    finally:
        srv.stop()


def test_store_settings_come_from_the_environment(tmp_path: Path, s3: S3Server):
    _, _, bucket = s3.bucket()
    env = {**os.environ, "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": s3.region,
           "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}  # fmt: skip
    cmd = [sys.executable, "-m", "ferryman", "serve", "--check", "--data", str(tmp_path), "--store", f"s3://{bucket}/fm"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout.startswith("ferryman: ok"), r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**env, "AWS_ALLOW_HTTP": "false"})
    assert r.returncode == 1 and "cannot use it" in r.stderr


def test_publishing_keeps_the_content_hashing_wrote_or_assembles_it(tmp_path: Path, s3: S3Server):
    url, client, bucket = s3.bucket()
    store = ObjectBlobStore(open_object_store(url), url)

    def keys(prefix: str) -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]

    async def scenario(u) -> None:
        for keep in (True, False):
            data = os.urandom(PART + 100)
            b = await new_binary(u, data)
            for offset in (0, PART):
                piece = data[offset : offset + PART]
                await store.receive_part(b.id, chunks(piece), offset, len(piece))
            digest = await store.digest(b.id, keep=keep)
            assert (digest.size, digest.sha256) == (len(data), hashlib.sha256(data).hexdigest())
            # With keep, the content is written in the hashing pass; without, not yet.
            assert keys(f"fm/content/{b.id}") == ([f"fm/content/{b.id}"] if keep else [])
            await store.publish(b.id)
            assert keys(f"fm/uploads/{b.id}/") == []
            content = await store.open(b.id)
            assert b"".join([chunk async for chunk in content.read(0, content.size)]) == data

    run(tmp_path, scenario, store)
