"""Names for IDs. An argument that names a resource (``--channel stable``, ``devices show
gw-0042``) is parsed into a :class:`Ref`; before the command runs, every Ref is turned into the
resource's ID through the API's own filters, in one session. A name that matches nothing is an
operational error (exit 1); one that matches several is a usage error (exit 2) listing them."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferryman import paths
from ferryman.catalog import models as m
from ferryman.client import Client
from ferryman.errors import FerrymanError, NotFound
from ferryman.ids import PREFIXES, is_id
from ferryman.paths import at

__all__ = ["Ambiguous", "Ref", "ref", "resolve_all"]

_ANY_ID = re.compile(r"([a-z]{3})_[0-9a-hjkmnp-tv-z]{26}")
_KIND_OF_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class Ambiguous(FerrymanError):
    """A name matches more than one resource (a usage error: exit 2)."""


@dataclass(frozen=True)
class Ref:
    kind: str  # a kind of ferryman.ids.PREFIXES
    text: str


def ref(kind: str) -> Callable[[str], Ref]:
    """An argparse ``type``: the argument names a resource of ``kind`` by ID or by name."""

    def parse(text: str) -> Ref:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty {kind.replace('_', ' ')} name")
        return Ref(kind, text)

    parse.__name__ = kind.replace("_", " ")  # argparse names the type in its errors
    return parse


def _what(kind: str) -> str:
    return {"api_key": "API key", "signing_key": "signing key", "override": "bundle override"}.get(kind, kind)


def _a(kind: str) -> str:
    what = _what(kind)
    return ("an " if what[0] in "aeiouAEIOU" else "a ") + what


def _one(kind: str, text: str, found: list[tuple[str, str]]) -> str:
    """The single match's ID, else the error that says why not (``found``: ID, label pairs)."""
    if len(found) == 1:
        [(only, _)] = found
        return only
    if not found:
        raise NotFound(f"no {_what(kind)} named {text!r}")
    listed = ", ".join(f"{label} ({id_})" for id_, label in found[:5]) + (", …" if len(found) > 5 else "")
    raise Ambiguous(f"{len(found)} {_what(kind)}s are named {text!r}: {listed}; give an ID")


async def _by_filter(c: Client, path: str, shape: type[Any], kind: str, text: str, **query: str) -> str:
    page: m.Page[Any] = await c.page(path, shape, 6, **query)
    return _one(kind, text, [(x.id, text) for x in page.items])


async def _release(c: Client, text: str) -> str:
    # Release names are unique within a channel: CHANNEL/NAME names one; NAME alone must be
    # unique among every channel.
    if "/" in text:
        channel, name = text.split("/", 1)
        channel_id = await resolve(c, Ref("channel", channel))
        page = await c.page(at(paths.RELEASES, channel_id=channel_id), m.Release, 2, name=name)
        return _one("release", text, [(r.id, text) for r in page.items])
    found = []
    async for ch in c.each(paths.CHANNELS, m.Channel):
        async for r in c.releases(ch.id, name=text):
            found.append((r.id, f"{ch.name}/{r.name}"))
    return _one("release", text, found)


async def _version(c: Client, text: str) -> str:
    artifact, sep, version = text.rpartition("@")
    if not sep or not artifact:
        raise NotFound(f"no version {text!r}: give an ID or ARTIFACT@VERSION")
    artifact_id = await resolve(c, Ref("artifact", artifact))
    v = await c.find_version(artifact_id, version)
    return _one("version", text, [(v.id, text)] if v else [])


async def _signing_key(c: Client, text: str) -> str:
    if _HEX64.fullmatch(text):  # a keyid (SHA-256 of the public key)
        key = await c.find_signing_key(text.lower())
        if key is not None:
            return key.id
    return await _by_filter(c, paths.SIGNING_KEYS, m.SigningKey, "signing_key", text, name=text)


_LOOKUPS: dict[str, Callable[[Client, str], Any]] = {
    "artifact": lambda c, t: _by_filter(c, paths.ARTIFACTS, m.Artifact, "artifact", t, name=t),
    "version": _version,
    "signing_key": _signing_key,
    "bundle": lambda c, t: _by_filter(c, paths.BUNDLES, m.Bundle, "bundle", t, name=t),
    "channel": lambda c, t: _by_filter(c, paths.CHANNELS, m.Channel, "channel", t, name=t),
    "cohort": lambda c, t: _by_filter(c, paths.COHORTS, m.Cohort, "cohort", t, name=t),
    "release": _release,
    "device": lambda c, t: _by_filter(c, paths.DEVICES, m.Device, "device", t, identifier=t),
    "api_key": lambda c, t: _by_filter(c, paths.API_KEYS, m.ApiKey, "api_key", t, name=t),
}


async def resolve(c: Client, r: Ref) -> str:
    """The ID ``r`` stands for: itself when it is an ID of its kind, else the one resource so
    named (kinds without names take IDs only)."""
    if is_id(r.text, r.kind):
        return r.text
    other = _ANY_ID.fullmatch(r.text)
    if other:
        named = _KIND_OF_PREFIX.get(other.group(1), "resource")
        raise FerrymanError(f"{r.text} is {_a(named)} ID, not {_a(r.kind)} ID")
    lookup = _LOOKUPS.get(r.kind)
    if lookup is None:
        raise FerrymanError(f"{r.text!r} is not {_a(r.kind)} ID ({PREFIXES[r.kind]}_…)")
    return await lookup(c, r.text)


async def resolve_all(c: Client, args: argparse.Namespace) -> None:
    """Replaces every Ref (or list of Refs) among ``args`` by the ID it names."""
    for name, value in vars(args).items():
        if isinstance(value, Ref):
            setattr(args, name, await resolve(c, value))
        elif isinstance(value, list) and any(isinstance(v, Ref) for v in value):
            setattr(args, name, [await resolve(c, v) if isinstance(v, Ref) else v for v in value])
