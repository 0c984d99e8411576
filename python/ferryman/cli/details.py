"""What the resource table cannot say by itself: a binary's parts and signatures and a bundle's
entries for people, the audit log followed live, and the actions that are neither list, show,
update nor delete (revoking a key, signing a bundle, submitting a signature made elsewhere,
creating an override, saving a profile)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ferryman.catalog import models as m
from ferryman.cli.config import client, config_path, load, save_profile
from ferryman.cli.generic import DETAILS
from ferryman.cli.output import cell, out, table
from ferryman.cli.refs import ref
from ferryman.cli.resources import by_group, changed, time_or_none
from ferryman.client import Client

__all__ = ["add_parsers", "binary_lines", "event_line"]

# How late an event may become visible after one with a later time (a transaction that took
# this long to commit): a followed log looks this far back at each poll, so none is missed.
LATE_COMMIT = dt.timedelta(seconds=10)


def binary_lines(b: m.Binary) -> list[str]:
    lines = [
        f"{b.id}  {b.state}",
        f"  artifact {b.artifact_id}  version {b.version_id}  target {b.target}",
        f"  size {b.size}  sha256 {b.sha256}  parts {b.part_count} of {b.part_size}",
    ]
    if b.error:
        lines.append(f"  error: {b.error}")
    for r in b.replicas:
        extra = f"  attempts {r.attempts}  next {r.next_attempt_at}" if r.state in ("failed", "pending") else ""
        lines.append(f"  region {r.region:<12} {r.state:<9} {r.verified_at or '-'}{extra}" + (f"  {r.error}" if r.error else ""))
    return lines


async def _binary_detail(c: Client, b: m.Binary) -> str:
    lines = binary_lines(b)
    if b.state in ("uploadable", "hashable"):
        parts = await c.get_parts(b.id)
        missing = ",".join(map(str, parts.missing)) or "none"
        lines.append(f"  parts received {len(parts.parts)} of {parts.part_count}; missing: {missing}")
    lines += [f"  {k} {v}" for k, v in (("description", b.description), ("filename", b.filename)) if v]
    if b.custom_metadata:
        lines.append(f"  metadata {json.dumps(b.custom_metadata)}")
    signatures = await c.list_signatures(b.id)
    lines.append(f"signatures ({len(signatures)}):")
    rows = [[s.id, s.signing_key_id, s.key_state, s.algorithm, s.keyid[:16] + "…", s.created_at] for s in signatures]
    if rows:
        lines += ["  " + x for x in table(rows, ["ID", "KEY", "STATE", "ALGORITHM", "KEYID", "CREATED"]).split("\n")]
    return "\n".join(lines)


async def _bundle_detail(c: Client, b: m.Bundle) -> str:
    lines = [f"{b.id}  {b.name or '-'}", f"  hash {b.hash}  created {b.created_at}", f"entries ({len(b.entries)}):"]
    rows = [[e.binary_id, e.artifact, e.version, e.target, str(e.size), e.sha256] for e in b.entries]
    lines += ["  " + x for x in table(rows, ["BINARY", "ARTIFACT", "VERSION", "TARGET", "SIZE", "SHA-256"]).split("\n")]
    lines.append(f"signatures ({len(b.signatures)}):")
    rows = [[s.signing_key_id, cell(s.key_state), s.algorithm, s.created_at] for s in b.signatures]
    if rows:
        lines += ["  " + x for x in table(rows, ["KEY", "STATE", "ALGORITHM", "CREATED"]).split("\n")]
    return "\n".join(lines)


DETAILS["binaries"] = _binary_detail
DETAILS["bundles"] = _bundle_detail


# The audit log ----------------------------------------------------------------------------------


def event_line(e: m.Event) -> str:
    fields = changed(e)
    return "  ".join([e.at, e.actor, e.action, e.resource_type, e.resource_id, *([fields] if fields else [])])


def _print_event(args: argparse.Namespace, e: m.Event) -> None:
    if args.json or args.jsonl:
        print(json.dumps(msgspec.to_builtins(e)), flush=True)
    elif not args.quiet:
        print(event_line(e), flush=True)


async def cmd_events_tail(args: argparse.Namespace) -> int:
    """The last ``-n`` events, newest last; with ``--follow``, then every new one as it comes."""
    r = by_group("events")
    filters = {o.field: str(getattr(args, "f_" + o.field)) for o in r.filters if getattr(args, "f_" + o.field, None)}
    async with client(args) as c:
        page = await c.events(filters, newest_first=True, limit=args.lines)
        shown = list(reversed(page.items))
        if args.json and not args.follow:
            print(json.dumps(msgspec.to_builtins(shown), indent=2))
            return 0
        for e in shown:
            _print_event(args, e)
        if not args.follow:
            return 0
        newest = shown[-1].at if shown else None
        if newest is None:  # nothing matches yet: start from the log's end, not its beginning
            last = (await c.events(newest_first=True, limit=1)).items
            newest = last[0].at if last else None
        # Everything already in the log is history (the tail showed its end); only what
        # appears from now on is new, late commits included.
        seen = {e.id: e.at async for e in _window(c, filters, newest)}
        while True:
            await asyncio.sleep(args.interval)
            async for e in _window(c, filters, newest):
                if e.id not in seen:
                    seen[e.id] = e.at
                    _print_event(args, e)
                    newest = max(newest or e.at, e.at)
            horizon = _earlier(newest) if newest else ""
            seen = {k: at_ for k, at_ in seen.items() if at_ >= horizon}


async def _window(c: Client, filters: dict[str, str], newest: str | None) -> AsyncIterator[m.Event]:
    """The events from LATE_COMMIT before ``newest`` on (all of them when there is none yet)."""
    since = filters | ({"since": _earlier(newest)} if newest else {})
    cursor = None
    while True:
        page = await c.events(since, cursor=cursor)
        for e in page.items:
            yield e
        cursor = page.next_cursor
        if not cursor:
            return


def _earlier(at_: str) -> str:
    t = dt.datetime.fromisoformat(at_.replace("Z", "+00:00")) - LATE_COMMIT
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


# Actions ------------------------------------------------------------------------------------------


async def cmd_signatures_add(args: argparse.Namespace) -> int:
    body = m.SignatureCreate(signature=args.signature, keyid=args.keyid.lower() if args.keyid else None, signing_key_id=args.key)
    async with client(args) as c:
        s = await c.add_signature(args.binary, body)
        b = await c.get_binary(args.binary)
    out(args, s, f"{s.id} by {s.signing_key_id}; binary {b.id} {b.state}")
    return 0


async def cmd_overrides_create(args: argparse.Namespace) -> int:
    body = m.OverrideCreate(bundle_id=args.bundle, device_ids=args.device, starts_at=args.starts_at, ends_at=args.ends_at)
    async with client(args) as c:
        o = await c.create_override(body)
    out(args, o, f"{o.id}: {len(o.device_ids)} devices on {o.bundle_id} from {o.starts_at} until {o.ends_at or 'deleted'}")
    return 0


def cmd_profiles_add(args: argparse.Namespace) -> int:
    token = sys.stdin.readline().strip() if args.token_stdin else None
    path, token_file = save_profile(args.name, args.url, token, args.default)
    where = f"; token in {token_file} (mode 600)" if token_file else ""
    out(args, {"profile": args.name, "config": str(path), "token_file": str(token_file) if token_file else None},
        f"profile {args.name} saved in {path}{where}")  # fmt: skip
    return 0


def cmd_profiles_list(args: argparse.Namespace) -> int:
    path = config_path()
    config = load(path)
    profiles = config.get("profiles", {})
    rows = [[("* " if name == config.get("default") else "  ") + name, str(p.get("url", "-")),
             "in file" if p.get("token") else str(p.get("token_file", "-"))] for name, p in profiles.items()]  # fmt: skip
    shown = {n: {"url": p.get("url")} for n, p in profiles.items()}
    out(args, {"config": str(path), "default": config.get("default"), "profiles": shown},
        table(rows, ["PROFILE", "URL", "TOKEN"]) + "\n(* default)" if rows else f"no profiles in {path}")  # fmt: skip
    return 0


def add_parsers(group: Any, cmd: Any, bare: Any) -> None:
    """``cmd`` makes a command with the connection and output options, ``bare`` one without."""
    p = cmd(group("events", ""), "tail", "the last events, newest last; --follow: then each new one", cmd_events_tail)
    for o in by_group("events").filters:
        p.add_argument(o.flag, dest="f_" + o.field, type=o.type, metavar=o.metavar or o.flag.lstrip("-").upper(), help=o.help)
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="how many to show first (default 20, at most 500)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="between polls (default 2)")

    p = cmd(group("signatures", ""), "add", "submit a signature made elsewhere (hex or base64)", cmd_signatures_add)
    p.add_argument("binary", type=ref("binary"), metavar="BINARY")
    p.add_argument("--signature", required=True, metavar="SIG")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--keyid", metavar="HEX", help="the signing key's keyid (SHA-256 of its public key)")
    who.add_argument("--key", type=ref("signing_key"), metavar="SIGNING_KEY", help="the registered key, by ID or name")

    p = cmd(group("bundle-overrides", ""), "create", "force devices onto a bundle for a time", cmd_overrides_create)
    p.add_argument("--bundle", required=True, type=ref("bundle"))
    p.add_argument("--device", required=True, action="append", type=ref("device"), help="a device (repeatable)")
    p.add_argument("--starts-at", type=time_or_none, metavar="TIME", help="RFC 3339 (default now)")
    p.add_argument("--ends-at", type=time_or_none, metavar="TIME", help="RFC 3339 (default: until deleted)")

    p = bare(group("profiles", "named servers and tokens in the config file"), "add",
             "save a profile: its URL, and its token (from stdin) in a file only you can read", cmd_profiles_add)  # fmt: skip
    p.add_argument("name", metavar="NAME")
    p.add_argument("--url", required=True)
    p.add_argument("--token-stdin", action="store_true", help="read the token from the first line of stdin")
    p.add_argument("--default", action="store_true", help="make it the default profile")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p = bare(group("profiles", ""), "list", "the profiles of the config file (never their tokens)", cmd_profiles_list)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
