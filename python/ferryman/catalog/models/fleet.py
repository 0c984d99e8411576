"""Bundles, channels, cohorts, releases, devices, overrides, and the update manifest."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from ferryman.catalog.models.common import Id, Metadata, Name, RegionName, Tag, Target, Text, Time, VersionText, _In, full

__all__ = [
    "AdvanceStep",
    "Bundle",
    "BundleCreate",
    "BundleEntry",
    "BundleEntryIn",
    "BundleSignature",
    "Channel",
    "ChannelCreate",
    "ChannelPatch",
    "Cohort",
    "CohortCreate",
    "CohortPatch",
    "Device",
    "DeviceAction",
    "DeviceCreate",
    "DevicePatch",
    "DeviceReport",
    "HaltIn",
    "ManifestBinary",
    "ManifestBundle",
    "ManifestRelease",
    "ManifestSignature",
    "Override",
    "OverrideCreate",
    "OverridePatch",
    "PhaseIn",
    "Release",
    "ReleaseCreate",
    "ReleasePatch",
    "ReportRecorded",
    "ReportStatus",
    "UpdateManifest",
    "UpdateRequest",
]


class BundleEntryIn(_In):
    binary_id: Id
    custom_metadata: Metadata = {}


class BundleCreate(_In):
    binaries: Annotated[list[Id | BundleEntryIn], Meta(min_length=1, max_length=1000)]
    name: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class BundleEntry(Struct, kw_only=True):
    binary_id: str
    artifact: str
    version: str
    target: str
    size: int
    sha256: str
    custom_metadata: Metadata


class BundleSignature(Struct, kw_only=True, omit_defaults=True):
    id: str
    bundle_id: str
    signing_key_id: str
    keyid: str
    algorithm: str
    signature: str
    message: str
    created_at: str
    key_state: str | None = None


class Bundle(Struct, kw_only=True):
    id: str
    name: str | None
    hash: str
    entries: list[BundleEntry]
    signatures: list[BundleSignature]
    created_at: str


class ChannelCreate(_In):
    name: Name
    description: Text | None = None


class ChannelPatch(_In):
    name: Name | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET


class Channel(Struct, kw_only=True):
    id: str
    name: str
    description: str | None
    latest_release_id: str | None
    created_at: str
    updated_at: str


class CohortCreate(_In):
    name: Name
    channel_id: Id | None = None
    description: Text | None = None
    region: RegionName | None = None


class CohortPatch(_In):
    name: Name | UnsetType = UNSET
    channel_id: Id | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET
    region: RegionName | UnsetType | None = UNSET


class Cohort(Struct, kw_only=True):
    id: str
    name: str
    channel_id: str | None
    description: str | None
    region: str | None = None  # where its devices download from (a device's own region wins)
    created_at: str
    updated_at: str


class PhaseIn(_In):
    mode: Literal["percent", "count", "tags"]
    value: float | None = None
    tags: list[Tag] | None = None


class HaltIn(_In):
    """When a release halts itself (see ``ferryman.rollouts``): at least one bound."""

    max_failure_rate: Annotated[float, Meta(ge=0, le=1)] | None = None
    min_reports: Annotated[int, Meta(ge=1, le=10_000_000)] | None = None
    max_failures: Annotated[int, Meta(ge=0, le=10_000_000)] | None = None


class AdvanceStep(_In):
    """A scheduled phase change, applied at ``at`` only while the release is not halted."""

    at: Time
    phase: PhaseIn | None


class ReleaseCreate(_In):
    name: Name
    bundle_id: Id
    version: VersionText | None = None
    version_requirement: Annotated[str, Meta(max_length=256)] | None = None
    next_release_id: Id | None = None
    previous_release_id: Id | None = None
    required: bool = False
    disabled: bool = False
    schedule_at: Time | None = None
    phase: PhaseIn | None = None
    # Offer the bundle only once every binary is verified in every region (None: yes when
    # there are several regions).
    require_replicated: bool | None = None
    halt: HaltIn | None = None
    advance: Annotated[list[AdvanceStep], Meta(max_length=32)] | None = None


class ReleasePatch(_In):
    name: Name | UnsetType = UNSET
    version: VersionText | UnsetType | None = UNSET
    version_requirement: Annotated[str, Meta(max_length=256)] | UnsetType | None = UNSET
    required: bool | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET
    schedule_at: Time | UnsetType | None = UNSET
    phase: PhaseIn | UnsetType | None = UNSET
    require_replicated: bool | UnsetType | None = UNSET
    halt: HaltIn | UnsetType | None = UNSET
    # true holds the release by hand; false resumes a halted (or held) one.
    halted: bool | UnsetType = UNSET
    advance: Annotated[list[AdvanceStep], Meta(max_length=32)] | UnsetType | None = UNSET


class Release(Struct, kw_only=True):
    id: str
    channel_id: str
    name: str
    bundle_id: str
    version: str | None
    version_requirement: str | None
    next_release_id: str | None
    required: bool
    disabled: bool
    schedule_at: str | None
    phase: dict[str, Any] | None
    claimed: int
    created_at: str
    updated_at: str
    require_replicated: bool | None = None
    halt: dict[str, Any] | None = None
    halted: bool = False
    halted_reason: str | None = None
    halted_at: str | None = None
    advance: list[dict[str, Any]] | None = None


Identifier = Annotated[str, Meta(min_length=1, max_length=256, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))]
# A PEM public key (RSA or Ed25519) a device signs its Mender authentication requests with.
AuthKey = Annotated[str, Meta(min_length=1, max_length=16384)]


class DeviceCreate(_In):
    identifier: Identifier
    target: Target
    cohort_id: Id | None = None
    tags: Annotated[list[Tag], Meta(max_length=64)] = []
    region: RegionName | None = None
    # Pre-authorises a Mender device: its first authentication request with this key is accepted.
    auth_key: AuthKey | None = None


class DevicePatch(_In):
    target: Target | UnsetType = UNSET
    cohort_id: Id | UnsetType | None = UNSET
    tags: Annotated[list[Tag], Meta(max_length=64)] | UnsetType = UNSET
    quarantined: bool | UnsetType = UNSET
    region: RegionName | UnsetType | None = UNSET


class Device(Struct, kw_only=True, omit_defaults=True):
    id: str
    identifier: str
    target: str
    tags: list[str]
    cohort_id: str | None
    quarantined: bool
    reported_release_id: str | None
    reported_bundle_id: str | None
    reported_version: str | None
    last_status: str | None
    last_detail: str | None
    last_seen_at: str | None
    created_at: str
    updated_at: str
    region: str | None = None  # where it downloads from (else its cohort's, else the primary)
    token: str | None = None
    # What it told about itself through an agent protocol (DDI configData, Mender inventory).
    attributes: dict[str, str] = {}
    admission: Literal["accepted", "pending", "rejected"] = "accepted"
    auth_keyid: str | None = None  # SHA-256 of the DER public key it authenticates with (Mender)
    identity: str | None = None  # the identity data it asked to join with (Mender)


class DeviceAction(Struct, kw_only=True):
    """An update offered to a device through an agent protocol (a DDI action, a Mender
    deployment): ``open`` until the device closes it, ``canceling`` once the release is pulled or
    an operator cancels it, then ``closed`` (with ``result``) or ``canceled``."""

    id: int
    device_id: str
    release_id: str | None
    bundle_id: str
    status: Literal["open", "canceling", "closed", "canceled"]
    result: str | None
    detail: str | None
    created_at: str
    updated_at: str


class UpdateRequest(_In):
    release_id: Id | None = None
    bundle_id: Id | None = None
    version: VersionText | None = None
    write: bool = False


ReportStatus = Literal["downloading", "installing", "installed", "failed", "rolled_back"]


class DeviceReport(_In):
    """A device's progress with an update: ``reason`` is a short machine-readable cause of a
    failure or roll-back (``checksum_mismatch``), ``detail`` free text."""

    bundle_id: Id
    status: ReportStatus
    release_id: Id | None = None
    version: VersionText | None = None
    reason: Annotated[str, Meta(min_length=1, max_length=128, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))] | None = None
    detail: Text | None = None


class ManifestSignature(Struct, kw_only=True):
    keyid: str
    algorithm: str
    signature: str
    public_key: str


class ManifestBinary(Struct, kw_only=True):
    artifact: str
    version: str
    target: str
    size: int
    sha256: str
    custom_metadata: Metadata
    url: str  # a /dl/ grant: signed, expiring, range-capable
    signatures: list[ManifestSignature]


class ManifestRelease(Struct, kw_only=True):
    id: str
    bundle_id: str
    version: str | None
    required: bool


class ManifestBundle(Struct, kw_only=True):
    id: str


class UpdateManifest(Struct, kw_only=True):
    """The answer to an update check: what to install (if anything), why, and from where."""

    status: Literal["update", "no_update", "quarantined"]
    source: Literal["release", "override"] | None
    reason: str
    release: ManifestRelease | None
    bundle: ManifestBundle | None
    binaries: list[ManifestBinary]


class ReportRecorded(Struct, kw_only=True):
    status: Literal["recorded"]
    last_seen_at: str


class OverrideCreate(_In):
    bundle_id: Id
    device_ids: Annotated[list[Id], Meta(min_length=1, max_length=10000)]
    starts_at: Time | None = None
    ends_at: Time | None = None


class OverridePatch(_In):
    starts_at: Time | UnsetType = UNSET
    ends_at: Time | UnsetType | None = UNSET


class Override(Struct, kw_only=True):
    id: str
    bundle_id: str
    device_ids: list[str]
    starts_at: str
    ends_at: str | None
    created_at: str
    updated_at: str
