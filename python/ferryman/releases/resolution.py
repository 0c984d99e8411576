"""Update resolution, DESIGN.md section 3, as one pure function.

``resolve`` takes the device, what it reports, the releases of its cohort's channel, its bundle
overrides, the time, and two facts from the catalog (which bundles are servable, which count
phases the device has claimed), and returns a ``Decision`` with a short machine-readable
``reason``. It never writes: a decision that lands on a ``count`` phase names the release in
``claim``, and the catalog claims it atomically (and re-resolves if the phase filled up).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import semver

__all__ = [
    "CountPhase",
    "Decision",
    "Device",
    "Override",
    "PercentPhase",
    "Release",
    "Reported",
    "TagsPhase",
    "in_percent",
    "resolve",
]


@dataclass(frozen=True)
class PercentPhase:
    value: float  # 0..1


@dataclass(frozen=True)
class CountPhase:
    value: int  # >= 1
    claimed: int = 0


@dataclass(frozen=True)
class TagsPhase:
    tags: frozenset[str]


Phase = PercentPhase | CountPhase | TagsPhase


@dataclass(frozen=True)
class Release:
    id: str
    bundle_id: str
    created_at: str
    version: str | None = None
    version_requirement: str | None = None
    next_id: str | None = None
    required: bool = False
    disabled: bool = False
    schedule_at: dt.datetime | None = None
    phase: Phase | None = None
    # Whether the bundle must be verified in every region first (None: the default, yes).
    require_replicated: bool | None = None
    # Halted by its failure threshold (or held by hand): offered to no device from now on.
    halted: bool = False


@dataclass(frozen=True)
class Device:
    id: str
    target: str
    tags: frozenset[str] = frozenset()
    quarantined: bool = False


@dataclass(frozen=True)
class Reported:
    release_id: str | None = None
    bundle_id: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Override:
    id: str
    bundle_id: str
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None


@dataclass(frozen=True)
class Decision:
    status: str  # "update" | "no_update" | "quarantined"
    reason: str
    source: str | None = None  # "release" | "override"
    release: Release | None = None
    bundle_id: str | None = None
    override: Override | None = None
    claim: str | None = None  # a count-phase release the device must claim
    path: tuple[str, ...] = field(default_factory=tuple)


def in_percent(device_id: str, release_id: str, fraction: float) -> bool:
    """A stable draw for (device, release): the same answer every time for the same pair."""
    digest = hashlib.sha256(f"{device_id}\x00{release_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _satisfies(version: str | None, requirement: str | None) -> bool:
    """Whether ``version`` meets a SemVer ``requirement`` such as ``>=1.2.0,<2.0.0``. A device
    that reports no version is not held back by requirements (it has nothing to migrate from)."""
    if not requirement:
        return True
    if version is None or not semver.Version.is_valid(version):
        return version is None
    v = semver.Version.parse(version)
    return all(v.match(part.strip()) for part in requirement.split(",") if part.strip())


def _latest(releases: Mapping[str, Release]) -> Release:
    sinks = [r for r in releases.values() if r.next_id is None]
    assert len(sinks) == 1, "a channel's graph has exactly one sink"
    return sinks[0]


def _selectable(r: Release, device: Device, reported: Reported, now: dt.datetime, claimed: frozenset[str]) -> bool:
    if r.disabled or r.halted or (r.schedule_at is not None and r.schedule_at > now):
        return False
    if not _satisfies(reported.version, r.version_requirement):
        return False
    match r.phase:
        case None:
            return True
        case PercentPhase(value):
            return in_percent(device.id, r.id, value)
        case CountPhase(value, taken):
            return r.id in claimed or taken < value
        case TagsPhase(tags):
            return bool(tags & device.tags)
    return False


def _version_key(r: Release) -> semver.Version:
    return semver.Version.parse(r.version) if r.version and semver.Version.is_valid(r.version) else semver.Version(0)


def resolve(
    device: Device,
    reported: Reported,
    releases: Mapping[str, Release] | None,
    overrides: list[Override],
    now: dt.datetime,
    servable: Callable[[str], bool],
    claimed: frozenset[str] = frozenset(),
    replicated: Callable[[str], bool] = lambda _: True,
) -> Decision:
    """The update decision for ``device`` (see the module doc). ``releases`` is its cohort's
    channel (None when it has none); ``servable(bundle_id)`` says whether every binary of the
    bundle is signed; ``claimed`` holds the count-phase releases this device already claimed;
    ``replicated(bundle_id)`` whether every binary of the bundle is verified in every region
    (always, with one region), which a release requires unless it waives it."""
    if device.quarantined:
        return Decision("quarantined", "quarantined")

    # 1. An active override wins: the most recently started one.
    active = [o for o in overrides if o.starts_at <= now and (o.ends_at is None or now < o.ends_at)]
    if active:
        o = max(active, key=lambda x: (x.starts_at, x.id))
        if reported.bundle_id == o.bundle_id:
            return Decision("no_update", "override_current", "override", bundle_id=o.bundle_id, override=o)
        if not servable(o.bundle_id):
            return Decision("no_update", "override_bundle_not_servable", "override", bundle_id=o.bundle_id, override=o)
        return Decision("update", "override", "override", bundle_id=o.bundle_id, override=o)

    if releases is None:
        return Decision("no_update", "no_channel")
    if not releases:
        return Decision("no_update", "channel_empty")

    # 2. The first candidate.
    first: Release | None = None
    entered_at_latest = False
    current = releases.get(reported.release_id) if reported.release_id else None
    if current is None and reported.bundle_id:
        serving = [r for r in releases.values() if r.bundle_id == reported.bundle_id]
        current = max(serving, key=lambda r: r.created_at) if serving else None
    if current is not None:
        if current.next_id is None:
            return Decision("no_update", "at_latest", "release", release=current, bundle_id=current.bundle_id)
        first = releases[current.next_id]
    elif reported.version is not None:
        entries = [r for r in releases.values() if r.version_requirement and _satisfies(reported.version, r.version_requirement)]
        if entries:
            first = min(entries, key=lambda r: (_version_key(r), r.created_at))
    if first is None:
        entered_at_latest = True
        first = _latest(releases)

    # 3. Walk forward while not required and a next exists.
    path = [first]
    if not entered_at_latest:
        while not path[-1].required and path[-1].next_id is not None:
            path.append(releases[path[-1].next_id])

    # 4. Walk back to the first selectable release, never past the first candidate; a device
    # that entered at the latest follows the most recently created predecessor instead.
    chosen: Release | None = None
    if entered_at_latest:
        node: Release | None = first
        seen: set[str] = set()
        while node is not None and node.id not in seen:
            seen.add(node.id)
            if _selectable(node, device, reported, now, claimed):
                chosen = node
                break
            preds = [r for r in releases.values() if r.next_id == node.id]
            node = max(preds, key=lambda r: (r.created_at, r.id)) if preds else None
    else:
        for node in reversed(path):
            if _selectable(node, device, reported, now, claimed):
                chosen = node
                break
    trail = tuple(r.id for r in path)
    if chosen is None:
        # Say so when a halted release is on the way the device would have gone.
        reason = "release_halted" if any(r.halted for r in path) else "none_selectable"
        return Decision("no_update", reason, "release", path=trail)

    # 5. Serve it only if its bundle differs from the device's, is fully signed and (unless the
    # release waives it) verified in every region.
    claim = chosen.id if isinstance(chosen.phase, CountPhase) and chosen.id not in claimed else None
    if chosen.bundle_id == reported.bundle_id:
        return Decision("no_update", "current", "release", chosen, chosen.bundle_id, path=trail)
    if not servable(chosen.bundle_id):
        return Decision("no_update", "bundle_not_servable", "release", chosen, chosen.bundle_id, path=trail)
    if chosen.require_replicated is not False and not replicated(chosen.bundle_id):
        return Decision("no_update", "bundle_not_replicated", "release", chosen, chosen.bundle_id, path=trail)
    return Decision("update", "release", "release", chosen, chosen.bundle_id, claim=claim, path=trail)
