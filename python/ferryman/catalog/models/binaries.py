"""Artifacts, versions, binaries and their parts, signing keys, signatures, API keys and the
audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from ferryman.catalog.models.common import (
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    Id,
    Metadata,
    Name,
    RegionName,
    Role,
    Sha256Hex,
    Target,
    Text,
    VersionText,
    _In,
    full,
)  # fmt: skip

__all__ = [
    "ApiKey",
    "ApiKeyCreate",
    "Artifact",
    "ArtifactCreate",
    "ArtifactPatch",
    "Binary",
    "BinaryCreate",
    "BinaryPatch",
    "ContentFacts",
    "Event",
    "FileName",
    "MenderHeader",
    "NewSigningKey",
    "Part",
    "PartList",
    "Signature",
    "SignatureCreate",
    "SigningKey",
    "SigningKeyCreate",
    "SigningKeyPatch",
    "SigningPolicy",
    "Version",
    "VersionCreate",
    "VersionPatch",
]


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


# The name a device stores the file under (hawkBit's ``filename``: SWUpdate wants ``.swu``): one
# path segment, never a path.
FileName = Annotated[str, Meta(min_length=1, max_length=255, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._+-]*"))]


class BinaryCreate(_In):
    target: Target
    size: Annotated[int, Meta(ge=0, le=MAX_PART * MAX_PARTS)]
    sha256: Sha256Hex
    part_size: Annotated[int, Meta(ge=MIN_PART, le=MAX_PART)] | None = None
    description: Text | None = None
    custom_metadata: Metadata = {}
    filename: FileName | None = None


class BinaryPatch(_In):
    state: Literal["uploadable", "hashable", "hashing", "signable", "signed", "destroyed"] | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    custom_metadata: Metadata | UnsetType = UNSET
    filename: FileName | UnsetType | None = UNSET


class MenderHeader(Struct, kw_only=True):
    """What a Mender artifact's header says (read when the binary is hashed): the name a
    device reports once it is installed, the device types it installs on, what it provides."""

    artifact_name: str
    device_types: list[str]
    provides: dict[str, str] = {}


class ContentFacts(Struct, kw_only=True):
    """What hashing learnt of a binary's bytes besides their SHA-256."""

    sha1: str | None
    md5: str | None
    mender: MenderHeader | None = None


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
    filename: str | None = None
    # Computed when it is hashed, for protocols that list them (hawkBit's DDI).
    sha1: str | None = None
    md5: str | None = None
    mender: MenderHeader | None = None
    # Its copy in each region (see ferryman.replication), once it has content.
    replicas: list[Replica] = []


class Replica(Struct, kw_only=True):
    """A binary's copy in one region."""

    region: str
    state: str  # pending | copying | verified | checking | failed | deleting
    attempts: int  # failed attempts since it last succeeded
    error: str | None
    next_attempt_at: str  # when a queued or failed copy is tried (again)
    verified_at: str | None
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


class SigningPolicy(Struct, kw_only=True):
    """What makes a binary signed here: valid signatures by this many distinct active keys."""

    signature_threshold: int


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


class RegionReplication(Struct, kw_only=True):
    """One region's side of replication."""

    region: str
    primary: bool
    healthy: bool  # its store passed its last check (as this server sees it)
    cdn_base_url: str | None
    copies: dict[str, int]  # state → how many copies are in it
    queued: int  # copies not verified yet (pending, copying, failed)
    lag_seconds: float  # how long the oldest of those has waited; 0 when none
    failures: list[ReplicaFailure]  # the most recent failed copies (up to 20)


class ReplicaFailure(Struct, kw_only=True):
    binary_id: str
    attempts: int
    error: str | None
    next_attempt_at: str


class ReplicationStatus(Struct, kw_only=True):
    """``GET /api/v1/replication``."""

    regions: list[RegionReplication]
    queued: int
    lag_seconds: float
    failed: int


class VerifyRequest(_In):
    region: RegionName | None = None  # None: every region


class VerifyQueued(Struct, kw_only=True):
    """Copies queued to be read back and checked."""

    queued: int
