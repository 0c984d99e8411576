"""Shapes every model shares: sizes and limits, field patterns, pages, and the base of
request bodies."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "DEFAULT_PART",
    "DEVICE_HEADERS",
    "GIB",
    "ID_PATTERN",
    "MAX_PART",
    "MAX_PARTS",
    "METADATA_MAX_BYTES",
    "MIB",
    "MIN_PART",
    "ROLES",
    "TIME_PATTERN",
    "VERSION_PATTERN",
    "Id",
    "Metadata",
    "Name",
    "Page",
    "RegionName",
    "Role",
    "Sha256Hex",
    "Tag",
    "Target",
    "Text",
    "Time",
    "VersionText",
    "_In",
    "check_metadata",
    "full",
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


def check_metadata(value: Metadata, field: str = "custom_metadata") -> None:
    """Caps custom metadata at METADATA_MAX_BYTES of JSON."""
    from ferryman.errors import Invalid

    if len(msgspec.json.encode(value)) > METADATA_MAX_BYTES:
        raise Invalid(f"{field} is too large", {field: [f"at most {METADATA_MAX_BYTES} bytes of JSON"]})


Id = Annotated[str, Meta(pattern=ID_PATTERN)]
Time = Annotated[str, Meta(max_length=64, pattern=TIME_PATTERN)]
Tag = Annotated[str, Meta(min_length=1, max_length=64, pattern=full(r"[A-Za-z0-9][A-Za-z0-9._:-]*"))]
# A configured region's name (see config.REGION_NAME).
RegionName = Annotated[str, Meta(min_length=1, max_length=32, pattern=full(r"[a-z][a-z0-9-]*"))]
