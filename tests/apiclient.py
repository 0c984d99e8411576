"""A small synchronous HTTP client and an in-process server on a real socket, for the service
tests. Everything goes over TCP on 127.0.0.1; nothing is mocked."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ferryman.config import Config
from ferryman.server import create_app, start_site

ADMIN = "test-admin-token"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


@dataclass
class Api:
    host: str
    port: int
    token: str | None = ADMIN
    timeout: float = 60

    def as_(self, token: str | None) -> Api:
        return Api(self.host, self.port, token, self.timeout)

    def call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            hdrs = dict(headers or {})
            if self.token is not None:
                hdrs.setdefault("Authorization", f"Bearer {self.token}")
            if json_body is not None:
                body = json.dumps(json_body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, json_body, **kw)

    def patch(self, path: str, json_body: Any = None, **kw: Any) -> Reply:
        return self.call("PATCH", path, json_body, **kw)

    def put(self, path: str, body: bytes, **kw: Any) -> Reply:
        return self.call("PUT", path, body=body, **kw)

    def ok(self, method: str, path: str, json_body: Any = None, **kw: Any) -> Any:
        r = self.call(method, path, json_body, **kw)
        assert 200 <= r.status < 300, r
        return r.json if r.body else None

    def wait_state(self, binary_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            b = self.ok("GET", f"/api/v1/binaries/{binary_id}")
            if b["state"] in states:
                return b
            assert time.monotonic() < deadline, f"binary stuck in {b['state']}"
            time.sleep(0.02)


@dataclass
class ThreadServer:
    """The app on an event loop in a background thread, listening on an ephemeral port."""

    config: Config
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None

    def start(self) -> Api:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(30), "server did not start"
        return Api("127.0.0.1", self.port)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def up() -> None:
            self.app = create_app(self.config)
            self._runner, site = await start_site(self.app, self.config, port=0)
            self.port = site.port

        self._loop.run_until_complete(up())
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def down() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(down(), self._loop).result(30)
        except TimeoutError:
            for task in asyncio.all_tasks(self._loop):  # what the shutdown waits on
                task.print_stack(file=sys.stderr)
            raise
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessServer:
    """``python -m ferryman serve`` in a child process, for tests that kill it."""

    def __init__(self, data: Path, catalog: str | None = None, *args: str) -> None:
        self.data = data
        self.catalog = catalog
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Api:
        env = {**os.environ, "FERRYMAN_ADMIN_TOKEN": ADMIN}
        if self.catalog:
            env["FERRYMAN_CATALOG"] = self.catalog
        cmd = [sys.executable, "-m", "ferryman", "serve", "--port", str(self.port), "--data", str(self.data), *self.args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = Api("127.0.0.1", self.port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if api.get("/healthz").status == 200:
                    return api
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
