"""The ``ferryman`` command line.

Every command is a function of parsed arguments returning an exit code: 0 ok, 1 operational
error, 2 usage error. Errors are printed as one line, never a traceback. Arguments that name a
resource (``--channel stable``) are turned into IDs before a command runs (``refs``). The
resources' list, show, update and delete come from one table (``resources``, ``generic``);
``steering`` and ``details`` add what a table cannot say; ``commands``, ``operations`` and
``signing`` hold the rest; ``local`` and ``serving`` the commands that need no server;
``output`` what they all print; ``examples`` the example under each command's help.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ferryman import __version__
from ferryman.cli import commands as api
from ferryman.cli import details, generic, serving, signing, steering
from ferryman.cli import operations as ops
from ferryman.cli.completion import SHELLS, script
from ferryman.cli.config import add_options, client
from ferryman.cli.examples import EXAMPLES
from ferryman.cli.output import parse_size
from ferryman.cli.refs import Ambiguous, Ref, ref, resolve_all
from ferryman.cli.signing import signer_options
from ferryman.errors import FerrymanError

__all__ = ["main", "parse_size", "parser"]

# Options whose value may start with "-" (``--tag -old``): argparse would take it for an option.
_DASHED_VALUES = ("--tag",)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' lines as written."""


def _run(coro: Any) -> int:
    return int(asyncio.run(coro) or 0)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_options(common)
    shape = common.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print one JSON document, for scripts")
    shape.add_argument("--jsonl", action="store_true", help="print JSON lines (one object per line), for scripts")
    common.add_argument("--quiet", action="store_true", help="print nothing on success")
    p = argparse.ArgumentParser(prog="ferryman", description="Ferryman: binaries from CI to device fleets.",
                                formatter_class=HelpFormatter)  # fmt: skip
    p.add_argument("--version", action="version", version=f"ferryman {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, Any] = {}

    def group(name: str, help_: str) -> Any:
        if name not in groups:
            g = sub.add_parser(name, help=help_, description=help_)
            groups[name] = g.add_subparsers(dest="action", required=True, metavar="ACTION")
        return groups[name]

    def cmd(parent: Any, name: str, help_: str, func: Any, parents: list[argparse.ArgumentParser] | None = None) -> Any:
        c = parent.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".",
                              parents=[common] if parents is None else parents)  # fmt: skip
        c.set_defaults(func=func)
        return c

    def bare(parent: Any, name: str, help_: str, func: Any) -> Any:
        return cmd(parent, name, help_, func, parents=[])

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
    bc.add_argument("binaries", nargs="+", type=ref("binary"), metavar="BINARY")
    bc.add_argument("--name")

    cc = cmd(group("channels", "release channels"), "create", "create a release channel", api.cmd_channels_create)
    cc.add_argument("name", metavar="NAME")

    co = cmd(group("cohorts", "cohorts of devices"), "create", "create a cohort", api.cmd_cohorts_create)
    co.add_argument("name", metavar="NAME")
    co.add_argument("--channel", type=ref("channel"), metavar="CHANNEL")
    co.add_argument("--region", metavar="NAME", help="region its devices download from")

    releases = group("releases", "releases")
    rc = cmd(releases, "create", "add a release to a channel", api.cmd_releases_create)
    rc.add_argument("--channel", required=True, type=ref("channel"), metavar="CHANNEL")
    rc.add_argument("--name", required=True)
    rc.add_argument("--bundle", required=True, type=ref("bundle"), metavar="BUNDLE")
    rc.add_argument("--version", dest="version")
    rc.add_argument("--requirement", metavar="REQ", help="version requirement, e.g. '>=1.0.0,<2.0.0'")
    rc.add_argument("--required", action="store_true")
    rc.add_argument("--disabled", action="store_true")
    rc.add_argument("--schedule-at", metavar="TIME", help="RFC 3339")
    rc.add_argument("--next", type=ref("release"), metavar="RELEASE", help="insert before this release")
    rc.add_argument("--previous", type=ref("release"), metavar="RELEASE", help="with --next: insert between the two")
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
        cmd(releases, name, help_, func).add_argument("release_id", type=ref("release"), metavar="RELEASE")

    for kind in ("cohort", "channel"):
        help_ = f"rollout outcomes of a {kind}'s devices, in all and per release"
        st = cmd(group(kind + "s", ""), "stats", help_, ops.cmd_scope_stats)
        st.add_argument("id", type=ref(kind), metavar=kind.upper())
        st.set_defaults(scope=kind)
    cmd(group("devices", "devices"), "reports", "a device's last reports, newest first",
        ops.cmd_devices_reports).add_argument("id", type=ref("device"), metavar="DEVICE")  # fmt: skip

    rw = cmd(
        group("rollout", "rollouts"),
        "watch",
        "follow a release's rollout until done (exit 0) or halted (exit 1)",
        ops.cmd_rollout_watch,
    )
    rw.add_argument("release_id", type=ref("release"), metavar="RELEASE")
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
    wd = cmd(webhooks, "deliveries", "a webhook's deliveries and their attempts", ops.cmd_webhooks_deliveries)
    wd.add_argument("webhook_id", type=ref("webhook"), metavar="WEBHOOK")
    wd.add_argument("--state", choices=("pending", "delivered", "failed"))
    wr = cmd(webhooks, "redeliver", "send a delivery again (same webhook-id)", ops.cmd_webhooks_redeliver)
    wr.add_argument("webhook_id", type=ref("webhook"), metavar="WEBHOOK")
    wr.add_argument("delivery_id", metavar="DELIVERY_ID")

    devices = group("devices", "devices")
    dc = cmd(devices, "create", "register a device (prints its token once)", api.cmd_devices_create)
    dc.add_argument("identifier", metavar="IDENTIFIER")
    dc.add_argument("--target", required=True)
    dc.add_argument("--cohort", type=ref("cohort"), metavar="COHORT")
    dc.add_argument("--tag", action="append", metavar="TAG")
    dc.add_argument("--region", metavar="NAME", help="region it downloads from (default its cohort's)")
    dc.add_argument("--auth-key", metavar="PEM_FILE", help="pre-authorise a Mender device: the public key it authenticates with")
    for verb, accept, text in (
        ("accept", True, "accept a device that asked to join (Mender): it gets a token at its next request"),
        ("reject", False, "reject a device: its token stops working at once"),
    ):
        da = cmd(devices, verb, text, api.cmd_devices_admit)
        da.add_argument("device_id", type=ref("device"), metavar="DEVICE")
        da.set_defaults(accept=accept, cohort=None, target=None, tag=None)
        if accept:
            # A device that joined by itself has no cohort (so no channel) yet: give it one here.
            da.add_argument(
                "--cohort", type=ref("cohort"), metavar="COHORT", help="put it in this cohort (its channel's releases reach it)"
            )
            da.add_argument("--target", help="its target (default: the device type its agent reports)")
            da.add_argument("--tag", action="append", metavar="TAG")
    cmd(devices, "actions", "a device's DDI actions and Mender deployments, newest first", api.cmd_devices_actions).add_argument(
        "device_id", type=ref("device"), metavar="DEVICE"
    )
    cmd(devices, "cancel", "cancel a device's open action (told at its next poll)", api.cmd_devices_cancel).add_argument(
        "device_id", type=ref("device"), metavar="DEVICE"
    )
    cmd(
        devices,
        "rotate-token",
        "give a device a new token (printed once); the old one stops working",
        api.cmd_devices_rotate_token,
    ).add_argument("device_id", type=ref("device"), metavar="DEVICE")

    dv = cmd(group("device", "act as a device"), "check", "check for an update with a device token", api.cmd_device_check)
    dv.add_argument(
        "--device-token", default=os.environ.get("FERRYMAN_DEVICE_TOKEN"), required="FERRYMAN_DEVICE_TOKEN" not in os.environ
    )
    dv.add_argument("--release-id")
    dv.add_argument("--bundle-id")
    dv.add_argument("--version", dest="version")
    dv.add_argument("--download", metavar="DIR", help="download and verify the update's binaries into DIR")
    dv.add_argument("--trusted-key", action="append", metavar="FILE", help="require a signature by this key")
    dv.add_argument("--report", action="store_true", help="with --download: then report the update installed")
    dv.add_argument("--state", metavar="FILE", help="what the device runs: read before the check, written after an install")

    dl = cmd(sub, "download", "download a binary (resumable; verifies SHA-256 and signatures)", api.cmd_download)
    dl.add_argument("binary_id", metavar="BINARY_ID|URL", help="a binary ID, or a /dl/ grant URL (with --sha256)")
    dl.add_argument("--sha256", metavar="HEX", help="expected digest, for a grant URL")
    dl.add_argument("-o", "--output", metavar="FILE")
    dl.add_argument("--trusted-key", action="append", metavar="FILE", help="require a signature by this key")

    signing.add_parsers(group, cmd, sub)
    generic.add_parsers(group, cmd)
    steering.add_parsers(group, cmd)
    details.add_parsers(group, cmd, bare)
    c = sub.add_parser("completion", help="print a shell completion script", description="Print a shell completion script.")
    c.add_argument("shell", choices=SHELLS)
    c.set_defaults(func=lambda args: print(script(p, args.shell), end="") or 0)
    serving.add_parsers(sub)
    _examples(p)
    return p


def commands(p: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command with no actions below it, by its path (``releases update``)."""
    sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        yield path, p
        return
    for name, child in sub.choices.items():
        yield from commands(child, f"{path} {name}".strip())


def _examples(p: argparse.ArgumentParser) -> None:
    for path, c in commands(p):
        c.formatter_class = HelpFormatter
        if path in EXAMPLES:
            c.epilog = "example:\n" + "\n".join("  " + line for line in EXAMPLES[path].strip().splitlines())


def _joined(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    for word in argv:
        if out and out[-1] in _DASHED_VALUES and word.startswith("-") and len(word) > 1:
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


async def _resolved(args: argparse.Namespace) -> None:
    async with client(args) as c:
        await resolve_all(c, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI with ``argv`` (default ``sys.argv[1:]``) and returns the exit code."""
    p = parser()
    try:
        args = p.parse_args(_joined(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # argparse exits 2 on usage errors and 0 for --help/--version
        return int(e.code or 0)
    try:
        if any(isinstance(v, Ref) or (isinstance(v, list) and any(isinstance(x, Ref) for x in v)) for v in vars(args).values()):
            asyncio.run(_resolved(args))
        result = args.func(args)
        return _run(result) if asyncio.iscoroutine(result) else int(result)
    except Ambiguous as e:
        print(f"ferryman: error: {e}", file=sys.stderr)
        return 2
    except (OSError, FerrymanError, ValueError) as e:
        print(f"ferryman: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ferryman: interrupted", file=sys.stderr)
        return 130
