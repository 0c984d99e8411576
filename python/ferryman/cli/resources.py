"""The API's resources as the CLI sees them, in one table: where each lives, its model, the
columns of its list, the filters its list takes, the fields its update changes and whether it can
be deleted. ``list``, ``show``, ``update`` and ``delete`` of every resource are built from this
table (``cli/generic.py``); what needs more than the table (rollout steering, the channel graph,
a device's tags) is in ``cli/steering.py``."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferryman import paths
from ferryman.catalog import models as m
from ferryman.cli.refs import ref
from ferryman.releases.words import phase_words

__all__ = [
    "RESOURCES",
    "Option",
    "Resource",
    "by_group",
    "changed",
    "metadata",
    "nullable",
    "optional_ref",
    "rfc3339",
    "time_or_none",
]


def metadata(text: str) -> dict[str, Any]:
    """``--metadata '{"team": "os"}'``: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def nullable(text: str) -> str | None:
    """Text where ``''`` clears the field."""
    return text or None


def rfc3339(text: str) -> str:
    """An RFC 3339 time (the server checks it); ``2026-12-24T06:00Z`` (no seconds) is completed
    with ``:00``."""
    short = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d)(Z|[+-]\d\d:\d\d)?", text)
    return f"{short.group(1)}:00{short.group(2) or ''}" if short else text


def time_or_none(text: str) -> str | None:
    """An RFC 3339 time, as ``rfc3339``; ``none`` clears it."""
    return None if text.lower() in ("none", "") else rfc3339(text)


def optional_ref(kind: str) -> Callable[[str], Any]:
    """A resource by ID or name, or ``''`` for none."""
    named = ref(kind)
    return lambda text: named(text) if text else None


@dataclass(frozen=True)
class Option:
    """A command-line option: a list filter (``field`` is the query parameter) or a field an
    update changes (``field`` is the patch field). ``pair``: two flags setting True and False."""

    flag: str
    field: str
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    pair: tuple[str, str] | None = None
    metavar: str | None = None
    append: bool = False  # repeatable: the values make a list


@dataclass(frozen=True)
class Resource:
    group: str  # the CLI's name: "channels"
    kind: str  # its kind of ID (ferryman.ids.PREFIXES)
    model: type
    item: str  # the path of one, with a {placeholder}
    collection: str | None = None  # the path of the list (None: no list route)
    columns: tuple[tuple[str, str | Callable[[Any], Any]], ...] = ()
    filters: tuple[Option, ...] = ()
    # A list under another resource (versions of an artifact): the option or positional naming it.
    parent: tuple[str, str, str] | None = None  # (placeholder, kind, "--flag" or "NAME")
    patch: type | None = None
    fields: tuple[Option, ...] = ()
    delete: bool = False
    show: bool = True
    help: str = ""

    @property
    def one(self) -> str:
        """One of them, in words: "binary", "api key"."""
        words = self.group.replace("-", " ")
        return words[:-3] + "y" if words.endswith("ies") else words.removesuffix("s")

    @property
    def key(self) -> str:
        """The placeholder of one resource's path (``binary_id``)."""
        found = re.search(r"\{(\w+)\}$", self.item)
        assert found, f"{self.item} does not end with a placeholder"
        return found.group(1)


def _release_flags(r: m.Release) -> str:
    flags = [f for f, on in (("required", r.required), ("disabled", r.disabled), ("halted", r.halted)) if on]
    return ",".join(flags)


def changed(e: m.Event) -> str:
    """The fields an update changed (none for a create or a delete)."""
    if e.before is None or e.after is None:
        return ""
    return ",".join(k for k in {**e.before, **e.after} if k != "updated_at" and e.before.get(k) != e.after.get(k))


DESCRIPTION = Option("--description", "description", "new description ('' clears it)", nullable)
METADATA = Option("--metadata", "custom_metadata", "replace its custom metadata: a JSON object", metadata, metavar="JSON")

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "artifacts", "artifact", m.Artifact, paths.ARTIFACT, paths.ARTIFACTS,
        (("ID", "id"), ("NAME", "name"), ("DESCRIPTION", "description"), ("CREATED", "created_at")),
        (Option("--name", "name", "only the artifact so named"),),
        patch=m.ArtifactPatch, fields=(DESCRIPTION, METADATA), delete=True, help="artifacts: what binaries are",
    ),
    Resource(
        "versions", "version", m.Version, paths.VERSION, paths.VERSIONS,
        (("ID", "id"), ("VERSION", "version"), ("SEMVER", "semver"), ("DESCRIPTION", "description"), ("CREATED", "created_at")),
        parent=("artifact_id", "artifact", "ARTIFACT"),
        patch=m.VersionPatch, fields=(DESCRIPTION, METADATA), help="versions of an artifact (ARTIFACT@VERSION names one)",
    ),
    Resource(
        "binaries", "binary", m.Binary, paths.BINARY, paths.BINARIES,
        (("ID", "id"), ("STATE", "state"), ("TARGET", "target"), ("SIZE", "size"), ("SHA-256", "sha256"),
         ("VERSION", "version_id")),
        (Option("--version", "version_id", "only this version's (ID or ARTIFACT@VERSION)", ref("version"), metavar="VERSION"),
         Option("--target", "target", "only this target's"),
         Option("--state", "state", "only those in this state",
                choices=("uploadable", "hashable", "hashing", "signable", "signed", "destroyed")),
         Option("--sha256", "sha256", "only those with this SHA-256", str.lower, metavar="HEX"),
         Option("--signing-key", "signing_key_id", "only those this key signed", ref("signing_key"), metavar="KEY")),
        patch=m.BinaryPatch,
        fields=(Option("--state", "state", "move it to this state (destroyed deletes its bytes)",
                       choices=("hashable", "hashing", "signable", "signed", "destroyed")),
                DESCRIPTION, METADATA,
                Option("--filename", "filename", "the name devices store it under ('' clears it)", nullable)),
        help="binaries: one target's file of a version",
    ),
    Resource(
        "signing-keys", "signing_key", m.SigningKey, paths.SIGNING_KEY, paths.SIGNING_KEYS,
        (("ID", "id"), ("NAME", "name"), ("STATE", "state"), ("ALGORITHM", "algorithm"), ("KEYID", "keyid"),
         ("NOT AFTER", "not_after")),
        (Option("--state", "state", "only active or revoked keys", choices=("active", "revoked")),
         Option("--name", "name", "only the key so named"),
         Option("--keyid", "keyid", "only the key with this keyid", str.lower, metavar="HEX")),
        patch=m.SigningKeyPatch, fields=(Option("--name", "name", "rename it"),),
        help="public keys whose signatures count",
    ),
    Resource(
        "signatures", "signature", m.Signature, paths.SIGNATURES, paths.SIGNATURES,
        (("ID", "id"), ("KEY", "signing_key_id"), ("KEY STATE", "key_state"), ("ALGORITHM", "algorithm"),
         ("MESSAGE", "message"), ("CREATED", "created_at")),
        parent=("binary_id", "binary", "BINARY"), show=False, help="signatures over binaries",
    ),
    Resource(
        "bundles", "bundle", m.Bundle, paths.BUNDLE, paths.BUNDLES,
        (("ID", "id"), ("NAME", "name"), ("BINARIES", lambda b: len(b.entries)),
         ("SIGNATURES", lambda b: len(b.signatures)), ("HASH", "hash"), ("CREATED", "created_at")),
        (Option("--name", "name", "only bundles so named"),
         Option("--signing-key", "signing_key_id", "only those this key signed", ref("signing_key"), metavar="KEY")),
        help="bundles: binaries released together",
    ),
    Resource(
        "channels", "channel", m.Channel, paths.CHANNEL, paths.CHANNELS,
        (("ID", "id"), ("NAME", "name"), ("LATEST", "latest_release_id"), ("DESCRIPTION", "description")),
        (Option("--name", "name", "only the channel so named"),),
        patch=m.ChannelPatch, fields=(Option("--name", "name", "rename it"), DESCRIPTION),
        help="release channels and their release graphs",
    ),
    Resource(
        "releases", "release", m.Release, paths.RELEASE, paths.RELEASES,
        (("ID", "id"), ("NAME", "name"), ("VERSION", "version"), ("BUNDLE", "bundle_id"), ("NEXT", "next_release_id"),
         ("PHASE", lambda r: phase_words(r.phase)), ("FLAGS", _release_flags)),
        (Option("--name", "name", "only the release so named"),),
        parent=("channel_id", "channel", "--channel"), patch=m.ReleasePatch,
        help="releases: a bundle at a point of a channel's graph (CHANNEL/NAME names one)",
    ),
    Resource(
        "cohorts", "cohort", m.Cohort, paths.COHORT, paths.COHORTS,
        (("ID", "id"), ("NAME", "name"), ("CHANNEL", "channel_id"), ("REGION", "region"), ("DESCRIPTION", "description")),
        (Option("--name", "name", "only the cohort so named"),
         Option("--channel", "channel_id", "only those following this channel", ref("channel"))),
        patch=m.CohortPatch,
        fields=(Option("--name", "name", "rename it"),
                Option("--channel", "channel_id", "follow this channel ('' for none)", optional_ref("channel")),
                DESCRIPTION,
                Option("--region", "region", "region its devices download from ('' for the default)", nullable)),
        help="cohorts: devices that follow a channel together",
    ),
    Resource(
        "devices", "device", m.Device, paths.DEVICE, paths.DEVICES,
        (("ID", "id"), ("IDENTIFIER", "identifier"), ("TARGET", "target"), ("COHORT", "cohort_id"), ("TAGS", "tags"),
         ("ADMISSION", "admission"), ("RELEASE", "reported_release_id"), ("LAST SEEN", "last_seen_at")),
        (Option("--identifier", "identifier", "only the device with this identifier"),
         Option("--cohort", "cohort_id", "only this cohort's", ref("cohort")),
         Option("--tag", "tag", "only those with this tag"),
         Option("--target", "target", "only those of this target"),
         Option("--admission", "admission", "only those pending, accepted or rejected",
                choices=("pending", "accepted", "rejected")),
         Option("--release", "reported_release_id", "only those reporting this release", ref("release")),
         Option("--seen-since", "seen_since", "only those seen at or after this time (RFC 3339)", rfc3339, metavar="TIME"),
         Option("--seen-before", "seen_before", "only those last seen before this time (never seen: left out)", rfc3339,
                metavar="TIME")),
        patch=m.DevicePatch, delete=True, help="devices (their identifier names them)",
    ),
    Resource(
        "bundle-overrides", "override", m.Override, paths.OVERRIDE, paths.OVERRIDES,
        (("ID", "id"), ("BUNDLE", "bundle_id"), ("DEVICES", lambda o: len(o.device_ids)), ("STARTS", "starts_at"),
         ("ENDS", "ends_at")),
        (Option("--device", "device_id", "only those of this device", ref("device")),),
        patch=m.OverridePatch,
        fields=(Option("--starts-at", "starts_at", "when it starts (RFC 3339)", time_or_none, metavar="TIME"),
                Option("--ends-at", "ends_at", "when it ends (RFC 3339; none: never)", time_or_none, metavar="TIME")),
        delete=True, help="bundle overrides: devices forced onto a bundle for a time",
    ),
    Resource(
        "api-keys", "api_key", m.ApiKey, paths.API_KEY, paths.API_KEYS,
        (("ID", "id"), ("NAME", "name"), ("ROLE", "role"), ("CREATED", "created_at")),
        (Option("--name", "name", "only keys so named"),),
        delete=True, help="API keys (admin)",
    ),
    Resource(
        "webhooks", "webhook", m.Webhook, paths.WEBHOOK, paths.WEBHOOKS,
        (("ID", "id"), ("URL", "url"), ("EVENTS", "events"), ("DISABLED", "disabled"), ("DESCRIPTION", "description")),
        patch=m.WebhookPatch,
        fields=(Option("--endpoint", "url", "send to this URL instead", metavar="URL"),
                Option("--event", "events", "replace its event types (repeatable)", metavar="TYPE", append=True),
                DESCRIPTION,
                Option("--disable", "disabled", "stop or restart sending", pair=("--disable", "--enable"))),
        delete=True, help="webhooks: event notifications to your services",
    ),
    Resource(
        "events", "event", m.Event, paths.EVENTS, paths.EVENTS,
        (("AT", "at"), ("ACTOR", "actor"), ("ACTION", "action"), ("TYPE", "resource_type"), ("RESOURCE", "resource_id"),
         ("CHANGED", changed)),
        (Option("--resource", "resource_id", "only events about this resource (its ID)", metavar="ID"),
         Option("--type", "resource_type", "only events about this kind of resource (release, device…)"),
         Option("--action", "action", "only this action (create, update, halt, resolve…)"),
         Option("--actor", "actor", "only this actor's (api_key:ID, device:ID, system…)"),
         Option("--since", "since", "only events at or after this time (RFC 3339)", rfc3339, metavar="TIME"),
         Option("--until", "until", "only events before this time (RFC 3339)", rfc3339, metavar="TIME")),
        show=False, help="the audit log",
    ),
)  # fmt: skip


def by_group(group: str) -> Resource:
    return next(r for r in RESOURCES if r.group == group)
