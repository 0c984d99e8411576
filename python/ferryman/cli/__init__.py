"""The ``ferryman`` command line.

Every command is a function of parsed arguments returning an exit code: 0 ok, 1 operational
error, 2 usage error. Errors are printed as one line, never a traceback. ``local`` holds the
commands that need no server, ``commands`` those that call one (through ``Client``),
``output`` what they print.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from ferryman import __version__
from ferryman.cli import commands as api
from ferryman.cli import local, signing
from ferryman.cli import operations as ops
from ferryman.cli.output import parse_size
from ferryman.cli.signing import signer_options
from ferryman.errors import FerrymanError

__all__ = ["main", "parse_size"]


def _run(coro: Any) -> int:
    return int(asyncio.run(coro) or 0)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("FERRYMAN_URL", "http://127.0.0.1:8080"),
        help="server URL (default $FERRYMAN_URL or http://127.0.0.1:8080)",
    )
    common.add_argument("--token", default=os.environ.get("FERRYMAN_TOKEN"), help="API token (default $FERRYMAN_TOKEN)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--quiet", action="store_true", help="print nothing on success")
    p = argparse.ArgumentParser(prog="ferryman", description="Ferryman: binaries from CI to device fleets.")
    p.add_argument("--version", action="version", version=f"ferryman {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_: str) -> Any:
        g = sub.add_parser(name, help=help_, description=help_)
        return g.add_subparsers(dest="action", required=True, metavar="ACTION")

    def cmd(parent: Any, name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        c = parent.add_parser(name, help=help_, description=help_, parents=[common])
        c.set_defaults(func=func)
        return c

    a = cmd(group("api-keys", "API keys"), "create", "create an API key (prints its token once)", api.cmd_api_keys_create)
    a.add_argument("--name", required=True)
    a.add_argument("--role", required=True, choices=["admin", "publisher", "signer", "releaser", "viewer"])

    u = cmd(sub, "upload", "hash, upload (resumable, parallel parts) and verify a binary", api.cmd_upload)
    u.add_argument("file", metavar="FILE")
    u.add_argument("--artifact", required=True)
    u.add_argument("--version", required=True, dest="version")
    u.add_argument("--target", required=True)
    u.add_argument("--create", action="store_true", help="create the artifact and version if missing")
    u.add_argument("--part-size", type=parse_size, metavar="SIZE", help="default 8MiB")
    u.add_argument("--concurrency", type=int, default=4, metavar="N", help="parts in flight (default 4)")
    signer_options(u, "--sign", required=False)

    signing.add_parsers(group, cmd, sub)

    binaries = group("binaries", "binaries")
    bs = cmd(binaries, "show", "a binary: state, error, size, SHA-256 and its copy in each region", api.cmd_binaries_show)
    bs.add_argument("binary_id", metavar="BINARY_ID")

    replication = group("replication", "copies of binaries in every region")
    cmd(replication, "status", "copies by region and state, queue, lag and recent failures", api.cmd_replication_status)
    rv = cmd(
        replication,
        "verify",
        "re-read every verified copy (of one region) and copy again any that is missing or differs",
        api.cmd_replication_verify,
    )
    rv.add_argument("--region", metavar="NAME", help="only this region's copies (default every region)")
    rv.add_argument("--wait", type=float, metavar="SECONDS", help="follow the checks until done, up to SECONDS")

    bc = cmd(group("bundles", "bundles"), "create", "create a bundle of signed binaries", api.cmd_bundles_create)
    bc.add_argument("binaries", nargs="+", metavar="BINARY_ID")
    bc.add_argument("--name")

    cc = cmd(group("channels", "release channels"), "create", "create a release channel", api.cmd_channels_create)
    cc.add_argument("name", metavar="NAME")

    co = cmd(group("cohorts", "cohorts of devices"), "create", "create a cohort", api.cmd_cohorts_create)
    co.add_argument("name", metavar="NAME")
    co.add_argument("--channel", metavar="CHANNEL_ID")
    co.add_argument("--region", metavar="NAME", help="region its devices download from")

    releases = group("releases", "releases")
    rc = cmd(releases, "create", "add a release to a channel", api.cmd_releases_create)
    rc.add_argument("--channel", required=True, metavar="CHANNEL_ID")
    rc.add_argument("--name", required=True)
    rc.add_argument("--bundle", required=True, metavar="BUNDLE_ID")
    rc.add_argument("--version", dest="version")
    rc.add_argument("--requirement", metavar="REQ", help="version requirement, e.g. '>=1.0.0,<2.0.0'")
    rc.add_argument("--required", action="store_true")
    rc.add_argument("--disabled", action="store_true")
    rc.add_argument("--schedule-at", metavar="TIME", help="RFC 3339")
    rc.add_argument("--next", metavar="RELEASE_ID", help="insert before this release")
    rc.add_argument("--previous", metavar="RELEASE_ID", help="with --next: insert between the two")
    rc.add_argument(
        "--require-replicated",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer it only once its binaries are verified in every region (default: yes with several regions)",
    )
    phase = rc.add_mutually_exclusive_group()
    phase.add_argument("--percent", type=float, metavar="FRACTION", help="phase: share of devices, 0..1")
    phase.add_argument("--count", type=int, metavar="N", help="phase: first N devices")
    phase.add_argument("--tags", metavar="T1,T2", help="phase: devices with any of these tags")
    rc.add_argument(
        "--halt-failure-rate",
        type=float,
        metavar="FRACTION",
        help="halt the release when more than this share of reporting devices failed (0..1)",
    )
    rc.add_argument(
        "--halt-min-reports",
        type=int,
        metavar="N",
        help="devices that must have reported an end before the rate applies (default 10)",
    )
    rc.add_argument("--halt-max-failures", type=int, metavar="N", help="halt the release when more than N devices failed")
    for name, help_, func in (
        ("stats", "a release's rollout: devices by outcome, success rate, install times, halt", ops.cmd_releases_stats),
        ("hold", "stop offering a release to more devices (devices on it keep it)", ops.cmd_releases_hold),
        ("resume", "offer a halted or held release again", ops.cmd_releases_resume),
    ):
        cmd(releases, name, help_, func).add_argument("release_id", metavar="RELEASE_ID")

    rw = cmd(
        group("rollout", "rollouts"),
        "watch",
        "follow a release's rollout until done (exit 0) or halted (exit 1)",
        ops.cmd_rollout_watch,
    )
    rw.add_argument("release_id", metavar="RELEASE_ID")
    rw.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="between updates (default 2)")
    rw.add_argument("--timeout", type=float, metavar="SECONDS", help="give up (exit 1) after this long")

    webhooks = group("webhooks", "webhooks: event notifications to your services")
    wc = cmd(webhooks, "create", "register a webhook (prints its secret once)", ops.cmd_webhooks_create)
    wc.add_argument("url_", metavar="URL")
    wc.add_argument(
        "--event",
        action="append",
        required=True,
        metavar="TYPE",
        help="an event type (release.halted), a group (release.*) or * (repeatable)",
    )
    wc.add_argument("--description")
    cmd(webhooks, "list", "list webhooks", ops.cmd_webhooks_list)
    wd = cmd(webhooks, "deliveries", "a webhook's deliveries and their attempts", ops.cmd_webhooks_deliveries)
    wd.add_argument("webhook_id", metavar="WEBHOOK_ID")
    wd.add_argument("--state", choices=("pending", "delivered", "failed"))
    wr = cmd(webhooks, "redeliver", "send a delivery again (same webhook-id)", ops.cmd_webhooks_redeliver)
    wr.add_argument("webhook_id", metavar="WEBHOOK_ID")
    wr.add_argument("delivery_id", metavar="DELIVERY_ID")

    devices = group("devices", "devices")
    dc = cmd(devices, "create", "register a device (prints its token once)", api.cmd_devices_create)
    dc.add_argument("identifier", metavar="IDENTIFIER")
    dc.add_argument("--target", required=True)
    dc.add_argument("--cohort", metavar="COHORT_ID")
    dc.add_argument("--tag", action="append", metavar="TAG")
    dc.add_argument("--region", metavar="NAME", help="region it downloads from (default its cohort's)")
    dc.add_argument("--auth-key", metavar="PEM_FILE", help="pre-authorise a Mender device: the public key it authenticates with")
    dl = cmd(devices, "list", "list devices (e.g. those waiting to be accepted)", api.cmd_devices_list)
    dl.add_argument("--admission", choices=("pending", "accepted", "rejected"))
    dl.add_argument("--cohort", metavar="COHORT_ID")
    for verb, accept, text in (
        ("accept", True, "accept a device that asked to join (Mender): it gets a token at its next request"),
        ("reject", False, "reject a device: its token stops working at once"),
    ):
        da = cmd(devices, verb, text, api.cmd_devices_admit)
        da.add_argument("device_id", metavar="DEVICE_ID")
        da.set_defaults(accept=accept, cohort=None, target=None, tag=None)
        if accept:
            # A device that joined by itself has no cohort (so no channel) yet: give it one here.
            da.add_argument("--cohort", metavar="COHORT_ID", help="put it in this cohort (its channel's releases reach it)")
            da.add_argument("--target", help="its target (default: the device type its agent reports)")
            da.add_argument("--tag", action="append", metavar="TAG")
    cmd(devices, "actions", "a device's DDI actions and Mender deployments, newest first", api.cmd_devices_actions).add_argument(
        "device_id", metavar="DEVICE_ID"
    )
    cmd(devices, "cancel", "cancel a device's open action (told at its next poll)", api.cmd_devices_cancel).add_argument(
        "device_id", metavar="DEVICE_ID"
    )

    cmd(devices, "delete", "delete a device (its token stops working at once)", api.cmd_devices_delete).add_argument(
        "device_id", metavar="DEVICE_ID"
    )
    cmd(
        devices,
        "rotate-token",
        "give a device a new token (printed once); the old one stops working",
        api.cmd_devices_rotate_token,
    ).add_argument("device_id", metavar="DEVICE_ID")

    dv = cmd(group("device", "act as a device"), "check", "check for an update with a device token", api.cmd_device_check)
    dv.add_argument(
        "--device-token", default=os.environ.get("FERRYMAN_DEVICE_TOKEN"), required="FERRYMAN_DEVICE_TOKEN" not in os.environ
    )
    dv.add_argument("--release-id")
    dv.add_argument("--bundle-id")
    dv.add_argument("--version", dest="version")
    dv.add_argument("--download", metavar="DIR", help="download and verify the update's binaries into DIR")
    dv.add_argument("--trusted-key", action="append", metavar="FILE", help="require a signature by this key")

    dl = cmd(sub, "download", "download a binary (resumable; verifies SHA-256 and signatures)", api.cmd_download)
    dl.add_argument("binary_id", metavar="BINARY_ID|URL", help="a binary ID, or a /dl/ grant URL (with --sha256)")
    dl.add_argument("--sha256", metavar="HEX", help="expected digest, for a grant URL")
    dl.add_argument("-o", "--output", metavar="FILE")
    dl.add_argument("--trusted-key", action="append", metavar="FILE", help="require a signature by this key")

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
        epilog="example: ferryman migrate --catalog postgresql://ferryman:secret@db.internal/ferryman",
    )
    mg.add_argument("--catalog", default=os.environ.get("FERRYMAN_CATALOG") or None, metavar="URL", help=catalog_help)
    mg.add_argument("--data", default="ferryman-data", metavar="DIR", help="data directory of the embedded catalog")
    mg.add_argument("--json", action="store_true", help="print JSON")
    mg.add_argument("--quiet", action="store_true", help="print nothing on success")
    mg.set_defaults(func=local.cmd_migrate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI with ``argv`` (default ``sys.argv[1:]``) and returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors and 0 for --help/--version
        return int(e.code or 0)
    try:
        result = args.func(args)
        return _run(result) if asyncio.iscoroutine(result) else int(result)
    except (OSError, FerrymanError, ValueError) as e:
        print(f"ferryman: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ferryman: interrupted", file=sys.stderr)
        return 130
