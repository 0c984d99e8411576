"""The stock device agents' side of the service: one path for hawkBit DDI and Mender alike from
a device's poll to what it is told (``ferryman.agents.actions``), and from what it reports to
the device's reports and its action's end. Protocol documents are built by the handlers.

A poll is an update check like any other (``services.checkins``: the same resolution, phases,
claims, last-seen bookkeeping and offers), made with the state the device last reported, since
these agents do not say which release they run. Reading the device and its latest action costs
one catalog read per poll; an action opened or changed costs one write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ferryman.agents.actions import Step, next_step, pulled
from ferryman.catalog import Catalog, FleetSnapshot, ServedBinary
from ferryman.catalog import models as m
from ferryman.errors import Conflict, DomainError
from ferryman.releases import Release, Reported
from ferryman.services.checkins import CheckIns
from ferryman.services.rollouts import Rollouts

__all__ = ["AgentDevice", "Agents", "Poll"]


@dataclass(frozen=True)
class AgentDevice:
    """A device as an agent request found it: its record, its latest action, and whether it
    still has to send its configuration (DDI)."""

    device: m.Device
    latest: m.DeviceAction | None
    config_wanted: bool


@dataclass(frozen=True)
class Poll:
    """What a poll decided: the step (its action opened or marked), the binaries of the
    action's bundle for the device (its manifest), and the check-in's region for their URLs."""

    step: Step
    entries: list[ServedBinary]
    region: str | None
    release: Release | None  # the action's release, if it has one still


def release_in(snap: FleetSnapshot, release_id: str) -> Release | None:
    """A release by ID, from whichever channel holds it."""
    for graph in snap.graphs.values():
        found = graph.get(release_id)
        if found is not None:
            return found
    return None


class Agents:
    """See the module doc."""

    def __init__(self, catalog: Catalog, checkins: CheckIns, rollouts: Rollouts) -> None:
        self.catalog = catalog
        self.checkins = checkins
        self.rollouts = rollouts
        self._wanted: dict[str, asyncio.Future[tuple[m.Device, m.DeviceAction | None, bool] | None]] = {}
        self._looking_up: asyncio.Task[None] | None = None

    async def find(self, *, token_hash: str | None = None, identifier: str | None = None) -> AgentDevice | None:
        """The accepted device with this token hash (or identifier), or None. Lookups by token
        made while one is under way wait for the next, which reads them all at once: read
        after the request came, like one alone, but one catalog round trip for a crowd."""
        if token_hash is not None:
            wanted = self._wanted.get(token_hash)
            if wanted is None:
                wanted = self._wanted[token_hash] = asyncio.get_running_loop().create_future()
                if self._looking_up is None:
                    self._looking_up = asyncio.get_running_loop().create_task(self._look_up())
            found = await asyncio.shield(wanted)
        else:
            found = await self.catalog.agent_device(identifier=identifier)
        if found is None or found[0].admission != "accepted":
            return None
        return AgentDevice(*found)

    async def _look_up(self) -> None:
        try:
            while self._wanted:
                batch, self._wanted = self._wanted, {}
                try:
                    found = await self.catalog.agent_devices(list(batch))
                except Exception as e:
                    for wanted in batch.values():
                        wanted.set_exception(e)
                    continue
                for token_hash, wanted in batch.items():
                    wanted.set_result(found.get(token_hash))
        finally:
            self._looking_up = None

    def entries_for(self, snap: FleetSnapshot, device: m.Device, bundle_id: str) -> list[ServedBinary]:
        return [e for e in snap.entries.get(bundle_id, []) if e.target in (device.target, "any")]

    async def poll(self, agent: AgentDevice) -> Poll:
        """A device's poll: its update check, then the step for its latest action (see
        ``ferryman.agents.actions``), opening or marking the action as the step says."""
        dev = agent.device
        reported = Reported(dev.reported_release_id, dev.reported_bundle_id, dev.reported_version)
        answer = await self.checkins.check_in(reported, device=dev)
        snap = await self.checkins.snapshot()
        step = next_step(agent.latest, answer.decision, lambda rid: release_in(snap, rid))
        if step.kind == "cancel" and step.mark and step.action is not None:
            try:
                action = await self.catalog.change_action(dev.id, dev.id, step.action.id, "canceling", result="pulled",
                                                          expect=("open",))  # fmt: skip
            except Conflict:
                action = await self.catalog.device_action(dev.id, step.action.id)
            step = Step("cancel", step.reason, action)
        elif step.kind == "start":
            d = answer.decision
            assert d.bundle_id is not None
            action = await self.catalog.start_action(dev.id, d.release.id if d.release else None, d.bundle_id)
            step = Step("deploy", step.reason, action)
        return self.poll_of(snap, dev, step, answer.region)

    def poll_of(self, snap: FleetSnapshot, dev: m.Device, step: Step, region: str | None) -> Poll:
        action = step.action
        if action is None:
            return Poll(step, [], region, None)
        release = release_in(snap, action.release_id) if action.release_id else None
        return Poll(step, self.entries_for(snap, dev, action.bundle_id), region, release)

    async def action_view(self, agent: AgentDevice, action_id: int) -> Poll:
        """One of the device's actions with its manifest (for DDI's deploymentBase and
        installedBase); NotFound if it is not the device's."""
        action = await self.catalog.device_action(agent.device.id, action_id)
        snap = await self.checkins.snapshot()
        region = agent.device.region or (snap.cohort_region.get(agent.device.cohort_id) if agent.device.cohort_id else None)
        return self.poll_of(snap, agent.device, Step("deploy", "open", action), region)

    async def progress(
        self, agent: AgentDevice, action_id: int, status: m.ReportStatus | None, result: str | None, detail: str | None
    ) -> m.DeviceAction:
        """A device's word on one of its actions: recorded as its report (``status``), and with
        ``result`` the action is closed. Repeats of a final word change nothing."""
        dev = agent.device
        action = await self.catalog.device_action(dev.id, action_id)
        if action.status in ("closed", "canceled"):
            return action
        if status is not None:
            snap = await self.checkins.snapshot()
            release = release_in(snap, action.release_id) if action.release_id else None
            report = m.DeviceReport(bundle_id=action.bundle_id, status=status, release_id=action.release_id,
                                    version=release.version if release else None, detail=detail)  # fmt: skip
            try:
                await self.rollouts.report(dev.id, report)
            except DomainError:
                # The release or bundle is gone: the action still ends as the device says.
                if result is None:
                    raise
        if result is None:
            return action
        try:
            return await self.catalog.change_action(dev.id, dev.id, action_id, "closed", result=result, detail=detail)
        except Conflict:
            return await self.catalog.device_action(dev.id, action_id)

    async def canceled(self, agent: AgentDevice, action_id: int, detail: str | None, result: str | None = None) -> m.DeviceAction:
        """The device stopped an action it was asked to cancel (or refused to: either way the
        action ends, canceled)."""
        dev = agent.device
        try:
            return await self.catalog.change_action(dev.id, dev.id, action_id, "canceled", result=result, detail=detail)
        except Conflict:
            return await self.catalog.device_action(agent.device.id, action_id)

    async def still_wanted(self, agent: AgentDevice, action_id: int) -> m.DeviceAction:
        """An action the device works on, if it may go on: Conflict if it was canceled or its
        release was pulled (the action is then marked canceled)."""
        action = await self.catalog.device_action(agent.device.id, action_id)
        if action.status == "canceled":
            raise Conflict(f"deployment {action_id} was canceled")
        snap = await self.checkins.snapshot()
        gone = action.release_id is not None and pulled(release_in(snap, action.release_id))
        if action.status == "canceling" or (action.status == "open" and gone):
            why = "pulled" if action.status == "open" else None
            await self.canceled(agent, action_id, "aborted: the release was pulled or the deployment canceled", why)
            raise Conflict(f"deployment {action_id} was aborted: its release was pulled or it was canceled")
        return action
