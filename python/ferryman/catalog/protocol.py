"""The catalog seam: every operation on what exists (artifacts, versions, binaries, keys,
signatures, bundles, channels, cohorts, releases, devices, overrides, API keys, the audit log)
and the rules for changing it. Operations take and return msgspec structs (``models``) and
the pure domain types of ``ferryman.releases``, never rows or SQL, and raise
``ferryman.errors`` exceptions. Each change is one transaction that records its audit event;
state changes are conditional, so of two racing requests only one wins.

Implementation: ``catalog.sql``, the same SQL on SQLite (embedded, the default) and on
PostgreSQL. ``generation`` is a row every answer-changing commit bumps, in that commit, on both;
other processes notice it by reading it (``services.checkins`` does, in the background), while
``local_changes`` covers this process's commits at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from ferryman.catalog import models as m
from ferryman.errors import DomainError
from ferryman.lifecycle import State
from ferryman.releases import Override, Release

__all__ = ["Catalog", "DeliveryJob", "DeliveryOutcome", "FleetSnapshot", "ReplicaJob", "ServedBinary"]


class ServedBinary(m.BundleEntry, kw_only=True):
    """A bundle entry as update checks serve it, with the valid signatures a manifest lists
    and the states of its copies by region."""

    signatures: list[m.ManifestSignature]
    replicas: dict[str, str] = msgspec.field(default_factory=dict)
    # For the agent protocols: the file name, SHA-1 and MD5 (DDI), a Mender artifact's header.
    filename: str | None = None
    sha1: str | None = None
    md5: str | None = None
    mender: m.MenderHeader | None = None


@dataclass(frozen=True)
class ReplicaJob:
    """A replication job a worker holds: copy the binary's content into ``region``, check the
    copy there, or delete it."""

    binary_id: str
    region: str
    kind: str  # "copy" | "check" | "delete"
    size: int
    sha256: str
    attempts: int  # failed attempts so far


@dataclass(frozen=True)
class DeliveryJob:
    """A webhook delivery a worker holds: send ``body`` to ``url`` signed with ``secret``."""

    id: str  # the webhook-id
    webhook_id: str
    url: str
    secret: str
    body: bytes
    attempts: int  # attempts so far


@dataclass(frozen=True)
class DeliveryOutcome:
    """One attempt's result: ``retry_at`` (when the next attempt is due) None when it was
    delivered or is given up."""

    id: str
    at: str
    delivered: bool
    status: int | None
    error: str | None
    seconds: float
    retry_at: str | None


@dataclass
class FleetSnapshot:
    """What resolution needs that all devices share, as of catalog ``generation``."""

    generation: int
    graphs: dict[str, dict[str, Release]]  # channel → release graph
    cohort_channel: dict[str, str | None]
    unsigned_bundles: set[str]
    entries: dict[str, list[ServedBinary]]  # bundle → entries in order
    # Devices named by any override, and channels with a count phase: only those need the
    # per-device override and claim reads.
    overridden: set[str]
    counted: set[str]
    cohort_region: dict[str, str | None] = field(default_factory=dict)
    # Token hash → device, filled by update checks and dropped with the snapshot.
    devices: dict[str, m.Device] = field(default_factory=dict)

    def servable(self, bundle_id: str) -> bool:
        return bundle_id in self.entries and bundle_id not in self.unsigned_bundles


class Catalog(Protocol):
    """See the module doc. ``actor`` names who acts, for the audit log."""

    threshold: int  # distinct active keys whose valid signatures make a binary ``signed``

    async def close(self) -> None: ...

    # API keys ------------------------------------------------------------------------------------

    async def create_api_key(self, actor: str, body: m.ApiKeyCreate, token_hash: str) -> m.ApiKey: ...

    async def create_first_api_key(self, actor: str, body: m.ApiKeyCreate, token_hash: str) -> m.ApiKey | None:
        """Creates an API key only if there is none yet (of several processes starting at once, one
        creates it); None if there was one."""

    async def count_api_keys(self) -> int: ...

    async def authenticate(self, token_hash: str) -> m.ApiKey | None: ...

    async def list_api_keys(self, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.ApiKey]: ...

    async def get_api_key(self, key_id: str) -> m.ApiKey: ...

    async def delete_api_key(self, actor: str, key_id: str) -> None: ...

    # Artifacts and versions ----------------------------------------------------------------------

    async def create_artifact(self, actor: str, body: m.ArtifactCreate) -> m.Artifact: ...

    async def get_artifact(self, artifact_id: str) -> m.Artifact: ...

    async def list_artifacts(self, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.Artifact]: ...

    async def patch_artifact(self, actor: str, artifact_id: str, body: m.ArtifactPatch) -> m.Artifact: ...

    async def delete_artifact(self, actor: str, artifact_id: str) -> None: ...

    async def create_version(self, actor: str, artifact_id: str, body: m.VersionCreate) -> m.Version: ...

    async def get_version(self, version_id: str) -> m.Version: ...

    async def list_versions(self, artifact_id: str, limit: int, cursor: str | None) -> m.Page[m.Version]:
        """All versions of an artifact in version order (DESIGN.md); the cursor is an offset."""

    async def patch_version(self, actor: str, version_id: str, body: m.VersionPatch) -> m.Version: ...

    # Binaries, parts and signatures --------------------------------------------------------------

    async def create_binary(self, actor: str, version_id: str, body: m.BinaryCreate) -> m.Binary: ...

    async def get_binary(self, binary_id: str) -> m.Binary: ...

    async def list_binaries(self, limit: int, cursor: str | None, filters: Mapping[str, str]) -> m.Page[m.Binary]: ...

    async def binaries_in_state(self, state: State) -> list[str]: ...

    async def change_binary(
        self,
        actor: str,
        binary_id: str,
        fields: m.BinaryPatch,
        target: State | None = None,
        *,
        by_server: bool = False,
        expect: State | None = None,
        error: str | None = None,
        content: m.ContentFacts | None = None,
    ) -> m.Binary:
        """Changes a binary's fields and, with ``target``, moves it there if the lifecycle allows it from its
        current state (with ``expect``, only from that state), in one transaction: a refused move changes
        nothing. Moving to ``hashable`` needs every part in and no upload in flight, and continues at once to
        ``hashing`` (DESIGN.md). The update is conditional on the state read, so of two racing requests only
        one can win. ``content``: what hashing learnt of the bytes (SHA-1, MD5, a Mender header)."""

    async def begin_part(self, actor: str, binary_id: str, index: int, lease: float) -> tuple[str, m.Binary]:
        """Registers an upload of part ``index`` as in flight for ``lease`` seconds (renew with
        ``renew_part``), only while the binary is ``uploadable``; hashing cannot start while an unexpired
        upload is in flight. A marker whose process died or whose end could not be written expires by itself.
        Returns the marker's token and the binary."""

    async def renew_part(self, token: str, lease: float) -> None: ...

    async def end_part(self, token: str) -> None: ...

    async def release_leases(self) -> None:
        """Ends every upload and hashing lease: only when no process that could hold one runs (an
        embedded catalog, before its servers start)."""

    async def claim_hashing(self, worker: str, lease: float, binary_id: str | None = None, limit: int = 8) -> list[str]:
        """Takes binaries in ``hashing`` whose lease is free or expired (with ``binary_id``, only that
        one) for ``worker`` for ``lease`` seconds; returns their IDs. One job goes to one worker."""

    async def renew_hashing(self, binary_id: str, worker: str, lease: float) -> bool:
        """Extends ``worker``'s lease on a hashing job; false if it holds it no longer."""

    # Replication (see catalog/sql/replicas.py and ferryman.replication) --------------------------

    async def queue_replicas(self, regions: Sequence[str], binary_id: str | None = None) -> int:
        """Adds the missing copies of every binary with content in ``regions`` (primary first:
        verified there; elsewhere pending); how many were added."""

    async def claim_replicas(self, worker: str, lease: float, regions: Sequence[str], limit: int) -> list[ReplicaJob]:
        """Takes up to ``limit`` due replication jobs in ``regions`` for ``worker``."""

    async def renew_replica(self, binary_id: str, region: str, worker: str, lease: float) -> bool: ...

    async def finish_replica(self, job: ReplicaJob, worker: str, outcome: str, error: str | None = None,
                             retry_in: float = 0.0) -> bool:  # fmt: skip
        """Settles a held job: ``verified``, ``failed`` (retried in ``retry_in`` s), ``corrupt``
        (copied again) or ``deleted``; false if the row moved on meanwhile."""

    async def request_verify(self, actor: str, regions: Sequence[str]) -> int:
        """Queues every verified copy in ``regions`` to be read back and checked."""

    async def replication_status(self, regions: Sequence[str]) -> dict[str, tuple[dict[str, int], float, list[m.ReplicaFailure]]]:
        """Per region: copies by state, the oldest unverified copy's wait, recent failures."""

    async def replica_states(self, binary_id: str) -> dict[str, str]:
        """A binary's copies: region → state."""

    async def shared_secret(self, name: str) -> str:
        """A random secret every process on this catalog shares, created on first use."""

    async def setting(self, name: str) -> str | None:
        """A value every process on this catalog shares (None: never set)."""

    async def set_setting(self, name: str, value: str) -> None:
        """Sets (or replaces) a shared value."""

    async def record_part(self, actor: str, token: str, binary_id: str, index: int, size: int, sha256: str) -> m.Part:
        """Records an uploaded part (replacing an earlier upload of the same index) and ends its in-flight
        marker ``token``, only while the binary is still ``uploadable``."""

    async def list_parts(self, binary_id: str) -> list[m.Part]: ...

    async def add_signature(
        self, actor: str, binary_id: str, key_id: str, signature_hex: str, message: str
    ) -> tuple[m.Signature, bool]:
        """Stores a verified signature; returns it and whether it is new (a repeat is a no-op)."""

    async def list_signatures(self, binary_id: str, limit: int = 500, cursor: str | None = None) -> m.Page[m.Signature]: ...

    # Signing keys --------------------------------------------------------------------------------

    async def create_signing_key(self, actor: str, key: m.NewSigningKey) -> m.SigningKey: ...

    async def get_signing_key(self, key_id: str) -> m.SigningKey: ...

    async def find_signing_key(self, keyid: str) -> m.SigningKey: ...

    async def list_signing_keys(
        self, limit: int, cursor: str | None, state: str | None, keyid: str | None = None, name: str | None = None
    ) -> m.Page[m.SigningKey]: ...

    async def patch_signing_key(self, actor: str, key_id: str, body: m.SigningKeyPatch) -> m.SigningKey: ...

    # Bundles -------------------------------------------------------------------------------------

    async def create_bundle(self, actor: str, body: m.BundleCreate) -> m.Bundle: ...

    async def get_bundle(self, bundle_id: str) -> m.Bundle: ...

    async def list_bundles(
        self, limit: int, cursor: str | None, signing_key_id: str | None = None, name: str | None = None
    ) -> m.Page[m.Bundle]: ...

    async def add_bundle_signature(
        self, actor: str, bundle_id: str, key: m.SigningKey, signature_hex: str, message: str
    ) -> tuple[m.BundleSignature, bool]:
        """Stores a verified signature over the bundle hash; returns it and whether it is new."""

    # Channels, cohorts and releases --------------------------------------------------------------

    async def create_channel(self, actor: str, body: m.ChannelCreate) -> m.Channel: ...

    async def get_channel(self, channel_id: str) -> m.Channel: ...

    async def list_channels(self, limit: int, cursor: str | None, name: str | None = None) -> m.Page[m.Channel]: ...

    async def patch_channel(self, actor: str, channel_id: str, body: m.ChannelPatch) -> m.Channel: ...

    async def create_cohort(self, actor: str, body: m.CohortCreate) -> m.Cohort: ...

    async def get_cohort(self, cohort_id: str) -> m.Cohort: ...

    async def list_cohorts(self, limit: int, cursor: str | None, filters: Mapping[str, str]) -> m.Page[m.Cohort]:
        """Cohorts (``name``, ``channel_id``: only those)."""

    async def patch_cohort(self, actor: str, cohort_id: str, body: m.CohortPatch) -> m.Cohort: ...

    async def create_release(self, actor: str, channel_id: str, body: m.ReleaseCreate) -> m.Release: ...

    async def list_releases(
        self, channel_id: str, limit: int, cursor: str | None, name: str | None = None
    ) -> m.Page[m.Release]: ...

    async def get_release(self, release_id: str) -> m.Release: ...

    async def patch_release(self, actor: str, release_id: str, body: m.ReleasePatch) -> m.Release: ...

    # Agent protocols: actions, attributes, admission (catalog/sql/agents.py) ----------------------

    async def agent_device(
        self, *, token_hash: str | None = None, identifier: str | None = None
    ) -> tuple[m.Device, m.DeviceAction | None, bool] | None:
        """The device with this token hash (or identifier), its latest action, and whether it
        still has to send its configuration (DDI configData); None if there is none."""

    async def agent_devices(self, token_hashes: Sequence[str]) -> dict[str, tuple[m.Device, m.DeviceAction | None, bool]]:
        """``agent_device`` for many token hashes in one read, by token hash (unknown ones are
        left out)."""

    async def binaries_without_legacy_hashes(self, limit: int = 16) -> list[tuple[str, str]]:
        """Published binaries (ID, SHA-256) hashed before SHA-1 and MD5 were kept, oldest first."""

    async def fill_content_facts(self, binary_id: str, sha256: str, facts: m.ContentFacts) -> bool:
        """Records the SHA-1, MD5 and Mender header of a published binary that has none yet,
        if its content still has this SHA-256; whether it did."""

    async def start_action(self, device_id: str, release_id: str | None, bundle_id: str) -> m.DeviceAction:
        """Opens an action for a device, or returns the one it has open."""

    async def device_action(self, device_id: str, action_id: int) -> m.DeviceAction: ...

    async def list_device_actions(self, device_id: str, limit: int) -> list[m.DeviceAction]: ...

    async def change_action(
        self, actor: str, device_id: str, action_id: int, status: str, *, result: str | None = None,
        detail: str | None = None, expect: tuple[str, ...] = ("open", "canceling"),
    ) -> m.DeviceAction:  # fmt: skip
        """Moves one of a device's actions to ``status`` if it is in one of ``expect``; Conflict
        otherwise, NotFound if it is not the device's."""

    async def cancel_device_actions(self, actor: str, device_id: str) -> list[m.DeviceAction]: ...

    async def set_device_attributes(self, device_id: str, attributes: Mapping[str, object], *, replace: bool = False,
                                    remove: bool = False, config: bool = False) -> None: ...  # fmt: skip

    async def adopt_target(self, device_id: str, target: str) -> None: ...

    async def authenticate_agent(self, identity: str, identifier: str, public_key: str, keyid: str,
                                 token_hash: str) -> tuple[m.Device, bool]:  # fmt: skip
        """A verified Mender authentication request: the device with this key (created pending if
        new) and whether it is accepted (then its token becomes ``token_hash``)."""

    async def admit_device(self, actor: str, device_id: str, accept: bool) -> m.Device: ...

    # Devices and overrides -----------------------------------------------------------------------

    async def create_device(self, actor: str, body: m.DeviceCreate, token_hash: str) -> m.Device: ...

    async def get_device(self, device_id: str) -> m.Device: ...

    async def list_devices(self, limit: int, cursor: str | None, filters: Mapping[str, str]) -> m.Page[m.Device]: ...

    async def devices_on(self, release_ids: Sequence[str]) -> dict[str, int]:
        """How many devices report running each of these releases (those with none are left out)."""

    async def patch_device(self, actor: str, device_id: str, body: m.DevicePatch) -> m.Device: ...

    async def delete_device(self, actor: str, device_id: str) -> None:
        """Removes a device: its token stops working at once; its audit trail stays, ending in a ``delete``
        event with its last record. Count-phase claims stay counted."""

    async def rotate_device_token(self, actor: str, device_id: str, token_hash: str) -> m.Device:
        """Gives a device a new token; the old one stops working at once (the change drops the update checks'
        device cache with the snapshot)."""

    async def device_for_token(self, token_hash: str) -> m.Device:
        """The device with this token; raises Unauthenticated."""

    async def report_many(self, reports: Sequence[tuple[str, m.DeviceReport]]) -> list[m.Device | DomainError]:
        """Records device reports ``(token hash, report)`` in one transaction: each gets its device or the error
        that refused it (a refused report changes nothing). A failure that breaks its release's halt rule halts
        the release in the same transaction (``release.halted``)."""

    async def device_reports(self, device_id: str, limit: int) -> list[m.ReportEntry]:
        """A device's last ``limit`` reports, newest first."""

    # Rollout stats and scheduled steps (see catalog/sql/rollouts.py and ferryman.rollouts) -------

    async def release_stats(self, release_id: str) -> m.RolloutStats: ...

    async def group_stats(self, scope: str, group_id: str) -> m.RolloutStats:
        """Stats over a ``cohort``'s devices or a ``channel``'s releases, with each release's share."""

    async def rollout_gauges(self) -> list[tuple[str, str, bool, dict[str, int]]]:
        """Per release with outcomes: (release ID, channel ID, halted, devices by outcome)."""

    async def advance_rollouts(self) -> list[str]:
        """Applies the scheduled phase steps that are due on releases that are not halted."""

    async def create_override(self, actor: str, body: m.OverrideCreate) -> m.Override: ...

    async def get_override(self, override_id: str) -> m.Override: ...

    async def list_overrides(self, limit: int, cursor: str | None, device_id: str | None) -> m.Page[m.Override]: ...

    async def patch_override(self, actor: str, override_id: str, body: m.OverridePatch) -> m.Override: ...

    async def delete_override(self, actor: str, override_id: str) -> None: ...

    # Update checks (read by ferryman.services.checkins) ------------------------------------------

    def local_changes(self) -> int:
        """How many changes that can change an answer this process has committed: a cache built before the
        count moved is out of date (other processes' show in ``generation``)."""

    async def generation(self) -> int: ...

    async def fleet_snapshot(self) -> FleetSnapshot: ...

    async def devices_for_check_in(self, token_hashes: Sequence[str]) -> dict[str, m.Device]:
        """The devices with these token hashes, by token hash (unknown ones are left out)."""

    async def overrides_of(self, device_id: str, at: str) -> list[Override]:
        """The overrides that name a device and are in force at ``at``."""

    async def claims_of(self, device_id: str) -> frozenset[str]: ...

    async def claim(self, release_id: str, device_id: str, limit: int) -> bool:
        """Claims one place of a count phase for a device, atomically: true if the device has one now (a claim
        it held already counts), false if the phase was full."""

    async def record_check_ins(self, last_seen: Sequence[tuple[str, str]], events: Sequence[tuple[str, str, Any]],
                               offers: Sequence[tuple[str, str, str | None, str]] = ()) -> None:  # fmt: skip
        """Writes buffered check-ins in one transaction (bookkeeping): devices' last-seen times ``(device_id,
        at)``, ``resolve`` events ``(device_id, at, decision)`` and releases offered ``(device_id, release_id,
        cohort_id, at)``; a device seen for the first time gets a ``first_seen`` event."""

    # Webhooks and their outbox (see catalog/sql/webhooks.py and ferryman.webhooks) ----------

    def on_webhook_queued(self, wake: Callable[[], None]) -> None:
        """Calls ``wake`` after each commit of this process's that queued webhook deliveries."""

    async def create_webhook(self, actor: str, body: m.WebhookCreate, secret: str) -> m.Webhook: ...

    async def get_webhook(self, webhook_id: str) -> m.Webhook: ...

    async def list_webhooks(self, limit: int, cursor: str | None) -> m.Page[m.Webhook]: ...

    async def patch_webhook(self, actor: str, webhook_id: str, body: m.WebhookPatch) -> m.Webhook: ...

    async def delete_webhook(self, actor: str, webhook_id: str) -> None: ...

    async def list_deliveries(self, webhook_id: str, limit: int, cursor: str | None,
                              state: str | None) -> m.Page[m.WebhookDelivery]: ...  # fmt: skip

    async def redeliver(self, actor: str, webhook_id: str, delivery_id: str) -> m.WebhookDelivery:
        """Queues a delivery again at once (with the same ``webhook-id``), whatever its state."""

    async def claim_deliveries(self, worker: str, lease: float, busy: Mapping[str, int], per_webhook: int,
                               limit: int) -> list[DeliveryJob]:  # fmt: skip
        """Takes due deliveries for ``worker``: at most ``limit``, and of each webhook at most ``per_webhook``
        less those ``busy`` in flight in this process already."""

    async def finish_deliveries(self, worker: str, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Settles attempts of held deliveries: delivered, retried later, or failed for good."""

    # The audit log -------------------------------------------------------------------------------

    async def list_events(
        self, limit: int, cursor: str | None, filters: Mapping[str, str], newest_first: bool = False
    ) -> m.Page[m.Event]:
        """Events in time order (``newest_first``: reversed): those equal to ``resource_id``,
        ``resource_type``, ``action``, ``actor`` and at or after ``since``, before ``until``."""
