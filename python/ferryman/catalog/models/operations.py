"""Fleet operations: rollout stats, device report history, webhooks and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from ferryman.catalog.models.common import Text, _In, full

__all__ = [
    "DeliveryAttempt",
    "InstallTimes",
    "Outcomes",
    "ReleaseOutcome",
    "ReportEntry",
    "RolloutStats",
    "Webhook",
    "WebhookCreate",
    "WebhookDelivery",
    "WebhookPatch",
]

# A webhook event type, a group of them (``release.*``) or every one (``*``); see
# ferryman.webhooks.EVENT_TYPES.
EventName = Annotated[str, Meta(min_length=1, max_length=64, pattern=full(r"\*|[a-z_]+\.(\*|[a-z_]+)"))]
WebhookUrl = Annotated[str, Meta(min_length=1, max_length=2048)]


class Outcomes(Struct, kw_only=True):
    """Devices by their outcome for a release (ferryman.rollouts)."""

    offered: int
    downloading: int
    installing: int
    installed: int
    failed: int
    rolled_back: int


class InstallTimes(Struct, kw_only=True):
    """Seconds from offer to installed, over the devices that installed."""

    count: int
    p50: float | None
    p95: float | None


class ReleaseOutcome(Struct, kw_only=True):
    release_id: str
    name: str
    devices: int
    outcomes: Outcomes
    success_rate: float | None
    halted: bool


class RolloutStats(Struct, kw_only=True, omit_defaults=True):
    """How a rollout goes, for a release, or summed over a cohort's or channel's releases
    (with each release's share in ``releases``)."""

    scope: Literal["release", "cohort", "channel"]
    id: str
    devices: int  # devices offered a release (or reporting on one)
    outcomes: Outcomes
    success_rate: float | None  # installed among the devices that reported an end
    install_seconds: InstallTimes
    halted: bool | None = None
    halted_reason: str | None = None
    phase: dict[str, Any] | None = None
    releases: list[ReleaseOutcome] | None = None


class ReportEntry(Struct, kw_only=True):
    """One report of a device's (newest first; the last REPORT_HISTORY are kept)."""

    at: str
    status: str
    bundle_id: str
    release_id: str | None
    version: str | None
    reason: str | None
    detail: str | None


class WebhookCreate(_In):
    url: WebhookUrl
    events: Annotated[list[EventName], Meta(min_length=1, max_length=32)]
    description: Text | None = None


class WebhookPatch(_In):
    url: WebhookUrl | UnsetType = UNSET
    events: Annotated[list[EventName], Meta(min_length=1, max_length=32)] | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    disabled: bool | UnsetType = UNSET


class Webhook(Struct, kw_only=True, omit_defaults=True):
    id: str
    url: str
    events: list[str]
    description: str | None
    disabled: bool
    created_at: str
    updated_at: str
    secret: str | None = None  # only in the create answer: whsec_…, for verifying deliveries


class DeliveryAttempt(Struct, kw_only=True):
    at: str
    status: int | None  # the receiver's HTTP status; None if none came
    error: str | None
    seconds: float


class WebhookDelivery(Struct, kw_only=True):
    """One event for one webhook: the ``webhook-id`` it is sent with is ``id``."""

    id: str
    webhook_id: str
    event_id: str
    type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    delivered_at: str | None
    created_at: str
    payload: dict[str, Any]
    log: list[DeliveryAttempt]  # the last attempts, newest last
