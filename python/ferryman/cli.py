"""The ``ferryman`` command line.

Every command is a function of parsed arguments returning an exit code: 0 ok, 1 operational
error, 2 usage error. Errors are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from ferryman import __version__
from ferryman.chunking import ChunkParams
from ferryman.errors import FerrymanError
from ferryman.hashing import FileDigest, hash_files

__all__ = ["main", "parse_size"]

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_size(text: str) -> int:
    """Parses a byte count such as ``8388608``, ``8MiB``, ``8M`` or ``1.5GiB``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?)?b?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    value = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
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
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ferryman", description="Ferryman: binaries from CI to device fleets.")
    p.add_argument("--version", action="version", version=f"ferryman {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "--signature-threshold", type=int, default=1, metavar="N",
        help="distinct active keys whose signatures make a binary signed (default 1)",
    )  # fmt: skip
    s.add_argument("--access-log", action="store_true", help="log one line per request on stderr")
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
        return int(args.func(args))
    except (OSError, FerrymanError, ValueError) as e:
        print(f"ferryman: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ferryman: interrupted", file=sys.stderr)
        return 130
