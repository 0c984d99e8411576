"""Release-channel graph rules (DESIGN.md section 2), checked on every create and patch.

A channel's releases form an anti-arborescence: each release has at most one ``next``, there
are no cycles, and a non-empty channel has exactly one sink, its latest release, which every
release reaches by following ``next``. Only the latest may be scheduled or phased, and a new
latest cannot be added while the current one is constrained (phased, or scheduled in the
future). ``insert_release`` computes the changes an insertion makes; ``check_graph`` validates a
whole graph, so a refused request changes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace

from ferryman.errors import Invalid
from ferryman.releases.resolution import Release

__all__ = ["GraphError", "check_graph", "insert_release"]


class GraphError(Invalid):
    """A change that would break a graph rule (422, nothing changed)."""


def _constrained(r: Release, now: dt.datetime) -> bool:
    return r.phase is not None or (r.schedule_at is not None and r.schedule_at > now)


def check_graph(releases: Mapping[str, Release]) -> None:
    """Raises GraphError unless ``releases`` (one channel's) satisfy every rule."""
    if not releases:
        return
    for r in releases.values():
        if r.next_id is not None and r.next_id not in releases:
            raise GraphError(
                f"release {r.id} points to {r.next_id}, which is not in this channel",
                {"next_release_id": ["not a release of this channel"]},
            )
        if r.next_id == r.id:
            raise GraphError("a release cannot be its own next", {"next_release_id": ["cycle"]})
    sinks = [r for r in releases.values() if r.next_id is None]
    if len(sinks) != 1:
        raise GraphError(
            f"a channel needs exactly one latest release, this change makes {len(sinks)}",
            {"next_release_id": ["would leave the channel without a single latest release"]},
        )
    sink = sinks[0]
    for r in releases.values():
        seen = {r.id}
        node = r
        while node.next_id is not None:
            node = releases[node.next_id]
            if node.id in seen:
                raise GraphError("the change would create a cycle", {"next_release_id": ["cycle"]})
            seen.add(node.id)
        if (r.phase is not None or r.schedule_at is not None) and r.id != sink.id:
            only_latest = ["only on the latest release"]
            raise GraphError(
                "only the latest release may be scheduled or phased", {"phase": only_latest, "schedule_at": only_latest}
            )


def insert_release(
    releases: Mapping[str, Release],
    new: Release,
    now: dt.datetime,
    *,
    previous_id: str | None = None,
) -> dict[str, Release]:
    """The channel after inserting ``new``: as the latest when ``new.next_id`` is None (the old
    latest then points to it), else before ``new.next_id``, and with ``previous_id`` between that
    release and ``new.next_id`` (which must be its current next). Raises GraphError."""
    out = dict(releases)
    if new.id in out:
        raise GraphError(f"release {new.id} exists")
    if new.next_id is None:
        if previous_id is not None:
            raise GraphError(
                "previous_release_id needs next_release_id (or leave both out to append)",
                {"previous_release_id": ["needs next_release_id"]},
            )
        if out:
            latest = next(r for r in out.values() if r.next_id is None)
            if _constrained(latest, now):
                raise GraphError(
                    f"the latest release {latest.id} is still phased or scheduled; finish or lift that first",
                    {"next_release_id": ["current latest is constrained"]},
                )
            out[latest.id] = replace(latest, next_id=new.id)
    else:
        if new.next_id not in out:
            raise GraphError(f"{new.next_id} is not a release of this channel", {"next_release_id": ["not in this channel"]})
        if previous_id is not None:
            prev = out.get(previous_id)
            if prev is None:
                raise GraphError(
                    f"{previous_id} is not a release of this channel", {"previous_release_id": ["not in this channel"]}
                )
            if prev.next_id != new.next_id:
                raise GraphError(
                    f"{previous_id} is not directly before {new.next_id}",
                    {"previous_release_id": ["its next is not next_release_id"]},
                )
            out[previous_id] = replace(prev, next_id=new.id)
    out[new.id] = new
    check_graph(out)
    return out
