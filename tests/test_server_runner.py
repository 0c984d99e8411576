"""Connection limits (server/runner.py) and how client disconnects are logged."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import time
from pathlib import Path

import pytest
from apiclient import ADMIN, Api, ThreadServer
from test_server_signing import signable

from ferryman.config import Config

API = "/api/v1"


def _closed_within(s: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``s`` (None if it stayed open that long)."""
    start = time.monotonic()
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


@pytest.fixture
def limited(tmp_path: Path):
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, header_timeout=0.5, max_connections=8))
    api = srv.start()
    yield api
    srv.stop()


def test_partial_headers_are_dropped_after_the_header_timeout(limited: Api):
    s = socket.create_connection((limited.host, limited.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    took = _closed_within(s, 5)
    s.close()
    assert took is not None and took < 3


def test_a_silent_connection_is_dropped_too(limited: Api):
    s = socket.create_connection((limited.host, limited.port))
    took = _closed_within(s, 5)
    s.close()
    assert took is not None and took < 3


def test_a_request_on_time_is_served_and_kept_alive_briefly(limited: Api):
    conn = http.client.HTTPConnection(limited.host, limited.port, timeout=5)
    conn.request("GET", "/healthz")
    first = conn.getresponse()
    assert first.status == 200 and first.read()
    conn.request("GET", "/healthz")  # the same connection, within the timeout
    assert conn.getresponse().status == 200
    conn.close()


def test_connections_over_the_cap_get_503_and_the_rest_are_served(tmp_path: Path):
    srv = ThreadServer(Config(data_dir=tmp_path / "data", admin_token=ADMIN, header_timeout=30, max_connections=8))
    api = srv.start()
    held = []
    try:
        for _ in range(8):
            held.append(socket.create_connection((api.host, api.port)))
            time.sleep(0.02)  # each is counted once its handler starts
        time.sleep(0.2)
        extra = socket.create_connection((api.host, api.port))
        extra.settimeout(5)
        answer = extra.recv(4096)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"too many open connections" in answer
        for s in held[:4]:
            s.close()
        time.sleep(0.2)
        assert api.get("/healthz").status == 200
    finally:
        for s in held:
            s.close()
        srv.stop()


def test_client_disconnects_are_one_quiet_line(server: Api, caplog):
    """An aborted download and an aborted upload each log one INFO line, no traceback."""
    b, _ = signable(server, os.urandom(64 << 20))
    caplog.set_level(logging.DEBUG)
    s = socket.create_connection((server.host, server.port))
    s.sendall(f"GET {API}/binaries/{b['id']}/content HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n".encode())
    s.recv(1024)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset on close
    s.close()

    up = server.ok("POST", f"{API}/versions/{b['version_id']}/binaries",
                   {"target": "x86_64-linux-gnu", "size": 5 << 20, "sha256": "0" * 64})  # fmt: skip
    s = socket.create_connection((server.host, server.port))
    s.sendall(
        f"PUT {API}/binaries/{up['id']}/parts/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n"
        f"Content-Length: {5 << 20}\r\n\r\n".encode()
        + b"x" * 1000
    )
    time.sleep(0.2)
    s.close()
    deadline = time.monotonic() + 10
    while sum("disconnected" in r.getMessage() for r in caplog.records) < 2:
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.05)
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info]
    assert server.ok("GET", f"{API}/binaries/{up['id']}/parts")["missing"] == [1]
