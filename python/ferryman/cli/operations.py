"""Commands of fleet operations: rollout stats, watching a rollout, holding and resuming a
release, and webhooks (through ``Client`` only)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import msgspec

from ferryman.catalog import models as m
from ferryman.cli.config import client
from ferryman.cli.output import out, table
from ferryman.releases.words import phase_words

__all__ = [
    "cmd_devices_reports",
    "cmd_releases_hold",
    "cmd_releases_resume",
    "cmd_releases_stats",
    "cmd_rollout_watch",
    "cmd_scope_stats",
    "cmd_webhooks_create",
    "cmd_webhooks_deliveries",
    "cmd_webhooks_redeliver",
]

COLUMNS = ("offered", "downloading", "installing", "installed", "failed", "rolled_back")
IN_PROGRESS = ("offered", "downloading", "installing")


def _rate(r: float | None) -> str:
    return "-" if r is None else f"{r:.1%}"


def _secs(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f}s"


def stats_table(s: m.RolloutStats) -> str:
    """A rollout's stats for people: outcome counts, success rate, install times, halt."""
    o = msgspec.to_builtins(s.outcomes)
    lines = ["  ".join(f"{c.upper():>11}" for c in COLUMNS), "  ".join(f"{o[c]:>11}" for c in COLUMNS)]
    t = s.install_seconds
    lines.append(f"devices {s.devices}, success rate {_rate(s.success_rate)}, offer to install p50 {_secs(t.p50)} "
                 f"p95 {_secs(t.p95)} ({t.count} installed)")  # fmt: skip
    if s.scope == "release":
        lines.append(f"phase: {phase_words(s.phase)}")
        if s.halted:
            lines.append(f"HALTED: {s.halted_reason}")
    for r in s.releases or []:
        lines.append(f"  {r.release_id} {r.name}: {r.devices} devices, {r.outcomes.installed} installed, "
                     f"{r.outcomes.failed + r.outcomes.rolled_back} failed, success {_rate(r.success_rate)}"
                     + (" HALTED" if r.halted else ""))  # fmt: skip
    return "\n".join(lines)


async def cmd_releases_stats(args: argparse.Namespace) -> int:
    async with client(args) as c:
        s = await c.release_stats(args.release_id)
    out(args, s, stats_table(s))
    return 0


async def cmd_scope_stats(args: argparse.Namespace) -> int:
    """A cohort's or a channel's rollout outcomes (``args.scope``)."""
    async with client(args) as c:
        s = await (c.cohort_stats(args.id) if args.scope == "cohort" else c.channel_stats(args.id))
    out(args, s, stats_table(s))
    return 0


async def cmd_devices_reports(args: argparse.Namespace) -> int:
    async with client(args) as c:
        found = await c.device_reports(args.id)
    rows = [[r.at, r.status, r.release_id or "-", r.bundle_id, r.reason or "-", r.detail or "-"] for r in found]
    text = table(rows, ["AT", "STATUS", "RELEASE", "BUNDLE", "REASON", "DETAIL"]) if rows else "no reports"
    out(args, found, text)
    return 0


async def _set_halted(args: argparse.Namespace, halted: bool) -> int:
    async with client(args) as c:
        r = await c.patch_release(args.release_id, m.ReleasePatch(halted=halted))
    out(args, r, f"{r.id} {'held' if r.halted else 'resumed'}")
    return 0


async def cmd_releases_hold(args: argparse.Namespace) -> int:
    return await _set_halted(args, True)


async def cmd_releases_resume(args: argparse.Namespace) -> int:
    return await _set_halted(args, False)


def _done(s: m.RolloutStats) -> bool:
    """A rollout is done when it offers every device (no phase, or 100%) and no device that
    was offered it is still on its way."""
    full = s.phase is None or (s.phase["mode"] == "percent" and s.phase["value"] >= 1)
    busy = sum(getattr(s.outcomes, c) for c in IN_PROGRESS)
    return full and s.devices > 0 and busy == 0


def _bar(s: m.RolloutStats, width: int = 30) -> str:
    ended = s.outcomes.installed + s.outcomes.failed + s.outcomes.rolled_back
    fill = round(width * ended / s.devices) if s.devices else 0
    return (f"[{'#' * fill}{'.' * (width - fill)}] {ended}/{s.devices} ended: {s.outcomes.installed} installed, "
            f"{s.outcomes.failed + s.outcomes.rolled_back} failed, success {_rate(s.success_rate)}")  # fmt: skip


async def cmd_rollout_watch(args: argparse.Namespace) -> int:
    """Follows a release's rollout until it is done (exit 0) or halted (exit 1), or for at most
    ``--timeout`` seconds (exit 1)."""
    deadline = time.monotonic() + args.timeout if args.timeout else None
    shown = not (args.quiet or args.json)
    live = shown and sys.stdout.isatty()
    async with client(args) as c:
        while True:
            s = await c.release_stats(args.release_id)
            if args.json:
                print(json.dumps(msgspec.to_builtins(s)), flush=True)
            elif shown:
                print(("\r" if live else "") + _bar(s), end="" if live else "\n", flush=True)
            if s.halted or _done(s):
                break
            if deadline is not None and time.monotonic() > deadline:
                if live:
                    print()
                print(f"ferryman: error: rollout not done after {args.timeout:g}s", file=sys.stderr)
                return 1
            await asyncio.sleep(args.interval)
    if live:
        print()
    if s.halted:
        print(f"ferryman: error: release {args.release_id} halted: {s.halted_reason}", file=sys.stderr)
        return 1
    if shown:
        print(f"release {args.release_id} rolled out: {s.outcomes.installed} installed, success {_rate(s.success_rate)}")
    return 0


async def cmd_webhooks_create(args: argparse.Namespace) -> int:
    body = m.WebhookCreate(url=args.url_, events=args.event, description=args.description)
    async with client(args) as c:
        w = await c.create_webhook(body)
    out(args, w, f"{w.id} {w.url}\nsecret (shown once; receivers verify deliveries with it):\n{w.secret}")
    return 0


async def cmd_webhooks_deliveries(args: argparse.Namespace) -> int:
    async with client(args) as c:
        ds = [d async for d in c.deliveries(args.webhook_id, args.state)]
    lines = [f"{d.id} {d.type:<22} {d.state:<9} attempts {d.attempts} status {d.last_status or '-'}"
             + (f" error: {d.last_error}" if d.last_error and d.state != "delivered" else "") for d in ds]  # fmt: skip
    out(args, ds, "\n".join(lines) or "no deliveries")
    return 0


async def cmd_webhooks_redeliver(args: argparse.Namespace) -> int:
    async with client(args) as c:
        d = await c.redeliver(args.webhook_id, args.delivery_id)
    out(args, d, f"{d.id} queued again")
    return 0
