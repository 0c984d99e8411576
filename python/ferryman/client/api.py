"""``Client``: the typed operations of the API, taking and returning the server's own msgspec
models (``ferryman.catalog.models``), on the paths of ``ferryman.paths``. The CLI calls only
these. ``SyncClient`` offers the same methods, blocking, for scripts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ferryman import paths
from ferryman.catalog import models as m
from ferryman.client.signers import Signer, open_signer
from ferryman.client.transport import Transport
from ferryman.client.upload import Uploaded, upload
from ferryman.errors import FerrymanError
from ferryman.paths import at
from ferryman.releases import Reported

__all__ = ["Client", "SyncClient"]

T = TypeVar("T")


class Client(Transport):
    """Async client. Use as ``async with Client(url, token) as c: ...``."""

    async def _typed(self, method: str, path: str, body: msgspec.Struct | None, out: type[T], **params: str) -> T:
        payload = msgspec.to_builtins(body) if body is not None else None
        return msgspec.convert(await self.request(method, path, payload, params=params or None), out)

    async def each(self, path: str, shape: type[T], **params: str) -> AsyncIterator[T]:
        """Every item of a list route as ``shape``, following cursors."""
        async for item in self.pages(path, **params):
            yield msgspec.convert(item, shape)

    # Any resource, by its paths and model (the CLI's resource table drives these) ---------------

    async def page(self, path: str, shape: type[T], limit: int, cursor: str | None = None, **filters: str) -> m.Page[T]:
        """One page of a list route (``limit`` 1..500), with the API's filters."""
        params = {**filters, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        return await self._typed("GET", path, None, m.Page[shape], **params)  # type: ignore[valid-type]

    async def read(self, path: str, shape: type[T]) -> T:
        """``GET`` one resource as ``shape``."""
        return await self._typed("GET", path, None, shape)

    async def change(self, path: str, body: msgspec.Struct, shape: type[T]) -> T:
        """``PATCH`` one resource with ``body`` (only the fields it sets) and return it."""
        return await self._typed("PATCH", path, body, shape)

    async def remove(self, path: str) -> None:
        await self.request("DELETE", path)

    # Keys ---------------------------------------------------------------------------------------

    async def create_api_key(self, body: m.ApiKeyCreate) -> m.ApiKey:
        return await self._typed("POST", paths.API_KEYS, body, m.ApiKey)

    async def create_signing_key(self, body: m.SigningKeyCreate) -> m.SigningKey:
        return await self._typed("POST", paths.SIGNING_KEYS, body, m.SigningKey)

    async def get_signing_key(self, key_id: str) -> m.SigningKey:
        return await self._typed("GET", at(paths.SIGNING_KEY, key_id=key_id), None, m.SigningKey)

    async def find_signing_key(self, keyid: str) -> m.SigningKey | None:
        """The registered key with this keyid (SHA-256 of its SubjectPublicKeyInfo), if any."""
        page = await self._typed("GET", paths.SIGNING_KEYS, None, m.Page[m.SigningKey], keyid=keyid)
        return page.items[0] if page.items else None

    async def signing_policy(self) -> m.SigningPolicy:
        return await self._typed("GET", paths.SIGNING_POLICY, None, m.SigningPolicy)

    async def revoke_signing_key(self, key_id: str) -> m.SigningKey:
        return await self._typed("PATCH", at(paths.SIGNING_KEY, key_id=key_id), m.SigningKeyPatch(state="revoked"), m.SigningKey)

    # Artifacts, versions, binaries --------------------------------------------------------------

    async def create_artifact(self, body: m.ArtifactCreate) -> m.Artifact:
        return await self._typed("POST", paths.ARTIFACTS, body, m.Artifact)

    async def get_artifact(self, artifact_id: str) -> m.Artifact:
        return await self._typed("GET", at(paths.ARTIFACT, artifact_id=artifact_id), None, m.Artifact)

    async def find_artifact(self, name: str) -> m.Artifact | None:
        page = await self._typed("GET", paths.ARTIFACTS, None, m.Page[m.Artifact], name=name)
        return page.items[0] if page.items else None

    async def create_version(self, artifact_id: str, body: m.VersionCreate) -> m.Version:
        return await self._typed("POST", at(paths.VERSIONS, artifact_id=artifact_id), body, m.Version)

    async def find_version(self, artifact_id: str, version: str) -> m.Version | None:
        async for v in self.each(at(paths.VERSIONS, artifact_id=artifact_id), m.Version):
            if v.version == version:
                return v
        return None

    async def create_binary(self, version_id: str, body: m.BinaryCreate) -> m.Binary:
        return await self._typed("POST", at(paths.VERSION_BINARIES, version_id=version_id), body, m.Binary)

    async def find_binary(self, version_id: str, target: str) -> m.Binary | None:
        """The version's live (not destroyed) binary for ``target``, if any."""
        async for b in self.each(at(paths.VERSION_BINARIES, version_id=version_id), m.Binary, target=target):
            if b.state != "destroyed":
                return b
        return None

    def binaries(self, **filters: str) -> AsyncIterator[m.Binary]:
        """Every binary (``version_id``, ``target``, ``state``, ``sha256``, ``signing_key_id``)."""
        return self.each(paths.BINARIES, m.Binary, **filters)

    async def get_binary(self, binary_id: str) -> m.Binary:
        return await self._typed("GET", at(paths.BINARY, binary_id=binary_id), None, m.Binary)

    async def patch_binary(self, binary_id: str, body: m.BinaryPatch) -> m.Binary:
        return await self._typed("PATCH", at(paths.BINARY, binary_id=binary_id), body, m.Binary)

    async def get_parts(self, binary_id: str) -> m.PartList:
        return await self._typed("GET", at(paths.PARTS, binary_id=binary_id), None, m.PartList)

    async def put_part(self, binary_id: str, index: int, chunk: bytes, sha256_hex: str) -> m.Part:
        """Uploads one part with its ``Content-Digest`` (the server refuses it if they differ)."""
        import base64

        digest = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        answer = await self.request("PUT", at(paths.PART, binary_id=binary_id, index=index), data=chunk,
                                    headers={"Content-Digest": f"sha-256=:{digest}:"})  # fmt: skip
        return msgspec.convert(answer, m.Part)

    async def wait_state(self, binary_id: str, states: set[str], timeout: float = 3600) -> m.Binary:
        """Polls until the binary reaches one of ``states``; raises if hashing ends elsewhere."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            b = await self.get_binary(binary_id)
            if b.state in states:
                return b
            if b.state != "hashing":
                raise FerrymanError(f"binary {binary_id} is {b.state}" + (f": {b.error}" if b.error else ""))
            if time.monotonic() > deadline:
                raise FerrymanError(f"binary {binary_id} still {b.state} after {timeout:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def upload(self, path: Path, artifact: str, version: str, target: str, **options: Any) -> Uploaded:
        """Hashes, uploads (resumable, parallel parts) and verifies a binary; see
        ``ferryman.client.upload.upload`` for the options."""
        return await upload(self, path, artifact, version, target, **options)

    # Signatures ---------------------------------------------------------------------------------

    async def add_signature(self, binary_id: str, body: m.SignatureCreate) -> m.Signature:
        return await self._typed("POST", at(paths.SIGNATURES, binary_id=binary_id), body, m.Signature)

    async def list_signatures(self, binary_id: str) -> list[m.Signature]:
        return [s async for s in self.each(at(paths.SIGNATURES, binary_id=binary_id), m.Signature)]

    async def sign_binary(self, binary_id: str, key: str | Path | Signer, algorithm: str | None = None) -> m.Signature:
        """Signs a binary's SHA-256 (the server's, so nothing is read again) and submits the
        signature. ``key``: an open Signer (for many binaries: one HSM session), or what
        ``ferryman.client.signers.open_signer`` takes (a PEM file, ``pkcs11:…``, ``exec:…``)."""
        if not isinstance(key, Signer):
            with open_signer(key, algorithm=algorithm) as signer:
                return await self.sign_binary(binary_id, signer)
        b = await self.get_binary(binary_id)
        # A token or a program may take a while: the event loop carries on meanwhile.
        signature = await asyncio.to_thread(key.sign, bytes.fromhex(b.sha256))
        return await self.add_signature(binary_id, m.SignatureCreate(keyid=key.keyid, signature=signature.hex()))

    async def sign_bundle(self, bundle_id: str, signer: Signer) -> m.BundleSignature:
        """Signs a bundle's hash (a SHA-256) and submits the signature."""
        bundle = await self._typed("GET", at(paths.BUNDLE, bundle_id=bundle_id), None, m.Bundle)
        signature = await asyncio.to_thread(signer.sign, bytes.fromhex(bundle.hash))
        body = m.SignatureCreate(keyid=signer.keyid, signature=signature.hex())
        return await self._typed("POST", at(paths.BUNDLE_SIGNATURES, bundle_id=bundle_id), body, m.BundleSignature)

    def bundles(self, **filters: str) -> AsyncIterator[m.Bundle]:
        """Every bundle (``signing_key_id``: those it signed)."""
        return self.each(paths.BUNDLES, m.Bundle, **filters)

    # Distribution -------------------------------------------------------------------------------

    async def create_bundle(self, body: m.BundleCreate) -> m.Bundle:
        return await self._typed("POST", paths.BUNDLES, body, m.Bundle)

    async def create_channel(self, body: m.ChannelCreate) -> m.Channel:
        return await self._typed("POST", paths.CHANNELS, body, m.Channel)

    async def create_cohort(self, body: m.CohortCreate) -> m.Cohort:
        return await self._typed("POST", paths.COHORTS, body, m.Cohort)

    async def create_release(self, channel_id: str, body: m.ReleaseCreate) -> m.Release:
        return await self._typed("POST", at(paths.RELEASES, channel_id=channel_id), body, m.Release)

    async def patch_release(self, release_id: str, body: m.ReleasePatch) -> m.Release:
        return await self._typed("PATCH", at(paths.RELEASE, release_id=release_id), body, m.Release)

    async def create_device(self, body: m.DeviceCreate) -> m.Device:
        return await self._typed("POST", paths.DEVICES, body, m.Device)

    async def delete_device(self, device_id: str) -> None:
        await self.request("DELETE", at(paths.DEVICE, device_id=device_id))

    async def rotate_device_token(self, device_id: str) -> m.Device:
        return await self._typed("POST", at(paths.DEVICE_TOKEN, device_id=device_id), None, m.Device)

    async def update_device(self, device_id: str, body: m.DevicePatch) -> m.Device:
        return await self._typed("PATCH", at(paths.DEVICE, device_id=device_id), body, m.Device)

    async def admit_device(self, device_id: str, accept: bool) -> m.Device:
        path = paths.DEVICE_ACCEPT if accept else paths.DEVICE_REJECT
        return await self._typed("POST", at(path, device_id=device_id), None, m.Device)

    async def cancel_device_actions(self, device_id: str) -> list[m.DeviceAction]:
        page = await self._typed("POST", at(paths.DEVICE_CANCEL, device_id=device_id), None, m.Page[m.DeviceAction])
        return page.items

    async def device_actions(self, device_id: str) -> list[m.DeviceAction]:
        return [a async for a in self.each(at(paths.DEVICE_ACTIONS, device_id=device_id), m.DeviceAction)]

    async def create_override(self, body: m.OverrideCreate) -> m.Override:
        return await self._typed("POST", paths.OVERRIDES, body, m.Override)

    async def get_release(self, release_id: str) -> m.Release:
        return await self._typed("GET", at(paths.RELEASE, release_id=release_id), None, m.Release)

    def releases(self, channel_id: str, **filters: str) -> AsyncIterator[m.Release]:
        """Every release of a channel (``name``: the one so named)."""
        return self.each(at(paths.RELEASES, channel_id=channel_id), m.Release, **filters)

    async def resolve_for_device(self, device_id: str, body: m.UpdateRequest | None = None) -> m.UpdateManifest:
        """What the device would get now, and why (a dry run unless ``body.write``); what it
        reported last stands for any field ``body`` leaves out."""
        path = at(paths.DEVICE_CHECK_IN, device_id=device_id)
        return await self._typed("POST", path, body or m.UpdateRequest(), m.UpdateManifest)

    async def events(
        self,
        filters: Mapping[str, str] | None = None,
        *,
        newest_first: bool = False,
        limit: int = 500,
        cursor: str | None = None,
    ) -> m.Page[m.Event]:
        """One page of the audit log (filters: ``resource_id``, ``resource_type``, ``action``,
        ``actor``, ``since``, ``until``)."""
        order = "desc" if newest_first else "asc"
        return await self.page(paths.EVENTS, m.Event, limit, cursor, **(filters or {}), order=order)

    # Rollouts and webhooks ----------------------------------------------------------------------

    async def release_stats(self, release_id: str) -> m.RolloutStats:
        return await self._typed("GET", at(paths.RELEASE_STATS, release_id=release_id), None, m.RolloutStats)

    async def cohort_stats(self, cohort_id: str) -> m.RolloutStats:
        return await self._typed("GET", at(paths.COHORT_STATS, cohort_id=cohort_id), None, m.RolloutStats)

    async def channel_stats(self, channel_id: str) -> m.RolloutStats:
        return await self._typed("GET", at(paths.CHANNEL_STATS, channel_id=channel_id), None, m.RolloutStats)

    async def device_reports(self, device_id: str) -> list[m.ReportEntry]:
        page = await self._typed("GET", at(paths.DEVICE_REPORTS, device_id=device_id), None, m.Page[m.ReportEntry],
                                 limit="100")  # fmt: skip
        return page.items

    async def create_webhook(self, body: m.WebhookCreate) -> m.Webhook:
        return await self._typed("POST", paths.WEBHOOKS, body, m.Webhook)

    async def patch_webhook(self, webhook_id: str, body: m.WebhookPatch) -> m.Webhook:
        return await self._typed("PATCH", at(paths.WEBHOOK, webhook_id=webhook_id), body, m.Webhook)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self.request("DELETE", at(paths.WEBHOOK, webhook_id=webhook_id))

    def deliveries(self, webhook_id: str, state: str | None = None) -> AsyncIterator[m.WebhookDelivery]:
        """Every delivery of a webhook, oldest first (``state``: only those)."""
        params = {"state": state} if state else {}
        return self.each(at(paths.DELIVERIES, webhook_id=webhook_id), m.WebhookDelivery, **params)

    async def redeliver(self, webhook_id: str, delivery_id: str) -> m.WebhookDelivery:
        path = at(paths.REDELIVER, webhook_id=webhook_id, delivery_id=delivery_id)
        return await self._typed("POST", path, None, m.WebhookDelivery)

    # Replication --------------------------------------------------------------------------------

    async def replication_status(self) -> m.ReplicationStatus:
        return await self._typed("GET", paths.REPLICATION, None, m.ReplicationStatus)

    async def verify_replicas(self, region: str | None = None) -> m.VerifyQueued:
        return await self._typed("POST", paths.REPLICATION_VERIFY, m.VerifyRequest(region=region), m.VerifyQueued)

    # As a device --------------------------------------------------------------------------------

    async def check_in(self, device_token: str, reported: Reported | None = None) -> m.UpdateManifest:
        """A device's update check, reporting what it runs (``Ferryman-*`` headers)."""
        headers = {}
        for field, (name, _) in m.DEVICE_HEADERS.items():
            value = getattr(reported, field) if reported is not None else None
            if value:
                headers[name] = value
        answer = await self.request("GET", paths.CHECK_IN, headers=headers, token=device_token)
        return msgspec.convert(answer, m.UpdateManifest)

    async def report(self, device_token: str, body: m.DeviceReport) -> m.ReportRecorded:
        answer = await self.request("POST", paths.REPORT, msgspec.to_builtins(body), token=device_token)
        return msgspec.convert(answer, m.ReportRecorded)


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
