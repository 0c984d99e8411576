"""The ``ferryman`` command line.

Every command is a function of parsed arguments returning an exit code: 0 ok, 1 operational
error, 2 usage error. Errors are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from ferryman import __version__, paths
from ferryman.catalog import models as m
from ferryman.chunking import ChunkParams
from ferryman.client import Client
from ferryman.errors import FerrymanError, InvalidSignature
from ferryman.hashing import FileDigest, hash_files
from ferryman.paths import at
from ferryman.releases import Reported
from ferryman.signing import keyid_of, load_public_key

__all__ = ["main", "parse_size"]

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_size(text: str) -> int:
    """Parses a byte count such as ``8388608``, ``8MiB``, ``8M`` or ``1.5GiB``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?)?b?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole positive number of bytes: {text!r}")
    return int(value)


def _digest_dict(d: FileDigest) -> dict[str, Any]:
    out: dict[str, Any] = {"path": d.path, "size": d.size, "sha256": d.sha256}
    if d.blake3 is not None:
        out["blake3"] = d.blake3
    if d.parts is not None:
        out["part_size"] = d.part_size
        out["parts"] = [{"index": p.index, "offset": p.offset, "size": p.size, "sha256": p.sha256} for p in d.parts]
    if d.chunks is not None and d.chunking is not None:
        c = d.chunking
        out["chunking"] = {
            "algorithm": "fastcdc-2020",
            "min_size": c.min_size,
            "avg_size": c.avg_size,
            "max_size": c.max_size,
            "normalization": c.normalization,
            "digest": "blake3",
        }
        out["chunks"] = [{"offset": ch.offset, "length": ch.length, "blake3": ch.blake3} for ch in d.chunks]
    return out


def _table(digests: list[FileDigest]) -> str:
    headers = ["SIZE", "SHA-256"]
    extra = digests and digests[0].blake3 is not None
    if extra:
        headers.append("BLAKE3")
    if digests and digests[0].parts is not None:
        headers.append("PARTS")
    if digests and digests[0].chunks is not None:
        headers.append("CHUNKS")
    headers.append("PATH")
    rows = [headers]
    for d in digests:
        row = [str(d.size), d.sha256]
        if d.blake3 is not None:
            row.append(d.blake3)
        if d.parts is not None:
            row.append(str(len(d.parts)))
        if d.chunks is not None:
            row.append(str(len(d.chunks)))
        row.append(d.path)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers) - 1)]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i == 0 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))]
        lines.append("  ".join([*cells, r[-1]]))
    return "\n".join(lines)


def _cmd_hash(args: argparse.Namespace) -> int:
    digests = hash_files(
        args.files,
        threads=args.threads,
        part_size=args.part_size,
        chunking=ChunkParams() if args.chunking else None,
        blake3=args.blake3,
    )
    if args.json:
        print(json.dumps([_digest_dict(d) for d in digests], indent=2))
    else:
        print(_table(digests))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ferryman.config import Config
    from ferryman.server import serve

    if args.signature_threshold < 1:
        print("ferryman: error: --signature-threshold must be at least 1", file=sys.stderr)
        return 2
    serve(
        Config(
            host=args.host,
            port=args.port,
            data_dir=Path(args.data),
            signature_threshold=args.signature_threshold,
            access_log=args.access_log,
            public_url=args.public_url,
            upload_idle_timeout=args.upload_idle_timeout,
            header_timeout=args.header_timeout,
            max_connections=args.max_connections,
        )
    )
    return 0


class Bar:
    """A one-line progress bar on stderr (bytes, rate, ETA), shown only on a terminal."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic()
        self._drawn = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._drawn > 0.1 or self.done >= self.total):
            self._drawn = now
            rate = self.done / max(now - self.start, 1e-6)
            eta = (self.total - self.done) / rate if rate else 0
            pct = 100 * self.done / self.total if self.total else 100
            sys.stderr.write(
                f"\r{self.label} {pct:5.1f}% {self.done / 2**20:,.1f}/{self.total / 2**20:,.1f} MiB "
                f"{rate / 2**20:,.1f} MiB/s ETA {eta:,.0f}s "
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _out(args: argparse.Namespace, data: Any, line: str) -> None:
    if args.json:
        print(json.dumps(msgspec.to_builtins(data), indent=2))
    elif not args.quiet:
        print(line)


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.token)


def _run(coro: Any) -> int:
    return int(asyncio.run(coro) or 0)


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: Any = ed25519.Ed25519PrivateKey.generate() if args.algorithm == "ed25519" else rsa.generate_private_key(65537, 3072)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{args.name}.pem", out / f"{args.name}.pub"
    if private.exists() or public.exists():
        raise FerrymanError(f"{private} or {public} exists; not overwriting a key")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    public.write_bytes(pub)
    keyid = keyid_of(key)
    _out(
        args,
        {"private_key": str(private), "public_key": str(public), "keyid": keyid},
        f"{private} (private, mode 0600)\n{public} (public)\nkeyid {keyid}",
    )
    return 0


async def _cmd_api_keys_create(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        k = await c.create_api_key(m.ApiKeyCreate(name=args.name, role=args.role))
    _out(args, k, k.token or "")
    return 0


async def _cmd_signing_keys_create(args: argparse.Namespace) -> int:
    body = m.SigningKeyCreate(name=args.name, public_key=Path(args.public_key).read_text(), algorithm=args.algorithm)
    async with _client(args) as c:
        k = await c.create_signing_key(body)
    _out(args, k, f"{k.id} {k.algorithm} keyid {k.keyid}")
    return 0


async def _cmd_upload(args: argparse.Namespace) -> int:
    shown = not (args.quiet or args.json)
    async with _client(args) as c:
        u = await c.upload(
            Path(args.file), args.artifact, args.version, args.target, create=args.create,
            part_size=args.part_size or m.DEFAULT_PART, concurrency=args.concurrency, sign_key=args.sign,
            progress=lambda label, total: Bar(label, total, shown),
        )  # fmt: skip
    timing = {"hash_seconds": u.hash_seconds, "upload_seconds": u.upload_seconds, "server_hash_seconds": u.server_hash_seconds}
    _out(
        args,
        {**msgspec.to_builtins(u.binary), "parts_sent": u.parts_sent, **timing},
        f"{u.binary.id} {u.binary.state} {u.size} bytes sha256 {u.sha256} ({u.parts_sent} parts sent)",
    )
    return 0


async def _cmd_sign(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        s = await c.sign_binary(args.binary_id, args.key, args.algorithm)
        b = await c.get_binary(args.binary_id)
    _out(args, s, f"{s.id} by {s.keyid}; binary {b.state}")
    return 0


async def _cmd_bundles_create(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        b = await c.create_bundle(m.BundleCreate(binaries=args.binaries, name=args.name))
    _out(args, b, f"{b.id} hash {b.hash}")
    return 0


async def _cmd_channels_create(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        ch = await c.create_channel(m.ChannelCreate(name=args.name))
    _out(args, ch, ch.id)
    return 0


async def _cmd_cohorts_create(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        co = await c.create_cohort(m.CohortCreate(name=args.name, channel_id=args.channel))
    _out(args, co, co.id)
    return 0


async def _cmd_releases_create(args: argparse.Namespace) -> int:
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
        previous_release_id=args.previous, phase=phase,
    )  # fmt: skip
    async with _client(args) as c:
        r = await c.create_release(args.channel, body)
    _out(args, r, r.id)
    return 0


async def _cmd_devices_create(args: argparse.Namespace) -> int:
    body = m.DeviceCreate(identifier=args.identifier, target=args.target, cohort_id=args.cohort, tags=args.tag or [])
    async with _client(args) as c:
        d = await c.create_device(body)
    _out(args, d, f"{d.id} token {d.token}")
    return 0


async def _cmd_devices_delete(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        await c.delete_device(args.device_id)
    _out(args, {"id": args.device_id, "deleted": True}, f"{args.device_id} deleted")
    return 0


async def _cmd_devices_rotate_token(args: argparse.Namespace) -> int:
    async with _client(args) as c:
        d = await c.rotate_device_token(args.device_id)
    _out(args, d, f"{d.id} token {d.token}")
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


async def _cmd_device_check(args: argparse.Namespace) -> int:
    reported = Reported(args.release_id, args.bundle_id, args.version)
    trusted = _trusted(args.trusted_key)
    async with Client(args.url) as c:
        answer = await c.check_in(args.device_token, reported)
        files = []
        if args.download and answer.status == "update":
            out = Path(args.download)
            out.mkdir(parents=True, exist_ok=True)
            for b in answer.binaries:
                name = f"{b.artifact}-{b.version}-{b.target}.bin"
                bar = Bar(name, b.size, not (args.quiet or args.json))
                try:
                    _check_signatures(b.sha256, b.signatures, trusted, name)
                    done = await c.download(b.url, out / name, sha256=b.sha256, size=b.size, token="", progress=bar)
                    files.append(str(done))
                finally:
                    bar.close()
    if args.json:
        print(json.dumps({**msgspec.to_builtins(answer), "files": files}, indent=2))
    elif not args.quiet:
        rel = answer.release.id if answer.release else "-"
        print(f"{answer.status} ({answer.reason}) release {rel} bundle {answer.bundle.id if answer.bundle else '-'}")
        for f in files:
            print(f)
    return 0


async def _cmd_download(args: argparse.Namespace) -> int:
    source = args.binary_id
    if source.startswith(("http://", "https://")):
        # A download grant URL (/dl/...): the digest must come from elsewhere (a manifest).
        if not args.sha256:
            print("ferryman: error: downloading a URL needs --sha256", file=sys.stderr)
            return 2
        dest = Path(args.output or source.rstrip("/").rsplit("/", 1)[-1].split(".")[0] + ".bin")
        async with Client(args.url) as c:
            await c.download(source, dest, sha256=args.sha256.lower(), token="")
        _out(args, {"path": str(dest), "sha256": args.sha256.lower()}, f"{dest} sha256 {args.sha256.lower()} verified")
        return 0
    trusted = _trusted(args.trusted_key)
    async with _client(args) as c:
        b = await c.get_binary(source)
        active = [s for s in await c.list_signatures(source) if s.key_state == "active"]
        _check_signatures(b.sha256, active, trusted, source)
        dest = Path(args.output or f"{source}.bin")
        bar = Bar("download ", b.size, not (args.quiet or args.json))
        try:
            await c.download(at(paths.CONTENT, binary_id=source), dest, sha256=b.sha256, size=b.size, progress=bar)
        finally:
            bar.close()
    _out(args, {"path": str(dest), "sha256": b.sha256, "size": b.size}, f"{dest} sha256 {b.sha256} verified")
    return 0


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

    a = cmd(group("api-keys", "API keys"), "create", "create an API key (prints its token once)", _cmd_api_keys_create)
    a.add_argument("--name", required=True)
    a.add_argument("--role", required=True, choices=["admin", "publisher", "signer", "releaser", "viewer"])

    k = cmd(
        group("keys", "local signing key pairs"),
        "generate",
        "generate a key pair locally (private key mode 0600)",
        _cmd_keys_generate,
    )
    k.add_argument("--algorithm", choices=["ed25519", "rsa-3072"], default="ed25519")
    k.add_argument("--out", required=True, metavar="DIR")
    k.add_argument("--name", default="signing", help="file name stem (default signing)")

    sk = cmd(group("signing-keys", "public keys the server trusts"), "create", "register a public key", _cmd_signing_keys_create)
    sk.add_argument("--name", required=True)
    sk.add_argument("--public-key", required=True, metavar="FILE", help="PEM/DER public key or X.509 certificate")
    sk.add_argument("--algorithm", choices=["ed25519", "rsa-pkcs1v15-sha256", "rsa-pss-sha256"])

    u = cmd(sub, "upload", "hash, upload (resumable, parallel parts) and verify a binary", _cmd_upload)
    u.add_argument("file", metavar="FILE")
    u.add_argument("--artifact", required=True)
    u.add_argument("--version", required=True, dest="version")
    u.add_argument("--target", required=True)
    u.add_argument("--create", action="store_true", help="create the artifact and version if missing")
    u.add_argument("--part-size", type=parse_size, metavar="SIZE", help="default 8MiB")
    u.add_argument("--concurrency", type=int, default=4, metavar="N", help="parts in flight (default 4)")
    u.add_argument("--sign", metavar="KEYFILE", help="sign with this private key once signable")

    sg = cmd(sub, "sign", "sign a binary with a local private key and submit the signature", _cmd_sign)
    sg.add_argument("binary_id", metavar="BINARY_ID")
    sg.add_argument("--key", required=True, metavar="KEYFILE")
    sg.add_argument("--algorithm", choices=["ed25519", "rsa-pkcs1v15-sha256", "rsa-pss-sha256"])

    bc = cmd(group("bundles", "bundles"), "create", "create a bundle of signed binaries", _cmd_bundles_create)
    bc.add_argument("binaries", nargs="+", metavar="BINARY_ID")
    bc.add_argument("--name")

    cc = cmd(group("channels", "release channels"), "create", "create a release channel", _cmd_channels_create)
    cc.add_argument("name", metavar="NAME")

    co = cmd(group("cohorts", "cohorts of devices"), "create", "create a cohort", _cmd_cohorts_create)
    co.add_argument("name", metavar="NAME")
    co.add_argument("--channel", metavar="CHANNEL_ID")

    rc = cmd(group("releases", "releases"), "create", "add a release to a channel", _cmd_releases_create)
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
    phase = rc.add_mutually_exclusive_group()
    phase.add_argument("--percent", type=float, metavar="FRACTION", help="phase: share of devices, 0..1")
    phase.add_argument("--count", type=int, metavar="N", help="phase: first N devices")
    phase.add_argument("--tags", metavar="T1,T2", help="phase: devices with any of these tags")

    devices = group("devices", "devices")
    dc = cmd(devices, "create", "register a device (prints its token once)", _cmd_devices_create)
    dc.add_argument("identifier", metavar="IDENTIFIER")
    dc.add_argument("--target", required=True)
    dc.add_argument("--cohort", metavar="COHORT_ID")
    dc.add_argument("--tag", action="append", metavar="TAG")

    cmd(devices, "delete", "delete a device (its token stops working at once)", _cmd_devices_delete).add_argument(
        "device_id", metavar="DEVICE_ID"
    )
    cmd(
        devices, "rotate-token", "give a device a new token (printed once); the old one stops working", _cmd_devices_rotate_token
    ).add_argument("device_id", metavar="DEVICE_ID")

    dv = cmd(group("device", "act as a device"), "check", "check for an update with a device token", _cmd_device_check)
    dv.add_argument(
        "--device-token", default=os.environ.get("FERRYMAN_DEVICE_TOKEN"), required="FERRYMAN_DEVICE_TOKEN" not in os.environ
    )
    dv.add_argument("--release-id")
    dv.add_argument("--bundle-id")
    dv.add_argument("--version", dest="version")
    dv.add_argument("--download", metavar="DIR", help="download and verify the update's binaries into DIR")
    dv.add_argument("--trusted-key", action="append", metavar="FILE", help="require a signature by this key")

    dl = cmd(sub, "download", "download a binary (resumable; verifies SHA-256 and signatures)", _cmd_download)
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
    h.set_defaults(func=_cmd_hash)

    s = sub.add_parser(
        "serve",
        help="run the Ferryman service",
        description="Run the service: SQLite catalog and file store under --data. No other setup.",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    s.add_argument("--data", default="ferryman-data", metavar="DIR", help="data directory (default ./ferryman-data)")
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
    s.set_defaults(func=_cmd_serve)
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
