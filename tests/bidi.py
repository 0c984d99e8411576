"""Firefox driven over WebDriver BiDi (the W3C protocol Firefox speaks natively), for the tests.

Playwright drives only its own patched Firefox, which cannot be downloaded here, and Debian has
no geckodriver for Selenium; Debian's firefox-esr listens for BiDi itself. This is the small part
of the protocol the console's tests need: navigate, evaluate a script, collect console errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Firefox"]


class Firefox:
    def __init__(self, port: int) -> None:
        self.firefox = shutil.which("firefox-esr") or shutil.which("firefox")
        assert self.firefox, "no firefox"
        self.profile = tempfile.TemporaryDirectory(prefix="ferryman-firefox-")
        self.port = port
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}

    async def __aenter__(self) -> Firefox:
        self.proc = subprocess.Popen(
            [self.firefox, "--headless", "--profile", self.profile.name, f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.http = aiohttp.ClientSession()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{self.port}/session", max_msg_size=0)
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self._reader = asyncio.create_task(self._read())
        await self.send("session.new", {"capabilities": {}})
        await self.send("session.subscribe", {"events": ["log.entryAdded"]})
        tree = await self.send("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError):
            await asyncio.wait_for(self.send("session.end", {}), 5)
        self._reader.cancel()
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.profile.cleanup()

    async def _read(self) -> None:
        async for msg in self.ws:
            data = msg.json()
            if data.get("type") == "event" and data.get("method") == "log.entryAdded":
                entry = data["params"]
                if entry.get("level") == "error":
                    self.errors.append(str(entry.get("text")))
            elif "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if data.get("type") == "error":
                    future.set_exception(RuntimeError(f"{data.get('error')}: {data.get('message')}"))
                else:
                    future.set_result(data.get("result"))

    async def send(self, method: str, params: dict[str, Any]) -> Any:
        command_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self.ws.send_json({"id": command_id, "method": method, "params": params})
        return await asyncio.wait_for(future, 30)

    async def go(self, url: str) -> None:
        await self.send("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    async def run(self, expression: str) -> Any:
        """The value of a script in the page (strings, numbers and booleans)."""
        result = await self.send("script.evaluate", {"expression": expression, "target": {"context": self.context},
                                                     "awaitPromise": True})  # fmt: skip
        if result.get("type") == "exception":
            raise RuntimeError(result["exceptionDetails"]["text"])
        return result["result"].get("value")

    async def submit(self, expression: str) -> None:
        """Runs a script that sends a form, and waits for the page it leads to."""
        before = await self.run("performance.timeOrigin")
        await self.run(expression)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if await self.run("document.readyState") == "complete" and await self.run("performance.timeOrigin") != before:
                    return
            except RuntimeError:  # the page was being replaced
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError("the form led nowhere")


def firefox_path() -> Path | None:
    found = shutil.which("firefox-esr") or shutil.which("firefox")
    return Path(found) if found else None
