"""Every URL path of the API, once: the server's route table and the client both use these.
Placeholders are ``{name}``; ``at`` fills them, quoting each value as one path segment."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["at"]

API = "/api/v1"
HEALTHZ = "/healthz"
OPENAPI = f"{API}/openapi.json"
API_KEYS = f"{API}/api-keys"
API_KEY = f"{API}/api-keys/{{key_id}}"
ARTIFACTS = f"{API}/artifacts"
ARTIFACT = f"{API}/artifacts/{{artifact_id}}"
VERSIONS = f"{API}/artifacts/{{artifact_id}}/versions"
VERSION = f"{API}/versions/{{version_id}}"
VERSION_BINARIES = f"{API}/versions/{{version_id}}/binaries"
BINARIES = f"{API}/binaries"
BINARY = f"{API}/binaries/{{binary_id}}"
PARTS = f"{API}/binaries/{{binary_id}}/parts"
PART = f"{API}/binaries/{{binary_id}}/parts/{{index}}"
CONTENT = f"{API}/binaries/{{binary_id}}/content"
SIGNATURES = f"{API}/binaries/{{binary_id}}/signatures"
SIGNING_KEYS = f"{API}/signing-keys"
SIGNING_KEY = f"{API}/signing-keys/{{key_id}}"
BUNDLES = f"{API}/bundles"
BUNDLE = f"{API}/bundles/{{bundle_id}}"
BUNDLE_SIGNATURES = f"{API}/bundles/{{bundle_id}}/signatures"
CHANNELS = f"{API}/channels"
CHANNEL = f"{API}/channels/{{channel_id}}"
RELEASES = f"{API}/channels/{{channel_id}}/releases"
RELEASE = f"{API}/releases/{{release_id}}"
COHORTS = f"{API}/cohorts"
COHORT = f"{API}/cohorts/{{cohort_id}}"
DEVICES = f"{API}/devices"
DEVICE = f"{API}/devices/{{device_id}}"
DEVICE_TOKEN = f"{API}/devices/{{device_id}}/token"
DEVICE_CHECK_IN = f"{API}/devices/{{device_id}}/update"
OVERRIDES = f"{API}/bundle-overrides"
OVERRIDE = f"{API}/bundle-overrides/{{override_id}}"
EVENTS = f"{API}/events"
RELEASE_STATS = f"{API}/releases/{{release_id}}/stats"
COHORT_STATS = f"{API}/cohorts/{{cohort_id}}/stats"
CHANNEL_STATS = f"{API}/channels/{{channel_id}}/stats"
DEVICE_REPORTS = f"{API}/devices/{{device_id}}/reports"
WEBHOOKS = f"{API}/webhooks"
WEBHOOK = f"{API}/webhooks/{{webhook_id}}"
DELIVERIES = f"{API}/webhooks/{{webhook_id}}/deliveries"
REDELIVER = f"{API}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver"
METRICS = "/metrics"
REPLICATION = f"{API}/replication"
REPLICATION_VERIFY = f"{API}/replication/verify"
CHECK_IN = "/device/v1/update"
REPORT = "/device/v1/report"
GRANT = "/dl/{token}"
REGION_GRANT = "/dl/{region}/{token}"


def at(path: str, **values: object) -> str:
    """``path`` with its placeholders filled: ``at(BINARY, binary_id=b)``."""
    return path.format(**{k: quote(str(v), safe="") for k, v in values.items()})
