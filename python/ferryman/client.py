"""A client for the Ferryman API: ``Client`` (async, aiohttp) and ``SyncClient`` for scripts.

Typed helpers (``create_binary``, ``create_release``, ...) take and return the server's own
msgspec models (``ferryman.catalog.models``); ``get``, ``post``, ``patch``, ``delete`` and
``pages`` reach every route of ``GET /api/v1/openapi.json`` and return decoded JSON. Errors
raise :class:`ApiError`, which carries the RFC 9457 problem (``status``, ``title``,
``detail``, ``errors``), or :class:`TransportError` when the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from ferryman.catalog import models as m
from ferryman.errors import FerrymanError

__all__ = ["ApiError", "Client", "SyncClient", "TransportError"]

API = "/api/v1"
T = TypeVar("T")


class ApiError(FerrymanError):
    """The server answered with an error (a problem+json body when it is Ferryman)."""

    def __init__(self, status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None, body: Any = None):
        # A full disk is the operator's to fix, not the request's: say so in their words.
        super().__init__(f"the server is out of disk space ({detail})" if status == 507 else f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.errors, self.body = status, title, detail, errors or {}, body


class TransportError(FerrymanError):
    """The server could not be reached or the connection broke."""


Progress = Callable[[int], None]


class Client:
    """Async client. Use as ``async with Client(url, token) as c: ...``."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 300) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
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

    # Typed helpers: the request and answer types are the server's own msgspec models ----------

    async def _typed(self, method: str, path: str, body: msgspec.Struct | None, out: type[T]) -> T:
        payload = msgspec.to_builtins(body) if body is not None else None
        return msgspec.convert(await self.request(method, path, payload), out)

    async def create_api_key(self, body: m.ApiKeyCreate) -> m.ApiKey:
        return await self._typed("POST", f"{API}/api-keys", body, m.ApiKey)

    async def create_artifact(self, body: m.ArtifactCreate) -> m.Artifact:
        return await self._typed("POST", f"{API}/artifacts", body, m.Artifact)

    async def get_artifact(self, artifact_id: str) -> m.Artifact:
        return await self._typed("GET", f"{API}/artifacts/{artifact_id}", None, m.Artifact)

    async def create_version(self, artifact_id: str, body: m.VersionCreate) -> m.Version:
        return await self._typed("POST", f"{API}/artifacts/{artifact_id}/versions", body, m.Version)

    async def create_binary(self, version_id: str, body: m.BinaryCreate) -> m.Binary:
        return await self._typed("POST", f"{API}/versions/{version_id}/binaries", body, m.Binary)

    async def get_binary(self, binary_id: str) -> m.Binary:
        return await self._typed("GET", f"{API}/binaries/{binary_id}", None, m.Binary)

    async def patch_binary(self, binary_id: str, body: m.BinaryPatch) -> m.Binary:
        return await self._typed("PATCH", f"{API}/binaries/{binary_id}", body, m.Binary)

    async def get_parts(self, binary_id: str) -> m.PartList:
        return await self._typed("GET", f"{API}/binaries/{binary_id}/parts", None, m.PartList)

    async def create_signing_key(self, body: m.SigningKeyCreate) -> m.SigningKey:
        return await self._typed("POST", f"{API}/signing-keys", body, m.SigningKey)

    async def add_signature(self, binary_id: str, body: m.SignatureCreate) -> m.Signature:
        return await self._typed("POST", f"{API}/binaries/{binary_id}/signatures", body, m.Signature)

    async def create_bundle(self, body: m.BundleCreate) -> m.Bundle:
        return await self._typed("POST", f"{API}/bundles", body, m.Bundle)

    async def create_channel(self, body: m.ChannelCreate) -> m.Channel:
        return await self._typed("POST", f"{API}/channels", body, m.Channel)

    async def create_cohort(self, body: m.CohortCreate) -> m.Cohort:
        return await self._typed("POST", f"{API}/cohorts", body, m.Cohort)

    async def create_release(self, channel_id: str, body: m.ReleaseCreate) -> m.Release:
        return await self._typed("POST", f"{API}/channels/{channel_id}/releases", body, m.Release)

    async def patch_release(self, release_id: str, body: m.ReleasePatch) -> m.Release:
        return await self._typed("PATCH", f"{API}/releases/{release_id}", body, m.Release)

    async def create_device(self, body: m.DeviceCreate) -> m.Device:
        return await self._typed("POST", f"{API}/devices", body, m.Device)

    async def delete_device(self, device_id: str) -> None:
        await self.request("DELETE", f"{API}/devices/{device_id}")

    async def rotate_device_token(self, device_id: str) -> m.Device:
        return await self._typed("POST", f"{API}/devices/{device_id}/token", None, m.Device)

    async def create_override(self, body: m.OverrideCreate) -> m.Override:
        return await self._typed("POST", f"{API}/bundle-overrides", body, m.Override)

    # The workflow ------------------------------------------------------------------------

    async def find_artifact(self, name: str) -> dict[str, Any] | None:
        items = (await self.get(f"{API}/artifacts", name=name))["items"]
        return items[0] if items else None

    async def find_version(self, artifact_id: str, version: str) -> dict[str, Any] | None:
        async for v in self.pages(f"{API}/artifacts/{artifact_id}/versions"):
            if v["version"] == version:
                return v
        return None

    async def find_binary(self, version_id: str, target: str) -> dict[str, Any] | None:
        async for b in self.pages(f"{API}/versions/{version_id}/binaries", target=target):
            if b["state"] != "destroyed":
                return b
        return None

    async def put_part(self, binary_id: str, index: int, chunk: bytes, sha256_hex: str) -> dict[str, Any]:
        digest = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        return await self.request(
            "PUT", f"{API}/binaries/{binary_id}/parts/{index}", data=chunk, headers={"Content-Digest": f"sha-256=:{digest}:"}
        )

    async def wait_state(self, binary_id: str, states: set[str], timeout: float = 3600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            b = await self.get(f"{API}/binaries/{binary_id}")
            if b["state"] in states:
                return b
            if b["state"] not in ("hashing",):
                raise FerrymanError(f"binary {binary_id} is {b['state']}" + (f": {b['error']}" if b.get("error") else ""))
            if time.monotonic() > deadline:
                raise FerrymanError(f"binary {binary_id} still {b['state']} after {timeout:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def device_update(self, device_token: str, reported: dict[str, str | None] | None = None) -> Any:
        names = {"release_id": "Ferryman-Release-Id", "bundle_id": "Ferryman-Bundle-Id", "version": "Ferryman-Release-Version"}
        headers = {names[k]: v for k, v in (reported or {}).items() if v}
        return await self.request("GET", "/device/v1/update", headers=headers, token=device_token)

    async def device_report(self, device_token: str, report: dict[str, Any]) -> Any:
        return await self.request("POST", "/device/v1/report", report, token=device_token)

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


class SyncClient:
    """The same methods, blocking: each call runs on a private event loop."""

    def __init__(self, url: str, token: str | None = None, **kw: Any) -> None:
        self._args = (url, token)
        self._kw = kw

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if not hasattr(Client, name) or name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                async with Client(*self._args, **self._kw) as c:
                    result = getattr(c, name)(*args, **kwargs)
                    if isinstance(result, Awaitable):
                        return await result
                    return [x async for x in result]

            return asyncio.run(run())

        return call
