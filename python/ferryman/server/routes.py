"""The one URL table: every route with the roles it admits and the types it reads and writes
(the OpenAPI document is generated from this table). ``admin`` is admitted everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ferryman import paths
from ferryman.catalog import models as m
from ferryman.console import auth as console_auth
from ferryman.console import catalog_pages as console_catalog
from ferryman.console import pages as console
from ferryman.console.render import asset
from ferryman.server.handlers import (
    admission,
    api_keys,
    artifacts,
    binaries,
    ddi,
    downloads,
    events,
    fleet,
    mender,
    meta,
    replication,
    rollouts,
    signing,
    updates,
    webhooks,
)  # fmt: skip
from ferryman.server.keys import ROUTE_ROLES
from ferryman.server.middlewares import CONSOLE, DDI, DEVICE, PUBLIC

__all__ = ["ROUTES", "Route", "add_routes"]

READ = frozenset({"admin", "publisher", "signer", "releaser", "viewer"})
PUBLISH = frozenset({"admin", "publisher"})
SIGN = frozenset({"admin", "signer"})
ADMIN = frozenset({"admin"})
API_ROLES = frozenset(m.ROLES)
RELEASE = frozenset({"admin", "releaser"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    roles: frozenset[str]
    summary: str
    body: Any = None
    response: Any = None
    status: int = 200
    raw_body: bool = False
    # Other success statuses the route answers with (e.g. 200 for a repeated create).
    also: tuple[int, ...] = ()
    # The answer is text/plain (the Prometheus format) rather than JSON.
    text: bool = False
    # Another product's protocol (hawkBit DDI, Mender), specified by it: not in our OpenAPI document.
    foreign: bool = False

    @property
    def documented(self) -> bool:
        """In this API's OpenAPI document: neither another product's protocol nor a console page."""
        return not self.foreign and self.roles != CONSOLE


ROUTES: list[Route] = [
    Route("GET", paths.HEALTHZ, meta.healthz, PUBLIC, "Liveness"),
    Route("GET", paths.OPENAPI, meta.openapi, PUBLIC, "This API's OpenAPI 3.1 document"),
    Route("GET", paths.METRICS, meta.metrics, READ, "Prometheus metrics (text format)", text=True),
    Route("POST", paths.API_KEYS, api_keys.create, ADMIN, "Create an API key (token shown once)",
          m.ApiKeyCreate, m.ApiKey, 201),
    Route("GET", paths.API_KEYS, api_keys.list_, ADMIN, "List API keys (?name=)", response=list[m.ApiKey]),
    Route("GET", paths.API_KEY, api_keys.get, ADMIN, "Get an API key (never its token)", response=m.ApiKey),
    Route("DELETE", paths.API_KEY, api_keys.delete, ADMIN, "Delete an API key", status=204),
    Route("POST", paths.ARTIFACTS, artifacts.create, PUBLISH, "Create an artifact", m.ArtifactCreate, m.Artifact, 201),
    Route("GET", paths.ARTIFACTS, artifacts.list_, READ, "List artifacts (?name=)", response=list[m.Artifact]),
    Route("GET", paths.ARTIFACT, artifacts.get, READ, "Get an artifact", response=m.Artifact),
    Route("PATCH", paths.ARTIFACT, artifacts.patch, PUBLISH, "Update an artifact",
          m.ArtifactPatch, m.Artifact),
    Route("DELETE", paths.ARTIFACT, artifacts.delete, PUBLISH,
          "Delete an artifact without versions", status=204),
    Route("POST", paths.VERSIONS, artifacts.create_version, PUBLISH,
          "Create a version", m.VersionCreate, m.Version, 201),
    Route("GET", paths.VERSIONS, artifacts.list_versions, READ,
          "List versions in version order", response=list[m.Version]),
    Route("GET", paths.VERSION, artifacts.get_version, READ, "Get a version", response=m.Version),
    Route("PATCH", paths.VERSION, artifacts.patch_version, PUBLISH, "Update a version",
          m.VersionPatch, m.Version),
    Route("POST", paths.VERSION_BINARIES, binaries.create, PUBLISH,
          "Declare a binary (target, size, sha256)", m.BinaryCreate, m.Binary, 201),
    Route("GET", paths.VERSION_BINARIES, binaries.list_for_version, READ,
          "List a version's binaries", response=list[m.Binary]),
    Route("GET", paths.BINARIES, binaries.list_, READ, "List binaries (?version_id= &target= &state= &sha256= &signing_key_id=)",
          response=list[m.Binary]),
    Route("GET", paths.BINARY, binaries.get, READ, "Get a binary", response=m.Binary),
    Route("PATCH", paths.BINARY, binaries.patch, PUBLISH,
          "Change a binary's state or fields", m.BinaryPatch, m.Binary),
    Route("PUT", paths.PART, binaries.put_part, PUBLISH,
          "Upload one part (Content-Length required; Content-Digest verified)", response=m.Part, raw_body=True),
    Route("GET", paths.PARTS, binaries.get_parts, READ,
          "Parts received and missing", response=m.PartList),
    Route("PUT", paths.CONTENT, binaries.put_content, PUBLISH,
          "Upload a one-part binary in one request", response=m.Binary, raw_body=True),
    Route("GET", paths.CONTENT, downloads.content, READ,
          "Download the content (RFC 9110 ranges)", raw_body=True),
    Route("HEAD", paths.CONTENT, downloads.content, READ, "Content headers", raw_body=True),
    Route("GET", paths.GRANT, downloads.grant, PUBLIC, "Download through a signed, expiring grant (RFC 9110 ranges)",
          raw_body=True),
    Route("HEAD", paths.GRANT, downloads.grant, PUBLIC, "Headers of a grant download", raw_body=True),
    Route("GET", paths.REGION_GRANT, downloads.grant, PUBLIC,
          "Download through a grant from a region's verified copy (else the nearest)", raw_body=True),
    Route("HEAD", paths.REGION_GRANT, downloads.grant, PUBLIC, "Headers of a region's grant download", raw_body=True),
    Route("POST", paths.SIGNATURES, signing.create_signature, SIGN,
          "Submit a signature (verified; bad ones are refused; a repeat answers 200)", m.SignatureCreate, m.Signature, 201,
          also=(200,)),
    Route("GET", paths.SIGNATURES, signing.list_signatures, READ,
          "List a binary's signatures", response=list[m.Signature]),
    Route("POST", paths.SIGNING_KEYS, signing.create_key, SIGN, "Register a public key",
          m.SigningKeyCreate, m.SigningKey, 201),
    Route("GET", paths.SIGNING_KEYS, signing.list_keys, READ, "List signing keys (?state= &keyid= &name=)",
          response=list[m.SigningKey]),
    Route("GET", paths.SIGNING_KEY, signing.get_key, READ, "Get a signing key", response=m.SigningKey),
    Route("GET", paths.SIGNING_POLICY, signing.policy, READ, "How many distinct active keys make a binary signed",
          response=m.SigningPolicy),
    Route("PATCH", paths.SIGNING_KEY, signing.patch_key, SIGN, "Rename or revoke a signing key",
          m.SigningKeyPatch, m.SigningKey),
    Route("POST", paths.BUNDLES, fleet.create_bundle, RELEASE, "Create a bundle of signed binaries",
          m.BundleCreate, m.Bundle, 201),
    Route("GET", paths.BUNDLES, fleet.list_bundles, READ, "List bundles (?signing_key_id= &name=)", response=list[m.Bundle]),
    Route("GET", paths.BUNDLE, fleet.get_bundle, READ, "Get a bundle", response=m.Bundle),
    Route("POST", paths.BUNDLE_SIGNATURES, signing.sign_bundle, SIGN,
          "Submit a signature over the bundle hash (a repeat answers 200)", m.SignatureCreate, m.BundleSignature, 201,
          also=(200,)),
    Route("POST", paths.CHANNELS, fleet.create_channel, RELEASE, "Create a release channel",
          m.ChannelCreate, m.Channel, 201),
    Route("GET", paths.CHANNELS, fleet.list_channels, READ, "List channels (?name=)", response=list[m.Channel]),
    Route("GET", paths.CHANNEL, fleet.get_channel, READ, "Get a channel", response=m.Channel),
    Route("PATCH", paths.CHANNEL, fleet.patch_channel, RELEASE, "Update a channel",
          m.ChannelPatch, m.Channel),
    Route("POST", paths.RELEASES, fleet.create_release, RELEASE,
          "Add a release to the channel graph", m.ReleaseCreate, m.Release, 201),
    Route("GET", paths.RELEASES, fleet.list_releases, READ, "List a channel's releases (?name=)",
          response=list[m.Release]),
    Route("GET", paths.RELEASE, fleet.get_release, READ, "Get a release", response=m.Release),
    Route("PATCH", paths.RELEASE, fleet.patch_release, RELEASE, "Update a release",
          m.ReleasePatch, m.Release),
    Route("POST", paths.COHORTS, fleet.create_cohort, RELEASE, "Create a cohort", m.CohortCreate, m.Cohort, 201),
    Route("GET", paths.COHORTS, fleet.list_cohorts, READ, "List cohorts (?name= &channel_id=)", response=list[m.Cohort]),
    Route("GET", paths.COHORT, fleet.get_cohort, READ, "Get a cohort", response=m.Cohort),
    Route("PATCH", paths.COHORT, fleet.patch_cohort, RELEASE, "Update a cohort",
          m.CohortPatch, m.Cohort),
    Route("POST", paths.DEVICES, fleet.create_device, RELEASE, "Register a device (token shown once)",
          m.DeviceCreate, m.Device, 201),
    Route("GET", paths.DEVICES, fleet.list_devices, READ,
          "List devices (?identifier= &cohort_id= &tag= &target= &admission= &reported_release_id= &seen_since= &seen_before=)",
          response=list[m.Device]),
    Route("GET", paths.DEVICE, fleet.get_device, READ, "Get a device", response=m.Device),
    Route("PATCH", paths.DEVICE, fleet.patch_device, RELEASE,
          "Update a device (cohort, tags, target, quarantine)", m.DevicePatch, m.Device),
    Route("DELETE", paths.DEVICE, fleet.delete_device, RELEASE,
          "Delete a device (its token stops working; its audit trail stays)", status=204),
    Route("POST", paths.DEVICE_TOKEN, fleet.rotate_device_token, RELEASE,
          "Give a device a new token (shown once); the old one stops working at once", response=m.Device),
    Route("POST", paths.DEVICE_CHECK_IN, updates.check_in_for_device, ADMIN,
          "Resolve an update on behalf of a device (write: claim and record)", m.UpdateRequest, m.UpdateManifest),
    Route("POST", paths.OVERRIDES, fleet.create_override, RELEASE, "Force devices onto a bundle for a time",
          m.OverrideCreate, m.Override, 201),
    Route("GET", paths.OVERRIDES, fleet.list_overrides, READ, "List overrides (?device_id=)",
          response=list[m.Override]),
    Route("GET", paths.OVERRIDE, fleet.get_override, READ, "Get an override",
          response=m.Override),
    Route("PATCH", paths.OVERRIDE, fleet.patch_override, RELEASE, "Change an override's window",
          m.OverridePatch, m.Override),
    Route("DELETE", paths.OVERRIDE, fleet.delete_override, RELEASE, "Delete an override",
          status=204),
    Route("GET", paths.CHECK_IN, updates.check_in, DEVICE,
          "Update check (headers Ferryman-Release-Id, Ferryman-Bundle-Id, Ferryman-Release-Version)",
          response=m.UpdateManifest),
    Route("POST", paths.REPORT, updates.device_report, DEVICE,
          "Report progress with an update (downloading, installing, installed, failed, rolled_back)",
          m.DeviceReport, m.ReportRecorded),
    Route("GET", paths.REPLICATION, replication.status, READ,
          "Replication by region: copies by state, queue, lag, recent failures", response=m.ReplicationStatus),
    Route("POST", paths.REPLICATION_VERIFY, replication.verify, ADMIN,
          "Queue every verified copy (of one region) to be read back; missing or differing ones are copied again",
          m.VerifyRequest, m.VerifyQueued, 202),
    Route("GET", paths.RELEASE_STATS, rollouts.release_stats, READ,
          "A release's rollout: devices by outcome, success rate, offer-to-install times, halt state",
          response=m.RolloutStats),
    Route("GET", paths.COHORT_STATS, rollouts.cohort_stats, READ,
          "Rollout outcomes of a cohort's devices, in all and per release", response=m.RolloutStats),
    Route("GET", paths.CHANNEL_STATS, rollouts.channel_stats, READ,
          "Rollout outcomes of a channel's releases, in all and per release", response=m.RolloutStats),
    Route("GET", paths.DEVICE_REPORTS, rollouts.device_reports, READ,
          "A device's last reports, newest first", response=list[m.ReportEntry]),
    Route("POST", paths.WEBHOOKS, webhooks.create, ADMIN, "Register a webhook (its secret is shown once)",
          m.WebhookCreate, m.Webhook, 201),
    Route("GET", paths.WEBHOOKS, webhooks.list_, ADMIN, "List webhooks", response=list[m.Webhook]),
    Route("GET", paths.WEBHOOK, webhooks.get, ADMIN, "Get a webhook", response=m.Webhook),
    Route("PATCH", paths.WEBHOOK, webhooks.patch, ADMIN, "Change a webhook (URL, events, description, disabled)",
          m.WebhookPatch, m.Webhook),
    Route("DELETE", paths.WEBHOOK, webhooks.delete, ADMIN, "Delete a webhook and its deliveries", status=204),
    Route("GET", paths.DELIVERIES, webhooks.deliveries, ADMIN,
          "A webhook's deliveries, oldest first, with their attempts (?state=)", response=list[m.WebhookDelivery]),
    Route("POST", paths.REDELIVER, webhooks.redeliver, ADMIN,
          "Send a delivery again (same webhook-id)", response=m.WebhookDelivery, status=202),
    Route("GET", paths.EVENTS, events.list_, READ,
          "The audit log (?resource_id= &resource_type= &action= &actor= &since= &until= &order=asc|desc)",
          response=list[m.Event]),
    Route("POST", paths.DEVICE_ACCEPT, admission.accept, RELEASE,
          "Accept a device that asked to join (it gets a token at its next authentication)", response=m.Device),
    Route("POST", paths.DEVICE_REJECT, admission.reject, RELEASE,
          "Reject a device (its token stops working at once)", response=m.Device),
    Route("GET", paths.DEVICE_ACTIONS, admission.actions, READ,
          "A device's actions through agent protocols (DDI actions, Mender deployments), newest first",
          response=list[m.DeviceAction]),
    Route("POST", paths.DEVICE_CANCEL, admission.cancel, RELEASE,
          "Cancel a device's open action (the device is told at its next poll)", response=list[m.DeviceAction]),
    # The web console (HTML; its pages check the session and role themselves).
    Route("GET", paths.UI, console.overview, CONSOLE, "Console: overview"),
    Route("GET", paths.UI_SIGN_IN, console_auth.sign_in_form, CONSOLE, "Console: sign-in form"),
    Route("POST", paths.UI_SIGN_IN, console_auth.sign_in, CONSOLE, "Console: sign in with an API key"),
    Route("POST", paths.UI_SIGN_OUT, console_auth.sign_out, CONSOLE, "Console: sign out"),
    Route("GET", paths.UI_DEVICES, console.devices, CONSOLE, "Console: devices, filtered and paged"),
    Route("GET", paths.UI_DEVICE, console.device, CONSOLE, "Console: a device, its history and a dry run"),
    Route("GET", paths.UI_CHANNEL, console.channel, CONSOLE, "Console: a channel and its releases"),
    Route("POST", paths.UI_CHANNEL, console.channel_release, CONSOLE, "Console: add a release to a channel"),
    Route("GET", paths.UI_COHORTS, console.cohorts, CONSOLE, "Console: cohorts"),
    Route("GET", paths.UI_RELEASE, console.release, CONSOLE, "Console: a release, its rollout and controls"),
    Route("POST", paths.UI_RELEASE, console.release_change, CONSOLE, "Console: steer a release"),
    Route("GET", paths.UI_ARTIFACTS, console_catalog.artifacts, CONSOLE, "Console: artifacts"),
    Route("GET", paths.UI_ARTIFACT, console_catalog.artifact, CONSOLE, "Console: an artifact's versions"),
    Route("GET", paths.UI_VERSION, console_catalog.version, CONSOLE, "Console: a version's binaries"),
    Route("GET", paths.UI_BINARY, console_catalog.binary, CONSOLE, "Console: a binary, its parts and signatures"),
    Route("GET", paths.UI_BUNDLES, console_catalog.bundles, CONSOLE, "Console: bundles"),
    Route("GET", paths.UI_BUNDLE, console_catalog.bundle, CONSOLE, "Console: a bundle's entries and signatures"),
    Route("GET", paths.UI_KEYS, console_catalog.keys, CONSOLE, "Console: signing keys (and API keys, for admins)"),
    Route("POST", paths.UI_KEYS, console_catalog.keys_change, CONSOLE, "Console: add or revoke a signing key"),
    Route("POST", paths.UI_API_KEYS, console_catalog.api_keys_change, CONSOLE, "Console: create or delete an API key (admin)"),
    Route("GET", paths.UI_EVENTS, console_catalog.events, CONSOLE, "Console: the audit log, filtered"),
    Route("GET", paths.UI_STATIC, asset, CONSOLE, "Console: static files (hashed names)"),
    # hawkBit DDI (SWUpdate, RAUC's hawkBit updater).
    Route("GET", paths.DDI_ROOT, ddi.root, DDI, "DDI root poll", foreign=True),
    Route("GET", paths.DDI_DEPLOYMENT, ddi.deployment, DDI, "DDI deploymentBase", foreign=True),
    Route("POST", paths.DDI_FEEDBACK, ddi.feedback, DDI, "DDI action feedback", foreign=True),
    Route("PUT", paths.DDI_CONFIG, ddi.config_data, DDI, "DDI configData", foreign=True),
    Route("GET", paths.DDI_CANCEL, ddi.cancel_action, DDI, "DDI cancelAction", foreign=True),
    Route("POST", paths.DDI_CANCEL_FEEDBACK, ddi.cancel_feedback, DDI, "DDI cancel feedback", foreign=True),
    Route("GET", paths.DDI_INSTALLED, ddi.installed, DDI, "DDI installedBase", foreign=True),
    # Mender's device API (mender-client).
    Route("POST", paths.MENDER_AUTH, mender.auth_request, PUBLIC, "Mender authentication request", foreign=True),
    Route("POST", paths.MENDER_NEXT_V2, mender.next_v2, DEVICE, "Mender next deployment (v2)", foreign=True),
    Route("GET", paths.MENDER_NEXT_V1, mender.next_v1, DEVICE, "Mender next deployment (v1)", foreign=True),
    Route("PUT", paths.MENDER_STATUS, mender.deployment_status, DEVICE, "Mender deployment status", foreign=True),
    Route("PUT", paths.MENDER_LOG, mender.deployment_log, DEVICE, "Mender deployment log", foreign=True),
    Route("PUT", paths.MENDER_INVENTORY, mender.inventory, DEVICE, "Mender inventory (replace)", foreign=True),
    Route("PATCH", paths.MENDER_INVENTORY, mender.inventory, DEVICE, "Mender inventory (merge)", foreign=True),
]  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Registers every route with the roles it admits (read by ``auth_middleware``)."""
    roles = app[ROUTE_ROLES] = {}
    for r in ROUTES:
        # PUBLIC and DEVICE stand alone; other declarations name API roles (admin is implied).
        if r.roles not in (PUBLIC, DEVICE, DDI, CONSOLE) and not (r.roles and r.roles <= API_ROLES):
            raise ValueError(f"{r.method} {r.path} declares roles {sorted(r.roles)}")
        roles[app.router.add_route(r.method, r.path, r.handler)] = r.roles
