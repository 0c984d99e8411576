"""What an agent protocol tells a device when it asks: keep installing its open action, cancel
it, start a new one, or nothing. Pure: the caller reads the device's latest action and resolves
its update (``services.checkins``) first, and writes what the step says.

An action (a DDI action, a Mender deployment) is one update offered to one device. It stays
open, and is answered the same way, until the device closes it, across restarts of either side:
SWUpdate reports its final success only after the reboot that follows the install. A release
pulled meanwhile (disabled, halted, or gone) cancels the action instead. A release the device
already finished, well or badly, or whose action an operator canceled, is not offered to it
again through the same protocol (a failing install would otherwise be retried on every poll,
for ever); one whose action was canceled because the release was pulled is offered again if the
release comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ferryman.catalog import models as m
from ferryman.releases import Decision, Release

__all__ = ["Step", "next_step", "pulled"]


@dataclass(frozen=True)
class Step:
    """``deploy``: serve ``action`` (open); ``cancel``: ask the device to stop ``action``
    (``mark``: it is open still and must be marked canceling); ``start``: open a new action for
    the decision's release and bundle; ``none``: nothing to do, for ``reason``."""

    kind: Literal["deploy", "cancel", "start", "none"]
    reason: str
    action: m.DeviceAction | None = None
    mark: bool = False


def pulled(release: Release | None) -> bool:
    """Whether a release is no longer offered: gone from its channel, disabled, or halted."""
    return release is None or release.disabled or release.halted


def next_step(latest: m.DeviceAction | None, decision: Decision, release_of: Callable[[str], Release | None]) -> Step:
    """The step for a device whose latest action is ``latest`` and whose update check decided
    ``decision`` (see the module doc). ``release_of`` finds a release by ID."""
    if latest is not None and latest.status == "canceling":
        return Step("cancel", "canceled", latest)
    if latest is not None and latest.status == "open":
        if latest.release_id is not None and pulled(release_of(latest.release_id)):
            return Step("cancel", "release_pulled", latest, mark=True)
        return Step("deploy", "open", latest)
    if decision.status != "update" or decision.bundle_id is None:
        return Step("none", decision.reason)
    release_id = decision.release.id if decision.release is not None else None
    if latest is not None and latest.bundle_id == decision.bundle_id and latest.release_id == release_id:
        if latest.status == "closed":
            return Step("none", f"finished_{latest.result or 'failure'}")
        if latest.status == "canceled" and latest.result == "canceled":
            return Step("none", "canceled_by_operator")
    return Step("start", decision.reason)
