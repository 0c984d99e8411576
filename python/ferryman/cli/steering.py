"""Steering a rollout in an operator's words: a release's phase (``25%``, ``40``,
``tags:canary,beta``, ``none``), required, disabled, schedule, hold and halt rule; a device's
cohort, tags (``+canary``, ``-old``) and quarantine; what a device would get now and why; and a
channel's release graph drawn as text."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ferryman import paths
from ferryman.catalog import models as m
from ferryman.cli.config import client
from ferryman.cli.generic import DETAILS, add_field_options, changes_of, detail, nothing_to_change
from ferryman.cli.output import fields_text, out
from ferryman.cli.refs import ref
from ferryman.cli.resources import Option, nullable, optional_ref, time_or_none
from ferryman.client import Client
from ferryman.paths import at
from ferryman.releases.words import phase_words

__all__ = ["add_parsers", "graph_lines", "parse_phase", "parse_tag"]

NONE = "none"


def parse_phase(text: str) -> m.PhaseIn | None:
    """``25%`` (a share of the devices), ``40`` (the first 40), ``tags:canary,beta`` (devices with
    any of those tags) or ``none`` (every device)."""
    t = text.strip().lower()
    if t == NONE:
        return None
    if t.startswith("tags:"):
        tags = [x.strip() for x in text.strip()[5:].split(",") if x.strip()]
        if not tags:
            raise argparse.ArgumentTypeError("tags: needs at least one tag, e.g. tags:canary,beta")
        return m.PhaseIn(mode="tags", tags=tags)
    percent = re.fullmatch(r"(\d+(?:\.\d+)?)%", t)
    if percent:
        share = float(percent.group(1))
        if share > 100:
            raise argparse.ArgumentTypeError(f"not a share from 0% to 100%: {text!r}")
        return m.PhaseIn(mode="percent", value=share / 100)
    if t.isdigit() and int(t) >= 1:
        return m.PhaseIn(mode="count", value=int(t))
    raise argparse.ArgumentTypeError(f"not a phase: {text!r} (25% for a share, 40 for a count, tags:a,b, or none)")


def parse_tag(text: str) -> tuple[str, str]:
    """``+canary`` or ``canary`` adds a tag, ``-old`` removes one."""
    sign, tag = ("-", text[1:]) if text.startswith("-") else ("+", text.removeprefix("+"))
    if not tag:
        raise argparse.ArgumentTypeError(f"not a tag: {text!r} (+TAG adds, -TAG removes)")
    return sign, tag


def _fraction(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"not a share from 0 to 1 (or 0% to 100%): {text!r}")
    return value


RELEASE_FIELDS = (
    Option("--name", "name", "rename it"),
    Option("--version", "version", "its version ('' clears it)", nullable),
    Option("--requirement", "version_requirement", "version requirement, e.g. '>=1.0.0,<2.0.0' ('' clears it)", nullable,
           metavar="REQ"),
    Option("--phase", "phase", "who is offered it: 25%%, 40 (the first 40 devices), tags:canary,beta, or none (everyone)",
           parse_phase, metavar="PHASE"),
    Option("--schedule", "schedule_at", "offer it from this time on (RFC 3339, e.g. 2026-12-24T06:00Z; none: now)",
           time_or_none, metavar="TIME"),
    Option("--required", "required", "devices must install it on their way (or may skip it)",
           pair=("--required", "--no-required")),
    Option("--disable", "disabled", "offer it to no device (devices pass over it) or again",
           pair=("--disable", "--enable")),
    Option("--hold", "halted", "stop offering it to more devices, or resume (also after a halt)",
           pair=("--hold", "--resume")),
    Option("--require-replicated", "require_replicated", "offer it only once its binaries are in every region",
           pair=("--require-replicated", "--no-require-replicated")),
)  # fmt: skip
HALT = (
    Option("--halt-failure-rate", "max_failure_rate", "halt above this share of failed devices (0..1 or 5%%)", _fraction,
           metavar="SHARE"),
    Option("--halt-min-reports", "min_reports", "ends reported before the rate applies", int, metavar="N"),
    Option("--halt-max-failures", "max_failures", "halt when more than N devices failed", int, metavar="N"),
)  # fmt: skip


async def cmd_releases_update(args: argparse.Namespace) -> int:
    changes = changes_of(args, RELEASE_FIELDS)
    bounds = changes_of(args, HALT)
    if not changes and not bounds and not args.no_halt:
        return nothing_to_change(RELEASE_FIELDS + HALT)
    async with client(args) as c:
        if args.no_halt:
            changes["halt"] = None
        elif bounds:
            # The rule is replaced whole: the bounds not given keep their current values.
            current = (await c.get_release(args.id)).halt or {}
            changes["halt"] = m.HaltIn(**{**{k: v for k, v in current.items() if v is not None}, **bounds})
        r = await c.patch_release(args.id, m.ReleasePatch(**changes))
        text = "" if args.json or args.jsonl or args.quiet else _release_line(r)
    out(args, r, text)
    return 0


def _marks(r: m.Release) -> list[str]:
    marks = [w for w, on in (("REQUIRED", r.required), ("DISABLED", r.disabled)) if on]
    if r.halted:
        marks.append(f"HALTED ({r.halted_reason})" if r.halted_reason else "HALTED")
    if r.schedule_at:
        marks.append(f"from {r.schedule_at}")
    return marks


def _release_line(r: m.Release) -> str:
    return " ".join([f"{r.id} {r.name}:", f"offered to {phase_words(r.phase)}", *_marks(r)])


# Devices -----------------------------------------------------------------------------------------

DEVICE_FIELDS = (
    Option("--cohort", "cohort_id", "move it to this cohort ('' takes it out of any)", optional_ref("cohort")),
    Option("--target", "target", "its target"),
    Option("--region", "region", "region it downloads from ('' for its cohort's)", nullable),
    Option("--quarantine", "quarantined", "offer it nothing, or release it", pair=("--quarantine", "--no-quarantine")),
)  # fmt: skip


async def cmd_devices_update(args: argparse.Namespace) -> int:
    changes = changes_of(args, DEVICE_FIELDS)
    if not changes and not args.tag:
        return nothing_to_change((*DEVICE_FIELDS, Option("--tag", "tags", "")))
    async with client(args) as c:
        if args.tag:
            tags = list((await c.read(at(paths.DEVICE, device_id=args.id), m.Device)).tags)
            for sign, tag in args.tag:
                if sign == "+" and tag not in tags:
                    tags.append(tag)
                elif sign == "-" and tag in tags:
                    tags.remove(tag)
            changes["tags"] = tags
        d = await c.update_device(args.id, m.DevicePatch(**changes))
        text = "" if args.json or args.jsonl or args.quiet else await detail(c, "devices", d)
    out(args, d, text)
    return 0


async def cmd_devices_resolve(args: argparse.Namespace) -> int:
    body = m.UpdateRequest(release_id=args.release, bundle_id=args.bundle, version=args.as_version)
    async with client(args) as c:
        answer = await c.resolve_for_device(args.id, body)
    lines = [f"{answer.status} ({answer.reason})"]
    if answer.release:
        r = answer.release
        lines.append(f"release {r.id}" + (f" version {r.version}" if r.version else "") + (" required" if r.required else ""))
    if answer.bundle:
        lines.append(f"bundle  {answer.bundle.id}" + (f" (from {answer.source})" if answer.source else ""))
    for b in answer.binaries:
        lines.append(f"  {b.artifact} {b.version} {b.target}  {b.size} bytes  sha256 {b.sha256}  {len(b.signatures)} signatures")
    out(args, answer, "\n".join(lines))
    return 0


# The channel graph ------------------------------------------------------------------------------


def graph_lines(releases: list[m.Release], installed: dict[str, int] | None = None) -> list[str]:
    """A channel's releases as a tree drawn upwards: each release below the releases that lead to
    it, indented one step more per release still ahead of them, so the latest comes last and
    flush left. Predecessors are drawn oldest first."""
    if not releases:
        return []
    by_id = {r.id: r for r in releases}
    before: dict[str | None, list[m.Release]] = {}
    for r in sorted(releases, key=lambda r: (r.created_at, r.id)):
        before.setdefault(r.next_release_id if r.next_release_id in by_id else None, []).append(r)
    width = max(len(r.name) for r in releases)
    lines: list[str] = []

    def draw(r: m.Release, depth: int) -> None:
        for p in before.get(r.id, []):
            draw(p, depth + 1)
        arrow = "└→ " if depth else "● "
        parts = [f"{'   ' * depth}{arrow}{r.name.ljust(width)}", r.id, *([r.version] if r.version else [])]
        if r.phase is not None:
            parts.append(f"phase {phase_words(r.phase)}")
        parts += _marks(r)
        if installed and installed.get(r.id):
            parts.append(f"{installed[r.id]} installed")
        lines.append("  ".join(parts) + ("  (latest)" if not depth else ""))

    for latest in before.get(None, []):
        draw(latest, 0)
    return lines


async def _channel_detail(c: Client, ch: m.Channel) -> str:
    releases = [r async for r in c.releases(ch.id)]
    try:
        stats = await c.channel_stats(ch.id)
        installed = {s.release_id: s.outcomes.installed for s in stats.releases or []}
    except Exception:  # stats are an extra, never a reason not to draw the graph
        installed = {}
    head = [fields_text(ch), "", f"releases ({len(releases)}; each leads to the one below it, the latest last):"]
    return "\n".join(head + (graph_lines(releases, installed) or ["  none yet"]))


DETAILS["channels"] = _channel_detail


def add_parsers(group: Any, cmd: Any) -> None:
    p = cmd(group("releases", ""), "update", "steer a release: phase, required, disabled, schedule, hold, halt rule",
            cmd_releases_update)  # fmt: skip
    p.add_argument("id", type=ref("release"), metavar="RELEASE")
    add_field_options(p, RELEASE_FIELDS)
    add_field_options(p, HALT)
    p.add_argument("--no-halt", action="store_true", help="drop its halt rule")

    p = cmd(group("devices", ""), "update", "move a device to a cohort, tag or untag it, quarantine it", cmd_devices_update)
    p.add_argument("id", type=ref("device"), metavar="DEVICE")
    add_field_options(p, DEVICE_FIELDS)
    p.add_argument(
        "--tag", action="append", type=parse_tag, metavar="[+|-]TAG", help="+TAG adds a tag, -TAG removes one (repeatable)"
    )

    p = cmd(group("devices", ""), "resolve", "what a device would get now, and why (a dry run; admin)", cmd_devices_resolve)
    p.add_argument("id", type=ref("device"), metavar="DEVICE")
    p.add_argument("--release", type=ref("release"), help="as if it reported running this release (default: what it reported)")
    p.add_argument("--bundle", type=ref("bundle"), help="as if it reported this bundle")
    p.add_argument("--as-version", metavar="VERSION", help="as if it reported this version")
