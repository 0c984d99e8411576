"""What the command line prints: sizes parsed, progress bars, results as lines, JSON or JSON
lines, aligned tables, every field of one resource, and digest tables."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

import msgspec

from ferryman.hashing import FileDigest

__all__ = ["Bar", "digest_dict", "digest_table", "fields_text", "out", "out_list", "parse_size", "table"]

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


def digest_dict(d: FileDigest) -> dict[str, Any]:
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


def digest_table(digests: list[FileDigest]) -> str:
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


def out(args: argparse.Namespace, data: Any, line: str) -> None:
    if args.json:
        print(json.dumps(msgspec.to_builtins(data), indent=2))
    elif getattr(args, "jsonl", False):
        print(json.dumps(msgspec.to_builtins(data)))
    elif not args.quiet:
        print(line)


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Aligned columns (two spaces apart), the last one not padded."""
    rows = [headers, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def out_list(args: argparse.Namespace, items: list[Any], headers: list[str], row: Any, more: bool, what: str) -> None:
    """A list: one JSON document, JSON lines, or a table (``row`` makes a table row of an item);
    ``more``: the list goes on (said on stderr, so output piped on stays clean)."""
    if args.json:
        print(json.dumps(msgspec.to_builtins(items), indent=2))
    elif getattr(args, "jsonl", False):
        for item in items:
            print(json.dumps(msgspec.to_builtins(item)))
    elif not args.quiet:
        print(table([[cell(v) for v in row(i)] for i in items], headers) if items else f"no {what}")
    if more and not args.quiet:
        print(f"ferryman: showing the first {len(items)}; --all for every one, --limit N for more", file=sys.stderr)


def cell(value: Any) -> str:
    """A value as a table cell or a field: ``-`` for none, lists joined with commas."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def fields_text(data: Any, indent: str = "") -> str:
    """Every field of a resource, one per line, aligned; nested objects and lists of objects
    indented below their field."""
    d = msgspec.to_builtins(data)
    width = max((len(k) for k in d), default=0)
    lines = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            lines.append(f"{indent}{k}:")
            lines.append(fields_text(v, indent + "  "))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            lines.append(f"{indent}{k}: {len(v)}")
            for x in v:
                sub = fields_text(x, indent + "    ").split("\n")
                lines.append(indent + "  - " + sub[0].lstrip())
                lines.extend(sub[1:])
        else:
            # A value of several lines (a PEM key) continues under its first line.
            text = cell(v).strip("\n").replace("\n", "\n" + indent + " " * (width + 2))
            lines.append(f"{indent}{k.ljust(width)}  {text}")
    return "\n".join(lines)
