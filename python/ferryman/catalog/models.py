"""The API's data shapes, as msgspec structs. The handlers decode requests into the ``*Create``
and ``*Patch`` structs and encode the resource structs; the OpenAPI document is generated from
the same structs, so the three cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "ROLES",
    "ApiKey",
    "ApiKeyCreate",
    "Artifact",
    "ArtifactCreate",
    "ArtifactPatch",
    "Binary",
    "BinaryCreate",
    "BinaryPatch",
    "Bundle",
    "BundleCreate",
    "BundleSignature",
    "Channel",
    "ChannelCreate",
    "Cohort",
    "CohortCreate",
    "Device",
    "DeviceCreate",
    "DeviceReport",
    "Event",
    "NewSigningKey",
    "Override",
    "OverrideCreate",
    "Page",
    "Part",
    "PartList",
    "Release",
    "ReleaseCreate",
    "Signature",
    "SignatureCreate",
    "SigningKey",
    "SigningKeyCreate",
    "SigningKeyPatch",
    "UpdateRequest",
    "Version",
    "VersionCreate",
    "VersionPatch",
]

MIB = 1 << 20
GIB = 1 << 30
MIN_PART = 5 * MIB
MAX_PART = 5 * GIB
DEFAULT_PART = 8 * MIB
MAX_PARTS = 10_000
METADATA_MAX_BYTES = 16 * 1024

ROLES = ("admin", "publisher", "signer", "releaser", "viewer")


def full(pattern: str) -> str:
    """A pattern that must match the whole string. msgspec searches with Python's ``re``, where
    ``$`` also matches before a final newline; the lookahead refuses that newline (and reads the
    same in the JSON Schema dialect of the OpenAPI document)."""
    return f"^(?:{pattern})$(?!\\n)"


ID_PATTERN = full(r"[a-z]{3}_[0-9a-hjkmnp-tv-z]{26}")
# RFC 3339 date-time with a zone (checked again, for range, when parsed).
TIME_PATTERN = full(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})")
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._-]*"))]
Text = Annotated[str, Meta(max_length=4096)]
Metadata = dict[str, Any]
Sha256Hex = Annotated[str, Meta(pattern=full(r"[0-9a-fA-F]{64}"))]
# A target triplet-like identifier, or "any" for binaries that run on every target.
Target = Annotated[str, Meta(min_length=3, max_length=128, pattern=full(r"any|[a-z0-9][a-z0-9_.]*(-[a-z0-9_.]+)+"))]
VERSION_PATTERN = full(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")

# A device's state, sent with its update check as headers: the ``Reported`` field each header
# carries, the header's name, and the pattern its value must match.
DEVICE_HEADERS = {
    "release_id": ("Ferryman-Release-Id", ID_PATTERN),
    "bundle_id": ("Ferryman-Bundle-Id", ID_PATTERN),
    "version": ("Ferryman-Release-Version", VERSION_PATTERN),
}
VersionText = Annotated[str, Meta(min_length=1, max_length=128, pattern=VERSION_PATTERN)]
Role = Literal["admin", "publisher", "signer", "releaser", "viewer"]


T = TypeVar("T")


class Page(Struct, Generic[T]):
    """One page of a list, in creation order (versions: version order); ``next_cursor`` asks
    for the next page, None on the last."""

    items: list[T]
    next_cursor: str | None


class _In(Struct, forbid_unknown_fields=True, kw_only=True):
    """Request bodies: unknown fields are an error, not silently dropped."""


class ArtifactCreate(_In):
    name: Name
    description: Text | None = None
    custom_metadata: Metadata = {}


class ArtifactPatch(_In):
    description: Text | UnsetType | None = UNSET
    custom_metadata: Metadata | UnsetType = UNSET


class Artifact(Struct, kw_only=True):
    id: str
    name: str
    description: str | None
    custom_metadata: Metadata
    created_at: str
    updated_at: str


class VersionCreate(_In):
    version: VersionText
    description: Text | None = None
    custom_metadata: Metadata = {}


class VersionPatch(_In):
    description: Text | UnsetType | None = UNSET
    custom_metadata: Metadata | UnsetType = UNSET


class Version(Struct, kw_only=True):
    id: str
    artifact_id: str
    version: str
    semver: bool
    description: str | None
    custom_metadata: Metadata
    created_at: str
    updated_at: str


class BinaryCreate(_In):
    target: Target
    size: Annotated[int, Meta(ge=0, le=MAX_PART * MAX_PARTS)]
    sha256: Sha256Hex
    part_size: Annotated[int, Meta(ge=MIN_PART, le=MAX_PART)] | None = None
    description: Text | None = None
    custom_metadata: Metadata = {}


class BinaryPatch(_In):
    state: Literal["uploadable", "hashable", "hashing", "signable", "signed", "destroyed"] | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    custom_metadata: Metadata | UnsetType = UNSET


class Binary(Struct, kw_only=True):
    id: str
    version_id: str
    artifact_id: str
    target: str
    size: int
    sha256: str
    part_size: int
    part_count: int
    state: str
    error: str | None
    description: str | None
    custom_metadata: Metadata
    created_at: str
    updated_at: str


class Part(Struct, kw_only=True):
    index: int
    size: int
    sha256: str
    created_at: str


class PartList(Struct, kw_only=True):
    binary_id: str
    state: str
    part_size: int
    part_count: int
    parts: list[Part]
    missing: list[int]


class SigningKeyCreate(_In):
    name: Name
    public_key: Annotated[str, Meta(min_length=1, max_length=16384)]
    algorithm: Literal["ed25519", "rsa-pkcs1v15-sha256", "rsa-pss-sha256"] | None = None


class SigningKeyPatch(_In):
    state: Literal["active", "revoked"] | UnsetType = UNSET
    name: Name | UnsetType = UNSET


class SigningKey(Struct, kw_only=True):
    id: str
    name: str
    keyid: str
    algorithm: str
    kind: str
    bits: int
    public_key: str
    not_before: str | None
    not_after: str | None
    state: str
    created_at: str
    updated_at: str


class NewSigningKey(Struct, kw_only=True):
    """A parsed public key to register (the server derives every field from the PEM)."""

    name: str
    keyid: str
    algorithm: str
    kind: str
    bits: int
    public_key: str
    not_before: int | None  # the certificate's validity, Unix seconds
    not_after: int | None


class SignatureCreate(_In):
    signature: Annotated[str, Meta(min_length=1, max_length=4096)]
    signing_key_id: Id | None = None
    keyid: Annotated[str, Meta(pattern=full(r"[0-9a-f]{64}"))] | None = None


class Signature(Struct, kw_only=True):
    id: str
    binary_id: str
    signing_key_id: str
    keyid: str
    algorithm: str
    signature: str
    message: str
    key_state: str
    created_at: str


class ApiKeyCreate(_In):
    name: Name
    role: Role


class ApiKey(Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str
    role: str
    created_at: str
    token: str | None = None


class Event(Struct, kw_only=True):
    id: str
    at: str
    actor: str
    action: str
    resource_type: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def check_metadata(value: Metadata, field: str = "custom_metadata") -> None:
    """Caps custom metadata at METADATA_MAX_BYTES of JSON."""
    from ferryman.errors import Invalid

    if len(msgspec.json.encode(value)) > METADATA_MAX_BYTES:
        raise Invalid(f"{field} is too large", {field: [f"at most {METADATA_MAX_BYTES} bytes of JSON"]})


# Bundles, channels, cohorts, releases, devices, overrides ----------------------------------

Id = Annotated[str, Meta(pattern=ID_PATTERN)]
Time = Annotated[str, Meta(max_length=64, pattern=TIME_PATTERN)]
Tag = Annotated[str, Meta(min_length=1, max_length=64, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))]


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


class CohortPatch(_In):
    name: Name | UnsetType = UNSET
    channel_id: Id | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET


class Cohort(Struct, kw_only=True):
    id: str
    name: str
    channel_id: str | None
    description: str | None
    created_at: str
    updated_at: str


class PhaseIn(_In):
    mode: Literal["percent", "count", "tags"]
    value: float | None = None
    tags: list[Tag] | None = None


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


class ReleasePatch(_In):
    name: Name | UnsetType = UNSET
    version: VersionText | UnsetType | None = UNSET
    version_requirement: Annotated[str, Meta(max_length=256)] | UnsetType | None = UNSET
    required: bool | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET
    schedule_at: Time | UnsetType | None = UNSET
    phase: PhaseIn | UnsetType | None = UNSET


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


class DeviceCreate(_In):
    identifier: Annotated[str, Meta(min_length=1, max_length=256, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))]
    target: Target
    cohort_id: Id | None = None
    tags: Annotated[list[Tag], Meta(max_length=64)] = []


class DevicePatch(_In):
    target: Target | UnsetType = UNSET
    cohort_id: Id | UnsetType | None = UNSET
    tags: Annotated[list[Tag], Meta(max_length=64)] | UnsetType = UNSET
    quarantined: bool | UnsetType = UNSET


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
    token: str | None = None


class UpdateRequest(_In):
    release_id: Id | None = None
    bundle_id: Id | None = None
    version: VersionText | None = None
    write: bool = False


class DeviceReport(_In):
    bundle_id: Id
    status: Literal["installed", "failed"]
    release_id: Id | None = None
    version: VersionText | None = None
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
