"""Commands that work without a server, or are the server: hashing files, generating a key
pair, running the service."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferryman.chunking import ChunkParams
from ferryman.cli.output import digest_dict, digest_table, out
from ferryman.errors import FerrymanError
from ferryman.hashing import hash_files

__all__ = ["cmd_hash", "cmd_migrate", "cmd_serve"]


def cmd_hash(args: argparse.Namespace) -> int:
    digests = hash_files(
        args.files,
        threads=args.threads,
        part_size=args.part_size,
        chunking=ChunkParams() if args.chunking else None,
        blake3=args.blake3,
    )
    if args.json:
        print(json.dumps([digest_dict(d) for d in digests], indent=2))
    else:
        print(digest_table(digests))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from ferryman.config import Config, regions_from
    from ferryman.server import serve
    from ferryman.server.checks import preflight

    if args.signature_threshold < 1:
        print("ferryman: error: --signature-threshold must be at least 1", file=sys.stderr)
        return 2
    regions, primary, cdn = regions_from(args.region, args.cdn_base_url, Path(args.regions_file) if args.regions_file else None)
    config = Config(
        regions=regions,
        primary_region=args.primary_region or primary,
        cdn_base_url=cdn,
        region_check_interval=args.region_check_interval,
        replication_retry_max=args.replication_retry_max,
        replication_concurrency=args.replication_concurrency,
        host=args.host,
        port=args.port,
        data_dir=Path(args.data),
        catalog=args.catalog,
        store=args.store,
        download_mode=args.download_mode,
        signature_threshold=args.signature_threshold,
        access_log=args.access_log,
        public_url=args.public_url,
        upload_idle_timeout=args.upload_idle_timeout,
        upload_lease=args.upload_lease,
        job_lease=args.job_lease,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
        workers=args.workers,
        metrics=args.metrics,
        webhook_allow_private=args.webhook_allow_private,
        webhook_timeout=args.webhook_timeout,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_retry_base=args.webhook_retry_base,
        webhook_retry_max=args.webhook_retry_max,
        rollout_check_interval=args.rollout_check_interval,
        ddi_tenant=args.ddi_tenant,
        ddi_gateway_token=args.ddi_gateway_token,
        agent_poll_interval=args.agent_poll_interval,
    )
    problems = asyncio.run(preflight(config))
    for problem in problems:
        print(f"ferryman: error: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.check:
        # A store URL's query may hold credentials: never shown.
        where = {r.name: (r.store or str(config.store_dir(r))).split("?", 1)[0] for r in config.region_list}
        stores = f"store {where.popitem()[1]}" if len(where) == 1 else "stores " + ", ".join(f"{n} {u}" for n, u in where.items())
        print(f"ferryman: ok: catalog {_shown(config.catalog_url)}, {stores}")
        return 0
    if config.workers > 1:
        from ferryman.server.workers import serve_workers

        serve_workers(config)
    else:
        serve(config)
    return 0


def _shown(catalog: str) -> str:
    from ferryman.catalog.sql.engines import engine_url, shown

    return shown(engine_url(catalog))


def cmd_migrate(args: argparse.Namespace) -> int:
    import asyncio

    from ferryman.catalog.sql.engines import engine_url
    from ferryman.catalog.sql.migrate import migrate
    from ferryman.config import Config
    from ferryman.server.checks import reason

    config = Config(data_dir=Path(args.data), catalog=args.catalog)
    if config.catalog is None:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    shown = _shown(config.catalog_url)
    try:
        before, after = asyncio.run(migrate(engine_url(config.catalog_url)))
    except FerrymanError:
        raise
    except Exception as e:  # any failure to connect or write, in the driver's words
        raise FerrymanError(f"catalog {shown}: cannot migrate it: {reason(e)}") from None
    if before == after:
        message = f"catalog {shown}: at revision {after}, nothing to do"
    else:
        message = f"catalog {shown}: migrated from {before or 'an empty database'} to revision {after}"
    out(args, {"catalog": shown, "before": before, "after": after}, message)
    return 0
