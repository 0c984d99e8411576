"""Rollout health, as pure functions: a device's outcome for a release, when a release halts
itself, which scheduled phase step is due, and the figures of a rollout's stats. The counts
come from the catalog (``rollouts`` rows, one per release and device); the scheduler that
applies due steps is ``services/rollouts.py``.

A device's outcome for a release is the status of its last report for it, or ``offered`` when
an update check offered it the release and it has reported nothing since. Failures are the
devices whose outcome is ``failed`` or ``rolled_back`` now: a device that failed and then
installed counts as installed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "FAILURES",
    "OUTCOMES",
    "STATUSES",
    "HaltRule",
    "due_step",
    "halt_reason",
    "percentile",
    "success_rate",
]

# What a device reports about a release, in the order an installation goes through them.
OUTCOMES = ("downloading", "installing", "installed", "failed", "rolled_back")
STATUSES = ("offered", *OUTCOMES)
FAILURES = frozenset({"failed", "rolled_back"})
# Reports a failure rate needs before it can halt a release, unless the rule says otherwise:
# one failure among the first few devices says little about a fleet.
DEFAULT_MIN_REPORTS = 10

P = TypeVar("P")


@dataclass(frozen=True)
class HaltRule:
    """When a release halts itself: more than ``max_failures`` failed devices, or a failure
    rate above ``max_failure_rate`` once at least ``min_reports`` devices reported an end
    (installed, failed or rolled back). Either bound may be absent."""

    max_failure_rate: float | None = None
    min_reports: int = DEFAULT_MIN_REPORTS
    max_failures: int | None = None


def halt_reason(rule: HaltRule, counts: Mapping[str, int]) -> str | None:
    """Why a release with these outcome counts (devices by outcome) must halt under ``rule``;
    None while it is healthy."""
    failures = sum(counts.get(s, 0) for s in FAILURES)
    ended = failures + counts.get("installed", 0)
    if rule.max_failures is not None and failures > rule.max_failures:
        return f"{failures} devices failed, more than max_failures {rule.max_failures}"
    if rule.max_failure_rate is not None and ended >= rule.min_reports and failures > rule.max_failure_rate * ended:
        return (
            f"{failures} of {ended} devices failed ({failures / ended:.1%}), "
            f"above max_failure_rate {rule.max_failure_rate:.1%} (min_reports {rule.min_reports})"
        )
    return None


def success_rate(counts: Mapping[str, int]) -> float | None:
    """Installed devices among those that reported an end; None before any did."""
    installed = counts.get("installed", 0)
    ended = installed + sum(counts.get(s, 0) for s in FAILURES)
    return installed / ended if ended else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 <= q <= 100; 0 is the least) of sorted
    ``values``; None if empty."""
    if not values:
        return None
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def due_step(steps: Sequence[tuple[dt.datetime, P]], now: dt.datetime, halted: bool) -> tuple[P, int] | None:
    """The scheduled phase step to apply now and how many steps it settles: the last step
    whose time has come (earlier due ones are passed over, so a release resumed late goes
    straight to where its schedule stands), None while the release is halted or no step is
    due. ``steps`` are in time order."""
    if halted:
        return None
    due = [i for i, (at, _) in enumerate(steps) if at <= now]
    if not due:
        return None
    return steps[due[-1]][1], due[-1] + 1


def counts_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Outcome counts from ``(status, n)`` rows, every status present."""
    counts = dict.fromkeys(STATUSES, 0)
    for r in rows:
        counts[r["status"]] += int(r["n"])
    return counts
