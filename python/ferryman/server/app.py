"""The application factory and the server runner."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from ferryman.catalog import Catalog
from ferryman.catalog import models as m
from ferryman.catalog.fleet import CHECKIN_FLUSH_SECONDS
from ferryman.config import Config
from ferryman.grants import load_secret
from ferryman.jobs import resume
from ferryman.server.answers import AnswerCache
from ferryman.server.handlers.api_keys import new_token
from ferryman.server.keys import ANSWERS, CATALOG, CONFIG, KEY_CACHE, STORE, TASKS, URL_SECRET
from ferryman.server.middlewares import auth_middleware, problem_middleware
from ferryman.server.routes import add_routes
from ferryman.server.runner import start_site
from ferryman.server.signing_keys import KeyCache
from ferryman.storage import FsStore

__all__ = ["create_app", "serve"]

log = logging.getLogger("ferryman.server")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Opens the catalog and the store, bootstraps the first admin key, resumes interrupted
    hashing; on shutdown cancels background work and closes the catalog."""
    config = app[CONFIG]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = await Catalog.open(config.catalog_path, config.signature_threshold)
    app[CATALOG] = catalog
    app[STORE] = FsStore(config.content_dir)
    app[KEY_CACHE] = KeyCache()
    app[ANSWERS] = AnswerCache()
    app[URL_SECRET] = load_secret(config.data_dir, config.url_secret)
    tasks: set[asyncio.Task[None]] = set()
    app[TASKS] = tasks
    if await catalog.count_api_keys() == 0:
        token = new_token()
        await catalog.create_api_key("server", m.ApiKeyCreate(name="admin", role="admin"), token)
        # Shown once: only its hash is stored.
        print(f"ferryman: created the first admin API key; keep it, it is not shown again:\n{token}", flush=True)
    await resume(catalog, app[STORE], tasks)
    tasks.add(asyncio.get_running_loop().create_task(_flush_checkins(catalog), name="flush check-ins"))
    yield
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await catalog.close()


async def _flush_checkins(catalog: Catalog) -> None:
    """Writes buffered device check-ins every CHECKIN_FLUSH_SECONDS, even when traffic stops."""
    while True:
        await asyncio.sleep(CHECKIN_FLUSH_SECONDS)
        try:
            await catalog.flush_checkins()
        except Exception:
            log.exception("flushing check-ins failed; retrying")


def create_app(config: Config | None = None) -> web.Application:
    """Builds the service for ``config`` (default: the embedded defaults)."""
    config = config or Config()
    app = web.Application(middlewares=[problem_middleware, auth_middleware], client_max_size=config.max_json_bytes)
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
