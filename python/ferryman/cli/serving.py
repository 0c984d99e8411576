"""The parsers of the commands that need no server or are the server: ``hash``, ``serve`` and
``migrate`` (their commands are in ``cli/local.py``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ferryman.cli import local
from ferryman.cli.output import parse_size

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    h = sub.add_parser(
        "hash",
        help="hash files (SHA-256, optional parts, FastCDC chunks, BLAKE3)",
        description="Hash files in parallel, each read once.",
    )
    h.add_argument("files", nargs="+", metavar="FILE")
    h.add_argument("--part-size", type=parse_size, metavar="SIZE", help="also hash each part of SIZE (e.g. 8MiB)")
    h.add_argument("--chunking", action="store_true", help="also cut FastCDC chunks (16K/64K/256K, level 1)")
    h.add_argument("--blake3", action="store_true", help="also compute the whole-file BLAKE3")
    h.add_argument("--threads", type=int, metavar="N", help="worker threads (default: one per core)")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h.set_defaults(func=local.cmd_hash)

    s = sub.add_parser(
        "serve",
        help="run the Ferryman service",
        description="Run the service: SQLite catalog and file store under --data. No other setup.",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    s.add_argument("--data", default="ferryman-data", metavar="DIR", help="data directory (default ./ferryman-data)")
    catalog_help = (
        "where the catalog lives: sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        "(default $FERRYMAN_CATALOG, else catalog.sqlite3 in the data directory)"
    )
    s.add_argument("--catalog", default=os.environ.get("FERRYMAN_CATALOG") or None, metavar="URL", help=catalog_help)
    s.add_argument(
        "--store",
        default=os.environ.get("FERRYMAN_STORE") or None,
        metavar="URL",
        help="where binaries' bytes live: file:///PATH, s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or "
        "gs://BUCKET/PREFIX; credentials, region and endpoint from the usual AWS_*, AZURE_*, GOOGLE_* "
        "environment variables or query parameters such as ?endpoint=URL&region=R&allow_http=true "
        "(default $FERRYMAN_STORE, else the data directory's store)",
    )
    s.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a region and its store (URL as for --store); repeat for each region; binaries are "
        "replicated to every region and devices download from theirs",
    )
    s.add_argument("--primary-region", metavar="NAME", help="the region uploads land in (default the first)")
    s.add_argument(
        "--cdn-base-url",
        action="append",
        default=[],
        metavar="[NAME=]URL",
        help="where a CDN (with this service as origin) serves a region's downloads; manifests hand out its URLs",
    )
    s.add_argument(
        "--regions-file",
        metavar="FILE",
        help='regions in a TOML file: [regions.NAME] store = "URL", cdn_base_url = "URL", primary = true',
    )
    s.add_argument(
        "--region-check-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often each region's store is checked; a failing one is not served from (default 10)",
    )
    s.add_argument(
        "--replication-concurrency",
        type=int,
        default=4,
        metavar="N",
        help="replication jobs (copies, checks, deletions) each process runs at once (default 4)",
    )
    s.add_argument(
        "--replication-retry-max",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="longest wait before a failed copy is tried again (backoff doubles from 2 s; default 600)",
    )
    s.add_argument(
        "--download-mode",
        choices=("proxy", "redirect"),
        default=os.environ.get("FERRYMAN_DOWNLOAD_MODE") or "proxy",
        help="serve /dl/ grants by streaming the bytes (proxy, default) or by a 302 to a presigned "
        "URL of the object store (redirect)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("FERRYMAN_WORKERS") or 1),
        metavar="N",
        help="server processes sharing the port (default $FERRYMAN_WORKERS or 1; about one per core)",
    )
    s.add_argument(
        "--check",
        action="store_true",
        help="check the catalog (reachable, schema current) and the data directory, print what is wrong, and exit",
    )
    s.add_argument(
        "--signature-threshold",
        type=int,
        default=1,
        metavar="N",
        help="distinct active keys whose signatures make a binary signed (default 1)",
    )
    s.add_argument("--access-log", action="store_true", help="log one line per request on stderr")
    s.add_argument(
        "--public-url",
        default=os.environ.get("FERRYMAN_PUBLIC_URL") or None,
        metavar="URL",
        help="URL devices reach this service at, for the download URLs it hands out "
        "(default $FERRYMAN_PUBLIC_URL, else the address a request came in on)",
    )
    s.add_argument(
        "--upload-idle-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="refuse an upload that sends nothing for this long (default 60)",
    )
    s.add_argument(
        "--upload-lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a part upload whose server died holds hashing back (default 30)",
    )
    s.add_argument(
        "--job-lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a hashing or replication job whose server died waits to be taken over (default 30)",
    )
    s.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a connection that has not sent a request's headers this long after opening "
        "or after its last response (default 10)",
    )
    s.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        metavar="N",
        help="answer 503 to connections beyond N open ones (default 1024)",
    )
    s.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Prometheus metrics at /metrics, readable with any API key (default on)",
    )
    s.add_argument(
        "--webhook-allow-private",
        action="store_true",
        help="let webhooks reach loopback, private and other non-public addresses (default: refused)",
    )
    s.add_argument(
        "--webhook-timeout", type=float, default=10.0, metavar="SECONDS", help="end a delivery attempt after this (default 10)"
    )
    s.add_argument(
        "--webhook-max-attempts",
        type=int,
        default=10,
        metavar="N",
        help="attempts before a delivery is given up; it can be redelivered (default 10)",
    )
    s.add_argument(
        "--webhook-retry-base",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="wait before a failed delivery's first retry; doubles each time, with jitter (default 5)",
    )
    s.add_argument(
        "--webhook-retry-max", type=float, default=3600.0, metavar="SECONDS", help="longest wait between retries (default 3600)"
    )
    s.add_argument(
        "--rollout-check-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often releases' scheduled phase steps are looked for (default 10)",
    )
    s.add_argument(
        "--ddi-tenant",
        default="default",
        metavar="NAME",
        help="the tenant in hawkBit DDI paths (/{tenant}/controller/v1/…; compared without case; default: default)",
    )
    s.add_argument(
        "--ddi-gateway-token",
        default=os.environ.get("FERRYMAN_DDI_GATEWAY_TOKEN") or None,
        metavar="TOKEN",
        help="accept 'Authorization: GatewayToken TOKEN' for every device of the DDI tenant "
        "(env FERRYMAN_DDI_GATEWAY_TOKEN; default: only each device's own TargetToken)",
    )
    s.add_argument(
        "--agent-poll-interval",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how often DDI agents are told to poll (config.polling.sleep; default 300)",
    )
    s.set_defaults(func=local.cmd_serve)

    mg = sub.add_parser(
        "migrate",
        help="bring the catalog's schema to this version's",
        description="Apply the catalog's schema migrations (run once per upgrade, before the servers "
        "start; the embedded SQLite catalog is also migrated when the server starts).",
    )
    mg.add_argument("--catalog", default=os.environ.get("FERRYMAN_CATALOG") or None, metavar="URL", help=catalog_help)
    mg.add_argument("--data", default="ferryman-data", metavar="DIR", help="data directory of the embedded catalog")
    mg.add_argument("--json", action="store_true", help="print JSON")
    mg.add_argument("--quiet", action="store_true", help="print nothing on success")
    mg.set_defaults(func=local.cmd_migrate)
