"""``ferryman serve --workers N``: N identical server processes on one port.

Each worker is a whole server (its own event loop, catalog connections and caches) listening on
the same address with SO_REUSEPORT, so the kernel spreads connections across them and no
process forwards bytes for another. Nothing a request needs lives in one worker's memory only:
uploads in flight and hashing jobs are catalog rows with leases, the caches follow the
catalog's generation, and the grant secret is shared. The same holds for workers on other
machines sharing one PostgreSQL catalog and one store.

This supervisor only starts the workers, restarts one that dies (after a pause that grows if
it keeps dying), and passes SIGINT/SIGTERM on so each shuts down cleanly. Before starting them
it creates the first admin key (printed once) and, for the embedded catalog, which no process
elsewhere can share, ends the leases of processes that ran before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import time
from multiprocessing.process import BaseProcess

from ferryman.catalog import open_catalog
from ferryman.config import Config

__all__ = ["serve_workers"]

log = logging.getLogger("ferryman.server")
RESTART_PAUSE_MAX = 30.0
STOP_TIMEOUT = 30.0


def _worker(config: Config) -> None:
    from ferryman.server.app import serve

    serve(config)


async def _prepare(config: Config) -> None:
    from ferryman.server.app import bootstrap

    catalog = await open_catalog(config)
    try:
        await bootstrap(catalog)
        if config.embedded_catalog:
            await catalog.release_leases()
    finally:
        await catalog.close()


def serve_workers(config: Config) -> None:
    """Runs ``config.workers`` server processes until SIGINT or SIGTERM."""
    asyncio.run(_prepare(config))
    if config.metrics:
        # Each worker records its metrics in files here; a scrape of any worker sums them all
        # (prometheus_client's multiprocess mode, chosen when a worker first imports it).
        shared = config.data_dir / "metrics"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared.resolve())
    # A fresh interpreter per worker: nothing of this process (threads, event loop) is forked.
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    pauses = [0.0] * config.workers
    procs: list[BaseProcess | None] = [None] * config.workers

    def start(i: int) -> None:
        p = ctx.Process(target=_worker, args=(dataclasses.replace(config),), name=f"ferryman-worker-{i}")
        p.start()
        procs[i] = p

    for i in range(config.workers):
        start(i)
    print(f"======== {config.workers} workers on http://{config.host}:{config.port} ========", flush=True)
    started = [time.monotonic()] * config.workers
    while not stopping:
        time.sleep(0.2)
        for i, p in enumerate(procs):
            if stopping or p is None or p.is_alive():
                continue
            # A worker that ran a while before dying is restarted at once; one that keeps dying
            # waits longer each time.
            pauses[i] = 0.0 if time.monotonic() - started[i] > 60 else min(RESTART_PAUSE_MAX, max(0.5, pauses[i] * 2))
            log.error("worker %d exited with %s; restarting it in %.1fs", i, p.exitcode, pauses[i])
            time.sleep(pauses[i])
            if not stopping:
                start(i)
                started[i] = time.monotonic()
    for p in procs:
        if p is not None and p.is_alive() and p.pid is not None:
            p.terminate()  # SIGTERM: the worker's own clean shutdown
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in procs:
        if p is not None:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
