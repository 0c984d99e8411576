"""The application factory and the server runner."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from ferryman import metrics
from ferryman.blobs import open_blob_store
from ferryman.blobs.regions import Regions
from ferryman.catalog import Catalog, open_catalog
from ferryman.catalog import models as m
from ferryman.catalog.rules import hash_token
from ferryman.config import Config
from ferryman.grants import load_secret
from ferryman.server.answers import AnswerCache
from ferryman.server.handlers.api_keys import new_token
from ferryman.server.keys import (
    AGENTS,
    ANSWERS,
    BLOBS,
    CATALOG,
    CHECKINS,
    CONFIG,
    REGIONS,
    REPLICATION,
    ROLLOUTS,
    SIGNATURES,
    UPLOADS,
    URL_SECRET,
    WEBHOOKS,
)  # fmt: skip
from ferryman.server.metrics import metrics_middleware
from ferryman.server.middlewares import auth_middleware, problem_middleware
from ferryman.server.routes import add_routes
from ferryman.server.runner import start_site
from ferryman.services.agents import Agents
from ferryman.services.checkins import CheckIns
from ferryman.services.replication import Replication
from ferryman.services.rollouts import Rollouts
from ferryman.services.signatures import Signatures
from ferryman.services.uploads import Uploads
from ferryman.services.webhooks import Webhooks

__all__ = ["bootstrap", "create_app", "grant_secret", "serve"]

log = logging.getLogger("ferryman.server")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Opens the catalog and the regions' stores, bootstraps the first admin key, resumes
    interrupted hashing and replication, starts the rollout scheduler and webhook deliveries;
    on shutdown stops background work, flushes check-ins and closes."""
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = app[CATALOG] = await open_catalog(config)
    blobs = app[BLOBS] = open_blob_store(config)
    regions = app[REGIONS] = Regions.open(config, blobs)
    replication = app[REPLICATION] = Replication(
        catalog, regions, config.job_lease, config.replication_concurrency, config.replication_retry_max
    )
    uploads = app[UPLOADS] = Uploads(catalog, blobs, config.upload_lease, config.job_lease, replication.queue)
    checkins = app[CHECKINS] = CheckIns(catalog, regions.names)
    rollouts = app[ROLLOUTS] = Rollouts(catalog, config.rollout_check_interval)
    app[AGENTS] = Agents(catalog, checkins, rollouts)
    webhooks = app[WEBHOOKS] = Webhooks(
        catalog, allow_private=config.webhook_allow_private, timeout=config.webhook_timeout,
        max_attempts=config.webhook_max_attempts, retry_base=config.webhook_retry_base, retry_max=config.webhook_retry_max,
        lease=config.job_lease,
    )  # fmt: skip
    app[SIGNATURES] = Signatures(catalog)
    app[ANSWERS] = AnswerCache()
    app[URL_SECRET] = await grant_secret(catalog, config)
    await bootstrap(catalog)
    # Leases of earlier processes end at start only where no other process can hold one: the
    # embedded catalog with one worker (``serve --workers`` ends them before starting its own).
    await uploads.start(release_leases=config.embedded_catalog and config.workers == 1)
    await replication.start()
    checkins.start()
    rollouts.start()
    webhooks.start()
    yield
    await webhooks.stop()
    await rollouts.stop()
    await replication.stop()
    await uploads.stop()
    await checkins.close()
    await catalog.close()


async def bootstrap(catalog: Catalog) -> None:
    """Creates the first admin API key of a catalog that has none, and prints it once (only its
    hash is stored)."""
    token = new_token()
    if await catalog.create_first_api_key("server", m.ApiKeyCreate(name="admin", role="admin"), hash_token(token)):
        print(f"ferryman: created the first admin API key; keep it, it is not shown again:\n{token}", flush=True)


async def grant_secret(catalog: Catalog, config: Config) -> bytes:
    """The download-grant secret: configured, else kept in the data directory of the embedded
    catalog, else in the shared catalog (so every server's grants work on every other)."""
    if config.url_secret or config.embedded_catalog:
        return load_secret(config.data_dir, config.url_secret)
    return (await catalog.shared_secret("grant_secret")).encode()


def create_app(config: Config | None = None) -> web.Application:
    """Builds the service for ``config`` (default: the embedded defaults)."""
    config = config or Config()
    metrics.enabled = config.metrics
    middlewares = [metrics_middleware, problem_middleware, auth_middleware]
    app = web.Application(middlewares=middlewares, client_max_size=config.max_json_bytes)
    app[CONFIG] = config
    app.cleanup_ctx.append(_resources)
    add_routes(app)
    return app


def serve(config: Config) -> None:
    """Runs the service until SIGINT or SIGTERM, then shuts down cleanly."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_serve(config))


async def _serve(config: Config) -> None:
    runner, site = await start_site(create_app(config), config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
