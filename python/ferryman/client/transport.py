"""The client's HTTP layer: a session, requests that turn problem+json answers into
:class:`ApiError` and broken connections into :class:`TransportError`, untyped ``get``,
``post``, ``patch``, ``delete`` and ``pages`` for any route, and resumable, verified downloads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Self

import aiohttp
import msgspec

from ferryman.errors import FerrymanError

__all__ = ["ApiError", "Progress", "Transport", "TransportError"]


class ApiError(FerrymanError):
    """The server answered with an error (a problem+json body when it is Ferryman)."""

    def __init__(self, status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None, body: Any = None):
        # A full disk is the operator's to fix, not the request's: say so in their words.
        super().__init__(f"the server is out of disk space ({detail})" if status == 507 else f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.errors, self.body = status, title, detail, errors or {}, body


class TransportError(FerrymanError):
    """The server could not be reached or the connection broke."""


Progress = Callable[[int], None]


class Transport:
    """The untyped client (see the module doc); ``Client`` adds the typed operations."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 300) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use 'async with Client(...)'"
        return self._session

    def _headers(self, extra: dict[str, str] | None = None, token: str | None = None) -> dict[str, str]:
        h = dict(extra or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return h

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Any:
        url = path if path.startswith("http") else self.url + path
        body = msgspec.json.encode(json) if json is not None else data
        hdrs = self._headers(headers, token)
        if json is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            async with self.session.request(method, url, data=body, headers=hdrs, params=params) as r:
                raw = await r.read()
                if r.status >= 400:
                    raise _error(r.status, r.reason or "", raw)
                return msgspec.json.decode(raw) if raw else None
        except aiohttp.ClientConnectionError as e:
            raise TransportError(f"cannot reach {self.url}: {e}") from None
        except TimeoutError:
            raise TransportError(f"{method} {url} timed out") from None

    async def get(self, path: str, **params: str) -> Any:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.request("POST", path, json if json is not None else {})

    async def patch(self, path: str, json: Any) -> Any:
        return await self.request("PATCH", path, json)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def pages(self, path: str, **params: str) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list route, following ``next_cursor``."""
        cursor = None
        while True:
            page = await self.get(path, **params, limit="500", **({"cursor": cursor} if cursor else {}))
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if not cursor:
                return

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str,
        size: int | None = None,
        token: str | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """Downloads ``url`` to ``dest`` through ``dest.part``, resuming a previous partial
        download with ``Range`` and ``If-Range`` (so a changed file restarts from zero), and
        renames it into place only if its SHA-256 matches. Raises FerrymanError otherwise (the
        unverified bytes are removed)."""
        from ferryman.hashing import hash_file

        part = dest.with_name(dest.name + ".part")
        etag = f'"{sha256}"'
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        headers = self._headers(None, token if token is not None else ("" if "/dl/" in url else None))
        if have:
            headers |= {"Range": f"bytes={have}-", "If-Range": etag}
        full = url if url.startswith("http") else self.url + url
        try:
            async with self.session.get(full, headers=headers) as r:
                if r.status == 416 and size is not None and have == size:
                    pass  # complete already
                elif r.status >= 400:
                    raise _error(r.status, r.reason or "", await r.read())
                else:
                    mode = "ab" if r.status == 206 else "wb"
                    with open(part, mode) as f:
                        if progress and mode == "ab":
                            progress(have)
                        async for chunk in r.content.iter_chunked(1 << 20):
                            f.write(chunk)
                            if progress:
                                progress(len(chunk))
                        f.flush()
                        os.fsync(f.fileno())
        except aiohttp.ClientConnectionError as e:
            raise TransportError(f"download interrupted: {e} (run again to resume)") from None
        got = await asyncio.get_running_loop().run_in_executor(None, hash_file, part)
        if got.sha256 != sha256:
            part.unlink(missing_ok=True)
            raise FerrymanError(f"download of {url} has SHA-256 {got.sha256}, expected {sha256}; removed")
        os.replace(part, dest)
        return dest


def _error(status: int, reason: str, raw: bytes) -> ApiError:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return ApiError(status, reason, raw[:200].decode(errors="replace").strip() or reason)
    if isinstance(body, dict) and "detail" in body:
        return ApiError(status, body.get("title", reason), body["detail"], body.get("errors"), body)
    return ApiError(status, reason, str(body)[:200], None, body)
