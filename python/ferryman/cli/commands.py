"""Commands that talk to a server, through the typed ``Client`` only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from ferryman import paths
from ferryman.catalog import models as m
from ferryman.cli.config import client, connection
from ferryman.cli.output import Bar, out
from ferryman.cli.signing import signer_of
from ferryman.client import Client
from ferryman.errors import FerrymanError, InvalidSignature
from ferryman.paths import at
from ferryman.releases import Reported
from ferryman.signing import load_public_key


async def cmd_api_keys_create(args: argparse.Namespace) -> int:
    async with client(args) as c:
        k = await c.create_api_key(m.ApiKeyCreate(name=args.name, role=args.role))
    out(args, k, k.token or "")
    return 0


async def cmd_upload(args: argparse.Namespace) -> int:
    shown = not (args.quiet or args.json)
    # The key is opened first: a wrong PIN or a missing object fails before anything is sent.
    with signer_of(args, args.sign) if args.sign else contextlib.nullcontext() as signer:
        async with client(args) as c:
            u = await c.upload(
                Path(args.file), args.artifact, args.version, args.target, create=args.create,
                part_size=args.part_size or m.DEFAULT_PART, concurrency=args.concurrency, sign_key=signer,
                progress=lambda label, total: Bar(label, total, shown),
            )  # fmt: skip
    timing = {"hash_seconds": u.hash_seconds, "upload_seconds": u.upload_seconds, "server_hash_seconds": u.server_hash_seconds}
    out(
        args,
        {**msgspec.to_builtins(u.binary), "parts_sent": u.parts_sent, **timing},
        f"{u.binary.id} {u.binary.state} {u.size} bytes sha256 {u.sha256} ({u.parts_sent} parts sent)",
    )
    return 0


async def cmd_bundles_create(args: argparse.Namespace) -> int:
    async with client(args) as c:
        b = await c.create_bundle(m.BundleCreate(binaries=args.binaries, name=args.name))
    out(args, b, f"{b.id} hash {b.hash}")
    return 0


async def cmd_channels_create(args: argparse.Namespace) -> int:
    async with client(args) as c:
        ch = await c.create_channel(m.ChannelCreate(name=args.name))
    out(args, ch, ch.id)
    return 0


async def cmd_cohorts_create(args: argparse.Namespace) -> int:
    async with client(args) as c:
        co = await c.create_cohort(m.CohortCreate(name=args.name, channel_id=args.channel, region=args.region))
    out(args, co, co.id)
    return 0


async def cmd_releases_create(args: argparse.Namespace) -> int:
    phase = None
    if args.percent is not None:
        phase = m.PhaseIn(mode="percent", value=args.percent)
    elif args.count is not None:
        phase = m.PhaseIn(mode="count", value=args.count)
    elif args.tags:
        phase = m.PhaseIn(mode="tags", tags=args.tags.split(","))
    body = m.ReleaseCreate(
        name=args.name, bundle_id=args.bundle, required=args.required, disabled=args.disabled, version=args.version,
        version_requirement=args.requirement, schedule_at=args.schedule_at, next_release_id=args.next,
        previous_release_id=args.previous, phase=phase, require_replicated=args.require_replicated,
    )  # fmt: skip
    bounds = (args.halt_failure_rate, args.halt_min_reports, args.halt_max_failures)
    if any(b is not None for b in bounds):
        body.halt = m.HaltIn(max_failure_rate=bounds[0], min_reports=bounds[1], max_failures=bounds[2])
    async with client(args) as c:
        r = await c.create_release(args.channel, body)
    out(args, r, r.id)
    return 0


async def cmd_devices_create(args: argparse.Namespace) -> int:
    auth_key = Path(args.auth_key).read_text() if args.auth_key else None
    body = m.DeviceCreate(identifier=args.identifier, target=args.target, cohort_id=args.cohort, tags=args.tag or [],
                          region=args.region, auth_key=auth_key)  # fmt: skip
    async with client(args) as c:
        d = await c.create_device(body)
    out(args, d, f"{d.id} token {d.token}")
    return 0


async def cmd_devices_admit(args: argparse.Namespace) -> int:
    async with client(args) as c:
        d = await c.admit_device(args.device_id, args.accept)
        changes = {k: v for k, v in (("cohort_id", args.cohort), ("target", args.target), ("tags", args.tag)) if v}
        if changes:
            d = await c.update_device(args.device_id, msgspec.convert(changes, m.DevicePatch))
    cohort = f" in {d.cohort_id}" if d.cohort_id else ""
    out(args, d, f"{d.id} {d.identifier} {d.admission}{cohort}")
    return 0


async def cmd_devices_cancel(args: argparse.Namespace) -> int:
    async with client(args) as c:
        canceled = await c.cancel_device_actions(args.device_id)
    text = "\n".join(f"action {a.id} canceling" for a in canceled) or "no open action"
    out(args, canceled, text)
    return 0


async def cmd_devices_actions(args: argparse.Namespace) -> int:
    async with client(args) as c:
        found = await c.device_actions(args.device_id)
    lines = [f"{a.id}\t{a.status}\t{a.result or '-'}\t{a.release_id or '-'}\t{a.bundle_id}\t{a.updated_at}" for a in found]
    out(args, found, "\n".join(lines) or "no actions")
    return 0


async def cmd_devices_rotate_token(args: argparse.Namespace) -> int:
    async with client(args) as c:
        d = await c.rotate_device_token(args.device_id)
    out(args, d, f"{d.id} token {d.token}")
    return 0


def _trusted(paths: list[str] | None) -> dict[str, Any]:
    keys = {}
    for p in paths or []:
        k = load_public_key(Path(p).read_bytes())
        keys[k.keyid] = k
    return keys


def _check_signatures(sha256: str, signatures: Sequence[m.Signature | m.ManifestSignature], trusted: dict[str, Any],
                      what: str) -> None:  # fmt: skip
    """Requires a valid signature by a trusted key when keys are given."""
    if not trusted:
        return
    for s in signatures:
        key = trusted.get(s.keyid)
        if key is None:
            continue
        try:
            key.verify_binary(bytes.fromhex(sha256), bytes.fromhex(s.signature), s.algorithm)
            return
        except (InvalidSignature, ValueError):
            continue
    raise FerrymanError(f"{what}: no valid signature by a trusted key")


def _device_state(path: str | None) -> dict[str, Any]:
    """What a simulated device runs (``--state FILE``), as its last verified install left it."""
    if not path or not Path(path).exists():
        return {}
    state = json.loads(Path(path).read_text())
    return state if isinstance(state, dict) else {}


async def cmd_device_check(args: argparse.Namespace) -> int:
    """An update check as a device makes it; with ``--download``, the update's binaries are
    fetched and verified; with ``--report`` it is then reported installed, and with ``--state``
    the device remembers what it runs for its next check (a stand-in for a device's agent)."""
    state = _device_state(args.state)
    reported = Reported(args.release_id or state.get("release_id"), args.bundle_id or state.get("bundle_id"),
                        args.version or state.get("version"))  # fmt: skip
    trusted = _trusted(args.trusted_key)
    async with Client(connection(args)[0]) as c:
        answer = await c.check_in(args.device_token, reported)
        files = []
        if args.download and answer.status == "update":
            folder = Path(args.download)
            folder.mkdir(parents=True, exist_ok=True)
            for b in answer.binaries:
                name = f"{b.artifact}-{b.version}-{b.target}.bin"
                bar = Bar(name, b.size, not (args.quiet or args.json))
                try:
                    _check_signatures(b.sha256, b.signatures, trusted, name)
                    done = await c.download(b.url, folder / name, sha256=b.sha256, size=b.size, token="", progress=bar)
                    files.append(str(done))
                finally:
                    bar.close()
            if answer.bundle is not None:
                release = answer.release
                if args.report:
                    body = m.DeviceReport(bundle_id=answer.bundle.id, status="installed",
                                          release_id=release.id if release else None,
                                          version=release.version if release else None)  # fmt: skip
                    await c.report(args.device_token, body)
                if args.state:
                    state = {"release_id": release.id if release else None, "bundle_id": answer.bundle.id,
                             "version": release.version if release else None}  # fmt: skip
                    Path(args.state).write_text(json.dumps(state))
    if args.json:
        print(json.dumps({**msgspec.to_builtins(answer), "files": files}, indent=2))
    elif not args.quiet:
        rel = answer.release.id if answer.release else "-"
        print(f"{answer.status} ({answer.reason}) release {rel} bundle {answer.bundle.id if answer.bundle else '-'}")
        for f in files:
            print(f)
    return 0


async def cmd_download(args: argparse.Namespace) -> int:
    source = args.binary_id
    if source.startswith(("http://", "https://")):
        # A download grant URL (/dl/...): the digest must come from elsewhere (a manifest).
        if not args.sha256:
            print("ferryman: error: downloading a URL needs --sha256", file=sys.stderr)
            return 2
        dest = Path(args.output or source.rstrip("/").rsplit("/", 1)[-1].split(".")[0] + ".bin")
        async with Client(connection(args)[0]) as c:
            await c.download(source, dest, sha256=args.sha256.lower(), token="")
        out(args, {"path": str(dest), "sha256": args.sha256.lower()}, f"{dest} sha256 {args.sha256.lower()} verified")
        return 0
    trusted = _trusted(args.trusted_key)
    async with client(args) as c:
        b = await c.get_binary(source)
        active = [s for s in await c.list_signatures(source) if s.key_state == "active"]
        _check_signatures(b.sha256, active, trusted, source)
        dest = Path(args.output or f"{source}.bin")
        bar = Bar("download ", b.size, not (args.quiet or args.json))
        try:
            await c.download(at(paths.CONTENT, binary_id=source), dest, sha256=b.sha256, size=b.size, progress=bar)
        finally:
            bar.close()
    out(args, {"path": str(dest), "sha256": b.sha256, "size": b.size}, f"{dest} sha256 {b.sha256} verified")
    return 0


def _status_lines(s: m.ReplicationStatus) -> str:
    states = ("verified", "checking", "pending", "copying", "failed", "deleting")
    head = f"{'REGION':<12} {'HEALTH':<9} " + " ".join(f"{x.upper():>9}" for x in states) + f" {'LAG':>9}"
    lines = [head]
    for r in s.regions:
        name = r.region + (" *" if r.primary else "")
        counts = " ".join(f"{r.copies.get(x, 0):>9}" for x in states)
        lines.append(f"{name:<12} {'ok' if r.healthy else 'FAILING':<9} {counts} {r.lag_seconds:>8.1f}s")
    lines.append(f"queued {s.queued}, failed {s.failed}, lag {s.lag_seconds:.1f}s  (* primary)")
    for r in s.regions:
        for f in r.failures:
            lines.append(f"  {r.region}: {f.binary_id} attempt {f.attempts}, next {f.next_attempt_at}: {f.error}")
    return "\n".join(lines)


async def cmd_replication_status(args: argparse.Namespace) -> int:
    async with client(args) as c:
        s = await c.replication_status()
    out(args, s, _status_lines(s))
    return 0


async def cmd_replication_verify(args: argparse.Namespace) -> int:
    """Queues the checks; with --wait, follows them until none is left and reports what was
    found (copies found missing or different are being copied again)."""
    async with client(args) as c:
        q = await c.verify_replicas(args.region)
        s = await c.replication_status()
        if args.wait:
            deadline = asyncio.get_running_loop().time() + args.wait
            while any(r.copies.get("checking", 0) for r in s.regions):
                if asyncio.get_running_loop().time() > deadline:
                    print("ferryman: error: checks still running after --wait seconds", file=sys.stderr)
                    return 1
                await asyncio.sleep(0.5)
                s = await c.replication_status()
    if args.json:
        print(json.dumps({"queued": q.queued, "status": msgspec.to_builtins(s)}, indent=2))
    elif not args.quiet:
        print(f"{q.queued} copies queued to be read back and checked")
        if args.wait:
            print(_status_lines(s))
    return 0
