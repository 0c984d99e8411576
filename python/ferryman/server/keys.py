"""Typed keys of the application and request state."""

from __future__ import annotations

from aiohttp import web

from ferryman.blobs import BlobStore
from ferryman.blobs.regions import Regions
from ferryman.catalog import Catalog
from ferryman.config import Config
from ferryman.server.answers import AnswerCache
from ferryman.services.agents import Agents
from ferryman.services.checkins import CheckIns
from ferryman.services.replication import Replication
from ferryman.services.rollouts import Rollouts
from ferryman.services.signatures import Signatures
from ferryman.services.uploads import Uploads
from ferryman.services.webhooks import Webhooks

__all__ = [
    "AGENTS", "ANSWERS", "BLOBS", "CATALOG", "CHECKINS", "CONFIG", "DEVICE_TOKEN", "PRINCIPAL", "REGIONS", "REPLICATION",
    "ROLLOUTS", "ROUTE_ROLES", "SIGNATURES", "UPLOADS", "URL_SECRET", "WEBHOOKS",
]  # fmt: skip

CONFIG = web.AppKey("config", Config)
CATALOG = web.AppKey("catalog", Catalog)
BLOBS = web.AppKey("blobs", BlobStore)
UPLOADS = web.AppKey("uploads", Uploads)
# The regions' stores (the primary's is BLOBS) and the work of copying between them.
REGIONS = web.AppKey("regions", Regions)
REPLICATION = web.AppKey("replication", Replication)
CHECKINS = web.AppKey("checkins", CheckIns)
# The agent protocols' polls and progress (hawkBit DDI, Mender).
AGENTS = web.AppKey("agents", Agents)
SIGNATURES = web.AppKey("signatures", Signatures)
# Device reports (written in groups) and scheduled rollout steps.
ROLLOUTS = web.AppKey("rollouts", Rollouts)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
# Encoded update answers (see handlers/updates.py).
ANSWERS = web.AppKey("answers", AnswerCache)
# HMAC key of download grants.
URL_SECRET = web.AppKey("url_secret", bytes)
# The roles each route admits, from the route table.
ROUTE_ROLES: web.AppKey[dict[web.AbstractRoute, frozenset[str]]] = web.AppKey("route_roles")
# The authenticated caller: (actor id, role).
PRINCIPAL: web.RequestKey[tuple[str, str]] = web.RequestKey("principal")
# On device routes: the SHA-256 of the bearer token, checked by the handler's own transaction.
DEVICE_TOKEN: web.RequestKey[str] = web.RequestKey("device_token")
