"""A real cache in front: nginx as the CDN of one region (``proxy_cache``, Ferryman its
origin), as an operator would put one. Devices of that region get the CDN's URLs; one cached
copy serves every device answered within the same grant window; ranges and ``If-Range`` are
answered from the cache, and a stale ``If-Range`` gets the whole body, never a splice."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiclient import free_port
from services import grant_secret
from test_replication import EVERYWHERE, TARGET, Regions, released_in_asia, wait_replicas
from test_server_fleet import Fleet, check

from conftest import _missing
from ferryman import grants

NGINX = """
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    proxy_cache_path {tmp}/cache keys_zone=cdn:1m;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /cdn/ {{
            proxy_pass http://127.0.0.1:{origin}/;
            proxy_cache cdn;
            add_header X-Cache $upstream_cache_status always;
        }}
    }}
}}
"""


class Cdn:
    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if exe is None:
            _missing("nginx (Debian package nginx)")
        self.tmp, self.exe, self.port = tmp, exe, free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/cdn"

    def start(self, origin: int) -> None:
        conf = self.tmp / "nginx.conf"
        # Workers of a root master would run as nobody, who cannot enter pytest's 0700 temporary
        # directories: they stay the test's user.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX.format(tmp=self.tmp, port=self.port, origin=origin, user=user))
        self.proc = subprocess.Popen([str(self.exe), "-c", str(conf), "-e", str(self.tmp / "error.log")])
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "nginx did not start"
                time.sleep(0.05)

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", parts.path, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.headers), r.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[tuple[Regions, Cdn]]:
    c = Cdn(tmp_path / "cdn")
    r = Regions(tmp_path, "--cdn-base-url", f"ap={c.base}")
    c.start(r.server.port)
    yield r, c
    r.stop()
    c.stop()


def test_a_cdn_in_front_serves_one_cached_copy_with_ranges(cdn: tuple[Regions, Cdn]):
    regions, c = cdn
    api = regions.start()
    fleet, cohort, binary_id = released_in_asia(api)
    data = fleet.content[binary_id]
    one, two = fleet.device("d1", TARGET, cohort)[1], fleet.device("d2", TARGET, cohort)[1]
    url = check(one)["binaries"][0]["url"]
    assert url.startswith(f"{c.base}/dl/ap/")
    status, headers, body = c.get(url)
    assert (status, body, headers["X-Cache"]) == (200, data, "MISS")
    # The other device, answered within the same minute, has the same URL: the cached copy.
    if check(two)["binaries"][0]["url"] == url:
        status, headers, body = c.get(url)
        assert (status, body, headers["X-Cache"]) == (200, data, "HIT")
    # Ranges and If-Range from the cache.
    status, headers, body = c.get(url, {"Range": "bytes=100-199"})
    assert (status, body, headers["X-Cache"]) == (206, data[100:200], "HIT")
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, headers, body = c.get(url, {"Range": "bytes=100-199", "If-Range": headers["ETag"]})
    assert (status, body) == (206, data[100:200])
    stale = '"' + "0" * 64 + '"'  # a client resuming a download of other bytes
    status, headers, body = c.get(url, {"Range": "bytes=100-199", "If-Range": stale})
    assert (status, body) == (200, data)
    assert "immutable" in headers["Cache-Control"]


def test_a_cached_answer_is_not_served_past_its_grant(cdn: tuple[Regions, Cdn]):
    """The cache keeps an answer only as long as the grant in its URL lives (max-age is the
    grant's time left): an expired grant is refused at the origin, not served from the cache."""
    regions, c = cdn
    api = regions.start()
    fleet = Fleet(api)
    binary = fleet.binaries("1.0.0", targets=[TARGET])[0]
    wait_replicas(api, binary["id"], EVERYWHERE)
    token = grants.issue(grant_secret(regions.tmp / "data"), binary["id"], int(time.time()) + 2)
    url = f"{c.base}/dl/ap/{token}"
    status, headers, _ = c.get(url)
    assert status == 200 and int(headers["Cache-Control"].split("max-age=")[1].split(",")[0]) <= 2
    time.sleep(3.5)
    assert c.get(url)[0] == 403
